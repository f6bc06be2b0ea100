"""Reading and writing cgroupfs files, with errors people can read.

Every kernel refusal becomes a ``SetupError`` that names the file, the value and the reason in
plain words. Only the standard library is used: this runs inside the per-container monitor.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterable

from runtime.errors import Error, SetupError

NAME_MAX = 128

_WHY = {
    errno.EINVAL: "the kernel rejected the value (out of range, or not allowed by the parent cgroup)",
    errno.EPERM: "permission denied (raising a limit above its hard value needs CAP_SYS_RESOURCE)",
    errno.EACCES: "permission denied",
    errno.EBUSY: "the cgroup is busy (the value is below current usage, or processes still run)",
    errno.ENOSPC: "no room (empty cpuset, or a limit such as pids.max already reached)",
    errno.ENOENT: "the file does not exist (controller not available or not enabled)",
    errno.ESRCH: "no such process",
    errno.EAGAIN: "resource temporarily unavailable",
    errno.EOPNOTSUPP: "not supported by this kernel",
}


def why(exc: OSError) -> str:
    """A plain-words reason for an OSError raised by a cgroupfs operation."""
    code = exc.errno if exc.errno is not None else 0
    return _WHY.get(code, exc.strerror or str(exc))


def write(path: str, value: str) -> None:
    """Write ``value`` to the cgroup file ``path`` in one write(2), as the kernel expects."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as exc:
        raise SetupError(f"cannot open {path} to write {value!r}: {why(exc)}") from exc
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise SetupError(f"cannot write {value!r} to {path}: {why(exc)}") from exc
    finally:
        os.close(fd)


def read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        raise SetupError(f"cannot read {path}: {why(exc)}") from exc


def read_optional(path: str) -> str | None:
    """The file's text, or None when it does not exist (controller absent)."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SetupError(f"cannot read {path}: {why(exc)}") from exc


def read_int(path: str) -> int | None:
    """An integer file (``max`` reads as -1), or None when the file does not exist."""
    text = read_optional(path)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return -1
    try:
        return int(text)
    except ValueError:
        raise SetupError(f"{path} holds {text!r}, not a number") from None


def read_keyed(path: str) -> dict[str, int] | None:
    """A flat keyed file (``key value`` per line, as memory.events or cpu.stat), or None."""
    text = read_optional(path)
    if text is None:
        return None
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def read_pids(path: str) -> list[int]:
    """The pids listed in a cgroup.procs file (empty when the file is gone)."""
    text = read_optional(path)
    if text is None:
        return []
    return [int(p) for p in text.split()]


def subdirs_bottom_up(path: str) -> list[str]:
    """``path`` and every directory below it, deepest first (the order rmdir needs)."""
    found: list[str] = []
    for dirpath, _dirs, _files in os.walk(path, topdown=False):
        found.append(dirpath)
    return found


def remove_tree(path: str, timeout: float) -> None:
    """Remove a cgroup directory and its child cgroups, retrying while the kernel is busy.

    Only directories are removed (rmdir): the interface files vanish with them. A cgroup that
    still holds live processes stays busy; after ``timeout`` seconds that is a SetupError.
    On a laid-out test tree the interface files are regular files, so they are unlinked first.
    """
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            for directory in subdirs_bottom_up(path):
                _rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise SetupError(f"cannot remove cgroup {path}: {why(exc)}") from exc
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _rmdir(directory: str) -> None:
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY:
            raise
        # A regular directory (a laid-out tree in tests): cgroupfs never reports ENOTEMPTY
        # for interface files, only for child cgroups, which were removed first.
        for entry in os.listdir(directory):
            full = os.path.join(directory, entry)
            if not os.path.isdir(full) or os.path.islink(full):
                os.unlink(full)
        os.rmdir(directory)


def check_name(name: str, what: str = "cgroup name") -> str:
    """Refuse names that could escape the parent or confuse the kernel."""
    if not isinstance(name, str) or not name:
        raise Error(f"{what} must be a non-empty string")
    if len(name.encode()) > NAME_MAX:
        raise Error(f"{what} {name[:40]!r}... is longer than {NAME_MAX} bytes")
    if "/" in name or "\0" in name or name in (".", ".."):
        raise Error(f"{what} {name!r} must not contain '/' or NUL, nor be '.' or '..'")
    if name.startswith("cgroup.") or "\n" in name:
        raise Error(f"{what} {name!r} is not allowed (reserved prefix or newline)")
    return name


def check_parent(parent: str, allow_root: bool = False) -> str:
    """A relative parent path such as ``orchestrator`` or ``orchestrator/project``; with
    ``allow_root``, ``""`` (the hierarchy's root: an OCI ``cgroupsPath`` such as ``/name``)."""
    parts = [p for p in parent.split("/") if p]
    if not parts:
        if allow_root:
            return ""
        raise Error("cgroup parent must not be empty")
    for part in parts:
        check_name(part, "cgroup parent component")
    return "/".join(parts)


def signal_all(pids: Iterable[int], signal: int) -> None:
    """Send ``signal`` to each pid; one that has exited already is no error."""
    for pid in pids:
        try:
            os.kill(pid, signal)
        except ProcessLookupError:
            continue
        except OSError as exc:
            raise SetupError(f"cannot signal process {pid}: {why(exc)}") from exc
