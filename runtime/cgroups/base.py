"""The small interface both cgroup managers implement.

    manager = open_manager("web-1")
    manager.create()
    manager.set(Resources(memory_limit=256 << 20, pids_limit=100))
    manager.add_process(pid)
    ...
    manager.kill_all(signal.SIGKILL)
    manager.destroy()

A manager owns one container's cgroup, ``<parent>/<name>`` under every hierarchy it uses. It keeps
no state beyond the path: any process (a restarted monitor, the supervisor) may open a manager on
the same name and act on the same cgroup.
"""

from __future__ import annotations

import abc
import os
import signal as _signal
from dataclasses import dataclass

from runtime.cgroups.resources import Resources
from runtime.errors import SetupError

#: How long destroy() waits for the kernel to release a cgroup whose last process just died.
DESTROY_TIMEOUT = 2.0
#: How long freeze() waits for every task to reach the frozen state.
FREEZE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Stats:
    """A snapshot of a cgroup's usage; None where the controller or file is not available."""

    memory_usage: int | None = None  # bytes now
    memory_max_usage: int | None = None  # bytes, high-water mark (v1 max_usage, v2 memory.peak)
    cpu_usage_ns: int | None = None  # total CPU time of every task, nanoseconds
    pids_current: int | None = None
    oom_kills: int | None = None  # processes killed by the OOM killer in this cgroup


class Manager(abc.ABC):
    """One container's cgroup on one cgroup version."""

    #: 1 or 2
    version: int
    #: Whether ``Resources.devices`` is enforced by this manager.
    supports_device_rules: bool
    #: ``<parent>/<name>``, relative to each hierarchy's root
    path: str

    @abc.abstractmethod
    def create(self) -> None:
        """Create the cgroup (and its parent) in every hierarchy; idempotent."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """True when the cgroup directory exists (in the main hierarchy for v1)."""

    @abc.abstractmethod
    def add_process(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into the cgroup."""

    @abc.abstractmethod
    def set(self, resources: Resources) -> None:
        """Apply every field of ``resources`` that is not None."""

    @abc.abstractmethod
    def stats(self) -> Stats: ...

    @abc.abstractmethod
    def oom_killed(self) -> bool:
        """True once the kernel's OOM killer has killed a process of this cgroup."""

    @abc.abstractmethod
    def freeze(self) -> None:
        """Stop every process of the cgroup; returns once all are frozen."""

    @abc.abstractmethod
    def thaw(self) -> None: ...

    @abc.abstractmethod
    def is_frozen(self) -> bool: ...

    @abc.abstractmethod
    def pids(self) -> list[int]:
        """Every process in the cgroup and its child cgroups."""

    @abc.abstractmethod
    def kill_all(self, signal: int = _signal.SIGKILL) -> None:
        """Send ``signal`` to every process in the cgroup, without racing with forks.

        Returns once the signal is sent, not once the processes are gone; ``destroy()`` waits.
        """

    def rename(self, new_name: str) -> Manager:
        """Rename the cgroup in place (v1 only; the v2 hierarchy forbids it)."""
        raise SetupError("this cgroup hierarchy cannot rename a cgroup")

    def remove(self) -> None:
        """Kill whatever is left in the cgroup and remove it; nothing to do when it is gone.
        (What a monitor does at the end, and whoever cleans up after a monitor that died.)"""
        if self.exists():
            self.kill_all(_signal.SIGKILL)
            self.destroy()

    def unique_dirs(self) -> list[str]:
        """The cgroup's directory in each hierarchy it lives in."""
        raise NotImplementedError

    def remove_empty_parents(self, levels: int) -> None:
        """Remove up to ``levels`` parents of the cgroup that are left empty (best effort: a
        parent another cgroup still uses stays). For parents made for a config's
        ``cgroupsPath`` below ours."""
        for directory in self.unique_dirs():
            for _ in range(levels):
                directory = os.path.dirname(directory)
                try:
                    os.rmdir(directory)
                except OSError:
                    break

    @abc.abstractmethod
    def destroy(self) -> None:
        """Remove the cgroup directories (the parent stays).

        Waits up to DESTROY_TIMEOUT for the kernel to release a cgroup whose processes are
        exiting; a cgroup that still holds live processes then is a SetupError. A missing
        cgroup is not an error.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"
