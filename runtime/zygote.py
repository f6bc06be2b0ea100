"""A warm copy of a command line, kept by the fork server (runtime.warmcli is the caller's side).

The zygote is forked from the fork server, imports the command line's modules once, then
forks a *guard* per call. The guard checks that the caller may be served here (root, the same
namespaces, the same code, none of it changed on disk since it was loaded), says ``go``, forks
the *worker* and relays: the caller's signals to the worker (``s<N>`` lines), the worker's end
to the caller (``x<status>`` or ``k<signal>``); when the caller goes away (killed), the worker is
killed too, as the caller's own process would have died with it.

The worker becomes the caller for the call: its stdio, working directory, umask, environment,
argv, ``sys.path`` and process name, Python's default signal dispositions. Namespaces, cgroup,
credentials and limits are the server's: the guard refuses a caller in other namespaces or of
another user, and the caller then runs the command itself.
"""

from __future__ import annotations

import gc
import importlib
import io
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

from runtime import warmcli

_SO_SNDBUFFORCE = 32
_SO_RCVBUFFORCE = 33
MAX_CALL = 1024 * 1024


class Zygote:
    """(in the fork server) The zygote process, forked from the server on demand."""

    def __init__(self, warm: str, loaded_at_ns: int) -> None:
        ours, theirs = socket.socketpair(
            socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC
        )
        for sock in (ours, theirs):  # a call is one message: room for the largest
            sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, 4 * MAX_CALL)
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, 4 * MAX_CALL)
        pid = os.fork()
        if pid == 0:
            try:
                keep = theirs.fileno()
                os.closerange(3, keep)  # the server's listener, lock, pool...: not ours
                os.closerange(keep + 1, 65536)
                _zygote(theirs, warm, loaded_at_ns)
            finally:
                os._exit(0)
        theirs.close()
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.sock = ours
        self.warm = warm

    def alive(self) -> bool:
        return not select.select([self.pidfd], [], [], 0)[0]

    def submit(self, payload: bytes, fds: list[int]) -> None:
        """Hand a call over: ``fds`` are the caller's connection, stdio and working directory."""
        socket.send_fds(self.sock, [payload], fds)

    def close(self, timeout: float = 5.0) -> None:
        """End the zygote and wait for it (its guards and workers finish their calls)."""
        self.sock.close()
        select.select([self.pidfd], [], [], timeout)
        os.close(self.pidfd)


def _zygote(sock: socket.socket, warm: str, loaded_at_ns: int) -> None:
    from runtime import trace
    from runtime.linux import syscalls as sc

    trace.configure(None)
    sc.set_process_name("orc-zygote")
    inherited = {path: loaded_at_ns for path in _sources()}  # loaded by the server
    own_start = time.time_ns()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # guards are reaped by the kernel
    preload: tuple[str, ...] = ()
    warm_up: Any = None
    try:
        module = importlib.import_module(warm)
        preload = tuple(module.PRELOAD)
        warm_up = getattr(module, "warm_up", None)
    except (ImportError, AttributeError):
        pass  # nothing to serve: every call is refused
    for name in preload:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # the worker imports what it needs
    if warm_up is not None:
        try:
            warm_up()  # the module's own (its output goes where the server's does: nowhere)
        except BaseException:
            pass
    sources = {path: inherited.get(path, own_start) for path in _sources()}
    gc.collect()
    gc.freeze()  # (workers are short-lived: keep collections off what is loaded)
    while True:
        data, fds, _, _ = socket.recv_fds(sock, 4 * MAX_CALL, 8, socket.MSG_CMSG_CLOEXEC)
        if not data:
            return
        if os.fork() == 0:
            try:
                sock.close()
                _guard(data, fds, preload, sources, inherited)
            finally:
                os._exit(1)
        for fd in fds:
            os.close(fd)


