"""The cgroup v2 manager: one directory in the unified hierarchy.

    manager = V2Manager("web-1", root="/sys/fs/cgroup")

``create()`` enables the controllers it uses (cpu, cpuset, memory, pids) in
``cgroup.subtree_control`` of the root and of every ancestor, top down, limited to those each
level lists in ``cgroup.controllers``. A controller that cannot be enabled is skipped; a limit
that needs it then fails in ``set()`` naming the missing file.

Conversions from the shared model (see ``resources``): cpu.shares -> cpu.weight (runc/crun
formula), OCI memory+swap -> memory.swap.max (swap alone), quota/period -> cpu.max.

Device rules: v2 has no devices files; the kernel asks a BPF_PROG_TYPE_CGROUP_DEVICE program
attached to the cgroup, which ``devicefilter`` builds from the rules and attaches (tested on
this machine's real cgroup2 hierarchy). On a tree laid out by a test there is no kernel to
attach to: the rules are then written to ``devices.rules`` (ours, for the test to read).

The manager uses no file it does not find: it can run on a tree laid out in a temp directory
(regular files named like the kernel's) as well as on /sys/fs/cgroup.
"""

from __future__ import annotations

import contextlib
import os
import signal as _signal
import time

from runtime.cgroups import _files
from runtime.cgroups.base import DESTROY_TIMEOUT, FREEZE_TIMEOUT, Manager, Stats
from runtime.cgroups.detect import mount_type
from runtime.cgroups.resources import (
    DeviceRule,
    Resources,
    bytes_or_max,
    cpu_max_v2,
    cpu_weight,
    swap_max_v2,
)
from runtime.errors import SetupError

#: Controllers enabled for container cgroups, in the order they are enabled.
CONTROLLERS = ("cpuset", "cpu", "memory", "pids")


