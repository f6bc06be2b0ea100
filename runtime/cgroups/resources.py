"""One resources model for both cgroup versions, and the conversions v2 needs.

    res = Resources.from_oci(config["linux"]["resources"])
    manager.set(res)

``None`` means "leave alone" for every field. Byte and count fields take -1 for "unlimited",
following the OCI runtime spec. ``memory_swap`` is the OCI value: memory *plus* swap; the v2
manager converts it to swap only (``swap_max_v2``).

Supported OCI keys: memory.{limit,swap,reservation}, cpu.{shares,quota,period,cpus,mems},
pids.limit and devices. Other keys of ``linux.resources`` (blockIO, hugepageLimits, network,
rdma, unified, memory.kernel, memory.swappiness, cpu.realtime*...) are not applied; their types
are not checked either.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runtime.errors import Error

#: Kernel limits: MIN_SHARES/MAX_SHARES in kernel/sched, cfs period bounds in kernel/sched/core.c.
CPU_SHARES_MIN = 2
CPU_SHARES_MAX = 262144
CPU_WEIGHT_MAX = 10000
CPU_PERIOD_MIN = 1000  # 1 ms
CPU_PERIOD_MAX = 1000000  # 1 s
CPU_QUOTA_MIN = 1000
CPU_QUOTA_MAX = 2**44  # far above any real need, well below the kernel's overflow limit
BYTES_MAX = 2**63 - 1
PIDS_MAX = 4194304  # PID_MAX_LIMIT on 64-bit
DEFAULT_CPU_PERIOD = 100000

_CPU_LIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class DeviceRule:
    """One entry of the OCI ``linux.resources.devices`` list.

    ``type`` is ``a`` (all), ``c`` or ``b``; ``major``/``minor`` None means any (``*``).
    """

    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    def __post_init__(self) -> None:
        if self.type not in ("a", "c", "b"):
            raise Error(f"devices: type must be 'a', 'c' or 'b', not {self.type!r}")
        for field, value in (("major", self.major), ("minor", self.minor)):
            if value is not None and (not _is_int(value) or not 0 <= value < 2**32):
                raise Error(f"devices: {field} must be an integer from 0 to 2^32-1, not {value!r}")
        if not isinstance(self.access, str) or not self.access or set(self.access) - set("rwm"):
            raise Error(f"devices: access must be made of r, w and m, not {self.access!r}")

    @property
    def is_everything(self) -> bool:
        """True for the rule that covers every device with every access (``a *:* rwm``)."""
        wildcard = self.major is None and self.minor is None
        return self.type == "a" and wildcard and set(self.access) == set("rwm")

    def v1_lines(self) -> list[str]:
        """The lines to write to devices.allow or devices.deny on cgroup v1.

        The kernel reads a line starting with ``a`` as "reset the whole list" whatever follows,
        so an ``a`` rule narrower than everything is written as the same rule for ``c`` and ``b``.
        """
        if self.is_everything:
            return ["a"]
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        access = "".join(c for c in "rwm" if c in self.access)
        types = ["c", "b"] if self.type == "a" else [self.type]
        return [f"{t} {major}:{minor} {access}" for t in types]


def _rule(allow: bool, type_: str, major: int | None, minor: int | None) -> DeviceRule:
    return DeviceRule(allow=allow, type=type_, major=major, minor=minor, access="rwm")


#: Docker's effective default device allow-list for an unprivileged container: moby's
#: ``oci.DefaultLinuxSpec`` (zero, null, urandom, random, tty, console) merged with what runc
#: appends to every spec (mknod of any char/block device, full, pts/*, ptmx, tun). Docker also
#: denies /dev/fuse (c 10:229) explicitly, which a deny-by-default list implies. Put a deny-all
#: rule first (``DeviceRule(allow=False)``) as OCI configs do; the managers reset to deny-all
#: before applying rules anyway.
DEFAULT_DEVICE_RULES: tuple[DeviceRule, ...] = (
    DeviceRule(allow=True, type="c", access="m"),  # mknod any char device
    DeviceRule(allow=True, type="b", access="m"),  # mknod any block device
    _rule(True, "c", 1, 3),  # /dev/null
    _rule(True, "c", 1, 5),  # /dev/zero
    _rule(True, "c", 1, 7),  # /dev/full
    _rule(True, "c", 1, 8),  # /dev/random
    _rule(True, "c", 1, 9),  # /dev/urandom
    _rule(True, "c", 5, 0),  # /dev/tty
    _rule(True, "c", 5, 1),  # /dev/console
    _rule(True, "c", 5, 2),  # /dev/ptmx
    _rule(True, "c", 136, None),  # /dev/pts/*
    _rule(True, "c", 10, 200),  # /dev/net/tun
)


@dataclass(frozen=True)
class Resources:
    """Limits for one container's cgroup; see the module docstring for units and None."""

    memory_limit: int | None = None  # bytes; -1 unlimited
    memory_swap: int | None = None  # bytes of memory + swap (OCI); -1 unlimited
    memory_reservation: int | None = None  # bytes, soft limit; -1 none
    cpu_shares: int | None = None  # v1 units, 2..262144
    cpu_quota: int | None = None  # microseconds per period; -1 unlimited
    cpu_period: int | None = None  # microseconds
    cpuset_cpus: str | None = None  # "0-3,6"
    cpuset_mems: str | None = None
    pids_limit: int | None = None  # -1 unlimited
    devices: tuple[DeviceRule, ...] | None = None  # applied in order after a deny-all reset

    def __post_init__(self) -> None:
        for check in _CHECKS:
            check(self)

    @classmethod
    def from_oci(cls, resources: Mapping[str, Any] | None) -> Resources:
        """Build from the OCI ``linux.resources`` object; wrong types or ranges are an Error."""
        if resources is None:
            return cls()
        if not isinstance(resources, Mapping):
            raise Error("linux.resources must be an object")
        memory = _section(resources, "memory")
        cpu = _section(resources, "cpu")
        pids = _section(resources, "pids")
        devices = resources.get("devices")
        rules: tuple[DeviceRule, ...] | None = None
        if devices is not None:
            if not isinstance(devices, Sequence) or isinstance(devices, str):
                raise Error("linux.resources.devices must be a list")
            rules = tuple(_device(i, d) for i, d in enumerate(devices))
            # The devices every container has (config-linux.md, "Default Devices") stay
            # usable whatever the config's rules say: the default allow list comes last, as
            # runc and crun append it (unless the config ends with it already, as ours do).
            if rules[-len(DEFAULT_DEVICE_RULES) :] != DEFAULT_DEVICE_RULES:
                rules += DEFAULT_DEVICE_RULES
        shares = _int(cpu, "cpu.shares")
        quota = _int(cpu, "cpu.quota")
        period = _int(cpu, "cpu.period")
        pids_limit = _int(pids, "pids.limit")
        return cls(
            memory_limit=_int(memory, "memory.limit"),
            memory_swap=_int(memory, "memory.swap"),
            memory_reservation=_int(memory, "memory.reservation"),
            # OCI and runc read 0 as "not set" for these
            cpu_shares=shares or None,
            cpu_quota=quota or None,
            cpu_period=period or None,
            cpuset_cpus=_str(cpu, "cpu.cpus") or None,
            cpuset_mems=_str(cpu, "cpu.mems") or None,
            pids_limit=pids_limit or None,
            devices=rules,
        )


