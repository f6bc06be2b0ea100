"""Container commands served by the warm copy of the CLI that the fork server keeps (its
zygote: runtime.zygote, runtime.warmcli, orchestrator.quick): the caller's arguments,
environment, working directory and stdio; its exit status; signals passed on; a caller killed
takes its command with it; a caller the zygote must not serve runs the command itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import REPO, Orc

pytestmark = pytest.mark.root


def _zygote_of(root: Path) -> int | None:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if comm == "orc-zygote" and str(root).encode() in cmdline:
            return int(entry)
    return None


@pytest.fixture
def warm(orc: Orc, state_root: Path) -> Orc:
    """The CLI, once the fork server of the state root keeps its warm copy."""
    orc("run", "--rm", "busybox", "true")  # (starts the fork server, which makes the zygote)
    deadline = time.monotonic() + 10
    while _zygote_of(state_root) is None:
        assert time.monotonic() < deadline, "no zygote"
        time.sleep(0.05)
    return orc


def _cli(
    state_root: Path, trace: Path, *args: str, cwd: Path = REPO, **env: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        env=dict(
            os.environ, ORCHESTRATOR_ROOT=str(state_root), ORCHESTRATOR_TRACE=str(trace), **env
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _workers(trace: Path) -> list[int]:
    if not trace.exists():
        return []
    return [
        int(line.split()[0]) for line in trace.read_text().splitlines() if "warm-worker" in line
    ]


def _wait_worker(trace: Path) -> int:
    deadline = time.monotonic() + 10
    while not _workers(trace):
        assert time.monotonic() < deadline, "no warm worker"
        time.sleep(0.02)
    return _workers(trace)[0]


def _end(proc: subprocess.Popen[str]) -> int:
    proc.communicate(timeout=10)  # (closes its pipes)
    return proc.returncode


def _state_becomes(pid: int, state: str, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == state:
            return True
        time.sleep(0.02)
    return False


def _gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.02)
    return False


def test_a_run_is_served_warm_as_the_caller(warm: Orc, state_root: Path, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    (tmp_path / "vars.env").write_text("A=from-file\n")
    proc = _cli(
        state_root,
        trace,
        *("run", "--rm", "--env-file", "vars.env", "-e", "ORC_FROM_CALLER", "busybox"),
        *("sh", "-c", 'echo "$A $ORC_FROM_CALLER"; echo to-stderr >&2; exit 3'),
        cwd=tmp_path,  # the env file is found from the caller's working directory
        ORC_FROM_CALLER="caller's value",
    )
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (3, "from-file caller's value\n", "to-stderr\n")
    (worker,) = _workers(trace)
    assert worker != proc.pid
    # the CLI's own errors and statuses are the same warm
    proc = _cli(state_root, trace, "run", "--rm", "--cpus", "x", "busybox", "true")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 125 and err.startswith("orchestrator: --cpus 'x'"), err
    assert len(_workers(trace)) == 2


def test_signals_are_passed_on_and_a_killed_caller_takes_its_command_along(
    warm: Orc, state_root: Path, tmp_path: Path
) -> None:
    warm("run", "-d", "--name", "talker", "busybox", "sh", "-c", "echo hi; sleep 1000")
    trace = tmp_path / "trace1"
    proc = _cli(state_root, trace, "logs", "-f", "talker")
    worker = _wait_worker(trace)
    assert proc.stdout is not None and proc.stdout.readline() == "hi\n"
    proc.send_signal(signal.SIGINT)
    assert _end(proc) == 130  # as the CLI itself answers ^C
    assert _gone(worker)

    trace = tmp_path / "trace2"
    proc = _cli(state_root, trace, "logs", "-f", "talker")
    worker = _wait_worker(trace)
    proc.send_signal(signal.SIGTSTP)  # ^Z: the worker stops with its caller, and goes on with it
    assert _state_becomes(worker, "T") and _state_becomes(proc.pid, "T")
    proc.send_signal(signal.SIGCONT)
    assert _state_becomes(worker, "S") and _state_becomes(proc.pid, "S")
    proc.send_signal(signal.SIGTERM)
    assert _end(proc) == -signal.SIGTERM  # the worker died of it, and so did we
    assert _gone(worker)

    trace = tmp_path / "trace3"
    proc = _cli(state_root, trace, "logs", "-f", "talker")
    worker = _wait_worker(trace)
    proc.kill()
    _end(proc)
    assert _gone(worker), "the worker outlived its caller"
    warm("rm", "-f", "talker")


def test_a_caller_in_another_mount_namespace_runs_the_command_itself(
    warm: Orc, state_root: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    done = subprocess.run(
        [
            "unshare",
            "-m",
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            "--rm",
            "busybox",
            "echo",
            "x",
        ],
        cwd=REPO,
        env=dict(os.environ, ORCHESTRATOR_ROOT=str(state_root), ORCHESTRATOR_TRACE=str(trace)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, "x\n"), done.stderr
    assert _workers(trace) == []
    # nor is a caller with fewer capabilities served by a worker with all of them
    done = subprocess.run(
        ["setpriv", "--bounding-set", "-sys_time", sys.executable, "-m", "orchestrator", "ps"],
        cwd=REPO,
        env=dict(os.environ, ORCHESTRATOR_ROOT=str(state_root), ORCHESTRATOR_TRACE=str(trace)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert _workers(trace) == []
    # and without the warm copy asked for
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "ps", "-a", "-q"],
        cwd=REPO,
        env=dict(
            os.environ,
            ORCHESTRATOR_ROOT=str(state_root),
            ORCHESTRATOR_TRACE=str(trace),
            ORCHESTRATOR_NO_WARM="1",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and _workers(trace) == []
