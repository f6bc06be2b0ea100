"""The fork server: a small, warm, single-threaded process that forks container monitors.

Forking a monitor from here rather than from the caller costs less time (a small process forks
and copies fewer pages) and much less memory (every monitor shares this process's pages, where
a monitor forked from a CLI keeps that CLI's whole image alive alone). It is also what lets a
multi-threaded caller, such as the trio supervisor, create containers: it never forks itself.

One server per runtime root, started on demand by ``ForkServerClient`` and gone after
``IDLE_TIMEOUT`` seconds without a request. Protocol, over ``<root>/forkserver.sock``: the client
sends one JSON line ``{"op": "launch", "id", "bundle", "config", "directory", "options"}``, with
its stdio as SCM_RIGHTS when the container is to inherit it; the monitor forked for it answers on
the same connection (``{"pid": N, "monitor_pid": M}`` or ``{"error": "..."}``) and closes it.
``{"op": "stop"}`` ends the server. Monitors do not depend on the server: they outlive it.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import json
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from runtime.channel import Channel
from runtime.errors import Error, SetupError
from runtime.linux import syscalls as sc
from runtime.monitor import Launched, LaunchOptions, finish_launch, fork_monitor, prepare_directory
from runtime.spec import ContainerConfig, parse_config

SOCKET_NAME = "forkserver.sock"
LOCK_NAME = "forkserver.lock"
IDLE_TIMEOUT = 30.0
MAX_REQUEST = 1024 * 1024


def _address(root: Path) -> tuple[int, str]:
    dirfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return dirfd, f"/proc/self/fd/{dirfd}/{SOCKET_NAME}"


# -- server ---------------------------------------------------------------------------------------


def serve(root: Path, idle_timeout: float = IDLE_TIMEOUT) -> None:
    root.mkdir(parents=True, exist_ok=True)
    lock = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another server has this root
    sc.set_process_name("orc-forkserver")
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, _reap_children)
    _preload()
    dirfd, address = _address(root)
    try:
        try:
            os.unlink(SOCKET_NAME, dir_fd=dirfd)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        listener.bind(address)
        listener.listen(64)
    finally:
        os.close(dirfd)
    gc.freeze()  # what is loaded now is shared by every monitor; keep collections off it
    inherited_by_no_one = (lock, listener.fileno())
    last = time.monotonic()
    try:
        while True:
            try:
                ready, _, _ = select.select([listener], [], [], 1.0)
            except InterruptedError:
                continue
            if not ready:
                if time.monotonic() - last > idle_timeout:
                    return
                continue
            conn, _ = listener.accept()
            last = time.monotonic()
            try:
                if not _handle(root, conn, inherited_by_no_one):
                    return
            except Exception as exc:  # a bad request must not take the server down
                try:
                    Channel(conn.fileno()).send(error=f"fork server: {exc}")
                except OSError:
                    pass
            finally:
                conn.close()
    finally:
        try:
            os.unlink(root / SOCKET_NAME)
        except FileNotFoundError:
            pass
        listener.close()


def _handle(root: Path, conn: socket.socket, server_fds: tuple[int, ...]) -> bool:
    data, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 3)
    while not data.endswith(b"\n"):
        more = conn.recv(MAX_REQUEST)
        if not more:
            break
        data += more
    try:
        request = json.loads(data)
        if request.get("op") == "stop":
            return False
        if request.get("op") == "ping":
            Channel(conn.fileno()).send(pong=os.getpid())
            return True
        options = LaunchOptions(**{**request["options"], "cleanup_paths": tuple(request["options"]["cleanup_paths"])})
        config = parse_config(request["config"], Path(request["bundle"]))
        stdio = (fds[0], fds[1], fds[2]) if len(fds) == 3 else None
        report = Channel(conn.fileno())
        # The monitor must not hold the server's lock or socket: they would outlive the server.
        fork_monitor(request["id"], config, Path(request["directory"]), options, report, stdio, server_fds)
    finally:
        for fd in fds:
            os.close(fd)
    return True


def _reap_children(signum: int, frame: Any) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _preload() -> None:
    """Import now what each monitor needs, once, so that forks share it."""
    from runtime.cgroups import detect_version

    if detect_version("/sys/fs/cgroup") == 2:
        import runtime.cgroups.v2  # noqa: F401
    else:
        import runtime.cgroups.v1  # noqa: F401
    import runtime.users  # noqa: F401

    _warm_up()


def _warm_up(rounds: int = 30) -> None:
    """Run the monitor's own code paths here first. CPython 3.11 specialises bytecode and fills
    caches on the first executions; done in the server, those writes land in pages every
    monitor shares, instead of in private copies in each monitor."""
    import selectors

    from runtime.channel import pipe_pair
    from runtime.logs import LogWriter

    for _ in range(rounds):
        reader, writer = pipe_pair()
        writer.send(pid=1, monitor_pid=2, record={"id": "warm", "annotations": {}, "created": "now"})
        reader.receive()
        json.dumps({"id": "warm", "pid": 1, "annotations": {}})
        selector = selectors.DefaultSelector()
        selector.register(reader.fd, selectors.EVENT_READ)
        selector.select(0)
        selector.unregister(reader.fd)
        selector.close()
        log = LogWriter(os.devnull)
        log.write("stdout", b"warm\n")
        log.close()
        reader.close()
        writer.close()
        signal.signal(signal.SIGQUIT, signal.getsignal(signal.SIGQUIT))


# -- client ---------------------------------------------------------------------------------------


class ForkServerClient:
    """Launch containers through the fork server of ``root``, starting it when needed."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def launch(
        self, container_id: str, config: ContainerConfig, directory: Path, options: LaunchOptions
    ) -> Launched:
        prepare_directory(container_id, directory, options)
        message: dict[str, Any] | None = None
        try:
            sock = self._connect()
            try:
                request = {
                    "op": "launch",
                    "id": container_id,
                    "bundle": str(config.bundle),
                    "config": config.raw,
                    "directory": str(directory),
                    "options": {**options.__dict__, "cleanup_paths": list(options.cleanup_paths)},
                }
                payload = json.dumps(request).encode() + b"\n"
                fds = [0, 1, 2] if options.inherit_stdio else []
                sent = socket.send_fds(sock, [payload], fds) if fds else sock.send(payload)
                if sent < len(payload):
                    sock.sendall(payload[sent:])
                message = Channel(sock.fileno()).receive()
            finally:
                sock.close()
        except BaseException:
            if message is None:
                import shutil

                shutil.rmtree(directory, ignore_errors=True)
            raise
        return finish_launch(directory, message, None)

    def _connect(self) -> socket.socket:
        self.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 10
        started = False
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            dirfd, address = _address(self.root)
            try:
                sock.connect(address)
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
            finally:
                os.close(dirfd)
            if not started:
                self._start_server()
                started = True
            if time.monotonic() > deadline:
                raise SetupError(f"the fork server for {self.root} did not start")
            time.sleep(0.005)

    def _start_server(self) -> None:
        import subprocess

        starter = subprocess.Popen(
            [sys.executable, "-m", "runtime.forkserver", str(self.root)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env={k: v for k, v in os.environ.items() if k in ("PATH", "ORCHESTRATOR_DEBUG", "ORCHESTRATOR_TRACE", "LANG")},
        )
        starter.wait()


def stop(root: Path, timeout: float = 5.0) -> None:
    """Ask the fork server of ``root`` to exit, and wait until it has (no-op when none runs)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        dirfd, address = _address(root)
    except FileNotFoundError:
        return
    try:
        sock.connect(address)
        sock.sendall(b'{"op": "stop"}\n')
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ECONNREFUSED):
            raise Error(f"stopping the fork server: {exc}") from None
        return
    finally:
        sock.close()
        os.close(dirfd)
    # The server holds its lock until it exits.
    deadline = time.monotonic() + timeout
    lock = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Error("the fork server did not stop") from None
                time.sleep(0.01)
    finally:
        os.close(lock)


def main() -> None:
    # Daemonise: the starter reaps our first process at once, and the server lives on under the
    # host's init, never a zombie child of whoever happened to start it.
    if os.fork():
        os._exit(0)
    serve(Path(sys.argv[1]))


if __name__ == "__main__":
    main()
