"""Linux capabilities: names, Docker's default set, and applying a process's sets.

Sets are handled as 64-bit masks. The bounding set is trimmed first (it needs CAP_SETPCAP, which
we still hold), then the user switch keeps permitted caps (PR_SET_KEEPCAPS), then capset sets
effective/permitted/inheritable and the ambient set is cleared or raised (an ambient capability
that is not also permitted and inheritable is left out).
"""

from __future__ import annotations

from runtime.linux import syscalls

NAMES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
NUMBERS = {name: i for i, name in enumerate(NAMES)}

# Docker's default capability set (moby oci/caps/defaults.go).
DOCKER_DEFAULT = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def normalize(name: str) -> str:
    """``net_admin``, ``NET_ADMIN`` and ``CAP_NET_ADMIN`` all name one capability."""
    upper = name.strip().upper()
    return upper if upper.startswith("CAP_") else "CAP_" + upper


def mask(names: list[str] | tuple[str, ...]) -> int:
    """A bit mask of capability names; raises ValueError naming an unknown one."""
    bits = 0
    for name in names:
        number = NUMBERS.get(normalize(name))
        if number is None:
            raise ValueError(f"unknown capability {name!r}")
        bits |= 1 << number
    return bits


def names_of(bits: int) -> list[str]:
    return [name for i, name in enumerate(NAMES) if bits >> i & 1]


def drop_bounding(keep: int) -> None:
    """Remove every capability not in ``keep`` from the bounding set."""
    for cap in range(last_cap() + 1):
        if not keep >> cap & 1:
            try:
                syscalls.prctl(syscalls.PR_CAPBSET_DROP, cap)
            except OSError as exc:
                if exc.errno != 22:  # EINVAL: the kernel does not know this one
                    raise


def apply(effective: int, permitted: int, inheritable: int, ambient: int) -> None:
    """Set the thread's capability sets (after the uid switch, with KEEPCAPS set before it)."""
    valid = (1 << (last_cap() + 1)) - 1
    syscalls.capset(effective & valid, permitted & valid, inheritable & valid)
    syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
    # The kernel raises an ambient capability only if it is permitted and inheritable: others
    # are left out, as crun does (runc warns), rather than failing the start.
    ambient &= permitted & inheritable
    for cap in range(last_cap() + 1):
        if ambient >> cap & 1:
            syscalls.prctl(syscalls.PR_CAP_AMBIENT, 2, cap)  # PR_CAP_AMBIENT_RAISE