# --- validation: small checks, each naming its field ------------------------------------------


def _check_bytes(res: Resources) -> None:
    for field in ("memory_limit", "memory_swap", "memory_reservation"):
        value = getattr(res, field)
        if value is None:
            continue
        if not _is_int(value):
            raise Error(f"{field} must be an integer number of bytes, not {value!r}")
        if value != -1 and not 0 < value <= BYTES_MAX:
            raise Error(f"{field} must be -1 (unlimited) or from 1 to 2^63-1 bytes, not {value}")


def _check_swap(res: Resources) -> None:
    swap, memory = res.memory_swap, res.memory_limit
    if swap is None or swap == -1:
        return
    if memory is None or memory == -1:
        raise Error("memory_swap needs a memory_limit: it is the memory + swap total")
    if swap < memory:
        raise Error(f"memory_swap ({swap}) must be at least memory_limit ({memory})")


def _check_cpu(res: Resources) -> None:
    if res.cpu_shares is not None:
        if not _is_int(res.cpu_shares):
            raise Error(f"cpu_shares must be an integer, not {res.cpu_shares!r}")
        if not CPU_SHARES_MIN <= res.cpu_shares <= CPU_SHARES_MAX:
            raise Error(
                f"cpu_shares must be from {CPU_SHARES_MIN} to {CPU_SHARES_MAX}, not {res.cpu_shares}"
            )
    if res.cpu_quota is not None:
        if not _is_int(res.cpu_quota):
            raise Error(f"cpu_quota must be an integer of microseconds, not {res.cpu_quota!r}")
        if res.cpu_quota != -1 and not CPU_QUOTA_MIN <= res.cpu_quota <= CPU_QUOTA_MAX:
            raise Error(
                f"cpu_quota must be -1 (unlimited) or at least {CPU_QUOTA_MIN} microseconds"
                f" and at most 2^44, not {res.cpu_quota}"
            )
    if res.cpu_period is not None:
        if not _is_int(res.cpu_period):
            raise Error(f"cpu_period must be an integer of microseconds, not {res.cpu_period!r}")
        if not CPU_PERIOD_MIN <= res.cpu_period <= CPU_PERIOD_MAX:
            raise Error(
                f"cpu_period must be from {CPU_PERIOD_MIN} to {CPU_PERIOD_MAX} microseconds,"
                f" not {res.cpu_period}"
            )


