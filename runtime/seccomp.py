"""Seccomp: ``linux.seccomp`` compiled to a classic BPF program by our own code, and installed.

    profile = seccomp.parse(raw["linux"]["seccomp"])   # BundleError naming the field
    program = seccomp.compile_filter(profile)            # bytes: struct sock_filter[]
    seccomp.install(program, profile.flags)              # the last step before execve

    program, flags = seccomp.load(raw["linux"]["seccomp"], cache_dir)   # the three, cached

The program the kernel runs on every system call of the container:

    load the architecture; for each one the filter knows, jump to its section;
    any other architecture: kill the process
    section: load the call's number; a binary search over number ranges, each ending in its
             action (a range of calls without rules ends in the default action); a call whose
             rules compare arguments ends in a block that tries them in order

Semantics, as runc and crun (libseccomp) have them:
- ``architectures`` adds the compatibility ABIs (x86 and x32 beside x86_64, arm beside
  aarch64); the machine's own is always there. An architecture of another machine cannot
  occur here and is ignored; a system call a table does not know is skipped for it.
- For one call, the rules with arguments are tried in the profile's order, the first that
  matches decides; then an unconditional rule for that call, then the default action.
  Conditions of one rule must all match; several conditions on the same argument are
  alternatives (each becomes its own rule, as runc does for libseccomp).
- When the default action refuses, a call numbered above every call the profile names for
  that architecture fails with ENOSYS (runc's stub): a program probing a system call newer
  than the profile falls back as on an older kernel.
- 64-bit architectures compare arguments as 64-bit values; 32-bit ones compare the low half.

Compiled programs are kept in the runtime root (``.seccomp/``, with the section they were
compiled from): a container whose profile was compiled before (Docker's default, say) reads
its program instead of compiling it again (0.05 ms against 0.6).

Flags: SECCOMP_FILTER_FLAG_TSYNC, _LOG and _SPEC_ALLOW (a kernel without one refuses the
filter, and the start fails naming it). SCMP_ACT_NOTIFY (a listener socket) is refused.
"""

from __future__ import annotations

import bisect
import ctypes
import json
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from runtime.errors import BundleError, SetupError

# seccomp return values (linux/seccomp.h)
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000
EPERM = 1
ENOSYS = 38

ACTIONS = {
    "SCMP_ACT_KILL": RET_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": RET_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS,
    "SCMP_ACT_TRAP": RET_TRAP,
    "SCMP_ACT_ERRNO": RET_ERRNO,
    "SCMP_ACT_TRACE": RET_TRACE,
    "SCMP_ACT_ALLOW": RET_ALLOW,
    "SCMP_ACT_LOG": RET_LOG,
}
_TAKES_ERRNO = (RET_ERRNO, RET_TRACE)

FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}
OPERATORS = (
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
)

# OCI's architecture names; only those of this machine's family can occur.
ARCHITECTURES = {
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    **{
        f"SCMP_ARCH_{name}": name.lower()
        for name in [
            "MIPS",
            "MIPS64",
            "MIPS64N32",
            "MIPSEL",
            "MIPSEL64",
            "MIPSEL64N32",
            "PPC",
            "PPC64",
            "PPC64LE",
            "S390",
            "S390X",
            "PARISC",
            "PARISC64",
            "RISCV64",
            "LOONGARCH64",
            "M68K",
            "SH",
            "SHEB",
        ]
    },
}
# machine -> the architectures its kernel runs (the first is its own)
FAMILIES = {"x86_64": ("x86_64", "x86", "x32"), "aarch64": ("aarch64", "arm")}
# architecture -> (AUDIT_ARCH_* value, 64-bit)
_AUDIT = {
    "x86_64": (0xC000003E, True),
    "x86": (0x40000003, False),
    "aarch64": (0xC00000B7, True),
    "arm": (0x40000028, False),
}
X32_SYSCALL_BIT = 0x40000000

