"""exec: another process in a running container, in its namespaces, cgroup and user."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import Error, StateError
from tests.busybox import bundle

pytestmark = pytest.mark.root


def _running(rt: Any, tmp_path: Path, rootfs: Path, **changes: Any) -> str:
    b = bundle(
        tmp_path / "b",
        ["sh", "-c", "echo from-the-container > /tmp/mark; exec sleep 30"],
        lower=rootfs,
        hostname="boxy",
        **changes,
    )
    rt.run("c", b)
    deadline = time.monotonic() + 5
    null = os.open(os.devnull, os.O_RDWR)
    try:
        while rt.exec("c", ["test", "-e", "/tmp/mark"], stdio=(null, null, null)) != 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        os.close(null)
    return "c"


def _exec(rt: Any, tmp_path: Path, args: list[str], **options: Any) -> tuple[int, str]:
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        status = rt.exec("c", args, stdio=(null, fd, fd), **options)
    finally:
        os.close(fd)
        os.close(null)
    return status, out.read_text()


def test_exec_joins_the_container(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    _running(rt, tmp_path, busybox_rootfs)
    script = (
        "hostname; cat /tmp/mark; ps -o pid,comm | grep -c sleep; echo $$; "
        "grep CapEff /proc/self/status; cat /proc/self/cgroup | grep pids; "
        "ls /proc | grep -c '^[0-9]'; exit 7"
    )
    status, out = _exec(rt, tmp_path, ["sh", "-c", script])
    lines = out.split("\n")
    assert status == 7  # the command's own exit status
    assert lines[0] == "boxy"  # its uts namespace
    assert lines[1] == "from-the-container"  # its mount namespace and root
    assert lines[2] == "1"  # the container's processes, not the host's
    assert int(lines[3]) > 1  # in its PID namespace (its init is 1)
    assert lines[4].split()[1] == "00000000a80425fb"  # the container's capabilities
    assert lines[5] == "8:pids:/" or lines[5].endswith(":/")  # its cgroup (namespace root)
    assert int(lines[6]) < 10  # no host pid visible


def test_exec_user_env_and_workdir(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    _running(rt, tmp_path, busybox_rootfs, process__user={"uid": 1000, "gid": 1000})
    status, out = _exec(rt, tmp_path, ["sh", "-c", "id -u; echo $FOO; pwd"], env=("FOO=bar",))
    assert (status, out.split("\n")[:3]) == (0, ["1000", "bar", "/"])  # the container's user
    status, out = _exec(rt, tmp_path, ["id"], user="nobody", cwd="/tmp")
    assert status == 0 and out.startswith("uid=65534(nobody)")
    status, out = _exec(rt, tmp_path, ["pwd"], cwd="/tmp")
    assert out.strip() == "/tmp"


def test_exec_errors(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    _running(rt, tmp_path, busybox_rootfs)
    with pytest.raises(Error, match="executable file not found"):
        rt.exec("c", ["no-such-program"])
    with pytest.raises(Error, match="no such directory"):
        rt.exec("c", ["true"], cwd="/nowhere")
    with pytest.raises(Error, match="no-such-user"):
        rt.exec("c", ["true"], user="no-such-user")
    status, _ = _exec(rt, tmp_path, ["sh", "-c", "kill -9 $$"])
    assert status == 137  # killed by a signal: 128 + signal, as a shell says
    rt.kill("c", 9)
    rt.wait("c")
    with pytest.raises(StateError, match="is stopped: cannot exec in it"):
        rt.exec("c", ["true"])


def test_exec_with_a_terminal(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    _running(rt, tmp_path, busybox_rootfs, process__user={"uid": 1000, "gid": 1000})
    script = "tty; test -t 0 && echo stdin-is-tty; stty size; id -u; exit 5"
    status, out = _exec(rt, tmp_path, ["sh", "-c", script], tty=True, window=(33, 99))
    assert status == 5
    lines = out.replace("\r", "").split("\n")
    assert lines[0].startswith("/dev/pts/")  # the container's own devpts
    assert lines[1:4] == ["stdin-is-tty", "33 99", "1000"]


def test_exec_from_a_multi_threaded_process(rt: Any, tmp_path: Path, busybox_rootfs: Path) -> None:
    """The caller never forks (a fresh child of the fork server does the work): exec is safe
    from a process with threads, from several threads at once."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    name = _running(rt, tmp_path, busybox_rootfs)
    stop = threading.Event()
    busy = [threading.Thread(target=stop.wait) for _ in range(4)]
    for thread in busy:
        thread.start()
    null = os.open(os.devnull, os.O_RDWR)
    try:
        assert threading.active_count() >= 5
        with ThreadPoolExecutor(4) as pool:
            codes = list(
                pool.map(
                    lambda n: rt.exec(name, ["sh", "-c", f"exit {n}"], stdio=(null, null, null)),
                    range(8),
                )
            )
        assert codes == list(range(8))
    finally:
        stop.set()
        for thread in busy:
            thread.join()
        os.close(null)


def test_a_socket_made_in_the_containers_network_namespace(
    rt: Any, tmp_path: Path, busybox_rootfs: Path
) -> None:
    """An enter job makes a socket inside the container's network namespace: bound to its
    loopback (which is up, as in Docker), it is reached by a process in the container and by
    nothing on the host."""
    import socket
    import threading

    name = _running(rt, tmp_path, busybox_rootfs)
    listener = rt.open_socket(name, socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        received: list[bytes] = []

        def serve_one() -> None:
            conn, _ = listener.accept()
            with conn:
                received.append(conn.recv(100))  # then close: nc ends on our end of file

        server = threading.Thread(target=serve_one)
        server.start()
        null = os.open(os.devnull, os.O_RDWR)
        try:
            code = rt.exec(
                name, ["sh", "-c", f"echo hello | nc 127.0.0.1 {port}"], stdio=(null, null, null)
            )
        finally:
            os.close(null)
            server.join(10)
        assert code == 0
        assert received == [b"hello\n"]
        with socket.socket() as outside, pytest.raises(OSError):
            outside.settimeout(1)
            outside.connect(("127.0.0.1", port))  # the host's loopback is another one
    finally:
        listener.close()


def test_loopback_is_up_in_a_new_network_namespace(
    rt: Any, tmp_path: Path, busybox_rootfs: Path
) -> None:
    """A container with its own network namespace and no network gets a loopback that is up."""
    _running(rt, tmp_path, busybox_rootfs)
    status, out = _exec(rt, tmp_path, ["cat", "/sys/class/net/lo/flags"])
    assert status == 0
    assert int(out.strip(), 16) & 0x1  # IFF_UP
