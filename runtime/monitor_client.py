"""Talking to a container's monitor over its ``monitor.sock`` (runtime.protocol): wait for the
exit record, attach to the terminal, feed stdin. The one client of that socket in the
synchronous API; runtime.client has the trio one."""

from __future__ import annotations

import errno
import json
import os
import socket
from pathlib import Path
from typing import Any

from runtime import protocol
from runtime.errors import Error
from runtime.state import read_json


def socket_address(directory: Path) -> tuple[int, str]:
    """(dirfd, short path) to reach monitor.sock whatever the length of the state path."""
    dirfd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return dirfd, f"/proc/self/fd/{dirfd}/{protocol.MONITOR_SOCKET}"


def connect(directory: Path) -> socket.socket | None:
    """A connection to the monitor of the container in ``directory``; None when the monitor is
    gone. A connection that sends nothing is a waiter: the monitor writes the exit record on
    it, then closes it (connect before ``start`` to hear of even the quickest exit)."""
    try:
        dirfd, address = socket_address(directory)
    except FileNotFoundError:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        return None
    finally:
        os.close(dirfd)
    return sock


def command(directory: Path, words: bytes, acknowledged: bool = False) -> socket.socket | None:
    """Connect and send a command line (``attach ROWS COLS``, ``stdin``); with
    ``acknowledged``, wait for the monitor's ``attached`` first (from then on no output is
    lost to us). None when the monitor is gone."""
    sock = connect(directory)
    if sock is None:
        return None
    try:
        sock.sendall(words + b"\n")
        if acknowledged:
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(1)
                if not chunk:
                    raise Error("the container has no terminal to attach to, or it ended")
                answer += chunk
            if answer != protocol.ATTACHED:
                raise Error(f"the monitor answered {answer!r}")
    except BaseException:
        sock.close()
        raise
    return sock


def wait_exit(directory: Path, timeout: float | None = None) -> dict[str, Any] | None:
    """Block until the container in ``directory`` has ended; its exit record, or None on
    timeout (or when it was removed and left no record here)."""
    exit_path = directory / "exit.json"
    if exit_path.exists():
        return dict(read_json(exit_path))
    sock = connect(directory)
    received = b""
    if sock is not None:
        try:
            # (0 would make the socket non-blocking: BlockingIOError, not a timeout)
            sock.settimeout(None if timeout is None else max(timeout, 1e-6))
            while chunk := sock.recv(4096):
                received += chunk
        except TimeoutError:
            return None
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                raise
        finally:
            sock.close()
    if received.endswith(b"\n"):
        return dict(json.loads(received))
    try:
        return dict(read_json(exit_path))
    except FileNotFoundError:
        return None