# classic BPF (linux/filter.h, linux/bpf_common.h)
_LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_AND = 0x54  # BPF_ALU | BPF_AND | BPF_K
_JA = 0x05
_JEQ = 0x15
_JGT = 0x25
_JGE = 0x35
_RET = 0x06
_NR, _ARCH, _ARGS = 0, 4, 16  # offsets in struct seccomp_data
MAX_INSTRUCTIONS = 4096
_INSN = struct.Struct("=HBBI")


@dataclass(frozen=True)
class Condition:
    index: int
    op: str
    value: int
    value_two: int


@dataclass(frozen=True)
class Rule:
    names: tuple[str, ...]
    action: int  # a SECCOMP_RET_* value, errno included
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Profile:
    default: int
    architectures: tuple[str, ...]
    flags: int
    rules: tuple[Rule, ...]


# -- parsing ---------------------------------------------------------------------------------


def parse(raw: Any, where: str = "linux.seccomp") -> Profile:
    """The profile of ``linux.seccomp``; a BundleError names the field that is wrong."""

    def fail(key: str, message: str) -> BundleError:
        return BundleError(f"config.json: {where}.{key}: {message}")

    if not isinstance(raw, dict):
        raise BundleError(f"config.json: {where}: must be an object")
    if raw.get("listenerPath") or raw.get("listenerMetadata"):
        raise fail("listenerPath", "seccomp user notification is not supported")
    default = _action(raw, "defaultAction", "defaultErrnoRet", fail)
    architectures = []
    for name in _strings(raw, "architectures", fail):
        arch = ARCHITECTURES.get(name)
        if arch is None:
            raise fail("architectures", f"unknown architecture {name!r}")
        architectures.append(arch)
    flags = 0
    for name in _strings(raw, "flags", fail):
        if name not in FLAGS:
            raise fail("flags", f"{name!r} is not supported (known: {', '.join(FLAGS)})")
        flags |= FLAGS[name]
    rules: list[Rule] = []
    syscalls = raw.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise fail("syscalls", "must be a list")
    for i, entry in enumerate(syscalls):
        here = f"syscalls[{i}]"
        if not isinstance(entry, dict):
            raise fail(here, "must be an object")
        names = _strings(entry, "names", lambda k, m, h=here: fail(f"{h}.{k}", m))
        if not names or not all(names):
            raise fail(f"{here}.names", "must be a non-empty list of names")
        action = _action(entry, "action", "errnoRet", lambda k, m, h=here: fail(f"{h}.{k}", m))
        conditions = tuple(
            _condition(a, f"{here}.args[{j}]", fail)
            for j, a in enumerate(_list(entry, "args", fail, here))
        )
        indexes = [c.index for c in conditions]
        if len(set(indexes)) < len(indexes):
            # several conditions on one argument: alternatives, one rule each (runc's way)
            rules.extend(Rule(tuple(names), action, (c,)) for c in conditions)
        else:
            rules.append(Rule(tuple(names), action, conditions))
    return Profile(default, tuple(architectures), flags, tuple(rules))


def _strings(raw: dict[str, Any], key: str, fail: Any) -> list[str]:
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(key, "must be a list of strings")
    return value


