"""``attach``: join a running container's output (and input) as ``run`` does, and leave it
running when asked (the detach keys, Ctrl-P Ctrl-Q by default).

With a terminal (``run -t``), the monitor's ``attach`` socket is the terminal: its bytes go to
our stdout, our keys (raw mode) to it. Without one, the container's log is followed from now
on (stdout and stderr apart) and, for a container made with ``-i``, our input is fed to its
stdin. Either way the exit record comes on a waiter connected first, and is our status.
``--sig-proxy`` (the default, without a terminal) sends the signals we get to the container.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
from typing import Any

from orchestrator.errors import UserError

DEFAULT_KEYS = "ctrl-p,ctrl-q"
PROXIED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def parse_keys(text: str) -> bytes:
    """Docker's ``--detach-keys``: ``ctrl-<x>`` or one character, comma-separated."""
    keys = bytearray()
    for part in text.split(","):
        part = part.strip()
        if part.lower().startswith("ctrl-") and len(part) == 6:
            char = part[5].upper()
            if not ("@" <= char <= "_" or char == "?"):
                raise UserError(f"--detach-keys {text!r}: ctrl-{part[5]} is not a key")
            keys.append(0x7F if char == "?" else ord(char) & 0x1F)
        elif len(part) == 1:
            keys.append(ord(part))
        else:
            raise UserError(
                f"--detach-keys {text!r}: use ctrl-<key> or one character, e.g. ctrl-p,ctrl-q"
            )
    return bytes(keys)


class KeyMatcher:
    """Finds the detach sequence in what is typed; holds back a partial match until it is
    known not to be one (then it goes to the container after all)."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(what to send on, whether the sequence was typed)."""
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes([byte])
            if self.keys and self.keys.startswith(candidate):
                self.held = candidate
                if candidate == self.keys:
                    self.held = b""
                    return bytes(out), True
                continue
            out += self.held
            self.held = b""
            if self.keys and self.keys[:1] == bytes([byte]):
                self.held = bytes([byte])
            else:
                out.append(byte)
        return bytes(out), False


def attach(containers: Any, container: Any, stdin: bool, sig_proxy: bool, keys: bytes) -> int:
    """Attach until the container ends (its exit status) or we detach (0)."""
    from runtime.attach import raw_terminal, window_size

    state = containers.status(container)["state"]
    if state == "paused":
        raise UserError(f"container {container.name} is paused: unpause it first")
    if state != "running":
        raise UserError(f"container {container.name} is not running: start it first")
    options = container.options
    waiter = containers.runtime.connect_waiter(container.id)
    if waiter is None:
        raise UserError(f"container {container.name} is not running")
    interactive = stdin and options.interactive
    matcher = KeyMatcher(keys) if os.isatty(0) else KeyMatcher(b"")
    restore = _proxy_signals(containers, container) if sig_proxy and not options.tty else None
    try:
        if options.tty:
            console = containers.runtime.attach(container.id, *window_size())
            with raw_terminal(0) if interactive else _nothing():
                detached = _relay_terminal(console, waiter, interactive, matcher)
            console.close()
        else:
            detached = _follow(containers, container, waiter, interactive, matcher)
    except KeyboardInterrupt:  # --sig-proxy=false: Ctrl-C leaves it running
        detached = True
    finally:
        if restore is not None:
            restore()
    if detached:
        waiter.close()
        print(f"\ndetached from {container.name}: it keeps running", file=sys.stderr)
        return 0
    return _exit_status(containers, container, waiter)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _proxy_signals(containers: Any, container: Any) -> Any:
    saved = {}

    def forward(signum: int, frame: Any) -> None:
        try:
            containers.kill(container, signum)
        except Exception:
            pass

    for sig in PROXIED:
        saved[sig] = signal.signal(sig, forward)

    def restore() -> None:
        for sig, handler in saved.items():
            signal.signal(sig, handler)

    return restore


def _relay_terminal(
    console: socket.socket, waiter: socket.socket, interactive: bool, matcher: KeyMatcher
) -> bool:
    sources = [console.fileno()] + ([0] if interactive else [])
    while True:
        ready, _, _ = _select(sources)
        if console.fileno() in ready:
            try:
                data = console.recv(65536)
            except OSError:
                data = b""
            if not data:
                return False
            os.write(1, data)
        if 0 in ready:
            typed = os.read(0, 65536)
            if not typed:
                sources.remove(0)
                continue
            data, detach = matcher.feed(typed)
            if data:
                console.sendall(data)
            if detach:
                return True


def _follow(
    containers: Any, container: Any, waiter: socket.socket, interactive: bool, matcher: KeyMatcher
) -> bool:
    from runtime.logs import Tail

    offset = container.log_path.stat().st_size if container.log_path.exists() else 0
    tail = Tail(container.log_path, offset)
    feeder: socket.socket | None = None
    sources = [waiter.fileno()] + ([0] if interactive else [])
    try:
        while True:
            ready, _, _ = _select(sources, 0.05)
            _pump(tail)
            if waiter.fileno() in ready:
                return False
            if 0 in ready:
                typed = os.read(0, 65536)
                if not typed:
                    sources.remove(0)
                    if feeder is not None:
                        feeder.shutdown(socket.SHUT_WR)
                    continue
                data, detach = matcher.feed(typed)
                if data:
                    # (connected at the first input: a feeder's end is the container's end of input)
                    feeder = feeder or containers.runtime.feed_stdin(container.id)
                    feeder.sendall(data)
                if detach:
                    return True
    finally:
        _pump(tail)
        tail.close()
        if feeder is not None:
            feeder.close()


def _pump(tail: Any) -> None:
    for entry in tail.read_new():
        stream = sys.stderr if entry.stream == "stderr" else sys.stdout
        stream.write(entry.text)
        stream.flush()


def _select(sources: list[int], timeout: float | None = None) -> tuple[list[int], Any, Any]:
    while True:
        try:
            return select.select(sources, [], [], timeout)
        except InterruptedError:  # (a proxied signal)
            continue


def _exit_status(containers: Any, container: Any, waiter: socket.socket) -> int:
    import json

    from orchestrator import eventlog

    received = b""
    try:
        while chunk := waiter.recv(4096):
            received += chunk
    except OSError:
        pass
    waiter.close()
    result = json.loads(received) if received.strip() else containers.wait(container)
    eventlog.died(containers.root, container, result)
    code = result.get("exit_code")
    if code is None:
        print(f"orchestrator: container {container.name}: exit status unknown", file=sys.stderr)
        return 1
    return int(code)