class V2Manager(Manager):
    """A container's cgroup at ``<root>/<parent>/<name>`` in a cgroup2 hierarchy."""

    version = 2
    supports_device_rules = True

    def __init__(self, name: str, *, root: str = "/sys/fs/cgroup", parent: str = "orchestrator"):
        self.name = _files.check_name(name)
        self.parent = _files.check_parent(parent, allow_root=True)
        self.root = root
        self.path = f"{self.parent}/{self.name}" if self.parent else self.name
        self.dir = os.path.join(root, self.path)

    def _file(self, leaf: str) -> str:
        return os.path.join(self.dir, leaf)

    # --- lifecycle ---------------------------------------------------------------------------

    def create(self) -> None:
        level = self.root
        made: str | None = None
        for part in self.path.split("/"):
            _enable_controllers(level)
            level = os.path.join(level, part)
            try:
                os.mkdir(level, 0o755)
                if level == self.dir:
                    made = level
            except FileExistsError:
                pass
            except OSError as exc:
                raise SetupError(f"cannot create cgroup {level}: {_files.why(exc)}") from exc
        if made is None:
            return
        try:
            # a threaded parent would make this a threaded cgroup; containers need domain ones
            cgroup_type = _files.read_optional(self._file("cgroup.type"))
            if cgroup_type is not None and cgroup_type.strip() == "domain invalid":
                raise SetupError(f"cgroup {self.dir} is 'domain invalid': its parent is threaded")
        except BaseException:
            _files.remove_tree(made, 0)
            raise

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def unique_dirs(self) -> list[str]:
        return [self.dir]

    def add_process(self, pid: int) -> None:
        _files.write(self._file("cgroup.procs"), str(pid))

    def destroy(self) -> None:
        _files.remove_tree(self.dir, DESTROY_TIMEOUT)

    # --- resources ---------------------------------------------------------------------------

    def set(self, resources: Resources) -> None:
        res = resources
        if res.cpuset_cpus is not None:
            _files.write(self._file("cpuset.cpus"), res.cpuset_cpus)
        if res.cpuset_mems is not None:
            _files.write(self._file("cpuset.mems"), res.cpuset_mems)
        if res.memory_limit is not None:
            _files.write(self._file("memory.max"), bytes_or_max(res.memory_limit))
        swap = swap_max_v2(res.memory_limit, res.memory_swap)
        if swap is not None:
            path = self._file("memory.swap.max")
            if os.path.exists(path):
                _files.write(path, swap)
            elif swap != "max":
                raise SetupError(
                    f"cannot limit swap to {swap} bytes: {path} is missing"
                    " (no swap accounting in this kernel, or the memory controller is off)"
                )
        if res.memory_reservation is not None:
            _files.write(self._file("memory.low"), _low(res.memory_reservation))
        if res.cpu_shares is not None:
            _files.write(self._file("cpu.weight"), str(cpu_weight(res.cpu_shares)))
        cpu_max = cpu_max_v2(res.cpu_quota, res.cpu_period)
        if cpu_max is not None:
            _files.write(self._file("cpu.max"), cpu_max)
        if res.pids_limit is not None:
            _files.write(self._file("pids.max"), bytes_or_max(res.pids_limit))
        if res.devices is not None:
            self._set_devices(res.devices)

    def _set_devices(self, rules: tuple[DeviceRule, ...]) -> None:
        if _is_cgroup2(self.root):
            from runtime.cgroups import devicefilter

            devicefilter.apply(self.dir, rules)
            return
        lines = [
            f"{'allow' if r.allow else 'deny'} {r.type} {r.major} {r.minor} {r.access}"
            for r in rules
        ]
        with open(os.path.join(self.dir, "devices.rules"), "w") as f:
            f.write("\n".join(lines) + "\n")

    # --- observation -------------------------------------------------------------------------

    def stats(self) -> Stats:
        cpu = _files.read_keyed(self._file("cpu.stat")) or {}
        usec = cpu.get("usage_usec")
        events = _files.read_keyed(self._file("memory.events")) or {}
        return Stats(
            memory_usage=_files.read_int(self._file("memory.current")),
            memory_max_usage=_files.read_int(self._file("memory.peak")),
            cpu_usage_ns=None if usec is None else usec * 1000,
            pids_current=_files.read_int(self._file("pids.current")),
            oom_kills=events.get("oom_kill"),
        )

    def oom_killed(self) -> bool:
        events = _files.read_keyed(self._file("memory.events")) or {}
        return events.get("oom_kill", 0) > 0

    def pids(self) -> list[int]:
        found: list[int] = []
        if not self.exists():
            return found
        for cg in _files.subdirs_bottom_up(self.dir):
            found += _files.read_pids(os.path.join(cg, "cgroup.procs"))
        return sorted(set(found))

    # --- freezing and killing ----------------------------------------------------------------

    def freeze(self) -> None:
        _files.write(self._file("cgroup.freeze"), "1")
        deadline = time.monotonic() + FREEZE_TIMEOUT
        delay = 0.001
        while not self.is_frozen():
            if time.monotonic() >= deadline:
                _files.write(self._file("cgroup.freeze"), "0")
                raise SetupError(
                    f"cannot freeze {self.dir}: tasks still running after {FREEZE_TIMEOUT}s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def thaw(self) -> None:
        _files.write(self._file("cgroup.freeze"), "0")

    @property
    def freezer_state_file(self) -> str:
        """The file that says ``frozen 1`` while frozen (read by ``runtime.state``)."""
        return self._file("cgroup.events")

    def is_frozen(self) -> bool:
        events = _files.read_keyed(self._file("cgroup.events"))
        if events is None:
            raise SetupError(f"cannot read {self._file('cgroup.events')}: no such cgroup")
        return events.get("frozen", 0) == 1

    def kill_all(self, signal: int = _signal.SIGKILL) -> None:
        """SIGKILL goes through ``cgroup.kill`` (Linux 5.14+), which the kernel applies to the
        whole subtree atomically; other signals, or older kernels: freeze, signal, thaw."""
        if not self.exists():
            return
        kill = self._file("cgroup.kill")
        if signal == _signal.SIGKILL and os.path.exists(kill):
            _files.write(kill, "1")
            return
        with contextlib.suppress(SetupError):
            self.freeze()  # signal anyway if a task cannot be frozen
        try:
            _files.signal_all(self.pids(), signal)
        finally:
            self.thaw()


def _low(value: int) -> str:
    # memory.low: "max" protects everything; an unset reservation is 0, not max
    return "0" if value == -1 else str(value)


_cgroup2_roots: dict[str, bool] = {}


def _is_cgroup2(root: str) -> bool:
    """Whether ``root`` is a cgroup2 mount (not a laid-out tree); asked once per process: the
    mount table's read costs more than the rest of a cgroup's making."""
    known = _cgroup2_roots.get(root)
    if known is None:
        known = _cgroup2_roots[root] = mount_type(os.path.realpath(root)) == "cgroup2"
    return known


def _enable_controllers(level: str) -> None:
    """Enable our controllers for the children of ``level``, as far as ``level`` offers them."""
    available = (_files.read_optional(os.path.join(level, "cgroup.controllers")) or "").split()
    control = os.path.join(level, "cgroup.subtree_control")
    enabled = (_files.read_optional(control) or "").split()
    wanted = [c for c in CONTROLLERS if c in available and c not in enabled]
    if not wanted:
        return
    try:
        _files.write(control, " ".join(f"+{c}" for c in wanted))
    except SetupError:
        # one refusal (cpu with realtime tasks about, say) must not cost the others
        for controller in wanted:
            try:
                _files.write(control, f"+{controller}")
            except SetupError:
                continue