def _list(raw: dict[str, Any], key: str, fail: Any, here: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise fail(f"{here}.{key}", "must be a list")
    return value


def _action(raw: dict[str, Any], key: str, errno_key: str, fail: Any) -> int:
    name = raw.get(key)
    if name is None:
        raise fail(key, "is required")
    if name == "SCMP_ACT_NOTIFY":
        raise fail(key, "SCMP_ACT_NOTIFY (seccomp user notification) is not supported")
    if name not in ACTIONS:
        raise fail(key, f"unknown action {name!r}")
    base = ACTIONS[name]
    errno = raw.get(errno_key)
    if errno is None:
        errno = EPERM if base == RET_ERRNO else 0
    if not isinstance(errno, int) or isinstance(errno, bool) or not 0 <= errno <= 0xFFFF:
        raise fail(errno_key, "must be an integer from 0 to 65535")
    return base | errno if base in _TAKES_ERRNO else base


def _condition(raw: Any, here: str, fail: Any) -> Condition:
    if not isinstance(raw, dict):
        raise fail(here, "must be an object")
    index, op = raw.get("index"), raw.get("op")
    value, value_two = raw.get("value", 0), raw.get("valueTwo", 0)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= 5:
        raise fail(f"{here}.index", "must be an argument index from 0 to 5")
    if op not in OPERATORS:
        raise fail(f"{here}.op", f"unknown operator {op!r}")
    for key, number in (("value", value), ("valueTwo", value_two)):
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 2**64:
            raise fail(f"{here}.{key}", "must be an unsigned 64-bit integer")
    return Condition(index, op, value, value_two)


# -- compiling, with a cache -----------------------------------------------------------------

CACHE_FORMAT = b"orc-seccomp 1 "  # changes whenever the compiler's output would
CACHE_DIR = ".seccomp"  # in the runtime root


def cache_of(container_directory: Any) -> str:
    """The cache of the runtime root that holds ``container_directory``."""
    return os.path.join(os.path.dirname(str(container_directory)), CACHE_DIR)


def load(raw: Any, cache_dir: str | None = None) -> tuple[bytes, int]:
    """The program and flags of the section ``raw``: read from ``cache_dir`` when compiled
    before, else parsed, compiled and written there (best effort: a cache that cannot be read
    or written is only slower). A cached program is used only for the very section it was
    compiled from: the file holds that section's text, compared in full (its name is only a
    checksum)."""
    path = text = None
    header = CACHE_FORMAT + os.uname().machine.encode() + b"\n"
    if cache_dir:
        text = json.dumps(raw, separators=(",", ":")).encode()
        path = f"{cache_dir}/{zlib.crc32(text):08x}-{len(text):x}"
        data = b""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            pass
        else:
            try:
                data = os.read(fd, len(header) + 8 + len(text) + 8 * MAX_INSTRUCTIONS)
            finally:
                os.close(fd)
        start = len(header) + 8 + len(text)
        if (
            data[: len(header)] == header
            and data[len(header) + 4 : len(header) + 8] == len(text).to_bytes(4, "little")
            and data[len(header) + 8 : start] == text
            and (len(data) - start) % _INSN.size == 0
        ):
            flags = int.from_bytes(data[len(header) : len(header) + 4], "little")
            return data[start:], flags
    profile = parse(raw)
    program = compile_filter(profile)
    if path is not None and text is not None:
        try:
            os.makedirs(cache_dir or "", mode=0o700, exist_ok=True)
            tmp = f"{path}.{os.getpid()}"
            with open(tmp, "wb") as f:
                f.write(header + profile.flags.to_bytes(4, "little"))
                f.write(len(text).to_bytes(4, "little") + text + program)
            os.replace(tmp, path)
        except OSError:
            pass
    return program, profile.flags


# -- compiling -------------------------------------------------------------------------------

Insn = tuple[int, int, int, int]  # code, jt, jf, k


def compile_filter(profile: Profile, machine: str | None = None) -> bytes:
    """The BPF program (struct sock_filter[], native byte order) for ``profile`` on
    ``machine`` (default: this one)."""
    from runtime.seccomp_tables import TABLES

    machine = machine or os.uname().machine
    family = FAMILIES.get(machine)
    if family is None:
        raise SetupError(f"seccomp: no system call table for this machine ({machine})")
    wanted = {family[0], *(a for a in profile.architectures if a in family)}
    sections: list[tuple[int, list[Insn]]] = []
    for arch in family:
        if arch not in wanted or arch not in _AUDIT:
            continue  # (x32 shares x86_64's section)
        audit, wide = _AUDIT[arch]
        zones: list[tuple[int, dict[str, int] | None]] = [(0, TABLES[arch])]
        if arch == "x86_64":
            zones.append((X32_SYSCALL_BIT, TABLES["x32"] if "x32" in wanted else None))
        sections.append((audit, _section(profile, zones, wide)))
    program: list[Insn] = [(_LD_ABS, 0, 0, _ARCH)]
    dispatch_end = 1 + 2 * len(sections) + 1
    offset = dispatch_end
    for i, (audit, code) in enumerate(sections):
        jump_at = 1 + 2 * i + 1
        program.append((_JEQ, 0, 1, audit))
        program.append((_JA, 0, 0, offset - jump_at - 1))
        offset += len(code)
    program.append((_RET, 0, 0, RET_KILL_PROCESS))
    for _, code in sections:
        program.extend(code)
    if len(program) > MAX_INSTRUCTIONS:
        raise SetupError(
            f"seccomp: the profile compiles to {len(program)} instructions, more than the"
            f" kernel's {MAX_INSTRUCTIONS}"
        )
    pack = _INSN.pack
    return b"".join([pack(*insn) for insn in program])


def _section(
    profile: Profile, zones: list[tuple[int, dict[str, int] | None]], wide: bool
) -> list[Insn]:
    """One architecture's code: ``zones`` are (first number, table) in order; a zone without
    a table (x32 when not asked for) is refused as a foreign architecture would be."""
    denies = profile.default & 0xFFFF0000 not in (RET_ALLOW, RET_LOG)
    conditional: dict[int, list[Rule]] = {}  # number -> its rules with conditions, in order
    unconditional: dict[int, int] = {}  # number -> the action of its first rule without
    base: list[tuple[int, int]] = []  # the action of numbers without rules, from each start
    for start, table in zones:
        if table is None:
            base.append((start, RET_KILL_PROCESS))
            continue
        base.append((start, profile.default))
        get = table.get
        top = -1
        for rule in reversed(profile.rules):  # (reversed: the first rule's update lands last)
            numbers = [nr for nr in map(get, rule.names) if nr is not None]
            if not numbers:
                continue
            top = max(top, *numbers)
            if rule.conditions:
                for nr in numbers:
                    conditional.setdefault(nr, []).insert(0, rule)
            else:
                unconditional.update(dict.fromkeys(numbers, rule.action))
        if denies and top >= 0:
            base.append((top + 1, RET_ERRNO | ENOSYS))
    leaves: dict[int, Any] = dict(unconditional)
    for nr, rules in conditional.items():
        leaves[nr] = (tuple(rules), unconditional.get(nr, profile.default))
    # every number where the action may change, and the action from there on
    for nr in leaves.keys() - {nr - 1 for nr in leaves}:
        leaves.setdefault(nr + 1, None)
    starts = [start for start, _ in base]
    for start in starts:
        leaves.setdefault(start, None)
    intervals: list[tuple[int, Any]] = []
    last: Any = None
    for point in sorted(leaves):
        leaf = leaves[point]
        if leaf is None:
            leaf = base[bisect.bisect_right(starts, point) - 1][1]
        if leaf != last or not isinstance(leaf, int):
            intervals.append((point, leaf))
            last = leaf
    if intervals[-1][0] >= 2**32:
        intervals.pop()
    return [(_LD_ABS, 0, 0, _NR), *_tree(intervals, wide)]


def _tree(intervals: list[tuple[int, Any]], wide: bool) -> list[Insn]:
    """A binary search over ``intervals`` ((first number, leaf), sorted, the first at 0); the
    accumulator holds the call's number."""
    if len(intervals) == 1:
        leaf = intervals[0][1]
        if isinstance(leaf, int):
            return [(_RET, 0, 0, leaf)]
        rules, fallback = leaf
        return _arguments(rules, fallback, wide)
    middle = len(intervals) // 2
    below = _tree(intervals[:middle], wide)
    above = _tree(intervals[middle:], wide)
    if len(below) <= 255:
        return [(_JGE, len(below), 0, intervals[middle][0]), *below, *above]
    return [(_JGE, 0, 1, intervals[middle][0]), (_JA, 0, 0, len(below)), *below, *above]


def _arguments(rules: tuple[Rule, ...], fallback: int, wide: bool) -> list[Insn]:
    """Try each rule's conditions in order; the first rule that matches gives its action."""
    code: list[Insn] = []
    for rule in rules:
        block: list[tuple[int, Any, Any, int]] = []
        for condition in rule.conditions:
            own = _compare(condition, wide)  # "pass": the end of its own code
            for i, (op, jt, jf, k) in enumerate(own):
                passed = len(own) - i - 1
                block.append(
                    (op, passed if jt == "pass" else jt, passed if jf == "pass" else jf, k)
                )
        block.append((_RET, 0, 0, rule.action))
        end = len(block)  # "fail": the next rule
        for i, (op, jt, jf, k) in enumerate(block):
            code.append((op, _fail(jt, i, end), _fail(jf, i, end), k))
    code.append((_RET, 0, 0, fallback))
    return code


def _fail(label: Any, at: int, end: int) -> int:
    if label != "fail":
        return int(label)
    offset = end - at - 1
    if offset > 255:
        raise SetupError("seccomp: a rule's conditions are too long to compile")
    return offset


def _compare(c: Condition, wide: bool) -> list[tuple[int, Any, Any, int]]:
    """The code of one condition: falls through ("pass") or jumps to "fail"."""
    lo_at, hi_at = _ARGS + 8 * c.index, _ARGS + 8 * c.index + 4
    if c.op == "SCMP_CMP_MASKED_EQ":
        mask, value = c.value, c.value_two
    else:
        mask, value = 0xFFFFFFFFFFFFFFFF, c.value
    lo, hi = value & 0xFFFFFFFF, value >> 32
    mask_lo, mask_hi = mask & 0xFFFFFFFF, mask >> 32
    op = c.op
    low: list[tuple[int, Any, Any, int]]
    high: list[tuple[int, Any, Any, int]]
    if op == "SCMP_CMP_EQ":
        low = [(_JEQ, "pass", "fail", lo)]
    elif op == "SCMP_CMP_NE":
        low = [(_JEQ, "fail", "pass", lo)]
    elif op == "SCMP_CMP_GT":
        low = [(_JGT, "pass", "fail", lo)]
    elif op == "SCMP_CMP_GE":
        low = [(_JGE, "pass", "fail", lo)]
    elif op == "SCMP_CMP_LT":
        low = [(_JGE, "fail", "pass", lo)]
    elif op == "SCMP_CMP_LE":
        low = [(_JGT, "fail", "pass", lo)]
    else:  # SCMP_CMP_MASKED_EQ
        low = [(_AND, 0, 0, mask_lo), (_JEQ, "pass", "fail", lo)]
    low = [(_LD_ABS, 0, 0, lo_at), *low]
    if not wide:
        return low
    # the high halves decide unless they are equal
    if op == "SCMP_CMP_MASKED_EQ":
        high = [(_LD_ABS, 0, 0, hi_at), (_AND, 0, 0, mask_hi), (_JEQ, 0, "fail", hi)]
    elif op == "SCMP_CMP_EQ":
        high = [(_LD_ABS, 0, 0, hi_at), (_JEQ, 0, "fail", hi)]
    elif op == "SCMP_CMP_NE":
        high = [(_LD_ABS, 0, 0, hi_at), (_JEQ, 0, "pass", hi)]
    elif op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
        high = [(_LD_ABS, 0, 0, hi_at), (_JGT, "pass", 0, hi), (_JEQ, 0, "fail", hi)]
    else:  # LT, LE
        high = [(_LD_ABS, 0, 0, hi_at), (_JGT, "fail", 0, hi), (_JEQ, 0, "pass", hi)]
    return [*high, *low]


# -- installing ------------------------------------------------------------------------------


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: bytes, flags: int = 0) -> None:
    """seccomp(SECCOMP_SET_MODE_FILTER): this thread (all threads with TSYNC) runs the filter
    from now on, and every process it executes or forks too. Needs no_new_privileges or
    CAP_SYS_ADMIN (runtime.init arranges one of them)."""
    from runtime.linux import syscalls as sc

    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // _INSN.size, ctypes.cast(buffer, ctypes.c_void_p))
    try:
        sc.seccomp(1, flags, ctypes.addressof(fprog))  # SECCOMP_SET_MODE_FILTER
    except OSError as exc:
        names = [name for name, bit in FLAGS.items() if flags & bit]
        why = exc.strerror or str(exc)
        if exc.errno == 22 and names:  # EINVAL
            why += f" (does this kernel know {', '.join(names)}?)"
        raise SetupError(f"seccomp: installing the filter: {why}") from None
