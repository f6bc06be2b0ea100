"""Container state on disk and in the kernel, and the lifecycle state machine.

A container's directory under the runtime root holds ``state.json`` (written once by the monitor
when the container is created, then updated atomically), ``exec.fifo`` while the container is
created but not started, ``exit.json`` once it has ended, and the monitor's ``monitor.sock``.
The kernel is the truth for liveness: a pid counts as the container's only while its start time
in /proc matches the one recorded, so a reused pid is never mistaken for the container.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import Error, NotFound, StateError

CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"

# operation -> the states it may start from (runc's rules).
ALLOWED = {
    "start": {CREATED},
    "kill": {CREATED, RUNNING, PAUSED},
    "pause": {RUNNING},
    "resume": {PAUSED},
    "delete": {CREATED, STOPPED},
    "exec in": {RUNNING},
}

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


class Unreadable(Error):
    """A container whose state.json cannot be read: it is named (listings go on without it)
    and ``Runtime.delete(force=True)`` still removes what it owns."""

    def __init__(self, container_id: str, directory: Path, cause: Exception) -> None:
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else cause
        super().__init__(f"container {container_id}: unreadable state.json: {reason}")
        self.container_id = container_id
        self.directory = directory


def check_transition(container_id: str, status: str, operation: str) -> None:
    if status not in ALLOWED[operation]:
        raise StateError(container_id, status, operation)


def validate_id(container_id: str) -> str:
    if not ID_PATTERN.fullmatch(container_id):
        raise Error(
            f"invalid container id {container_id!r}: use letters, digits, '_', '.', '-' (at most 128)"
        )
    return container_id


def write_json_atomic(path: Path, data: Any) -> None:
    """Readers see the old file or the new one, never half of one.

    No fsync: these records must survive a crash of the supervisor or the monitor (the page cache
    does), not of the machine, after which every container is gone anyway. fsync would cost
    milliseconds on every start and exit.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(data).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())


def process_start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live, non-zombie pid; None when it is gone."""
    try:  # bare calls: a monitor runs this, and every Python object it touches is copied
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


@dataclass
class ContainerState:
    """What ``state`` reports: the OCI state plus what we record beside it."""

    id: str
    directory: Path
    record: dict[str, Any]
    exit: dict[str, Any] | None
    status: str

    @property
    def pid(self) -> int:
        return int(self.record.get("pid", 0))

    @property
    def bundle(self) -> str:
        return str(self.record.get("bundle", ""))

    def oci(self) -> dict[str, Any]:
        """The runtime-spec state JSON."""
        state: dict[str, Any] = {
            "ociVersion": "1.0.2",
            "id": self.id,
            "status": self.status,
            "bundle": self.bundle,
            "annotations": self.record.get("annotations", {}),
        }
        if self.status != STOPPED:
            state["pid"] = self.pid
        return state

    def details(self) -> dict[str, Any]:
        info = self.oci()
        info["pid"] = self.pid if self.status != STOPPED else 0
        info["created"] = self.record.get("created")
        info["started"] = self.record.get("started")
        info["monitor_pid"] = self.record.get("monitor_pid")
        if self.exit:
            info.update(
                exit_code=self.exit.get("exit_code"),
                signal=self.exit.get("signal"),
                oom_killed=bool(self.exit.get("oom_killed")),
                finished=self.exit.get("finished"),
            )
        else:
            info.update(exit_code=None, oom_killed=False, finished=None)
            if self.status == STOPPED and self.record.get("started") and not self.monitor_alive:
                info["exit_unknown"] = "its monitor ended before the container, unrecorded"
        return info

    @property
    def monitor_alive(self) -> bool:
        pid = int(self.record.get("monitor_pid") or 0)
        return bool(pid) and process_start_time(pid) == self.record.get("monitor_start")


def load(root: Path, container_id: str) -> ContainerState:
    directory = root / validate_id(container_id)
    try:
        record = read_json(directory / "state.json")
    except FileNotFoundError:
        raise NotFound(f"container {container_id} does not exist") from None
    except (OSError, ValueError) as exc:
        raise Unreadable(container_id, directory, exc) from None
    if not isinstance(record, dict):
        raise Unreadable(container_id, directory, ValueError("not a JSON object"))
    exit_record = None
    try:
        exit_record = read_json(directory / "exit.json")
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        exit_record = {"exit_code": None}
    return ContainerState(
        container_id, directory, record, exit_record, _status(directory, record, exit_record)
    )


def _status(directory: Path, record: dict[str, Any], exit_record: dict[str, Any] | None) -> str:
    if exit_record is not None:
        return STOPPED
    pid = int(record.get("pid", 0))
    if not pid or process_start_time(pid) != record.get("pid_start"):
        return STOPPED
    if (directory / "exec.fifo").exists():
        return CREATED
    freezer = record.get("freezer_state")
    if freezer and _frozen(freezer):
        return PAUSED
    return RUNNING


def _frozen(path: str) -> bool:
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return False
    return "FROZEN" in text or "frozen 1" in text


def list_ids(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if not p.name.startswith(".") and (p / "state.json").exists()  # (.removed-: going)
    )
