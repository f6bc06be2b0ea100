"""ctypes bindings for the Linux system calls container setup needs.

Only the standard library: this module is imported by the container init and the monitor,
which must start fast and stay small.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)

# namespaces (linux/sched.h)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# mount flags (linux/mount.h)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# prctl
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

# openat2 resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

_MACHINE = os.uname().machine  # (not the platform module: its import compiles regexes)
_SYSCALLS = {
    "x86_64": {
        "pivot_root": 155,
        "seccomp": 317,
        "openat2": 437,
        "capget": 125,
        "capset": 126,
        "pidfd_send_signal": 424,
        "open_tree": 428,
        "move_mount": 429,
        "mount_setattr": 442,
        "clone3": 435,
    },
    "aarch64": {
        "pivot_root": 41,
        "seccomp": 277,
        "openat2": 437,
        "capget": 90,
        "capset": 91,
        "pidfd_send_signal": 424,
        "open_tree": 428,
        "move_mount": 429,
        "mount_setattr": 442,
        "clone3": 435,
    },
}[_MACHINE]

_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]


def _check(result: int, name: str, detail: str = "") -> int:
    if result < 0:
        err = ctypes.get_errno()
        msg = os.strerror(err)
        raise OSError(err, f"{name}: {msg}" + (f" ({detail})" if detail else ""))
    return result


def _b(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return os.fsencode(value)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def mount(
    source: str | bytes | None,
    target: str | bytes,
    fstype: str | bytes | None,
    flags: int = 0,
    data: str | bytes | None = None,
) -> None:
    res = _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data))
    kind = os.fsdecode(fstype) if fstype else "bind"
    _check(res, "mount", f"{kind} on {os.fsdecode(target)}")


def umount2(target: str | bytes, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), "umount2", os.fsdecode(target))


def pivot_root(new_root: str, put_old: str) -> None:
    res = _libc.syscall(_SYSCALLS["pivot_root"], _b(new_root), _b(put_old))
    _check(res, "pivot_root")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, len(raw)), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), "prctl")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """openat2(2): open ``path`` relative to ``dirfd`` with RESOLVE_* restrictions."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    res = _libc.syscall(
        _SYSCALLS["openat2"],
        ctypes.c_int(dirfd),
        _b(path),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    return _check(res, "openat2", path)


# The new mount API (Linux 5.2; mount_setattr 5.12): a mount made detached, its attributes
# set, then attached by descriptor, so no path is resolved twice (linux/mount.h, fcntl.h).
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x04
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_RDONLY = 0x01
MOUNT_ATTR_NOSUID = 0x02
MOUNT_ATTR_NODEV = 0x04
MOUNT_ATTR_NOEXEC = 0x08
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x00
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
UMOUNT_NOFOLLOW = 8


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def open_tree(dirfd: int, path: str, flags: int) -> int:
    """open_tree(2): with OPEN_TREE_CLONE, a detached copy of the mount at ``path`` (a bind
    mount not yet attached anywhere); the descriptor is close-on-exec."""
    res = _libc.syscall(
        _SYSCALLS["open_tree"], ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags | os.O_CLOEXEC)
    )
    return _check(res, "open_tree", path)


def move_mount(from_fd: int, from_path: str, to_fd: int, to_path: str, flags: int) -> None:
    res = _libc.syscall(
        _SYSCALLS["move_mount"],
        ctypes.c_int(from_fd),
        _b(from_path),
        ctypes.c_int(to_fd),
        _b(to_path),
        ctypes.c_uint(flags),
    )
    _check(res, "move_mount", to_path)


def mount_setattr(
    dirfd: int,
    path: str,
    flags: int,
    attr_set: int = 0,
    attr_clr: int = 0,
    propagation: int = 0,
) -> None:
    """mount_setattr(2): change a mount's attributes (``AT_RECURSIVE``: its submounts' too)."""
    attr = _MountAttr(attr_set, attr_clr, propagation, 0)
    res = _libc.syscall(
        _SYSCALLS["mount_setattr"],
        ctypes.c_int(dirfd),
        _b(path),
        ctypes.c_uint(flags),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    _check(res, "mount_setattr", path)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of this thread as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.syscall(_SYSCALLS["capget"], ctypes.byref(header), data), "capget")
    return (
        data[0].effective | data[1].effective << 32,
        data[0].permitted | data[1].permitted << 32,
        data[0].inheritable | data[1].inheritable << 32,
    )


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.syscall(_SYSCALLS["capset"], ctypes.byref(header), data), "capset")


def seccomp(operation: int, flags: int, args: int) -> int:
    """seccomp(2); ``args`` is an address (a struct sock_fprog for SET_MODE_FILTER)."""
    res = _libc.syscall(
        _SYSCALLS["seccomp"], ctypes.c_uint(operation), ctypes.c_uint(flags), ctypes.c_void_p(args)
    )
    return _check(res, "seccomp")


CLONE_INTO_CGROUP = 0x200000000
_SIGCHLD = 17  # (x86_64 and aarch64)
# The GIL stays held across clone3: the child comes back to the interpreter as the same thread.
_pylibc = ctypes.PyDLL(None, use_errno=True)
_pylibc.syscall.restype = ctypes.c_long


class _CloneArgs(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "flags",
            "pidfd",
            "child_tid",
            "parent_tid",
            "exit_signal",
            "stack",
            "stack_size",
            "tls",
            "set_tid",
            "set_tid_size",
            "cgroup",
        )
    ]


CLONE_PARENT = 0x00008000


def fork_into_cgroup(cgroup_fd: int, flags: int = 0) -> int:
    """fork(2), the child born in the cgroup2 directory ``cgroup_fd`` (clone3 with
    CLONE_INTO_CGROUP): no move afterwards, which would wait for an RCU grace period. The
    child's pid, 0 in the child. OSError when the kernel cannot (ENOSYS before 5.7, EBADF for
    a directory that is not a cgroup2 one...): nothing was forked then.

    For a single-threaded caller only: unlike os.fork, no at-fork handlers run in the child,
    which must go on to exec (or exit with os._exit). ``flags``: more clone flags
    (CLONE_PARENT, namespaces)."""
    # (with CLONE_PARENT the kernel takes the caller's own exit signal, and wants none given)
    signal = 0 if flags & CLONE_PARENT else _SIGCHLD
    args = _CloneArgs(flags=CLONE_INTO_CGROUP | flags, exit_signal=signal, cgroup=cgroup_fd)
    res = _pylibc.syscall(
        ctypes.c_long(_SYSCALLS["clone3"]), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args))
    )
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"clone3: {os.strerror(err)}")
    return int(res)


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    res = _libc.syscall(
        _SYSCALLS["pidfd_send_signal"],
        ctypes.c_int(pidfd),
        ctypes.c_int(sig),
        None,
        ctypes.c_uint(0),
    )
    _check(res, "pidfd_send_signal")


def set_fs_ids(uid: int, gid: int) -> tuple[int, int]:
    """setfsuid/setfsgid: the ids files are made with (and checked against); the old ones.
    Host root making a file in a user namespace's filesystem needs ids mapped there."""
    old_gid = int(_libc.setfsgid(ctypes.c_uint(gid)))
    old_uid = int(_libc.setfsuid(ctypes.c_uint(uid)))
    return old_uid, old_gid


def set_process_name(name: str) -> None:
    """Set comm (what ps and /proc/PID/comm show); at most 15 bytes."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    _libc.prctl(PR_SET_NAME, ctypes.cast(buf, ctypes.c_void_p).value or 0, 0, 0, 0)
