"""A command line run by a warm copy of itself: the client's side.

A Python command line pays its imports at every start (tens of milliseconds for the
orchestrator's ``run``). The fork server of a runtime root can keep a *zygote*
(runtime.zygote): a process with the command line's modules already imported, which forks a
worker per call. The worker takes on the caller's identity for the call (its argv,
environment, working directory, umask, stdio, signals) and the caller just waits for its exit
status: the caller costs a bare interpreter start and one round trip.

This module is what the caller imports, so it imports nothing beyond the interpreter's own
C modules. ``call`` answers None whenever the worker was not started (no server, another
namespace, other code, another user...): the caller then runs the command itself.
"""

from __future__ import annotations

import os
import sys

# runtime.protocol.FORK_SERVER_SOCKET (not imported: it costs dataclasses; a test checks)
SOCKET_NAME = "forkserver.4.sock"
OP = b"cli"
VERSION = b"1"
NAMESPACES = ("mnt", "net", "pid", "user", "uts", "ipc", "cgroup")
# Signals the caller passes on to the worker (it is the worker's to act on them).
FORWARDED = (1, 2, 3, 10, 12, 14, 15, 28)  # HUP INT QUIT USR1 USR2 ALRM TERM WINCH

# Why the last ``call`` ran nothing: "absent" when no fork server listens (a caller that is
# about to start containers may start one now: ``start_server_early``), else the refusal.
last_refusal = ""

# The module whose ``PRELOAD`` (module names) a zygote imports: set by a program's entry point,
# so that a fork server this process starts keeps it warm (runtime.forkserver.default_config).
WARM = ""


def namespaces() -> bytes:
    """Which namespaces this process is in (a worker must be in the same ones)."""
    ids = []
    for kind in NAMESPACES:
        st = os.stat(f"/proc/self/ns/{kind}")
        ids.append(b"%d:%d" % (st.st_dev, st.st_ino))
    return b",".join(ids)


_CREDENTIALS = (
    b"Uid:", b"Gid:", b"Groups:", b"CapInh:", b"CapPrm:", b"CapEff:", b"CapBnd:", b"CapAmb:",
    b"NoNewPrivs:", b"Seccomp:",
)  # fmt: skip


def credentials() -> bytes:
    """Who this process is, beyond its uid: groups, capabilities, no_new_privs, seccomp (a
    worker has the server's; a caller with less must not get them through it)."""
    with open("/proc/self/status", "rb") as f:
        lines = [line for line in f.read().splitlines() if line.startswith(_CREDENTIALS)]
    return b";".join(b" ".join(line.split()) for line in lines)


def interpreter() -> bytes:
    """Which Python this is: its binary and its environment (``python`` and ``python3`` of one
    virtual environment are the same)."""
    return os.fsencode(f"{os.path.realpath(sys.executable)}\n{sys.prefix}")


def package_dir() -> bytes:
    """Where this code lives: a zygote of other code is not used."""
    return os.fsencode(os.path.dirname(os.path.abspath(__file__)))


def encode_request(entry: str, warm: str, argv: list[str]) -> bytes:
    """The call's fields, NUL-separated (no argument or variable can hold a NUL)."""
    umask = os.umask(0)
    os.umask(umask)
    try:
        with open("/proc/self/comm", "rb") as f:
            comm = f.read().strip()
    except OSError:
        comm = b"python"
    fields = [
        VERSION,
        entry.encode(),
        warm.encode(),
        interpreter(),
        package_dir(),
        b"%d" % umask,
        comm,
        namespaces(),
        credentials(),
        b"%d" % len(argv),
        *(os.fsencode(a) for a in argv),
        b"%d" % len(sys.path),
        *(os.fsencode(p) for p in sys.path),
    ]
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        fields += [
            (getattr(stream, "encoding", None) or "utf-8").encode(),
            (getattr(stream, "errors", None) or "strict").encode(),
        ]
    fields += [b"%s=%s" % item for item in os.environb.items()]
    return b"\0".join(fields)


