"""Single containers with a restart policy (``run -d --restart always``) are kept by the
supervisor, as a stack's containers are: the CLI hands each one over when it starts it, and
takes it back before it stops, kills or removes it, so that the policy does not undo what the
user asked for (Docker's daemon cancels its restart manager the same way).

    keep(root, container)       # after start: the supervisor watches it (started if needed)
    release(root, container)    # before stop/kill/rm: no restart until it is started again

A container whose policy is ``no`` costs nothing here: no supervisor is started for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.errors import UserError

POLICY_HELP = "restart policy: no, always, on-failure[:N], unless-stopped"


def check_policy(text: str, auto_remove: bool) -> str:
    """``--restart``'s value, checked (Docker's rules); returned as given."""
    from orchestrator.stack.units import UnitError, parse_restart

    try:
        policy = parse_restart(text)
    except UnitError as exc:
        raise UserError(f"--restart: {exc}") from None
    if auto_remove and policy.name != "no":
        raise UserError("conflicting options: --restart and --rm")
    return text


def policy_of(container: Any) -> str:
    return str(container.record.get("options", {}).get("restart") or "no")


def kept(container: Any) -> bool:
    return policy_of(container).split(":")[0] != "no"


def keep(root: Path, container: Any) -> None:
    """(after the CLI started ``container``) Hand it to the supervisor, starting one for
    ``root`` when none runs."""
    if not kept(container):
        return
    from orchestrator.commands.stack import ensure_supervisor
    from orchestrator.supervisor import SOCKET_NAME
    from orchestrator.supervisor import httpclient as http

    ensure_supervisor(root)
    status, document = http.call(root / SOCKET_NAME, "POST", f"/v1/containers/{container.id}/keep")
    if status != 200:
        raise UserError(f"{container.name}: the supervisor cannot keep it: {document}")


def release(root: Path, container: Any) -> None:
    """(before the CLI stops, kills or removes ``container``) No restart by its policy until it
    is started again. Without a running supervisor, the mark goes into its database, for the
    next one to read."""
    if not kept(container):
        return
    from orchestrator.supervisor import DB_NAME, SOCKET_NAME
    from orchestrator.supervisor import httpclient as http

    try:
        http.call(root / SOCKET_NAME, "POST", f"/v1/containers/{container.id}/release")
        return
    except http.Unreachable:
        pass
    if (root / DB_NAME).exists():
        from orchestrator.supervisor.store import Store

        store = Store(root / DB_NAME)
        try:
            store.set_manual_stop(container.id, True)
        finally:
            store.close()
