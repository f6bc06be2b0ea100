"""The per-container monitor: parent and subreaper of the container's init, for as long as the
container runs. Only the code the long-lived monitor runs is here; the start, run by the
caller, the monitor's short-lived helper and the setup child, is in runtime.launch.

The monitor detaches (own session, stdio on /dev/null), becomes a subreaper and forks the
helper that starts the container (``run_monitor``), then waits for the *watch* message
(``watch_for_helper``). From then on it only watches (``_watch``): it copies the container's
output into the JSON log, serves waiters and attached clients on ``monitor.sock``
(runtime.protocol), and when the init ends records ``exit.json`` atomically (exit code,
signal, OOM kill), tells the waiters and removes the cgroup. Pre-made containers (runtime.pool)
use the same watch. The container never depends on the process that created it.

Split from the start by which process runs the code. Every page a forked Python process writes
becomes its own copy; measured with bench/bench_runtime.py --memory-only in turns, 4 runs
each: 1.75-1.80 MiB PSS per monitor before the split, 1.76-1.82 after (the same within the
noise; an earlier split, which left the watch's helpers in the start module, cost 35 KiB).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # (the C module: see become_monitor)
import json
import os
import select
import shutil
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from runtime.cgroups import open_manager
from runtime.channel import Channel, socket_pair
from runtime.linux import syscalls as sc
from runtime.logs import LogWriter, timestamp
from runtime.monitor_client import socket_address
from runtime.protocol import ATTACH, ATTACHED, MONITOR_SOCKET, STDIN
from runtime.state import write_json_atomic
from runtime.trace import mark

SOCKET_NAME = MONITOR_SOCKET
EXITED_DIR = ".exited"  # exit records of removed (--rm) containers, in the runtime root


def _reap(pid: int) -> None:
    if pid <= 0:
        return  # (0 or -1 would reap any child)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def run_monitor(
    name: str, helper: Callable[[Channel, int], None], helper_only: tuple[int, ...] = ()
) -> NoReturn:
    """Become the long-lived monitor and leave the whole start to a helper child.

    ``helper(to_monitor, devnull)`` starts the container, tells the caller, and hands the watch
    over to us (``take_over``); then it exits, and the init, reparented, is ours (we are a
    subreaper). Every page a forked Python process writes becomes its own copy, and this
    process lives as long as the container: it runs as little Python as it can, the loop.
    ``helper_only``: descriptors only the helper keeps (the caller's connection, say)."""
    devnull = become_monitor(name)
    watch_for_helper(lambda to_monitor: helper(to_monitor, devnull), helper_only)


def watch_for_helper(
    helper: Callable[[Channel], None], helper_only: tuple[int, ...] = ()
) -> NoReturn:
    """(in a monitor) Fork the helper, take the watch over when it hands it to us, watch."""
    from_helper, to_monitor = socket_pair()
    helper_pid = os.fork()
    if helper_pid == 0:
        try:
            from_helper.close()
            helper(to_monitor)
        except BaseException:
            pass  # the helper reports its own errors to the caller
        finally:
            os._exit(0)
    to_monitor.close()
    for fd in helper_only:
        os.close(fd)
    message = from_helper.receive()
    fds = from_helper.take_fds()
    from_helper.close()
    watch = (message or {}).get("watch")
    if not watch:
        _reap(helper_pid)
        os._exit(0)  # the helper said what went wrong, and cleaned up
    watch_container(watch, fds, helper_pid)


def watch_container(
    watch: dict[str, Any],
    fds: list[int],
    helper_pid: int = 0,
    outputs: tuple[int, int] | None = None,
) -> NoReturn:
    """Watch the container ``watch`` describes (see ``watch_message``) until it ends. ``fds``:
    the listener, then (unless ``outputs`` are ours already) stdout and stderr, then the
    others the message names."""
    comm = os.open("/proc/self/comm", os.O_WRONLY | os.O_CLOEXEC)  # (a pool's was orc-pool)
    os.write(comm, b"orc-mon")
    os.close(comm)
    listener = socket.socket(fileno=fds[0])
    if outputs is None:
        outputs = (fds[1], fds[2])
        fds = fds[2:]
    rest = iter(fds[1:])
    stdin_w = next(rest) if watch["stdin"] else None
    console = next(rest) if watch["console"] else None
    console_slave = next(rest) if watch["console_slave"] else None
    mount_ns = next(rest) if watch["mount_ns"] else None
    log = LogWriter(*watch["log"]) if watch["log"] else None
    _watch(
        Path(watch["directory"]),
        int(watch["pid"]),
        _CgroupHandle(watch["id"], *watch["cgroup"]),
        log,
        outputs,
        listener,
        tuple(watch["cleanup_paths"]),
        console,
        console_slave,
        stdin_w,
        helper_pid,
        mount_ns,
    )


def become_monitor(name: str) -> int:
    """Detach (own session, stdio on /dev/null), become a subreaper, ignore terminal signals.
    Returns a descriptor of /dev/null."""
    os.setsid()
    comm = os.open("/proc/self/comm", os.O_WRONLY | os.O_CLOEXEC)  # bare calls copy fewest pages
    os.write(comm, name.encode())
    os.close(comm)
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)  # the init becomes ours when the setup child ends
    # The C module's own call: the signal module's wrapper converts to and from enums, and
    # the enum machinery it runs would copy some 150 KiB of shared pages into this process.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGQUIT):
        _signal.signal(sig, 0 + signal.SIG_IGN)
    _signal.signal(signal.SIGCHLD, 0 + signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    return devnull


class Outputs:
    """The pipes that carry the container's stdout and stderr to the monitor's log, and, when
    asked for, its stdin from attached clients (otherwise stdin is /dev/null)."""

    def __init__(self, stdin: bool = False) -> None:
        self.out_r, self.out_w = os.pipe2(os.O_CLOEXEC)
        self.err_r, self.err_w = os.pipe2(os.O_CLOEXEC)
        self.in_r, self.in_w = os.pipe2(os.O_CLOEXEC) if stdin else (-1, -1)

    def for_init(self, devnull: int) -> tuple[int, int, int]:
        return (self.in_r if self.in_r >= 0 else devnull, self.out_w, self.err_w)

    def ours(self) -> tuple[int, int]:
        return (self.out_r, self.err_r)

    def stdin_writer(self) -> int | None:
        return self.in_w if self.in_w >= 0 else None

    def monitor_side(self) -> tuple[int, ...]:
        """Every end the monitor keeps (for children to close)."""
        return (*self.ours(), *((self.in_w,) if self.in_w >= 0 else ()))

    def close_theirs(self) -> None:
        for fd in (self.out_w, self.err_w, self.in_r):
            if fd >= 0:
                os.close(fd)


class _CgroupHandle:
    """The container's cgroup as the monitor needs it at the end; made only then. A cgroup
    the config named (``shared``: other containers may be in it) is removed once empty, with
    the ``prune`` parents made for it, and its processes are never killed from here."""

    def __init__(
        self,
        container_id: str,
        root: str,
        parent: str,
        version: int | None,
        name: str | None = None,
        shared: bool = False,
        prune: int = 0,
    ) -> None:
        self.name = name or container_id
        self.where = (root, parent, version)
        self.shared = shared
        self.prune = prune  # parents made for it, to remove once empty
        self._manager: Any = None

    def manager(self) -> Any:
        if self._manager is None:
            root, parent, version = self.where
            self._manager = open_manager(self.name, root=root, parent=parent, version=version)
        return self._manager

    def oom_killed(self) -> bool:
        return bool(self.manager().oom_killed())

    def pids(self) -> list[int]:
        return list(self.manager().pids())

    def kill_all(self, sig: int) -> None:
        if not self.shared:
            self.manager().kill_all(sig)

    def destroy(self) -> None:
        if not self.shared or not self.pids():
            self.manager().destroy()
            self.manager().remove_empty_parents(self.prune)

    def remove_all(self) -> None:
        try:
            if self.shared:
                self.destroy()
            else:
                self.manager().remove()
        except Exception:
            pass


def _listen(directory: Path) -> socket.socket:
    dirfd, address = socket_address(directory)
    try:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        listener.bind(address)
        listener.listen(16)
    finally:
        os.close(dirfd)
    listener.setblocking(False)
    return listener


def _watch(
    directory: Path,
    pid: int,
    cgroup: Any,
    log: LogWriter | None,
    outputs: tuple[int, int],
    listener: socket.socket,
    cleanup_paths: tuple[str, ...],
    console: int | None = None,
    console_slave: int | None = None,
    stdin_w: int | None = None,
    setup_pid: int = 0,
    mount_ns: int | None = None,
) -> NoReturn:
    """Copy output to the log, serve waiters and attached clients, and notice the init's end
    through a pidfd (no signal handler: the less machinery the monitor runs, the less memory
    it copies).

    A client on monitor.sock that sends nothing is a waiter: it gets the exit record, one JSON
    line, when the container ends. One that sends ``attach ROWS COLS\n`` gets ``attached\n``, then the terminal's
    output as it comes, and what it sends goes to the terminal's input. One that sends
    ``stdin\n`` feeds the container's stdin (when it has one): its end of input is the
    container's end of input. Writes to the container never block the monitor: what it does
    not read yet waits here, and a feeder is not read while much waits.

    The setup child may still be exiting as the watch begins (waiting for it would delay the
    report); until it has, the init is its child, not ours: it is reaped before the init."""
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    streams = {outputs[0]: "stdout", outputs[1]: "stderr"}
    if console is not None:
        streams[console] = "stdout"  # a terminal merges both, as in Docker
    for fd in streams:
        os.set_blocking(fd, False)
        poller.register(fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    setup_fd = os.pidfd_open(setup_pid) if setup_pid > 0 else -1
    if setup_fd >= 0:  # reaped as soon as it ends: no zombie beside a long-running container
        poller.register(setup_fd, select.POLLIN)
    listen_fd = listener.fileno()
    poller.register(listen_fd, select.POLLIN)
    clients: dict[int, socket.socket] = {}
    attached: set[int] = set()
    status: int | None = None

    def drain(fd: int) -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""  # EIO: a terminal whose last user has gone
            if not data:
                poller.unregister(fd)
                os.close(fd)
                del streams[fd]
                return
            if log:
                log.write(streams[fd], data)
            if fd == console:
                for client in list(attached):
                    try:
                        clients[client].sendall(data)
                    except OSError:
                        drop(client)

    reading: set[int] = set()

    feeders: set[int] = set()

    def drop(fd: int) -> None:
        attached.discard(fd)
        feeders.discard(fd)
        if fd in reading:
            reading.discard(fd)
            poller.unregister(fd)
        clients.pop(fd).close()

    pending = bytearray()  # for the container's stdin, not yet read by it
    stdin_state = {"fd": stdin_w, "eof": False, "waiting": False}
    if stdin_w is not None:
        os.set_blocking(stdin_w, False)

    def flush_stdin() -> None:
        fd = stdin_state["fd"]
        if not isinstance(fd, int):
            return
        while pending:
            try:
                pending[: os.write(fd, pending)] = b""
            except BlockingIOError:
                break
            except OSError:  # the container closed its stdin: what was left is dropped
                pending.clear()
        if pending and not stdin_state["waiting"]:
            poller.register(fd, select.POLLOUT)
            stdin_state["waiting"] = True
        elif not pending and stdin_state["waiting"]:
            poller.unregister(fd)
            stdin_state["waiting"] = False
        if not pending and stdin_state["eof"]:
            os.close(fd)
            stdin_state["fd"] = None
        for feeder in feeders:  # read from feeders again only when little waits
            if feeder in clients and feeder not in reading and len(pending) < 1 << 20:
                reading.add(feeder)
                poller.register(feeder, select.POLLIN)

    def from_client(fd: int) -> None:
        try:
            data = clients[fd].recv(65536)
        except OSError:
            data = b""
        if not data:
            if fd in attached:  # its input ended; its output goes on until the container's end
                reading.discard(fd)
                poller.unregister(fd)
            elif fd in feeders:
                feeders.discard(fd)
                drop(fd)
                stdin_state["eof"] = True  # its end of input is the container's
                flush_stdin()
            else:
                drop(fd)
            return
        if fd not in attached and fd not in feeders:
            line, _, data = data.partition(b"\n")
            words = line.split()
            if words and words[0] == STDIN and stdin_state["fd"] is not None:
                feeders.add(fd)
            elif console is not None and words and words[0] == ATTACH:
                attached.add(fd)
                if len(words) == 3 and words[1].isdigit() and words[2].isdigit():
                    _set_window(console, int(words[1]), int(words[2]))
                try:  # from here on it gets all output: the client may start the container
                    clients[fd].sendall(ATTACHED)
                except OSError:
                    drop(fd)
                    return
            else:
                drop(fd)
                return
        if fd in feeders:
            pending.extend(data)
            flush_stdin()
            if len(pending) >= 1 << 20 and fd in reading:
                reading.discard(fd)
                poller.unregister(fd)
            return
        if data and console is not None:
            try:
                os.write(console, data)
            except OSError:
                pass

    while status is None:
        for fd, _ in poller.poll():
            if fd == listen_fd:
                try:
                    conn = _accept(listener)
                    conn.settimeout(2.0)
                    clients[conn.fileno()] = conn
                    reading.add(conn.fileno())
                    poller.register(conn.fileno(), select.POLLIN)
                except OSError:
                    pass
            elif fd == setup_fd:
                poller.unregister(setup_fd)
                os.close(setup_fd)
                setup_fd = -1
                _reap(setup_pid)
            elif fd == pidfd:
                poller.unregister(pidfd)
                status = _reap_children(pid)
                if status is None:  # not ours yet: the helper, or its setup child, still ends
                    _reap(setup_pid)
                    status = _reap_children(pid)
            elif fd in streams:
                drain(fd)
            elif fd in clients:
                from_client(fd)
            elif fd == stdin_state["fd"]:
                flush_stdin()
        if status is None and not streams:
            status = _reap_children(pid)  # (when the pidfd said nothing yet, poll again)
    os.close(pidfd)
    if setup_fd >= 0:
        os.close(setup_fd)
    for fd in list(streams):
        drain(fd)  # with the slave held open, a terminal reads empty (EAGAIN), never hangs up
    if console_slave is not None:
        os.close(console_slave)
        if console in streams:
            poller.unregister(console)
            os.close(console)
            del streams[console]
    if log:
        log.close()
    for fd in list(attached):
        drop(fd)  # an attached client sees the end of its stream; waiters get the exit record
    _finish(directory, status, cgroup, list(clients.values()), listener, cleanup_paths, mount_ns)


def _accept(listener: socket.socket) -> socket.socket:
    """``listener.accept()`` without the socket module's enum conversions (see become_monitor)."""
    fd, _ = listener._accept()  # type: ignore[attr-defined]
    return socket.socket(fileno=fd)


def _set_window(console: int, rows: int, columns: int) -> None:
    import fcntl
    import struct
    import termios

    try:
        fcntl.ioctl(console, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    except OSError:
        pass


def _reap_children(init_pid: int) -> int | None:
    """Reap every exited child (we are a subreaper); return the init's wait status if it ended."""
    result = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return result
        if pid == 0:
            return result
        if pid == init_pid:
            result = status


def _finish(
    directory: Path,
    status: int,
    cgroup: Any,
    waiters: list[socket.socket],
    listener: socket.socket,
    cleanup_paths: tuple[str, ...],
    mount_ns: int | None = None,
) -> NoReturn:
    mark("exited")
    oom = False
    try:
        oom = bool(cgroup.oom_killed())
    except Exception:
        pass
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        exit_code = 128 + sig
    else:
        sig = None
        exit_code = os.WEXITSTATUS(status)
    record = {"exit_code": exit_code, "signal": sig, "oom_killed": oom, "finished": timestamp()}
    write_json_atomic(directory / "exit.json", record)
    for name in ("exec.fifo", SOCKET_NAME):
        try:
            (directory / name).unlink()
        except FileNotFoundError:
            pass
    # Late arrivals are still queued on the listener: answer them too.
    while True:
        try:
            conn = _accept(listener)
            waiters.append(conn)
        except OSError:
            break
    removed: list[str] = []
    if cleanup_paths:
        # (--rm) Gone before anyone hears of the exit: the exit record outlives the state, for
        # whoever asks after it; the paths are renamed out of sight now, deleted later.
        try:
            tombstones = directory.parent / EXITED_DIR
            tombstones.mkdir(exist_ok=True)
            write_json_atomic(tombstones / f"{directory.name}.json", record)
        except OSError:
            pass
        removed = [_out_of_sight(path) for path in (*cleanup_paths, str(directory))]
    line = json.dumps(record).encode() + b"\n"
    for conn in waiters:
        try:
            conn.setblocking(True)
            conn.sendall(line)
            conn.close()
        except OSError:
            pass
    listener.close()
    mark("notified")
    if mount_ns is not None:
        os.close(mount_ns)  # the container's mounts go now
    # Cleanup after the news: whoever reuses the name waits for this process to end (delete).
    try:
        if cgroup.pids():  # without a PID namespace, the init's children may outlive it
            cgroup.kill_all(signal.SIGKILL)
    except Exception:
        pass
    while True:  # reap what the kill freed
        try:
            if os.waitpid(-1, 0)[0] <= 0:
                break
        except ChildProcessError:
            break
    _destroy_quietly(cgroup)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    mark("finished")
    os._exit(0)


def _out_of_sight(path: str) -> str:
    """Rename ``path`` to ``.removed-<name>`` beside it (what the orchestrator's listings skip,
    and collect if a removal was cut short); the name to delete. Where it cannot be renamed,
    ``path`` itself."""
    head, _, name = path.rstrip("/").rpartition("/")
    gone = f"{head}/.removed-{name}"
    try:
        os.rename(path, gone)
    except OSError:
        return path
    return gone


def _destroy_quietly(cgroup: Any) -> None:
    try:
        cgroup.destroy()
    except Exception:
        pass
