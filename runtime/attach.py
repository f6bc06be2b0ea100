"""Relay between our terminal and a container's (an ``attach`` socket from the monitor).

When our stdin is a terminal it is put in raw mode for the session, so that keys (Ctrl-C
included) reach the container's terminal, and restored afterwards. Our window size is sent
with the attach request.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import sys
from collections.abc import Iterator


def window_size() -> tuple[int, int]:
    size = shutil.get_terminal_size((80, 24))
    return size.lines, size.columns


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    if not os.isatty(fd):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def relay(sock: socket.socket, interactive: bool, stdin: int = 0, stdout: int = 1) -> None:
    """Copy the container's terminal output to ``stdout`` (and, if ``interactive``, our
    ``stdin`` to it) until the container's side closes."""
    sources = [sock.fileno()] + ([stdin] if interactive else [])
    out = sys.stdout
    out.flush()
    with raw_terminal(stdin) if interactive else contextlib.nullcontext():
        while True:
            ready, _, _ = select.select(sources, [], [])
            if sock.fileno() in ready:
                data = sock.recv(65536)
                if not data:
                    return
                os.write(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    sources.remove(stdin)  # our input ended; the output may go on
                    sock.shutdown(socket.SHUT_WR)
                    continue
                sock.sendall(data)
