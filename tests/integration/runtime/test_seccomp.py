"""Seccomp in real containers, on both start paths: Docker's default profile, a profile of
our own with errno values and argument rules, no_new_privileges or not, and exec."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from orchestrator.seccompprofile import oci_section
from runtime.linux import caps
from tests.busybox import bundle

pytestmark = pytest.mark.root


def run(
    rt: Any, tmp_path: Path, rootfs: Path, script: str, name: str = "c", **changes: Any
) -> tuple[int, str]:
    b = bundle(tmp_path / name, ["sh", "-c", script], lower=rootfs, **changes)
    log = tmp_path / f"{name}.log"
    rt.run(name, b, log_path=str(log))
    result = rt.wait(name, timeout=60)
    rt.delete(name)
    text = "".join(json.loads(line)["log"] for line in log.read_text().splitlines())
    return result["exit_code"], text


def default_profile(*extra_caps: str) -> dict[str, Any]:
    section = oci_section(None, [*caps.DOCKER_DEFAULT, *extra_caps])
    assert section is not None
    return section


def test_docker_default_profile_blocks_and_allows(
    rt: Any, tmp_path: Path, busybox_rootfs: Path
) -> None:
    # unshare(CLONE_NEWUSER) needs no capability: only the profile stops it
    script = (
        "grep Seccomp: /proc/self/status; unshare -U true 2>&1; echo unshare=$?; "
        "mkdir /tmp/d && echo hi > /tmp/d/f && cat /tmp/d/f && ls /tmp/d; "
        "(sleep 5 & kill $!; wait $!) 2>/dev/null; echo killed=$?; ps -o comm | grep -c ps"
    )
    code, out = run(rt, tmp_path, busybox_rootfs, script, linux__seccomp=default_profile())
    assert code == 0, out
    lines = out.split("\n")
    assert lines[0].split() == ["Seccomp:", "2"]  # filter mode
    assert "Operation not permitted" in lines[1]
    assert lines[2] == "unshare=1"
    assert lines[3:5] == ["hi", "f"]
    assert lines[5] == "killed=143"
    assert lines[6] == "1"


def test_a_capability_allows_its_calls_back(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    admin = [*caps.DOCKER_DEFAULT, "CAP_SYS_ADMIN"]
    code, out = run(
        rt,
        tmp_path,
        busybox_rootfs,
        "unshare -U true && echo unshare-ok",
        linux__seccomp=default_profile("CAP_SYS_ADMIN"),
        process__capabilities={"bounding": admin, "effective": admin, "permitted": admin},
    )
    assert (code, out.strip()) == (0, "unshare-ok")


def test_own_profile_errno_and_argument_rules(
    rt: Any, tmp_path: Path, busybox_rootfs: Path
) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            # kill(pid, SIGUSR1) refused, other signals pass
            {
                "names": ["kill"],
                "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}],
            },
        ],
    }
    script = (
        "mkdir /tmp/x 2>&1; echo mkdir=$?; sleep 5 & "
        "kill -USR1 $! 2>&1; echo usr1=$?; kill -TERM $!; echo term=$?"
    )
    code, out = run(rt, tmp_path, busybox_rootfs, script, linux__seccomp=profile)
    assert code == 0, out
    lines = out.split("\n")
    assert "Permission denied" in lines[0]  # EACCES, the profile's errnoRet
    assert lines[1] == "mkdir=1"
    assert "Operation not permitted" in lines[2]
    assert lines[3:5] == ["usr1=1", "term=0"]


@pytest.mark.parametrize("nnp", [True, False])
def test_a_user_without_capabilities_gets_the_filter(
    rt: Any, tmp_path: Path, busybox_rootfs: Path, nnp: bool
) -> None:
    """The kernel installs a filter for a process with no_new_privileges or CAP_SYS_ADMIN:
    without either, the init holds CAP_SYS_ADMIN just for the install."""
    code, out = run(
        rt,
        tmp_path,
        busybox_rootfs,
        "grep -E '^(CapEff|CapPrm|NoNewPrivs|Seccomp):' /proc/self/status; id -u",
        linux__seccomp=default_profile(),
        process__noNewPrivileges=nnp,
        annotations={"org.orchestrator.user": "app"},
    )
    assert code == 0, out
    status = dict(line.split(":\t") for line in out.split("\n")[:4])
    assert status == {
        "CapPrm": "0000000000000000",
        "CapEff": "0000000000000000",
        "NoNewPrivs": "1" if nnp else "0",
        "Seccomp": "2",
    }
    assert out.split("\n")[4] == "1000"


def test_root_keeps_exactly_its_capabilities(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    code, out = run(
        rt,
        tmp_path,
        busybox_rootfs,
        "grep -E '^Cap(Eff|Prm):' /proc/self/status",
        linux__seccomp=default_profile(),
    )
    assert code == 0
    assert [line.split()[1] for line in out.strip().split("\n")] == ["00000000a80425fb"] * 2


def test_exec_gets_the_containers_filter(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    b = bundle(tmp_path / "b", ["sleep", "30"], lower=busybox_rootfs)
    spec = json.loads((b / "config.json").read_text())
    spec["linux"]["seccomp"] = default_profile()
    (b / "config.json").write_text(json.dumps(spec))
    rt.run("c", b)
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        status = rt.exec(
            "c",
            ["sh", "-c", "grep Seccomp: /proc/self/status; unshare -U true 2>/dev/null; echo $?"],
            stdio=(fd, fd, fd),
        )
    finally:
        os.close(fd)
    rt.delete("c", force=True)
    assert status == 0
    assert out.read_text().split("\n")[:2] == ["Seccomp:\t2", "1"]


def test_an_invalid_profile_fails_the_create(
    rt: Any, tmp_path: Path, busybox_rootfs: Path, state_root: Path
) -> None:
    from runtime.errors import Error

    b = bundle(
        tmp_path / "b",
        ["true"],
        lower=busybox_rootfs,
        linux__seccomp={"defaultAction": "SCMP_ACT_BOGUS"},
    )
    with pytest.raises(Error, match=r"linux\.seccomp\.defaultAction: unknown action"):
        rt.run("bad", b)
    assert not (state_root / "runtime" / "bad").exists()