def decode_request(data: bytes) -> dict[str, object]:
    """(the zygote's side) The fields of ``encode_request``."""
    parts = data.split(b"\0")
    if parts[0] != VERSION:
        raise ValueError(f"request version {parts[0][:8]!r}")
    request: dict[str, object] = {
        "entry": parts[1].decode(),
        "warm": parts[2].decode(),
        "interpreter": parts[3],
        "package_dir": os.fsdecode(parts[4]),
        "umask": int(parts[5]),
        "comm": parts[6].decode(errors="replace"),
        "namespaces": parts[7],
        "credentials": parts[8],
    }
    i = 9
    count = int(parts[i])
    request["argv"] = [os.fsdecode(a) for a in parts[i + 1 : i + 1 + count]]
    i += 1 + count
    count = int(parts[i])
    request["path"] = [os.fsdecode(p) for p in parts[i + 1 : i + 1 + count]]
    i += 1 + count
    request["stdio"] = [
        (parts[i + 2 * k].decode(), parts[i + 2 * k + 1].decode()) for k in range(3)
    ]
    i += 6
    env: dict[bytes, bytes] = {}
    for item in parts[i:]:
        key, sep, value = item.partition(b"=")
        if sep:
            env[key] = value
    request["env"] = env
    return request


def call(runtime_root: str, entry: str, argv: list[str]) -> int | None:
    """Run ``entry`` (``module:function``, returning an exit status) with ``argv`` as
    ``sys.argv`` in a worker of the zygote of ``runtime_root``'s fork server; its exit status,
    or None when no worker was started (run it here then)."""
    import _socket

    global last_refusal
    last_refusal = "closed stdio"
    try:
        for fd in (0, 1, 2):  # (a closed one would be taken by the descriptors we open)
            os.fstat(fd)
    except OSError:
        return None
    last_refusal = "absent"
    try:
        dirfd = os.open(runtime_root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    cwd = -1
    try:
        try:
            sock.connect(f"/proc/self/fd/{dirfd}/{SOCKET_NAME}")
            last_refusal = "the server did not answer"
            payload = encode_request(entry, WARM, argv)
            cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, cwd))
            data = OP + b" %d\n" % len(payload) + payload
            sent = sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
            if sent < len(data):
                sock.sendall(data[sent:])
            reply = _line(sock, b"")
        except OSError:
            return None
        finally:
            os.close(dirfd)
            if cwd >= 0:
                os.close(cwd)
        line, rest = reply
        if line != b"go":  # refused, or not a server that knows the call: nothing ran
            last_refusal = (line or b"").decode(errors="replace")
            return None
        return _wait(sock, rest)
    finally:
        sock.close()


def _line(sock: object, buffer: bytes) -> tuple[bytes | None, bytes]:
    while b"\n" not in buffer:
        chunk = sock.recv(256)  # type: ignore[attr-defined]
        if not chunk:
            return None, buffer
        buffer += chunk
    line, _, rest = buffer.partition(b"\n")
    return line, rest


def _wait(sock: object, buffer: bytes) -> int:
    """Pass our signals on until the worker's status comes; end as the worker did."""
    import _signal  # type: ignore[import-not-found]  # (signal's enums cost a millisecond)

    def forward(signum: int, frame: object) -> None:
        try:
            sock.send(b"s%d\n" % signum)  # type: ignore[attr-defined]
        except OSError:
            pass

    def stop(signum: int, frame: object) -> None:  # ^Z: the worker stops with us
        forward(_signal.SIGSTOP, None)
        # SIGSTOP, not the TSTP we got: in an orphaned process group (no shell's job control)
        # the kernel drops a TSTP, and the worker would stop without us
        os.kill(os.getpid(), _signal.SIGSTOP)  # stopped here until continued

    for signum in FORWARDED:
        if _signal.getsignal(signum) != _signal.SIG_IGN:
            _signal.signal(signum, forward)
    if _signal.getsignal(_signal.SIGTSTP) != _signal.SIG_IGN:
        _signal.signal(_signal.SIGTSTP, stop)
        _signal.signal(_signal.SIGCONT, forward)
    line, _ = _line(sock, buffer)
    if line is None or line[:1] not in (b"x", b"k"):
        os.write(2, b"orchestrator: the command's worker ended without an exit status\n")
        return 1
    status = int(line[1:])
    if line[:1] == b"k":  # killed by a signal: so are we
        _signal.signal(status, _signal.SIG_DFL)
        os.kill(os.getpid(), status)
        return 128 + status
    return status
