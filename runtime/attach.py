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
from collections.abc import Callable, Iterator


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
    """Copy the container's terminal output from an attach socket to ``stdout`` (and, if
    ``interactive``, our ``stdin`` to it) until the container's side closes."""
    relay_fd(sock.fileno(), interactive, stdin, stdout, lambda: sock.shutdown(socket.SHUT_WR))


def relay_fd(
    terminal: int,
    interactive: bool,
    stdin: int = 0,
    stdout: int = 1,
    input_ended: Callable[[], None] | None = None,
) -> None:
    """Copy what ``terminal`` (a terminal's master, or a socket joined to one) gives to
    ``stdout``, and with ``interactive`` our ``stdin`` to it, until it ends (end of file, or EIO:
    no process holds the terminal any more). ``input_ended`` runs when our stdin ends; the
    output may go on."""
    sources = [terminal] + ([stdin] if interactive else [])
    sys.stdout.flush()
    with raw_terminal(stdin) if interactive else contextlib.nullcontext():
        while True:
            ready, _, _ = select.select(sources, [], [])
            if terminal in ready:
                try:
                    data = os.read(terminal, 65536)
                except OSError:  # EIO: the terminal's last user has gone
                    return
                if not data:
                    return
                os.write(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    sources.remove(stdin)
                    if input_ended is not None:
                        input_ended()
                    continue
                os.write(terminal, data)
