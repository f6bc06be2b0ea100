"""process.terminal: a pty from the container's own devpts, held by the monitor or handed over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from runtime.api import Runtime
from tests.busybox import bundle

pytestmark = pytest.mark.root

SCRIPT = "tty; test -t 0 && echo stdin-is-tty; stty size; id -u; echo done"


@pytest.mark.parametrize("fork_server", [False, True], ids=["direct", "fork-server"])
def test_terminal_attach_and_log(
    state_root: Path, tmp_path: Path, busybox_rootfs: Path, fork_server: bool
) -> None:
    from tests.integration.runtime.conftest import PooledRuntime

    # through the fork server: served by a pre-made container (its init makes the terminal)
    root = state_root / "runtime"
    rt = PooledRuntime(root, fork_server=True) if fork_server else Runtime(root)
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", SCRIPT],
        lower=busybox_rootfs,
        process__terminal=True,
        process__user={"uid": 1000, "gid": 1000},
    )
    log = tmp_path / "log"
    rt.create("tty", b, log_path=str(log))
    sock = rt.attach("tty", 33, 99)
    rt.start("tty")
    output = b""
    while chunk := sock.recv(4096):
        output += chunk
    sock.close()
    assert rt.wait("tty", timeout=10)["exit_code"] == 0
    rt.delete("tty")
    lines = output.decode().split("\r\n")
    assert lines[:5] == ["/dev/pts/0", "stdin-is-tty", "33 99", "1000", "done"]
    logged = "".join(json.loads(line)["log"] for line in log.read_text().splitlines())
    assert logged.replace("\r", "") == "\n".join(lines[:5]) + "\n"


def test_terminal_input_reaches_the_container(
    rt: Any, tmp_path: Path, busybox_rootfs: Path
) -> None:
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", "read line; echo got:$line"],
        lower=busybox_rootfs,
        process__terminal=True,
    )
    rt.create("typed", b)
    sock = rt.attach("typed")
    rt.start("typed")
    sock.sendall(b"hello\r")
    output = b""
    while chunk := sock.recv(4096):
        output += chunk
    sock.close()
    assert b"got:hello" in output
    assert rt.wait("typed", timeout=10)["exit_code"] == 0
    rt.delete("typed")


def test_console_socket_receives_the_master(
    state_root: Path, tmp_path: Path, busybox_rootfs: Path
) -> None:
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", "echo via-console; tty"],
        lower=busybox_rootfs,
        process__terminal=True,
    )
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    received: list[bytes] = []

    def take_master() -> None:
        conn, _ = server.accept()
        _, fds, _, _ = socket.recv_fds(conn, 64, 1)
        conn.close()
        data = b""
        while True:
            try:
                chunk = os.read(fds[0], 4096)
            except OSError:
                break  # EIO once the container's side is gone
            if not chunk:
                break
            data += chunk
        os.close(fds[0])
        received.append(data)

    thread = threading.Thread(target=take_master)
    thread.start()
    cli = [sys.executable, "-m", "runtime", "--root", str(state_root / "runtime")]
    done = subprocess.run(
        [*cli, "run", "--console-socket", path, "-b", str(b), "console"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    thread.join(10)
    server.close()
    assert done.returncode == 0, done.stderr
    assert b"via-console" in received[0] and b"/dev/pts/0" in received[0]
