"""Single containers with a restart policy (``run -d --restart always``) or a healthcheck
(the image's HEALTHCHECK, ``--health-cmd``) are kept by the supervisor, as a stack's
containers are: the CLI hands each one over when it starts it, and takes it back before it
stops, kills or removes it, so that the policy does not undo what the user asked for (Docker's
daemon cancels its restart manager the same way). The supervisor runs the healthcheck and
writes the health in its database, where ``ps`` and ``inspect`` read it (``supervised``).

    keep(root, container)       # after start: the supervisor watches it (started if needed)
    release(root, container)    # before stop/kill/rm: no restart until it is started again
    supervised(root, container) # {"health": ..., "restart_count": ...} or None

A container with neither costs nothing here: no supervisor is started for it.
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
    return policy_of(container).split(":")[0] != "no" or has_healthcheck(container)


def has_healthcheck(container: Any) -> bool:
    """(orchestrator.containers.effective_healthcheck wrote it into the record)"""
    return bool(container.record.get("healthcheck"))


def supervised(root: Path, container: Any) -> dict[str, Any] | None:
    """What the supervisor has recorded of a kept container: its health (None before the
    first check) and restart count; None when it is not kept or no supervisor ever ran. Read
    straight from the database, without asking (or starting) a supervisor."""
    if not kept(container):
        return None
    from orchestrator.supervisor import DB_NAME

    path = root / DB_NAME
    if not path.exists():
        return None
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
        try:
            row = db.execute(
                "SELECT health, restart_count FROM containers WHERE id = ?", (container.id,)
            ).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    if row is None:
        return None
    return {"health": row[0], "restart_count": int(row[1] or 0)}


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