def _sources() -> list[str]:
    """The source files of the loaded modules of the packages beside this one."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.startswith(here + os.sep) and path.endswith(".py"):
            found.append(path)
    return found


def refusal(
    request: dict[str, Any], peer_uid: int, preload: tuple[str, ...], sources: dict[str, int]
) -> str | None:
    """Why this zygote must not serve ``request`` (None: it may). ``sources``: the source
    files of what it runs, each with the time it was loaded."""
    if peer_uid != os.geteuid():
        return "another user"
    if request["interpreter"] != warmcli.interpreter():
        return "another interpreter"
    if request["package_dir"] != os.fsdecode(warmcli.package_dir()):
        return "other code"
    if request["namespaces"] != warmcli.namespaces():
        return "other namespaces"
    if request["credentials"] != warmcli.credentials():
        return "other credentials (groups, capabilities, no_new_privs or seccomp)"
    module = str(request["entry"]).partition(":")[0]
    if module not in preload:
        return "an entry point not kept warm"
    for path, loaded_at_ns in sources.items():
        try:
            if os.stat(path).st_mtime_ns > loaded_at_ns:
                return f"{path} changed since it was loaded"
        except OSError:
            return f"{path} is gone"
    return None


def _guard(
    data: bytes,
    fds: list[int],
    preload: tuple[str, ...],
    sources: dict[str, int],
    inherited: dict[str, int],
) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    conn = socket.socket(fileno=fds[0])
    try:
        request = warmcli.decode_request(data)
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        why = refusal(request, uid, preload, sources) if len(fds) == 5 else "fds"
    except (ValueError, IndexError, OSError) as exc:
        why = f"bad request: {exc}"
    if why is not None:
        conn.sendall(f"no {why}\n".encode())
        if why.endswith("changed since it was loaded") and not refusal(
            request, uid, preload, inherited
        ):
            # only what the zygote imported itself changed: a new one (the server makes it
            # once it idles) will serve the next calls
            os.kill(os.getppid(), signal.SIGKILL)
        return
    conn.sendall(b"go\n")
    pid = os.fork()
    if pid == 0:
        try:
            conn.close()
            _worker(request, fds[1:])
        finally:
            os._exit(1)
    for fd in fds[1:]:
        os.close(fd)
    conn.sendall(_relay(conn, pid))


def _relay(conn: socket.socket, pid: int) -> bytes:
    """Pass the caller's signals on until the worker ends; its end, as the caller's line."""
    pidfd: Any = os.pidfd_open(pid)
    buffer = b""
    while True:
        ready, _, _ = select.select([conn, pidfd], [], [])
        if pidfd in ready:
            _, status = os.waitpid(pid, 0)
            if os.WIFSIGNALED(status):
                return b"k%d\n" % os.WTERMSIG(status)
            return b"x%d\n" % os.waitstatus_to_exitcode(status)
        chunk = conn.recv(256)
        if not chunk:  # the caller is gone: so is its command
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os._exit(0)
        buffer += chunk
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            if line[:1] == b"s" and line[1:].isdigit():
                try:
                    os.kill(pid, int(line[1:]))
                except (ProcessLookupError, ValueError, OSError):
                    pass


def _worker(request: dict[str, Any], fds: list[int]) -> None:
    """Become the caller, then run its entry point; exit with its status."""
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    os.fchdir(fds[3])
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.umask(int(request["umask"]))
    os.environ.clear()
    os.environb.update(request["env"])
    sys.argv = list(request["argv"])
    sys.path[:] = list(request["path"])
    _python_signals()
    _stdio(request["stdio"])
    from runtime import trace
    from runtime.linux import syscalls as sc

    trace.configure(os.environ.get("ORCHESTRATOR_TRACE"))
    trace.mark("warm-worker")
    sc.set_process_name(str(request["comm"]))
    gc.unfreeze()
    module, _, function = str(request["entry"]).partition(":")
    os._exit(_run(getattr(importlib.import_module(module), function)))


def _python_signals() -> None:
    """The dispositions a fresh interpreter has (the server ignores some, handles SIGCHLD)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for signum in (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGCHLD, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _stdio(streams: list[tuple[str, str]]) -> None:
    """sys.stdin, stdout and stderr as the interpreter makes them, on the caller's files."""
    made = []
    for fd, (encoding, errors) in enumerate(streams):
        binary = open(fd, "rb" if fd == 0 else "wb", closefd=False)  # noqa: SIM115
        made.append(
            io.TextIOWrapper(
                binary,
                encoding=encoding,
                errors=errors,
                newline="\n",
                line_buffering=fd == 2 or (fd == 1 and os.isatty(fd)),
            )
        )
    sys.stdin, sys.stdout, sys.stderr = made
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = made  # type: ignore[misc]


def _run(main: Any) -> int:
    """``main()`` as the interpreter runs a program: SystemExit's code, a traceback for an
    uncaught exception, death by SIGINT for an uncaught KeyboardInterrupt."""
    import traceback

    try:
        try:
            code: Any = main()
        except SystemExit as exc:
            code = exc.code
        except KeyboardInterrupt:
            traceback.print_exc()
            _flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
            return 130
        except BaseException:
            traceback.print_exc()
            code = 1
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        _finish_threads()
    except BaseException:
        code = 1
    _flush()
    return int(code) & 0xFF


def _finish_threads() -> None:
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()  # (what interpreter exit does)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
