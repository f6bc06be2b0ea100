"""Device rules on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program, built here instruction by
instruction, loaded with bpf(2) and attached to the container's cgroup.

cgroup v2 has no devices.allow file; the kernel asks an attached eBPF program instead, with
``struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`` where access_type is
``access << 16 | type`` (type 1 block, 2 char; access 1 mknod, 2 read, 4 write). The program
answers 1 (allow) or 0 (deny). Rules are OCI's: a list applied in order, later ones winning,
so the program checks them last first and returns at the first that matches; a device no rule
matches is denied (rules start from "deny all" in practice).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from collections.abc import Sequence

from runtime.cgroups.resources import DeviceRule
from runtime.errors import SetupError

_BPF_SYSCALL = {"x86_64": 321, "aarch64": 280}.get(platform.machine(), 321)
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

# instruction classes and operations (linux/bpf_common.h, linux/bpf.h)
_LDX_MEM_W = 0x61
_ALU64_AND_K = 0x57
_ALU64_RSH_K = 0x77
_ALU64_MOV_K = 0xB7
_ALU64_MOV_X = 0xBF
_JMP_JNE_K = 0x55
_JMP_EXIT = 0x95

_TYPES = {"b": 1, "c": 2}
_ACCESS = {"m": 1, "r": 2, "w": 4}


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def program(rules: Sequence[DeviceRule]) -> bytes:
    """The eBPF program (instructions, 8 bytes each) for ``rules``."""
    code = [
        _insn(_LDX_MEM_W, dst=2, src=1, off=0),  # r2 = access_type
        _insn(_ALU64_AND_K, dst=2, imm=0xFFFF),  # r2 = device type
        _insn(_LDX_MEM_W, dst=3, src=1, off=0),
        _insn(_ALU64_RSH_K, dst=3, imm=16),  # r3 = access asked for
        _insn(_LDX_MEM_W, dst=4, src=1, off=4),  # r4 = major
        _insn(_LDX_MEM_W, dst=5, src=1, off=8),  # r5 = minor
    ]
    for rule in reversed(rules):
        block: list[
            tuple[int, int, int, int, int | None]
        ] = []  # (code, dst, src, imm, jump-to-next?)
        if rule.type != "a":
            block.append((_JMP_JNE_K, 2, 0, _TYPES[rule.type], 1))
        access = sum(_ACCESS[a] for a in set(rule.access))
        if access != 7:
            # match only when every access asked for is within the rule's
            block.append((_ALU64_MOV_X, 1, 3, 0, None))
            block.append((_ALU64_AND_K, 1, 0, access, None))
            block.append((_JMP_JNE_K, 1, 0, 0, 2))  # r1 != r3: compared below as r1 ^ r3
        if rule.major is not None:
            block.append((_JMP_JNE_K, 4, 0, rule.major, 1))
        if rule.minor is not None:
            block.append((_JMP_JNE_K, 5, 0, rule.minor, 1))
        block.append((_ALU64_MOV_K, 0, 0, 1 if rule.allow else 0, None))
        block.append((_JMP_EXIT, 0, 0, 0, None))
        code += _assemble(block)
        if len(block) == 2:
            # it matches every device: earlier rules can never decide (and the verifier
            # refuses unreachable instructions)
            return b"".join(code)
    code.append(_insn(_ALU64_MOV_K, dst=0, imm=0))  # no rule matched: deny
    code.append(_insn(_JMP_EXIT))
    return b"".join(code)


_JMP_JNE_X = 0x5D


def _assemble(block: list[tuple[int, int, int, int, int | None]]) -> list[bytes]:
    out = []
    end = len(block)
    for i, (code, dst, src, imm, jump) in enumerate(block):
        if jump is None:
            out.append(_insn(code, dst=dst, src=src, imm=imm))
        elif jump == 2:
            # the access test: jump to the next rule when (asked & allowed) != asked
            out.append(_insn(_JMP_JNE_X, dst=1, src=3, off=end - (i + 1)))
        else:
            out.append(_insn(code, dst=dst, off=end - (i + 1), imm=imm))
    return out


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _bpf(command: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    result = _libc.syscall(_BPF_SYSCALL, ctypes.c_int(command), attr, ctypes.c_uint(len(attr)))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(result)


def load(rules: Sequence[DeviceRule]) -> int:
    """Load the program for ``rules``; returns its file descriptor."""
    insns = ctypes.create_string_buffer(program(rules))
    license_ = ctypes.create_string_buffer(b"Apache")
    log = ctypes.create_string_buffer(65536)
    attr = ctypes.create_string_buffer(128)
    struct.pack_into(
        "<IIQQIIQ",
        attr,
        0,
        BPF_PROG_TYPE_CGROUP_DEVICE,
        len(insns.raw) // 8,
        ctypes.addressof(insns),
        ctypes.addressof(license_),
        1,  # log level: the verifier says why, should it refuse
        len(log),
        ctypes.addressof(log),
    )
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as exc:
        detail = [" | ".join(log.value.decode(errors="replace").strip().splitlines()[-4:])]
        raise SetupError(
            f"cannot load the device filter: {exc.strerror} {detail[0]}".strip()
        ) from None


# Programs loaded by this process, by their code: loading runs the kernel's verifier (about a
# millisecond); one program can be attached to any number of cgroups.
_loaded: dict[bytes, int] = {}
_CACHED = 8


def load_cached(rules: Sequence[DeviceRule]) -> int:
    """``load``, once per distinct program in this process; the descriptor stays ours."""
    code = program(rules)
    prog = _loaded.get(code)
    if prog is None:
        if len(_loaded) >= _CACHED:
            os.close(_loaded.pop(next(iter(_loaded))))
        prog = _loaded[code] = load(rules)
    return prog


def attached(cgroup_fd: int) -> list[int]:
    """Ids of the device programs attached to the cgroup."""
    ids = (ctypes.c_uint32 * 64)()
    attr = ctypes.create_string_buffer(128)
    struct.pack_into(
        "<IIIIQI", attr, 0, cgroup_fd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), 64
    )
    try:
        _bpf(BPF_PROG_QUERY, attr)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return []
        raise
    count = struct.unpack_from("<I", attr, 24)[0]
    return list(ids[:count])


def apply(cgroup_dir: str, rules: Sequence[DeviceRule]) -> None:
    """Replace the device programs of ``cgroup_dir`` with one enforcing ``rules``: the new one
    is attached before the old ones go, so no moment is without a filter."""
    cgroup_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        old = attached(cgroup_fd)
        prog = load_cached(rules)
        attr = ctypes.create_string_buffer(128)
        struct.pack_into("<IIII", attr, 0, cgroup_fd, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
        try:
            _bpf(BPF_PROG_ATTACH, attr)
        except OSError as exc:
            raise SetupError(
                f"cannot attach the device filter to {cgroup_dir}: {exc.strerror}"
            ) from None
        for prog_id in old:
            _detach(cgroup_fd, prog_id)
    finally:
        os.close(cgroup_fd)


def _detach(cgroup_fd: int, prog_id: int) -> None:
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<I", attr, 0, prog_id)
    try:
        prog = _bpf(BPF_PROG_GET_FD_BY_ID, attr)
    except OSError:
        return  # gone meanwhile
    try:
        attr = ctypes.create_string_buffer(128)
        struct.pack_into("<IIII", attr, 0, cgroup_fd, prog, BPF_CGROUP_DEVICE, 0)
        _bpf(BPF_PROG_DETACH, attr)
    except OSError:
        pass
    finally:
        os.close(prog)
