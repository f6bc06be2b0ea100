"""The cgroup v1 manager: one directory per hierarchy, driven by a table of subsystems.

Layout expected (what systemd and most distributions mount, and this project's test machines):
``<root>/<subsystem>`` is a v1 hierarchy for each of cpu, cpuacct, cpuset, memory, devices,
freezer, blkio, pids and ``systemd`` (name=systemd). Co-mounted controllers (``cpu,cpuacct`` with
``cpu`` and ``cpuacct`` symlinks) work: directories are de-duplicated by their real path. A
hierarchy that is not mounted is skipped; asking for a limit it would enforce is a SetupError.
In a hybrid layout the ``unified`` (cgroup2) hierarchy is left alone.

Choices worth knowing:
- Swap: ``memory.memsw.limit_in_bytes`` exists only with swap accounting. A finite swap limit
  on a kernel without it is a SetupError (a limit silently dropped is worse than a refusal);
  -1 (unlimited) is accepted and needs no write.
- The OOM killer is left enabled (memory.oom_control is never written).
- Devices: ``a`` is written to devices.deny (deny everything), then each rule in spec order to
  devices.allow or devices.deny. While a running container's rules are replaced there is a
  short window where everything is denied.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal as _signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from runtime.cgroups import _files
from runtime.cgroups.base import DESTROY_TIMEOUT, FREEZE_TIMEOUT, Manager, Stats
from runtime.cgroups.resources import Resources
from runtime.errors import SetupError

# v1 reports "unlimited" as the largest page-aligned 63-bit value, not as -1
_UNLIMITED_FLOOR = 2**62


@dataclass(frozen=True)
class Subsystem:
    """One v1 hierarchy: its directory name, how to apply resources, what stats it gives."""

    name: str
    needed: Callable[[Resources], bool] = lambda res: False
    apply: Callable[[str, Resources], None] | None = None
    stats: Callable[[str], dict[str, int | None]] | None = None


# --- memory -------------------------------------------------------------------------------------


def _memory_needed(res: Resources) -> bool:
    return any(v is not None for v in (res.memory_limit, res.memory_swap, res.memory_reservation))


def _set_memory(cg: str, res: Resources) -> None:
    limit, swap = res.memory_limit, res.memory_swap
    if limit == -1 and swap is None:
        swap = -1  # unlimited memory without a swap value: lift the memsw limit too
    memsw = os.path.join(cg, "memory.memsw.limit_in_bytes")
    if swap is not None and not os.path.exists(memsw):
        if swap != -1:
            raise SetupError(
                f"cannot limit memory+swap to {swap}: this kernel has no swap accounting"
                f" ({memsw} is missing; boot with swapaccount=1)"
            )
        swap = None
    writes: list[tuple[str, str]] = []
    if limit is not None:
        writes.append((os.path.join(cg, "memory.limit_in_bytes"), str(limit)))
    if swap is not None:
        writes.append((memsw, str(swap)))
    # The kernel keeps memory <= memory+swap at every moment: lowering needs memory first,
    # raising needs memsw first. Try one order, then the other.
    _write_in_either_order(writes)
    if res.memory_reservation is not None:
        _files.write(os.path.join(cg, "memory.soft_limit_in_bytes"), str(res.memory_reservation))


def _memory_stats(cg: str) -> dict[str, int | None]:
    oom = _files.read_keyed(os.path.join(cg, "memory.oom_control")) or {}
    return {
        "memory_usage": _files.read_int(os.path.join(cg, "memory.usage_in_bytes")),
        "memory_max_usage": _files.read_int(os.path.join(cg, "memory.max_usage_in_bytes")),
        "oom_kills": oom.get("oom_kill"),
    }


# --- cpu, cpuacct, cpuset -------------------------------------------------------------------


def _cpu_needed(res: Resources) -> bool:
    return any(v is not None for v in (res.cpu_shares, res.cpu_quota, res.cpu_period))


def _set_cpu(cg: str, res: Resources) -> None:
    if res.cpu_shares is not None:
        _files.write(os.path.join(cg, "cpu.shares"), str(res.cpu_shares))
    writes: list[tuple[str, str]] = []
    if res.cpu_period is not None:
        writes.append((os.path.join(cg, "cpu.cfs_period_us"), str(res.cpu_period)))
    if res.cpu_quota is not None:
        writes.append((os.path.join(cg, "cpu.cfs_quota_us"), str(res.cpu_quota)))
    # the kernel checks quota/period against the parent's ratio after each write
    _write_in_either_order(writes)


def _cpuacct_stats(cg: str) -> dict[str, int | None]:
    return {"cpu_usage_ns": _files.read_int(os.path.join(cg, "cpuacct.usage"))}


def _cpuset_needed(res: Resources) -> bool:
    return res.cpuset_cpus is not None or res.cpuset_mems is not None


def _set_cpuset(cg: str, res: Resources) -> None:
    if res.cpuset_cpus is not None:
        _files.write(os.path.join(cg, "cpuset.cpus"), res.cpuset_cpus)
    if res.cpuset_mems is not None:
        _files.write(os.path.join(cg, "cpuset.mems"), res.cpuset_mems)


def _init_cpuset(cg: str) -> None:
    """A new v1 cpuset cgroup starts with no CPUs and no memory nodes: no task may join it
    until both are set. Copy them from the parent, as runc does."""
    parent = os.path.dirname(cg)
    for leaf in ("cpuset.cpus", "cpuset.mems"):
        path = os.path.join(cg, leaf)
        current = _files.read_optional(path)
        if current is None or current.strip():
            continue
        value = _files.read(os.path.join(parent, leaf)).strip()
        if not value:
            raise SetupError(f"cannot initialise {path}: the parent cgroup's {leaf} is empty")
        _files.write(path, value)


# --- pids, devices ----------------------------------------------------------------------------


def _set_pids(cg: str, res: Resources) -> None:
    if res.pids_limit is not None:
        value = "max" if res.pids_limit == -1 else str(res.pids_limit)
        _files.write(os.path.join(cg, "pids.max"), value)


def _pids_stats(cg: str) -> dict[str, int | None]:
    return {"pids_current": _files.read_int(os.path.join(cg, "pids.current"))}


def _set_devices(cg: str, res: Resources) -> None:
    if res.devices is None:
        return
    allow, deny = os.path.join(cg, "devices.allow"), os.path.join(cg, "devices.deny")
    _files.write(deny, "a")
    for rule in res.devices:
        for line in rule.v1_lines():
            _files.write(allow if rule.allow else deny, line)


#: The v1 subsystems, in the order resources are applied.
SUBSYSTEMS: tuple[Subsystem, ...] = (
    Subsystem("cpuset", _cpuset_needed, _set_cpuset),
    Subsystem("memory", _memory_needed, _set_memory, _memory_stats),
    Subsystem("cpu", _cpu_needed, _set_cpu),
    Subsystem("cpuacct", stats=_cpuacct_stats),
    Subsystem("pids", lambda res: res.pids_limit is not None, _set_pids, _pids_stats),
    Subsystem("devices", lambda res: res.devices is not None, _set_devices),
    Subsystem("freezer"),
    Subsystem("blkio"),
    Subsystem("systemd"),  # name=systemd: joined so systemd tools see the container
)


def _write_in_either_order(writes: list[tuple[str, str]]) -> None:
    """Write the files in order; if the kernel refuses, write them in reverse order instead."""
    try:
        for path, value in writes:
            _files.write(path, value)
    except SetupError:
        if len(writes) < 2:
            raise
        for path, value in reversed(writes):
            _files.write(path, value)


@functools.lru_cache(maxsize=16)
def layout(root: str) -> tuple[dict[str, str], dict[str, str]]:
    """The v1 hierarchies mounted under ``root`` (subsystem name -> directory), and for each
    the name that acts for its real directory (co-mounted controllers share one). Read once per
    process and root: a host does not remount its hierarchies under running containers."""
    mounted: dict[str, str] = {}
    acting: dict[str, str] = {}
    first: dict[str, str] = {}  # real directory -> the first name seen there
    for sub in SUBSYSTEMS:
        hierarchy = os.path.join(root, sub.name)
        if os.path.isfile(os.path.join(hierarchy, "cgroup.procs")):
            mounted[sub.name] = hierarchy
            acting[sub.name] = first.setdefault(os.path.realpath(hierarchy), sub.name)
    return mounted, acting


class V1Manager(Manager):
    """A container's cgroup on the v1 hierarchies mounted under ``root``."""

    version = 1
    supports_device_rules = True

    def __init__(self, name: str, *, root: str = "/sys/fs/cgroup", parent: str = "orchestrator"):
        self.name = _files.check_name(name)
        self.parent = _files.check_parent(parent, allow_root=True)
        self.root = root
        self.path = f"{self.parent}/{self.name}" if self.parent else self.name
        mounted, self._acting = layout(root)
        # subsystem name -> the container's directory in that hierarchy, mounted ones only
        self.dirs = {name: f"{hierarchy}/{self.path}" for name, hierarchy in mounted.items()}

    def _unique_dirs(self) -> list[str]:
        """The container's directories, one per hierarchy (co-mounted controllers share one)."""
        return [self.dirs[name] for name, acting in self._acting.items() if name == acting]

    def _main_dir(self) -> str:
        for name in ("freezer", "pids", "memory", "cpu"):
            if name in self.dirs:
                return self.dirs[name]
        if not self.dirs:
            raise SetupError(f"no cgroup v1 hierarchy is mounted under {self.root}")
        return next(iter(self.dirs.values()))

    def create(self) -> None:
        if not self.dirs:
            raise SetupError(f"no cgroup v1 hierarchy is mounted under {self.root}")
        made: list[str] = []
        try:
            for cg in self._unique_dirs():
                made += self._mkdirs(cg)
        except BaseException:
            for cg in reversed(made):
                with contextlib.suppress(OSError):
                    os.rmdir(cg)
            raise

    def _mkdirs(self, cg: str) -> list[str]:
        """Create ``cg`` and its missing parents; returns the container dir if it was made."""
        is_cpuset = "cpuset" in self.dirs and cg == self.dirs[self._acting["cpuset"]]
        try:
            # (the parents are there but for the first container: one mkdir, not one a level)
            os.mkdir(cg, 0o755)
        except (FileExistsError, FileNotFoundError):
            return self._mkdirs_from_top(cg)
        except OSError as exc:
            raise SetupError(f"cannot create cgroup {cg}: {_files.why(exc)}") from exc
        if is_cpuset:
            try:
                _init_cpuset(cg)
            except SetupError:  # a parent another start made a moment ago, not set up yet
                self._mkdirs_from_top(cg)
        return [cg]

    def _mkdirs_from_top(self, cg: str) -> list[str]:
        parts = self.path.split("/")
        base = os.path.dirname(cg)
        for _ in parts[1:]:
            base = os.path.dirname(base)
        is_cpuset = "cpuset" in self.dirs and cg == self.dirs[self._acting["cpuset"]]
        made: list[str] = []
        level = base
        for i, part in enumerate(parts):
            level = os.path.join(level, part)
            try:
                os.mkdir(level, 0o755)
                if i == len(parts) - 1:
                    made.append(level)
            except FileExistsError:
                pass
            except OSError as exc:
                raise SetupError(f"cannot create cgroup {level}: {_files.why(exc)}") from exc
            if is_cpuset:
                _init_cpuset(level)
        return made

    def pinned(self) -> V1Manager:
        """The same cgroup, reached through descriptors opened now (and kept open): it keeps
        working when the cgroup is renamed, and spares the path lookups. A pre-made init opens
        it ahead of its request (runtime.pool)."""
        copy = V1Manager(self.name, root=self.root, parent=self.parent)
        opened: dict[str, str] = {}
        for name, acting in self._acting.items():
            if acting not in opened:
                fd = os.open(self.dirs[acting], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                opened[acting] = f"/proc/self/fd/{fd}"
            copy.dirs[name] = opened[acting]
        return copy

    def unique_dirs(self) -> list[str]:
        return self._unique_dirs()

    def rename(self, new_name: str) -> V1Manager:
        """Give this cgroup, processes and all, another name under the same parent.

        v1 allows rename(2) of a cgroup directory; it moves no process, so unlike a write to
        cgroup.procs it waits for no RCU grace period. The fork server's pool uses it to hand a
        cgroup prepared in advance to a container. Returns the manager of the new name."""
        renamed = V1Manager(new_name, root=self.root, parent=self.parent)
        done: list[tuple[str, str]] = []
        try:
            for old in self._unique_dirs():
                new = os.path.join(os.path.dirname(old), renamed.name)
                os.rename(old, new)
                done.append((old, new))
        except OSError as exc:
            for old, new in reversed(done):
                with contextlib.suppress(OSError):
                    os.rename(new, old)
            raise SetupError(
                f"cannot rename cgroup {self.path} to {renamed.path}: {_files.why(exc)}"
            ) from exc
        return renamed

    def exists(self) -> bool:
        return any(os.path.isdir(cg) for cg in self.dirs.values())

    def add_process(self, pid: int) -> None:
        for cg in self._unique_dirs():
            _files.write(os.path.join(cg, "cgroup.procs"), str(pid))

    def set(self, resources: Resources) -> None:
        for sub in SUBSYSTEMS:
            if sub.apply is None or not sub.needed(resources):
                continue
            cg = self.dirs.get(sub.name)
            if cg is None:
                raise SetupError(
                    f"the {sub.name} cgroup controller is not mounted under {self.root}"
                )
            sub.apply(cg, resources)

    def stats(self) -> Stats:
        fields: dict[str, int | None] = {}
        for sub in SUBSYSTEMS:
            if sub.stats is not None and sub.name in self.dirs:
                fields.update(sub.stats(self.dirs[sub.name]))
        return Stats(**fields)

    def oom_killed(self) -> bool:
        cg = self.dirs.get("memory")
        if cg is None:
            return False
        oom = _files.read_keyed(os.path.join(cg, "memory.oom_control")) or {}
        return (oom.get("oom_kill") or 0) > 0

    # --- freezer -------------------------------------------------------------------------

    @property
    def freezer_state_file(self) -> str | None:
        """The file whose text says FROZEN while frozen (read by ``runtime.state``)."""
        cg = self.dirs.get("freezer")
        return os.path.join(cg, "freezer.state") if cg else None

    def _freezer_state(self) -> str:
        return _files.read(os.path.join(self._freezer(), "freezer.state")).strip()

    def _freezer(self) -> str:
        cg = self.dirs.get("freezer")
        if cg is None:
            raise SetupError(f"the freezer cgroup controller is not mounted under {self.root}")
        return cg

    def freeze(self) -> None:
        state = os.path.join(self._freezer(), "freezer.state")
        deadline = time.monotonic() + FREEZE_TIMEOUT
        delay = 0.001
        while True:
            # writing FROZEN again nudges tasks that were busy (in a fork, say) the last time
            _files.write(state, "FROZEN")
            if self._freezer_state() == "FROZEN":
                return
            if time.monotonic() >= deadline:
                _files.write(state, "THAWED")
                raise SetupError(
                    f"cannot freeze {self.path}: tasks still running after {FREEZE_TIMEOUT}s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def thaw(self) -> None:
        _files.write(os.path.join(self._freezer(), "freezer.state"), "THAWED")

    def is_frozen(self) -> bool:
        return self._freezer_state() == "FROZEN"

    # --- processes -----------------------------------------------------------------------

    def pids(self) -> list[int]:
        if not self.dirs:
            return []
        found: list[int] = []
        for cg in _files.subdirs_bottom_up(self._main_dir()):
            found += _files.read_pids(os.path.join(cg, "cgroup.procs"))
        return sorted(set(found))

    def kill_all(self, signal: int = _signal.SIGKILL) -> None:
        """Freeze, signal every process, thaw: a frozen process cannot fork a new one between
        the read of cgroup.procs and the signal. Without a freezer, repeat until no new pid."""
        if not self.exists():
            return
        if "freezer" not in self.dirs:
            signalled: set[int] = set()
            for _ in range(10):
                fresh = set(self.pids()) - signalled
                if not fresh:
                    return
                _files.signal_all(fresh, signal)
                signalled |= fresh
            return
        # a task stuck in the kernel may keep the cgroup FREEZING: signal anyway
        with contextlib.suppress(SetupError):
            self.freeze()
        try:
            _files.signal_all(self.pids(), signal)
        finally:
            self.thaw()

    def destroy(self) -> None:
        first: SetupError | None = None
        for cg in self._unique_dirs():
            try:
                _files.remove_tree(cg, DESTROY_TIMEOUT)
            except SetupError as exc:
                first = first or exc
        if first is not None:
            raise first
