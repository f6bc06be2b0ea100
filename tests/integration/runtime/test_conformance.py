"""What the OCI runtime spec asks and runc does, on both start paths: `runc spec` bundles as
they are, the default devices, root propagation, linux.cgroupsPath, namespaces inherited or
joined by path, and the six kinds of hooks with the state on their stdin."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import Error, SetupError
from tests.busybox import bundle
from tests.conftest import current_cgroup_parent

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[3]


def output_of(log: Path) -> str:
    return "".join(json.loads(line)["log"] for line in log.read_text().splitlines())


def run(rt: Any, b: Path, name: str = "c") -> tuple[int, str]:
    log = b.parent / f"{name}.log"
    rt.run(name, b, log_path=str(log))
    result = rt.wait(name, timeout=30)
    rt.delete(name)
    return result["exit_code"], output_of(log)


@pytest.mark.skipif(not shutil.which("runc"), reason="needs runc, to write its default spec")
def test_a_runc_spec_bundle_runs_as_it_is(tmp_path: Path, busybox_rootfs: Path) -> None:
    """runc's spec: deny-all device rules, ambient capabilities that are not inheritable, a
    read-only root, no network namespace."""
    b = tmp_path / "b"
    b.mkdir()
    subprocess.run(["runc", "spec"], cwd=b, check=True)
    (b / "rootfs").symlink_to(busybox_rootfs)
    spec = json.loads((b / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["sh", "-c", "echo ok; echo x > /dev/null && cat /dev/null"]
    (b / "config.json").write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "--root", str(tmp_path / "state"), "run", "r1"],
        cwd=b,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")


def test_root_propagation_shared(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", "grep ' / / ' /proc/self/mountinfo"],
        lower=busybox_rootfs,
        linux__rootfsPropagation="shared",
    )
    code, out = run(rt, b)
    assert code == 0
    assert " shared:" in out


def test_cgroups_path_absolute_and_relative(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    parent = current_cgroup_parent()
    cases = {
        f"/{parent}/named": f"/sys/fs/cgroup/pids/{parent}/named",  # from the hierarchy's root
        "rel/deeper/named": f"/sys/fs/cgroup/pids/{parent}/rel/deeper/named",  # below ours
    }
    for i, (path, directory) in enumerate(cases.items()):
        b = bundle(
            tmp_path / f"b{i}",
            ["sh", "-c", "cat /proc/self/cgroup | grep :pids:; sleep 30"],
            lower=busybox_rootfs,
            linux__cgroupsPath=path,
            linux__namespaces=[{"type": t} for t in ("pid", "mount", "uts", "ipc", "network")],
            linux__resources={"pids": {"limit": 42}},
        )
        log = tmp_path / f"{i}.log"
        rt.run(f"c{i}", b, log_path=str(log))
        assert Path(directory, "pids.max").read_text() == "42\n"
        deadline = time.monotonic() + 10
        while not (log.exists() and log.read_text()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        rt.pause(f"c{i}")  # found where the config put it
        rt.resume(f"c{i}")
        rt.delete(f"c{i}", force=True)
        assert output_of(log).strip().endswith(directory.removeprefix("/sys/fs/cgroup/pids"))
        assert not Path(directory).exists()
    assert not Path(f"/sys/fs/cgroup/pids/{parent}/rel").exists()  # made for it, removed


def test_namespaces_inherited_and_joined_by_path(
    rt: Any, tmp_path: Path, busybox_rootfs: Path
) -> None:
    first = bundle(tmp_path / "first", ["sleep", "30"], lower=busybox_rootfs)
    host_pid = rt.run("first", first).pid
    # no mount namespace: the host's (root.path by chroot); the first one's PID namespace
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", "echo $$; ls /; sleep 30"],
        rootfs=busybox_rootfs,
        mounts=[],
        linux__maskedPaths=[],
        linux__readonlyPaths=[],
        linux__namespaces=[{"type": "pid", "path": f"/proc/{host_pid}/ns/pid"}, {"type": "uts"}],
    )
    log = tmp_path / "b.log"
    pid = rt.run("joined", b, log_path=str(log)).pid
    for ns in ("mnt", "net"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}")
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{host_pid}/ns/pid")
    assert os.readlink(f"/proc/{pid}/root") == str(busybox_rootfs)
    time.sleep(0.2)
    lines = output_of(log).split()
    assert lines[0] != "1"  # not the first process of the PID namespace it joined
    assert "bin" in lines and "etc" in lines
    rt.delete("joined", force=True)
    rt.delete("first", force=True)


def test_a_namespace_path_of_another_type_is_refused(
    rt: Any, tmp_path: Path, busybox_rootfs: Path, state_root: Path
) -> None:
    for kind, wrong in (("user", "uts"), ("network", "ipc")):
        namespaces = [{"type": t} for t in ("pid", "mount", "uts", "ipc")]
        namespaces.append({"type": kind, "path": f"/proc/self/ns/{wrong}"})
        b = bundle(tmp_path / kind, ["true"], lower=busybox_rootfs, linux__namespaces=namespaces)
        with pytest.raises(SetupError, match=f"/proc/self/ns/{wrong} is not a {kind} namespace"):
            rt.run(kind, b)
        assert not (state_root / "runtime" / kind).exists()


def test_create_and_start_in_a_user_namespace(
    rt: Any, tmp_path: Path, busybox_rootfs: Path
) -> None:
    """The init, root of its namespace only, cannot open host root's exec.fifo: it is
    opened for it."""
    mapping = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", "id -u"],
        lower=busybox_rootfs,
        linux__namespaces=[{"type": t} for t in ("pid", "ipc", "uts", "mount", "network", "user")],
        linux__uidMappings=mapping,
        linux__gidMappings=mapping,
    )
    log = tmp_path / "log"
    rt.create("u", b, log_path=str(log))
    assert rt.state("u").status == "created"
    rt.start("u")
    assert rt.wait("u", timeout=30)["exit_code"] == 0
    rt.delete("u")
    assert output_of(log) == "0\n"


def _hook(out: Path, kind: str, extra: str = "") -> dict[str, Any]:
    """A hook that appends its kind and the state it read to ``out``."""
    script = f'printf "%s %s\\n" {kind} "$(cat)" >> {out}{extra}'
    return {"path": "/bin/sh", "args": ["sh", "-c", script]}


def test_hooks_run_in_order_with_the_state(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    out, namespace = tmp_path / "hooks.out", tmp_path / "namespace"
    container_file = "/tmp/start-hook"  # startContainer runs in the container, after pivot
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", f"cat {container_file}"],
        lower=busybox_rootfs,
        annotations={"who": "hooked"},
        hooks={
            "prestart": [_hook(out, "prestart")],
            "createRuntime": [_hook(out, "createRuntime")],
            "createContainer": [
                _hook(out, "createContainer", f"; readlink /proc/self/ns/mnt > {namespace}")
            ],
            "startContainer": [
                {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {container_file}"]}
            ],
            "poststart": [_hook(out, "poststart")],
            "poststop": [_hook(out, "poststop")],
        },
    )
    log = tmp_path / "log"
    created = rt.create("h", b, log_path=str(log))
    rt.start("h")
    assert rt.wait("h", timeout=30)["exit_code"] == 0
    rt.delete("h")
    lines = [line.split(" ", 1) for line in out.read_text().splitlines()]
    assert [kind for kind, _ in lines] == [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ]
    states = {kind: json.loads(state) for kind, state in lines}
    for kind, state in states.items():
        assert state["id"] == "h" and state["bundle"] == str(b), kind
        assert state["annotations"]["who"] == "hooked"
    assert states["prestart"]["status"] == "created"
    assert states["prestart"]["pid"] == created.pid
    assert states["poststart"]["status"] == "running"
    assert states["poststop"]["status"] == "stopped" and "pid" not in states["poststop"]
    # createContainer ran in the container's mount namespace; startContainer in its root
    assert namespace.read_text().strip() != os.readlink("/proc/self/ns/mnt")
    start_state = json.loads(output_of(log))
    assert (start_state["id"], start_state["status"]) == ("h", "created")


def test_a_failing_prestart_hook_stops_the_create(
    rt: Any, tmp_path: Path, busybox_rootfs: Path, state_root: Path
) -> None:
    out = tmp_path / "hooks.out"
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", "touch /ran"],
        lower=busybox_rootfs,
        hooks={
            "prestart": [{"path": "/bin/false"}],
            "poststop": [_hook(out, "poststop")],
        },
    )
    with pytest.raises(Error, match=r"prestart hook 0 \(/bin/false\) failed with status 1"):
        rt.create("f", b)
    assert not (state_root / "runtime" / "f").exists()  # the state_root check: no cgroup either
    assert out.read_text().startswith("poststop ")  # the lifecycle goes on to poststop


def test_a_hook_that_outlives_its_timeout_fails(
    rt: Any, tmp_path: Path, busybox_rootfs: Path
) -> None:
    b = bundle(
        tmp_path / "b",
        ["true"],
        lower=busybox_rootfs,
        hooks={"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}]},
    )
    started = time.monotonic()
    with pytest.raises(Error, match=r"createRuntime hook 0 \(/bin/sleep\) timed out after 1 s"):
        rt.run("t", b)
    assert time.monotonic() - started < 4


def test_a_failing_poststart_hook_is_a_warning(
    rt: Any, tmp_path: Path, busybox_rootfs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    b = bundle(
        tmp_path / "b",
        ["true"],
        lower=busybox_rootfs,
        hooks={"poststart": [{"path": "/bin/false"}]},
    )
    code, _ = run(rt, b)
    assert code == 0
    assert "warning: poststart hook 0 (/bin/false) failed with status 1" in capsys.readouterr().err


@pytest.mark.slow
def test_oci_conformance_programs(tmp_path: Path) -> None:
    """A few programs of the OCI validation suite, when it is installed beside the project
    (scripts/oci-conformance runs them all)."""
    suite = REPO.parent / "shared" / "oci-conformance"
    built = Path("/tmp/runtime-tools/validation/hooks_stdin/hooks_stdin.t")
    if not (suite / "run.sh").exists() or not built.exists():
        pytest.skip("the OCI validation suite is not set up here (../shared/oci-conformance)")
    programs = [
        "default",
        "linux_seccomp",
        "hooks_stdin",  # (not poststart: it races the program's output with the hook's)
        "prestart_fail",
        "linux_rootfs_propagation",
        "linux_ns_itype",
        "linux_ns_path_type",
        "linux_cgroups_relative_cpus",
        "linux_uid_mappings",
    ]
    done = subprocess.run(
        [str(REPO / "scripts" / "oci-conformance"), *programs],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, LOG_DIR=str(tmp_path / "logs")),
    )
    assert f"{len(programs)} passed, 0 failed" in done.stdout, done.stdout + done.stderr
