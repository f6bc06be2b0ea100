"""The OCI lifecycle against the real kernel: create, start, state, kill, delete, run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import AlreadyExists, NotFound, StateError
from tests.busybox import bundle
from tests.conftest import current_cgroup_parent

pytestmark = pytest.mark.root


def log_text(path: Path) -> str:
    return "".join(json.loads(line)["log"] for line in path.read_text().splitlines())


def run(
    rt: Any, tmp_path: Path, rootfs: Path, args: list[str], **changes: Any
) -> tuple[dict[str, Any], str]:
    b = bundle(tmp_path / "bundle", args, lower=rootfs, **changes)
    log = tmp_path / "out.log"
    rt.run("c1", b, log_path=str(log))
    result = rt.wait("c1", timeout=30)
    rt.delete("c1")
    return result, log_text(log) if log.exists() else ""


def test_create_start_state_delete(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    b = bundle(tmp_path / "b", ["sh", "-c", "echo started; sleep 30"], lower=busybox_rootfs)
    state = rt.create("web", b, log_path=str(tmp_path / "log"))
    assert state.status == "created"
    oci = state.oci()
    assert oci["id"] == "web" and oci["bundle"] == str(b) and oci["pid"] > 0
    assert oci["ociVersion"]
    # the init waits: the user's program has not run yet
    time.sleep(0.1)
    assert not (tmp_path / "log").exists() or "started" not in log_text(tmp_path / "log")
    with pytest.raises(StateError, match="web is created: cannot pause it"):
        rt.pause("web")
    rt.start("web")
    assert rt.state("web").status == "running"
    with pytest.raises(StateError, match="running: cannot start"):
        rt.start("web")
    with pytest.raises(StateError, match="running: cannot delete"):
        rt.delete("web")
    rt.kill("web", signal.SIGKILL)
    result = rt.wait("web", timeout=10)
    assert result["exit_code"] == 137 and result["signal"] == 9
    state = rt.state("web")
    assert state.status == "stopped"
    assert "pid" not in state.oci()
    with pytest.raises(StateError, match="stopped: cannot kill"):
        rt.kill("web")
    rt.delete("web")
    with pytest.raises(NotFound):
        rt.state("web")


def test_id_taken_and_invalid(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    b = bundle(tmp_path / "b", ["sleep", "30"], lower=busybox_rootfs)
    rt.create("dup", b)
    with pytest.raises(AlreadyExists):
        rt.create("dup", b)
    from runtime.errors import Error

    with pytest.raises(Error, match="invalid container id"):
        rt.create("../escape", b)
    rt.delete("dup")  # a created container may be deleted: its waiting init is killed


def test_exit_codes(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    result, _ = run(rt, tmp_path, busybox_rootfs, ["sh", "-c", "exit 42"])
    assert result["exit_code"] == 42 and result["signal"] is None and not result["oom_killed"]
    # PID 1 ignores signals it has no handler for, even from itself; a child does not
    result, _ = run(rt, tmp_path, busybox_rootfs, ["sh", "-c", "kill -TERM $$; sleep 0.2"])
    assert result["exit_code"] == 0 and result["signal"] is None
    result, out = run(rt, tmp_path, busybox_rootfs, ["sh", "-c", "sh -c 'kill -KILL $$'; echo $?"])
    assert result["exit_code"] == 0 and "137" in out.split()  # beside the shell's "Killed"


def test_pid1_and_isolation(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    script = "echo pid=$$; ls /proc | grep -c '^[0-9]'; hostname; cat /proc/self/mountinfo | wc -l; ls /work 2>&1; ip link 2>/dev/null | grep -c mtu"
    result, out = run(rt, tmp_path, busybox_rootfs, ["sh", "-c", script], hostname="isolated")
    assert result["exit_code"] == 0
    lines = out.split("\n")
    assert lines[0] == "pid=1"
    assert int(lines[1]) <= 3  # sh, ls (and grep): no host process is visible
    assert lines[2] == "isolated"
    assert int(lines[3]) < 40  # our own mount table, not the host's
    assert "No such file" in lines[4]
    assert lines[5] == "1"  # a fresh network namespace: only lo


def test_writes_land_in_upper_layer(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    before = sorted(os.listdir(busybox_rootfs / "etc"))
    result, out = run(
        rt,
        tmp_path,
        busybox_rootfs,
        ["sh", "-c", "echo data > /etc/newfile && rm /etc/group && cat /etc/newfile"],
    )
    assert result["exit_code"] == 0 and out == "data\n"
    upper = tmp_path / "bundle" / "upper"
    assert (upper / "etc" / "newfile").read_text() == "data\n"
    assert (upper / "etc" / "group").is_char_device()  # overlay's whiteout for the deletion
    assert sorted(os.listdir(busybox_rootfs / "etc")) == before
    assert (busybox_rootfs / "etc" / "group").is_file()


def test_no_host_file_descriptor_reaches_the_container(
    rt: Any, tmp_path: Path, busybox_rootfs: Path
) -> None:
    leaked = os.open("/etc/hostname", os.O_RDONLY)
    os.set_inheritable(leaked, True)
    try:
        result, out = run(rt, tmp_path, busybox_rootfs, ["sh", "-c", "ls /proc/self/fd"])
    finally:
        os.close(leaked)
    assert result["exit_code"] == 0
    assert sorted(int(x) for x in out.split()) == [0, 1, 2, 3]  # 3 is ls's own directory


def test_stop_grace_period_then_sigkill(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    script = "trap 'echo got TERM' TERM; echo ready; while true; do sleep 0.1; done"
    b = bundle(tmp_path / "b", ["sh", "-c", script], lower=busybox_rootfs)
    log = tmp_path / "log"
    rt.run("stubborn", b, log_path=str(log))
    deadline = time.monotonic() + 5
    while "ready" not in (log_text(log) if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    result = rt.stop("stubborn", timeout=1.0)
    elapsed = time.monotonic() - started
    assert result["exit_code"] == 137
    assert 0.9 < elapsed < 5
    assert "got TERM" in log_text(log)
    rt.delete("stubborn")


def test_stop_honours_stop_signal(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    script = "trap 'exit 7' USR1; while true; do sleep 0.05; done"
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", script],
        lower=busybox_rootfs,
        annotations={"org.opencontainers.image.stopSignal": "SIGUSR1"},
    )
    rt.run("polite", b)
    time.sleep(0.2)
    result = rt.stop("polite", timeout=5)
    assert result["exit_code"] == 7
    rt.delete("polite")


def test_delete_force_running(
    rt: Any, tmp_path: Path, busybox_rootfs: Path, state_root: Path
) -> None:
    b = bundle(tmp_path / "b", ["sleep", "60"], lower=busybox_rootfs)
    state = rt.run("doomed", b)
    pid = state.pid
    rt.delete("doomed", force=True)
    assert (
        not os.path.exists(f"/proc/{pid}")
        or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )
    assert not (state_root / "runtime" / "doomed").exists()


def test_container_outlives_its_creator(
    state_root: Path, tmp_path: Path, busybox_rootfs: Path
) -> None:
    b = bundle(tmp_path / "b", ["sh", "-c", "sleep 0.5; exit 5"], lower=busybox_rootfs)
    root = state_root / "runtime"
    cli = [sys.executable, "-m", "runtime", "--root", str(root)]
    subprocess.run(
        [*cli, "run", "-d", "--log-path", str(tmp_path / "log"), "-b", str(b), "long"], check=True
    )
    # the creating process has exited; the container runs on under its monitor
    state = json.loads(
        subprocess.run([*cli, "state", "long"], capture_output=True, check=True).stdout
    )
    assert state["status"] == "running"
    from runtime.api import Runtime

    rt = Runtime(root)
    assert rt.wait("long", timeout=10)["exit_code"] == 5
    state = json.loads(
        subprocess.run([*cli, "state", "long"], capture_output=True, check=True).stdout
    )
    assert state["status"] == "stopped"
    subprocess.run([*cli, "delete", "long"], check=True)


def test_cli_create_start_kill_delete(
    state_root: Path, tmp_path: Path, busybox_rootfs: Path
) -> None:
    b = bundle(tmp_path / "b", ["sleep", "30"], lower=busybox_rootfs)
    cli = [sys.executable, "-m", "runtime", "--root", str(state_root / "runtime")]
    pid_file = tmp_path / "pid"
    subprocess.run(
        [
            *cli,
            "create",
            "--bundle",
            str(b),
            "--pid-file",
            str(pid_file),
            "--log-path",
            str(tmp_path / "l"),
            "c",
        ],
        check=True,
    )
    state = json.loads(subprocess.run([*cli, "state", "c"], capture_output=True, check=True).stdout)
    assert state["status"] == "created" and state["pid"] == int(pid_file.read_text())
    subprocess.run([*cli, "start", "c"], check=True)
    bad = subprocess.run([*cli, "start", "c"], capture_output=True, text=True)
    assert (
        bad.returncode == 1
        and bad.stderr.strip() == "runtime: container c is running: cannot start it"
    )
    subprocess.run([*cli, "kill", "c", "KILL"], check=True)
    deadline = time.monotonic() + 5
    while (
        json.loads(subprocess.run([*cli, "state", "c"], capture_output=True).stdout)["status"]
        != "stopped"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    subprocess.run([*cli, "delete", "c"], check=True)
    gone = subprocess.run([*cli, "state", "c"], capture_output=True, text=True)
    assert gone.returncode == 1 and "does not exist" in gone.stderr


def test_cli_run_foreground_passes_stdio_and_exit_code(
    state_root: Path, tmp_path: Path, busybox_rootfs: Path
) -> None:
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"],
        lower=busybox_rootfs,
    )
    cli = [sys.executable, "-m", "runtime", "--root", str(state_root / "runtime")]
    done = subprocess.run([*cli, "run", "-b", str(b), "fg"], capture_output=True, text=True)
    assert done.returncode == 3
    assert done.stdout == "to-stdout\n" and done.stderr == "to-stderr\n"


def test_reused_pid_is_not_the_container(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    b = bundle(tmp_path / "b", ["sleep", "30"], lower=busybox_rootfs)
    state = rt.run("reuse", b)
    record = dict(state.record)
    rt.kill("reuse", signal.SIGKILL)
    rt.wait("reuse")
    # Forge a state whose pid now belongs to another live process (ourselves), with the old
    # start time: the kernel's start time unmasks it.
    from runtime.state import write_json_atomic

    directory = state.directory
    (directory / "exit.json").unlink()
    record["pid"] = os.getpid()
    write_json_atomic(directory / "state.json", record)
    assert rt.state("reuse").status == "stopped"
    # a kill must never reach the impostor
    with pytest.raises(StateError):
        rt.kill("reuse", signal.SIGKILL)
    rt.delete("reuse")


@pytest.mark.cgroup_v1
def test_a_killed_monitor_leaves_a_stopped_container_that_delete_cleans(
    rt: Any, tmp_path: Path, busybox_rootfs: Path, state_root: Path
) -> None:
    """The monitor is killed with its container (as a crash would): the kernel, not a stale
    record, says the container has stopped, and delete still removes its cgroup and state."""
    b = bundle(tmp_path / "b", ["sleep", "30"], lower=busybox_rootfs)
    state = rt.run("orphan", b)
    os.kill(int(state.record["monitor_pid"]), signal.SIGKILL)
    os.kill(state.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while rt.state("orphan").status != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert rt.state("orphan").exit is None  # nobody was left to record it
    cgroup = Path("/sys/fs/cgroup/pids") / current_cgroup_parent() / "orphan"
    assert cgroup.is_dir()
    rt.delete("orphan")
    assert not cgroup.exists()
    assert not (state_root / "runtime" / "orphan").exists()


def test_pause_and_resume(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", "while true; do echo tick; sleep 0.05; done"],
        lower=busybox_rootfs,
    )
    log = tmp_path / "log"
    rt.run("frozen", b, log_path=str(log))
    time.sleep(0.2)
    rt.pause("frozen")
    assert rt.state("frozen").status == "paused"
    with pytest.raises(StateError, match="paused: cannot pause"):
        rt.pause("frozen")
    size = log.stat().st_size
    time.sleep(0.3)
    assert log.stat().st_size == size  # nothing runs while frozen
    rt.resume("frozen")
    assert rt.state("frozen").status == "running"
    deadline = time.monotonic() + 5
    while log.stat().st_size == size:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    rt.pause("frozen")
    rt.delete("frozen", force=True)  # a paused container can be force-deleted


@pytest.mark.parametrize("fork_server", [False, True], ids=["direct", "fork-server"])
def test_stdin_fed_by_a_client(
    state_root: Path, tmp_path: Path, busybox_rootfs: Path, fork_server: bool
) -> None:
    """A large input through a container that echoes it: the monitor never blocks on the
    container's stdin while its stdout waits to be read (no deadlock past a pipe's size)."""
    from runtime.api import Runtime

    rt = Runtime(state_root / "runtime", fork_server=fork_server)
    b = bundle(tmp_path / "b", ["sh", "-c", "wc -c; echo done"], lower=busybox_rootfs)
    log = tmp_path / "log"
    rt.create("fed", b, log_path=str(log), stdin=True)
    feeder = rt.feed_stdin("fed")
    rt.start("fed")
    feeder.sendall(b"x" * (3 << 20))  # 3 MiB, far more than a pipe holds
    feeder.shutdown(socket.SHUT_WR)
    assert rt.wait("fed", timeout=30)["exit_code"] == 0
    feeder.close()
    rt.delete("fed")
    assert log_text(log).split() == [str(3 << 20), "done"]


def test_the_exit_of_a_removed_container_is_not_lost(
    rt: Any, tmp_path: Path, busybox_rootfs: Path, state_root: Path
) -> None:
    """A container launched with ``cleanup_paths`` (``--rm``) is removed by its monitor when
    it ends; with nobody watching, its exit record is still there to be asked for."""
    b = bundle(tmp_path / "b", ["sh", "-c", "exit 5"], lower=busybox_rootfs)
    extra = tmp_path / "extra"
    extra.mkdir()
    rt.run("gone", b, cleanup_paths=(str(extra),))
    deadline = time.monotonic() + 10
    while (state_root / "runtime" / "gone").exists() or extra.exists():
        assert time.monotonic() < deadline, "the monitor did not remove the container"
        time.sleep(0.02)
    assert rt.wait("gone")["exit_code"] == 5
    assert rt.exited("gone")["exit_code"] == 5
    # a new container of the same id starts afresh
    rt.run("gone", bundle(tmp_path / "c", ["sleep", "30"], lower=busybox_rootfs))
    assert rt.exited("gone") is None
    assert rt.wait("gone", timeout=0.1) is None
    rt.delete("gone", force=True)


def test_a_removed_container_is_gone_when_its_exit_is_heard(
    rt: Any, tmp_path: Path, busybox_rootfs: Path, state_root: Path
) -> None:
    """``--rm``: the monitor takes the container's paths out of sight before it tells its
    waiters the exit, so that they need not wait for the slower rest (mounts, cgroup)."""
    b = bundle(tmp_path / "b", ["true"], lower=busybox_rootfs)
    extra = tmp_path / "extra"
    extra.mkdir()
    created = rt.create("rm", b, cleanup_paths=(str(extra),))
    waiter = rt.connect_waiter("rm")
    rt.start("rm")
    received = b""
    while chunk := waiter.recv(4096):
        received += chunk
    waiter.close()
    assert json.loads(received)["exit_code"] == 0
    assert not extra.exists() and not (state_root / "runtime" / "rm").exists()
    assert [s.id for s in rt.list()] == []
    rt.wait_monitor_gone(created)  # (the rest, for the leak check)