def _check_cpuset(res: Resources) -> None:
    for field in ("cpuset_cpus", "cpuset_mems"):
        value = getattr(res, field)
        if value is None:
            continue
        if not isinstance(value, str) or not _CPU_LIST.match(value):
            raise Error(f"{field} must be a list such as '0-3,6', not {value!r}")
        for part in value.split(","):
            low, _, high = part.partition("-")
            if high and int(high) < int(low):
                raise Error(f"{field}: range {part!r} runs backwards")
            if int(high or low) > 65535:
                raise Error(f"{field}: {part!r} is beyond any real CPU or memory node")


def _check_pids(res: Resources) -> None:
    value = res.pids_limit
    if value is None:
        return
    if not _is_int(value):
        raise Error(f"pids_limit must be an integer, not {value!r}")
    if value != -1 and not 0 < value <= PIDS_MAX:
        raise Error(f"pids_limit must be -1 (unlimited) or from 1 to {PIDS_MAX}, not {value}")


def _check_devices(res: Resources) -> None:
    if res.devices is None:
        return
    if not isinstance(res.devices, tuple):
        raise Error("devices must be a tuple of DeviceRule")
    for rule in res.devices:
        if not isinstance(rule, DeviceRule):
            raise Error(f"devices must hold DeviceRule objects, not {rule!r}")


_CHECKS = (_check_bytes, _check_swap, _check_cpu, _check_cpuset, _check_pids, _check_devices)


# --- OCI parsing helpers -----------------------------------------------------------------------


def _section(resources: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = resources.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise Error(f"linux.resources.{key} must be an object")
    return value


def _int(section: Mapping[str, Any], dotted: str) -> int | None:
    value = section.get(dotted.split(".", 1)[1])
    if value is None:
        return None
    if not _is_int(value):
        raise Error(f"linux.resources.{dotted} must be an integer, not {value!r}")
    return int(value)


def _str(section: Mapping[str, Any], dotted: str) -> str | None:
    value = section.get(dotted.split(".", 1)[1])
    if value is None:
        return None
    if not isinstance(value, str):
        raise Error(f"linux.resources.{dotted} must be a string, not {value!r}")
    return value


def _device(index: int, entry: object) -> DeviceRule:
    where = f"linux.resources.devices[{index}]"
    if not isinstance(entry, Mapping):
        raise Error(f"{where} must be an object")
    allow = entry.get("allow")
    if not isinstance(allow, bool):
        raise Error(f"{where}.allow must be true or false")
    type_ = entry.get("type", "a")
    access = entry.get("access", "rwm")
    major, minor = entry.get("major"), entry.get("minor")
    for field, value in (("type", type_), ("access", access)):
        if not isinstance(value, str):
            raise Error(f"{where}.{field} must be a string, not {value!r}")
    for field, value in (("major", major), ("minor", minor)):
        if value is not None and not _is_int(value):
            raise Error(f"{where}.{field} must be an integer, not {value!r}")
    # OCI allows -1 for "any" in some generators; treat it as the wildcard
    major = None if major == -1 else major
    minor = None if minor == -1 else minor
    try:
        return DeviceRule(allow=allow, type=type_, major=major, minor=minor, access=access)
    except Error as exc:
        raise Error(f"{where}: {str(exc).removeprefix('devices: ')}") from None


# --- conversions for cgroup v2 -----------------------------------------------------------------


def cpu_weight(shares: int) -> int:
    """cgroup v1 ``cpu.shares`` [2, 262144] to v2 ``cpu.weight`` [1, 10000].

    The formula of runc >= 1.3.2 and crun >= 1.23 (runc PR 4785): a quadratic in log2(shares)
    that maps the minimum, the default and the maximum exactly (2 -> 1, 1024 -> 100,
    262144 -> 10000), where the older linear ``1 + (shares - 2) * 9999 / 262142`` mapped the
    default 1024 to 39:

        l = log2(shares);  weight = ceil(10 ** ((l*l + 125*l) / 612 - 7/34))
    """
    if shares <= CPU_SHARES_MIN:
        return 1
    if shares >= CPU_SHARES_MAX:
        return CPU_WEIGHT_MAX
    log = math.log2(shares)
    exponent = (log * log + 125 * log) / 612.0 - 7.0 / 34.0
    return min(CPU_WEIGHT_MAX, math.ceil(10**exponent))


def swap_max_v2(memory_limit: int | None, memory_swap: int | None) -> str | None:
    """OCI memory+swap to v2 ``memory.swap.max`` (swap alone), or None to leave it alone.

    Unlimited memory with no swap given means unlimited swap too, as on v1 (runc does the same).
    """
    if memory_swap is None:
        return "max" if memory_limit == -1 else None
    if memory_swap == -1:
        return "max"
    assert memory_limit is not None and memory_limit >= 0  # Resources validated this
    return str(memory_swap - memory_limit)


def cpu_max_v2(quota: int | None, period: int | None) -> str | None:
    """v2 ``cpu.max`` ("$QUOTA $PERIOD" or "max $PERIOD"), or None when neither is set."""
    if quota is None and period is None:
        return None
    head = "max" if quota is None or quota == -1 else str(quota)
    return f"{head} {period}" if period is not None else head


def bytes_or_max(value: int) -> str:
    return "max" if value == -1 else str(value)
