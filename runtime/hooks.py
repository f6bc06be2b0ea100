"""OCI hooks: programs the runtime runs at points of a container's life, the state on stdin.

    hooks.run(config.hooks.get("poststart", ()), state, "poststart")

Where each kind runs (config.md, "POSIX-platform Hooks"; runc's choices where the spec leaves
room):

  prestart, createRuntime   during create, once the namespaces and the cgroup exist and the
                            mounts are made, before pivot_root; in the runtime's namespaces
                            (by the setup child). A failure stops the create: the container
                            is removed and the poststop hooks run.
  createContainer           just after those, in the container's namespaces (by its init,
                            still before pivot_root).
  startContainer            during start, by the init, before the user's program runs (its
                            path is found in the container).
  poststart                 once start (or run) has started the program, by the caller; a
                            failure is a warning.
  poststop                  when delete has removed the container, by the caller; a failure
                            is a warning.

Each hook gets the container's state (runtime.md) as JSON on its stdin, its own args and env
(nothing else of ours), and is killed after its ``timeout`` seconds. Only ``os`` calls are used:
the init runs hooks after pivot_root, where the host's Python library is out of reach.
"""

from __future__ import annotations

import json
import os
import select
import signal
from dataclasses import dataclass
from typing import Any

from runtime.errors import BundleError, SetupError

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
CREATE_KINDS = ("prestart", "createRuntime", "createContainer")


@dataclass(frozen=True)
class Hook:
    path: str
    args: tuple[str, ...]
    env: tuple[str, ...]
    timeout: float | None


def parse(raw: Any) -> dict[str, tuple[Hook, ...]]:
    """The ``hooks`` object of config.json; a BundleError names the field that is wrong."""
    if not isinstance(raw, dict):
        raise BundleError("config.json: hooks: must be an object")
    result: dict[str, tuple[Hook, ...]] = {}
    for kind, entries in raw.items():
        if kind not in KINDS:
            continue  # a kind of a later spec: not ours to run
        if not isinstance(entries, list):
            raise BundleError(f"config.json: hooks.{kind}: must be a list")
        parsed = []
        for i, entry in enumerate(entries):
            where = f"config.json: hooks.{kind}[{i}]"
            if not isinstance(entry, dict):
                raise BundleError(f"{where}: must be an object")
            path = entry.get("path")
            if not isinstance(path, str) or not path.startswith("/"):
                raise BundleError(f"{where}.path: must be an absolute path")
            args, env = entry.get("args") or [path], entry.get("env") or []
            for key, value in (("args", args), ("env", env)):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise BundleError(f"{where}.{key}: must be a list of strings")
            timeout = entry.get("timeout")
            if timeout is not None and (
                not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0
            ):
                raise BundleError(f"{where}.timeout: must be a number of seconds above 0")
            parsed.append(Hook(path, tuple(args), tuple(env), timeout))
        if parsed:
            result[kind] = tuple(parsed)
    return result


def to_record(hooks: dict[str, tuple[Hook, ...]]) -> dict[str, Any]:
    """The hooks as state.json keeps them (for start and delete, which run the later ones)."""
    return {
        kind: [{"path": h.path, "args": h.args, "env": h.env, "timeout": h.timeout} for h in each]
        for kind, each in hooks.items()
    }


def from_record(raw: Any, kind: str) -> tuple[Hook, ...]:
    entries = (raw or {}).get(kind) or []
    return tuple(
        Hook(e["path"], tuple(e["args"]), tuple(e["env"]), e.get("timeout")) for e in entries
    )


def state(
    container_id: str, status: str, pid: int | None, bundle: str, annotations: dict[str, str]
) -> dict[str, Any]:
    """The state a hook reads on its stdin (runtime.md)."""
    result: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "id": container_id,
        "status": status,
        "bundle": bundle,
        "annotations": annotations,
    }
    if pid:
        result["pid"] = pid
    return result


def run(hooks: tuple[Hook, ...], container_state: dict[str, Any], kind: str) -> None:
    """Run ``hooks`` in order; the first that fails (or outlives its timeout) raises a
    SetupError naming it."""
    if not hooks:
        return
    data = json.dumps(container_state).encode()
    for i, hook in enumerate(hooks):
        why = run_one(hook, data)
        if why:
            raise SetupError(f"{kind} hook {i} ({hook.path}) {why}")


def run_warning(hooks: tuple[Hook, ...], container_state: dict[str, Any], kind: str) -> list[str]:
    """Run every hook even when some fail (poststart, poststop); the failures, as warnings."""
    data = json.dumps(container_state).encode()
    warnings = []
    for i, hook in enumerate(hooks):
        why = run_one(hook, data)
        if why:
            warnings.append(f"{kind} hook {i} ({hook.path}) {why}")
    return warnings


def run_one(hook: Hook, stdin: bytes) -> str | None:
    """Run one hook with ``stdin``; None when it succeeded, else why not."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    env = dict(e.split("=", 1) for e in hook.env if "=" in e)
    try:
        # posix_spawn, not fork: the caller may have threads (the supervisor does)
        pid = os.posix_spawn(
            hook.path, list(hook.args), env, file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0)]
        )
    except OSError as exc:
        os.close(write_end)
        return f"cannot be run: {exc.strerror}"
    finally:
        os.close(read_end)
    try:
        os.write(write_end, stdin)  # (a state fits in the pipe: no wait for the reader)
    except OSError:
        pass  # a hook that does not read its stdin
    finally:
        os.close(write_end)
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], hook.timeout)
        if not ready:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.waitpid(pid, 0)
            return f"timed out after {hook.timeout} s"
    finally:
        os.close(pidfd)
    status = os.waitpid(pid, 0)[1]
    if os.WIFSIGNALED(status):
        return f"was killed by signal {os.WTERMSIG(status)}"
    if os.WEXITSTATUS(status):
        return f"failed with status {os.WEXITSTATUS(status)}"
    return None
