"""``orchestrator attach``: a running container's output (stdout and stderr apart, or its
terminal), its stdin for one made with -i, its exit status; signals proxied; the detach keys
leave it running."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import REPO, Orc

pytestmark = pytest.mark.root


def _attach(
    state_root: Path, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "attach", *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        env=dict(os.environ, ORCHESTRATOR_ROOT=str(state_root)),
        cwd=REPO,
        timeout=60,
    )


def _state(orc: Orc, name: str) -> str:
    rows = json.loads(orc("ps", "-a", "--format", "json").stdout)
    return str(next(r["state"] for r in rows if r["name"] == name))


def test_output_and_exit_status(orc: Orc, state_root: Path) -> None:
    orc(
        "run",
        "-d",
        "--name",
        "plain",
        "busybox",
        "sh",
        "-c",
        "echo before; sleep 1; echo out; echo err >&2; exit 4",
    )
    time.sleep(0.3)
    done = _attach(state_root, "plain")
    assert done.returncode == 4
    assert done.stdout == b"out\n" and done.stderr == b"err\n"  # from now on, streams apart


def test_input_for_a_container_made_with_i(orc: Orc, state_root: Path) -> None:
    orc("run", "-d", "-i", "--name", "reader", "busybox", "sh", "-c", "read x; echo got $x")
    done = _attach(state_root, "reader", stdin=b"hello\n")
    assert done.returncode == 0 and done.stdout == b"got hello\n"


def test_a_terminal_container(orc: Orc, state_root: Path) -> None:
    orc("run", "-d", "-t", "--name", "tty", "busybox", "sh", "-c", "sleep 1; echo on-tty; exit 3")
    done = _attach(state_root, "tty")
    assert done.returncode == 3 and b"on-tty\r\n" in done.stdout


def test_signals_are_proxied_unless_told_not_to(orc: Orc, state_root: Path) -> None:
    script = 'trap "echo trapped; exit 7" TERM; while true; do sleep 0.1; done'
    orc("run", "-d", "--name", "trap", "busybox", "sh", "-c", script)
    env = dict(os.environ, ORCHESTRATOR_ROOT=str(state_root))
    command = [sys.executable, "-m", "orchestrator", "attach"]
    with subprocess.Popen(
        [*command, "trap"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env, cwd=REPO
    ) as p:
        time.sleep(1.5)
        p.send_signal(signal.SIGTERM)
        assert p.wait(15) == 7
        assert p.stdout is not None and p.stdout.read() == b"trapped\n"
    orc("run", "-d", "--name", "kept", "busybox", "sh", "-c", script)
    with subprocess.Popen(
        [*command, "--sig-proxy=false", "kept"], stdin=subprocess.DEVNULL, env=env, cwd=REPO
    ) as p:
        time.sleep(1.5)
        p.send_signal(signal.SIGINT)  # Ctrl-C: we leave, it stays
        assert p.wait(15) == 0
    assert _state(orc, "kept") == "running"


def test_detach_keys_leave_it_running(orc: Orc, state_root: Path) -> None:
    orc("run", "-d", "-i", "-t", "--name", "shell", "busybox", "sh")
    output, status = _attach_on_terminal(state_root, ["shell"], b"mark-42", b"\x10\x11")
    assert b"mark-42" in output and status == 0  # Ctrl-P Ctrl-Q
    assert _state(orc, "shell") == "running"
    output, status = _attach_on_terminal(
        state_root, ["--detach-keys", "ctrl-x,y", "shell"], b"mark-42", b"\x18y"
    )
    assert b"mark-42" in output and status == 0
    assert _state(orc, "shell") == "running"


def _attach_on_terminal(
    state_root: Path, args: list[str], marker: bytes, keys: bytes
) -> tuple[bytes, int]:
    """Attach from a terminal, type a command whose output shows ``marker``, then ``keys``."""
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["ORCHESTRATOR_ROOT"] = str(state_root)
        os.chdir(REPO)
        os.execv(sys.executable, [sys.executable, "-m", "orchestrator", "attach", *args])
    output = b""
    try:
        time.sleep(1.5)
        os.write(fd, b"echo mark-$((40+2))\r")
        output += _read_until(fd, marker)
        os.write(fd, keys)
        output += _read_until(fd, b"")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return output, os.waitstatus_to_exitcode(status)


def _read_until(fd: int, marker: bytes, timeout: float = 10) -> bytes:
    """Read from ``fd`` until ``marker`` shows (or, for b"", until its end)."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return data
        if not chunk:
            return data
        data += chunk
        if marker and marker in data:
            return data
    raise AssertionError(f"no {marker!r} within {timeout}s: {data!r}")


def test_refusals(orc: Orc, state_root: Path) -> None:
    orc("create", "--name", "made", "busybox", "true")
    done = _attach(state_root, "made")
    assert done.returncode == 1 and b"not running: start it first" in done.stderr
    orc("run", "-d", "--name", "frozen", "busybox", "sleep", "300")
    orc("pause", "frozen")
    done = _attach(state_root, "frozen")
    assert done.returncode == 1 and b"paused: unpause it first" in done.stderr
    orc("unpause", "frozen")
    done = _attach(state_root, "--detach-keys", "ctrl-pp", "frozen")
    assert done.returncode == 1 and b"--detach-keys" in done.stderr
