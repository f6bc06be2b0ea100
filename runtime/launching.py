"""What a launch asks for and what it answers, for callers that only ask the fork server.

Split from runtime.launch (the start itself: the init, the setup child, the monitor's helper),
whose imports a caller of the fork server does not need: `orchestrator run` starts in less
time without them.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import AlreadyExists, SetupError


@dataclass(frozen=True)
class LaunchOptions:
    create_only: bool = False  # wait on exec.fifo for `start`
    log_path: str | None = None
    log_max_size: int = 10 * 1024 * 1024
    log_max_files: int = 3
    cgroup_root: str = "/sys/fs/cgroup"
    cgroup_parent: str = "orchestrator"
    cgroup_version: int | None = None  # detected once by the caller, not in every monitor
    inherit_stdio: bool = False  # the container writes to our stdio instead of the log
    cleanup_paths: tuple[str, ...] = ()  # removed with the container's state once it ends (--rm)
    console_socket: str | None = None  # where to send the terminal's master (OCI --console-socket)
    stdin: bool = False  # keep the container's stdin open for clients that attach with "stdin"


@dataclass(frozen=True)
class Launched:
    monitor_pid: int
    pid: int


def prepare_directory(container_id: str, directory: Path, options: LaunchOptions) -> None:
    """The container's state directory (and exec FIFO): the id is taken once this succeeds."""
    try:
        directory.mkdir(parents=False)
    except FileExistsError:
        raise AlreadyExists(f"container {container_id} already exists") from None
    try:
        if options.create_only:
            os.mkfifo(directory / "exec.fifo", 0o600)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def finish_launch(
    directory: Path, message: dict[str, Any] | None, monitor_pid: int | None
) -> Launched:
    if not message or "pid" not in message:
        if monitor_pid:
            from runtime.monitor import _reap

            _reap(monitor_pid)
        shutil.rmtree(directory, ignore_errors=True)
        error = (message or {}).get("error") or "container setup failed: the monitor died"
        raise SetupError(error)
    return Launched(int(message.get("monitor_pid") or monitor_pid or 0), int(message["pid"]))
