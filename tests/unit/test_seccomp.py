"""Seccomp: the compiler's programs run on a small classic-BPF interpreter (every architecture,
every comparison), the real kernel runs one in a child (no root needed: no_new_privileges),
and Docker's profile becomes OCI for a container's capabilities."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from typing import Any

import pytest

from orchestrator.seccompprofile import DEFAULT_PROFILE, convert, oci_section
from runtime import seccomp
from runtime.errors import BundleError
from runtime.linux import caps
from runtime.seccomp_tables import TABLES

X86_64, I386, AARCH64, ARM = 0xC000003E, 0x40000003, 0xC00000B7, 0x40000028
ALLOW, KILL_PROCESS = seccomp.RET_ALLOW, seccomp.RET_KILL_PROCESS


def errno_of(value: int) -> int:
    return seccomp.RET_ERRNO | value


def run_bpf(program: bytes, nr: int, arch: int = X86_64, args: tuple[int, ...] = ()) -> int:
    """What the kernel would decide for a call: a classic BPF interpreter over seccomp_data."""
    full = (*args, *(0,) * (6 - len(args)))
    data = struct.pack("<iIQ6Q", nr, arch, 0, *full)
    insns = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    assert len(insns) <= seccomp.MAX_INSTRUCTIONS
    a, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            a = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:  # and #k
            a &= k
        elif code == 0x05:  # ja
            pc += k
        elif code in (0x15, 0x25, 0x35):  # jeq, jgt, jge
            taken = {0x15: a == k, 0x25: a > k, 0x35: a >= k}[code]
            pc += jt if taken else jf
        elif code == 0x06:  # ret
            return k
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")


def compiled(raw: dict[str, Any], machine: str = "x86_64") -> bytes:
    return seccomp.compile_filter(seccomp.parse(raw), machine)


def nr(name: str, arch: str = "x86_64") -> int:
    return TABLES[arch][name]


def test_allow_list_default_action_and_enosys_above_the_profile() -> None:
    program = compiled(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read", "write", "getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES},
            ],
        }
    )
    assert run_bpf(program, nr("read")) == ALLOW
    assert run_bpf(program, nr("getpid")) == ALLOW
    assert run_bpf(program, nr("mkdir")) == errno_of(errno.EACCES)
    assert run_bpf(program, nr("close")) == errno_of(errno.EPERM)  # the default, EPERM
    # newer than anything the profile names: ENOSYS, so that programs fall back
    assert run_bpf(program, nr("clone3")) == errno_of(errno.ENOSYS)
    assert run_bpf(program, 100000) == errno_of(errno.ENOSYS)
    # an architecture the filter does not know is killed; x32 calls too, unless asked for
    assert run_bpf(program, 0, arch=AARCH64) == KILL_PROCESS
    assert run_bpf(program, nr("read", "x32"), arch=X86_64) == KILL_PROCESS
    assert run_bpf(program, nr("read", "x86"), arch=I386) == KILL_PROCESS


def test_block_list_allows_the_rest() -> None:
    program = compiled(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["unshare", "setns"], "action": "SCMP_ACT_KILL_PROCESS"}],
        }
    )
    assert run_bpf(program, nr("unshare")) == KILL_PROCESS
    assert run_bpf(program, nr("setns")) == KILL_PROCESS
    assert run_bpf(program, nr("read")) == ALLOW
    assert run_bpf(program, 100000) == ALLOW  # no ENOSYS stub for an allowing default


def test_compatibility_architectures_use_their_own_numbers() -> None:
    raw = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_MIPS"],
        "syscalls": [{"names": ["socket", "getuid32"], "action": "SCMP_ACT_ALLOW"}],
    }
    program = compiled(raw)
    assert run_bpf(program, nr("socket")) == ALLOW
    assert run_bpf(program, nr("socket", "x86"), arch=I386) == ALLOW
    assert run_bpf(program, nr("getuid32", "x86"), arch=I386) == ALLOW  # i386 only
    assert run_bpf(program, nr("socket", "x32"), arch=X86_64) == ALLOW
    assert run_bpf(program, nr("read", "x86"), arch=I386) == errno_of(errno.EPERM)
    assert run_bpf(program, nr("read", "x32"), arch=X86_64) == errno_of(errno.EPERM)
    arm = compiled({**raw, "architectures": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}, "aarch64")
    assert run_bpf(arm, nr("socket", "aarch64"), arch=AARCH64) == ALLOW
    assert run_bpf(arm, nr("socket", "arm"), arch=ARM) == ALLOW
    assert run_bpf(arm, nr("read", "aarch64"), arch=AARCH64) == errno_of(errno.EPERM)
    assert run_bpf(arm, 0, arch=X86_64) == KILL_PROCESS


@pytest.mark.parametrize(
    ("op", "value", "value_two", "matching", "other"),
    [
        ("SCMP_CMP_EQ", 5, 0, [5], [4, 6, 5 | 1 << 32]),
        ("SCMP_CMP_NE", 5, 0, [4, 6, 5 | 1 << 32], [5]),
        ("SCMP_CMP_GT", 1 << 32, 0, [(1 << 32) + 1, 2 << 32], [1 << 32, 5, 0xFFFFFFFF]),
        ("SCMP_CMP_GE", 1 << 32, 0, [1 << 32, 2 << 32], [5, 0xFFFFFFFF]),
        ("SCMP_CMP_LT", 1 << 32, 0, [0, 0xFFFFFFFF], [1 << 32, 3 << 32]),
        ("SCMP_CMP_LE", 7, 0, [0, 7], [8, 1 << 32]),
        ("SCMP_CMP_MASKED_EQ", 0xF0000000F, 0x000000003, [3, 0x13, 3 | 1 << 40], [1 << 32 | 3, 2]),
    ],
)
def test_argument_comparisons_are_64_bit(
    op: str, value: int, value_two: int, matching: list[int], other: list[int]
) -> None:
    condition = {"index": 2, "op": op, "value": value, "valueTwo": value_two}
    program = compiled(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["ioctl"], "action": "SCMP_ACT_TRAP", "args": [condition]}],
        }
    )
    for argument in matching:
        assert run_bpf(program, nr("ioctl"), args=(0, 0, argument)) == seccomp.RET_TRAP, argument
    for argument in other:
        assert run_bpf(program, nr("ioctl"), args=(0, 0, argument)) == ALLOW, argument


def test_rules_of_one_call_first_match_then_unconditional_then_default() -> None:
    program = compiled(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["kill"], "action": "SCMP_ACT_ALLOW"},
                # both conditions must hold
                {
                    "names": ["kill"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": 1,
                    "args": [
                        {"index": 0, "op": "SCMP_CMP_EQ", "value": 1},
                        {"index": 1, "op": "SCMP_CMP_EQ", "value": 9},
                    ],
                },
                # two conditions on one argument are alternatives (runc's rule)
                {
                    "names": ["personality"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [
                        {"index": 0, "op": "SCMP_CMP_EQ", "value": 0},
                        {"index": 0, "op": "SCMP_CMP_EQ", "value": 8},
                    ],
                },
            ],
        }
    )
    assert run_bpf(program, nr("kill"), args=(1, 9)) == errno_of(1)
    assert run_bpf(program, nr("kill"), args=(1, 15)) == ALLOW
    assert run_bpf(program, nr("kill"), args=(2, 9)) == ALLOW
    assert run_bpf(program, nr("personality"), args=(0,)) == ALLOW
    assert run_bpf(program, nr("personality"), args=(8,)) == ALLOW
    assert run_bpf(program, nr("personality"), args=(4,)) == errno_of(errno.EPERM)


def test_docker_default_profile_compiles_and_decides_as_docker() -> None:
    section = oci_section(None, list(caps.DOCKER_DEFAULT))
    assert section is not None
    program = compiled(section)
    for name in (
        "read",
        "openat",
        "execve",
        "clone",
        "mmap",
        "futex",
        "rt_sigreturn",
        "exit_group",
    ):
        assert run_bpf(program, nr(name)) == ALLOW, name
    for name in ("mount", "unshare", "setns", "keyctl", "bpf", "kexec_load", "open_by_handle_at"):
        assert run_bpf(program, nr(name)) == errno_of(errno.EPERM), name
    assert run_bpf(program, nr("clone3")) == errno_of(errno.ENOSYS)  # glibc falls back to clone
    # clone: no namespace flags without CAP_SYS_ADMIN
    assert run_bpf(program, nr("clone"), args=(0x11,)) == ALLOW
    assert run_bpf(program, nr("clone"), args=(0x10000000,)) == errno_of(errno.EPERM)
    assert run_bpf(program, nr("personality"), args=(0xFFFFFFFF,)) == ALLOW
    assert run_bpf(program, nr("personality"), args=(0x0040000,)) == errno_of(errno.EPERM)
    assert run_bpf(program, nr("socket", "x86"), arch=I386) == ALLOW
    admin = oci_section(None, [*caps.DOCKER_DEFAULT, "CAP_SYS_ADMIN"])
    assert admin is not None
    with_admin = compiled(admin)
    for name in ("mount", "unshare", "setns", "clone3"):
        assert run_bpf(with_admin, nr(name)) == ALLOW, name
    assert run_bpf(with_admin, nr("clone"), args=(0x10000000,)) == ALLOW


def test_a_subtree_longer_than_a_jump_reaches_its_far_side() -> None:
    """Rules with many conditions make subtrees of more than 255 instructions, whose far side
    a conditional jump cannot reach: a trampoline does."""
    calls = [name for name, number in TABLES["x86_64"].items() if number < 60]
    syscalls = [
        {
            "names": [name],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": i + 1,
            "args": [{"index": j, "op": "SCMP_CMP_EQ", "value": i} for j in range(6)],
        }
        for i, name in enumerate(calls)
    ]
    program = compiled({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": syscalls})
    assert len(program) // 8 > 4 * 255
    for i, name in enumerate(calls):
        assert run_bpf(program, nr(name), args=(i,) * 6) == errno_of(i + 1), name
        assert run_bpf(program, nr(name), args=(i,) * 5 + (i + 1,)) == ALLOW, name


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "defaultAction: is required"),
        ({"defaultAction": "SCMP_ACT_NOPE"}, "unknown action"),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "not supported"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x"}, "not supported"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}, "unknown arch"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_X"]}, "not supported"),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": [], "action": "SCMP_ACT_LOG"}],
            },
            "syscalls[0].names",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_LOG",
                        "args": [{"index": 6, "op": "SCMP_CMP_EQ"}],
                    }
                ],
            },
            "syscalls[0].args[0].index",
        ),
        (
            {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1},
            "defaultErrnoRet",
        ),
    ],
)
def test_invalid_profiles_name_the_field(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(BundleError, match=r"linux\.seccomp") as info:
        seccomp.parse(raw)
    assert message in str(info.value)


def test_the_cache_returns_what_the_compiler_made(tmp_path: Any) -> None:
    raw = {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}
    first = seccomp.load(raw, str(tmp_path / "cache"))
    assert first == (seccomp.compile_filter(seccomp.parse(raw)), 2)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert seccomp.load(raw, str(tmp_path / "cache")) == first


def test_the_kernel_runs_the_program_in_a_child() -> None:
    """The real kernel's view of arguments (64-bit registers) and errno values; the child sets
    no_new_privileges, which is all an unprivileged process needs for a filter."""
    getppid = TABLES["x86_64" if os.uname().machine == "x86_64" else "aarch64"]["getppid"]
    if os.uname().machine not in seccomp.FAMILIES:
        pytest.skip("no syscall table for this machine")
    program = seccomp.compile_filter(
        seccomp.parse(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["getppid"],
                        "action": "SCMP_ACT_ERRNO",
                        "errnoRet": errno.EDOM,
                        "args": [{"index": 3, "op": "SCMP_CMP_GT", "value": 1 << 40}],
                    },
                    {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ERANGE},
                    {"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO"},
                ],
            }
        )
    )
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            from runtime.linux import syscalls as sc

            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
            seccomp.install(program)
            results = []
            for fourth in (1 << 41, 5):
                args = [ctypes.c_ulong(0)] * 3 + [ctypes.c_ulong(fourth)]
                libc.syscall(ctypes.c_long(getppid), *args)
                results.append(ctypes.get_errno())
            try:
                os.mkdir("/nonexistent-dir/x")
            except OSError as exc:
                results.append(exc.errno or 0)
            os.write(write_end, bytes(results))
        finally:
            os._exit(0)
    os.close(write_end)
    got = os.read(read_end, 16)
    os.close(read_end)
    os.waitpid(child, 0)
    assert list(got) == [errno.EDOM, errno.ERANGE, errno.EPERM]


def test_docker_format_includes_and_excludes() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "comment": "always"},
            {"name": "mount", "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {
                "names": ["arch_prctl"],
                "action": "SCMP_ACT_ALLOW",
                "includes": {"arches": ["amd64"]},
            },
            {"names": ["new"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "6.99"}},
            {"names": ["old"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "4.8"}},
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "excludes": {"caps": ["CAP_SYS_ADMIN"]},
            },
        ],
    }
    plain = convert(profile, ["CAP_CHOWN"], "x86_64", (6, 1))
    assert plain == {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW"},
        ],
    }
    admin = convert(profile, ["CAP_SYS_ADMIN"], "aarch64", (7, 0))
    assert admin is not None
    assert admin["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert [s["names"] for s in admin["syscalls"]] == [["read"], ["mount"], ["new"]]
    assert convert({}, [], "x86_64", (6, 1)) is None  # an empty profile: no filter
    assert oci_section("unconfined", []) is None
    assert DEFAULT_PROFILE.is_file()
