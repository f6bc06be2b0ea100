"""A typed async (trio) client of the runtime, for the supervisor; ``runtime.testing`` fakes it.

    client = LocalRuntime("/var/lib/orchestrator/runtime")
    await client.create("web", bundle, CreateOptions(start=True, log_path=log))
    status = await client.wait("web", timeout=math.inf)   # ExitStatus
    await client.delete("web")

``LocalRuntime`` drives ``runtime.api.Runtime`` through the fork server, so nothing ever forks
the calling (multi-threaded) process. Short blocking calls (a few ms) run in trio's worker
threads and, once begun, finish even when the caller is cancelled: a launch is never half
known. Waiting for an exit holds no thread: it reads the exit record from the monitor's socket
(or exit.json); should the monitor die without one, the container's init may live on, and the
wait ends with the init (a pidfd), with ``exit_code`` None and the reason.

Deadlines: ``wait`` takes its own; ``stop`` waits ``timeout`` for the stop signal, then up to
``kill_timeout`` (default 10 s) after SIGKILL; ``delete(force=True)`` waits ``kill_timeout``
for the exit and then up to ``MONITOR_EXIT_TIMEOUT`` for the monitor's cleanup; ``attach``
gives the monitor ``CONNECT_TIMEOUT`` to answer; ``pause`` is bounded by the cgroup freezer's
own 5 s. ``exec`` waits for its command, however long (see ``LocalRuntime.exec``).

In ``runtime``, only this module and ``runtime.testing`` import trio: the monitor, the fork
server and ``runtime.api`` never do (monitors fork from the fork server, and would carry it).
"""

from __future__ import annotations

import builtins
import errno
import functools
import json
import os
import signal as _signal
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

import trio

from runtime import state as st
from runtime.errors import Error, NotFound, StateError

if TYPE_CHECKING:
    from runtime.api import Runtime

T = TypeVar("T")

Status = Literal["creating", "created", "running", "paused", "stopped"]
_STATUSES: dict[str, Status] = {
    "creating": "creating",
    "created": "created",
    "running": "running",
    "paused": "paused",
    "stopped": "stopped",
}

#: stop: how long the stop signal has before SIGKILL (Docker's default).
DEFAULT_STOP_TIMEOUT = 10.0
#: stop, delete(force): how long a SIGKILLed container may take to be reported ended.
KILL_TIMEOUT = 10.0
#: delete: how long the monitor may take to remove the cgroup after reporting the exit.
MONITOR_EXIT_TIMEOUT = 10.0
#: attach: how long the monitor may take to answer (it answers at once unless stuck).
CONNECT_TIMEOUT = 5.0

MONITOR_GONE = "the monitor ended without recording the exit"
STATE_REMOVED = "the container's state was removed before its exit was read"
UNREADABLE = "the exit record is unreadable"


# -- records -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExitStatus:
    """How a container ended. ``exit_code`` is 128 + signal when a signal killed it; it is None
    only when nobody recorded the exit, and then ``unknown_reason`` says why."""

    exit_code: int | None
    signal: int | None = None
    oom_killed: bool = False
    finished: str | None = None  # RFC 3339, UTC
    unknown_reason: str | None = None

    @classmethod
    def unknown(cls, reason: str) -> ExitStatus:
        return cls(exit_code=None, unknown_reason=reason)

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> ExitStatus:
        """From the monitor's exit record (exit.json, or the line sent to waiters)."""
        code, sig, finished = record.get("exit_code"), record.get("signal"), record.get("finished")
        if not isinstance(code, int):
            return cls.unknown(UNREADABLE)
        return cls(
            exit_code=code,
            signal=sig if isinstance(sig, int) else None,
            oom_killed=bool(record.get("oom_killed")),
            finished=finished if isinstance(finished, str) else None,
        )


@dataclass(frozen=True)
class ContainerInfo:
    """A container as ``state`` sees it. ``pid`` is None once it has stopped (the number may
    belong to another process by then); ``exit`` is set exactly when it has stopped."""

    id: str
    status: Status
    pid: int | None
    bundle: str
    annotations: Mapping[str, str]
    created: str | None
    started: str | None
    monitor_pid: int | None
    exit: ExitStatus | None
    log_path: str | None = None

    @classmethod
    def from_state(cls, state: st.ContainerState) -> ContainerInfo:
        record = state.record
        status = _STATUSES.get(state.status)
        if status is None:
            raise Error(f"container {state.id}: unknown status {state.status!r}")
        exit_status = None
        if status == "stopped":
            exit_status = (
                ExitStatus.from_record(state.exit)
                if state.exit is not None
                else ExitStatus.unknown(MONITOR_GONE)
            )
        raw_annotations = record.get("annotations") or {}
        annotations = {str(k): str(v) for k, v in dict(raw_annotations).items()}
        return cls(
            id=state.id,
            status=status,
            pid=(state.pid or None) if status != "stopped" else None,
            bundle=state.bundle,
            annotations=MappingProxyType(annotations),
            created=_str_or_none(record.get("created")),
            started=_str_or_none(record.get("started")),
            monitor_pid=_int_or_none(record.get("monitor_pid")),
            exit=exit_status,
            log_path=_str_or_none(record.get("log_path")),
        )


@dataclass(frozen=True)
class Stats:
    """Usage from the container's cgroup (None where the controller or file is missing, and
    every usage once the container has stopped: its cgroup is gone) and the limits its bundle
    set (None when unlimited or unset)."""

    memory_usage: int | None = None  # bytes now
    memory_max_usage: int | None = None  # bytes, high-water mark
    memory_limit: int | None = None  # bytes
    cpu_usage_ns: int | None = None  # CPU time of every task, nanoseconds
    pids_current: int | None = None
    pids_limit: int | None = None
    oom_kills: int | None = None  # processes the OOM killer killed in the cgroup


@dataclass(frozen=True)
class CreateOptions:
    """Everything ``create`` takes besides the id and the bundle (see runtime.monitor's
    LaunchOptions). The container's stdio never is the caller's: a supervisor has none to give."""

    start: bool = False  # run at once (no exec.fifo round trip) instead of create-only
    log_path: str | None = None  # JSON-lines log of the container's output; None: discarded
    log_max_size: int = 10 * 1024 * 1024
    log_max_files: int = 3
    cleanup_paths: tuple[str, ...] = ()  # removed, with the container's state, once it ends
    stdin: bool = False  # keep its stdin open for a feeder on the monitor's socket
    console_socket: str | None = None  # OCI --console-socket: where the terminal's master goes
    pid_file: str | None = None


@dataclass(frozen=True)
class ExecRequest:
    """A process to run in a running container (Docker's ``exec`` options)."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()  # KEY=VALUE, added to (or replacing) the container's
    user: str | None = None  # user[:group]; default: the container's
    cwd: str | None = None  # default: the container's
    tty: bool = False  # a terminal from the container's devpts, relayed to the stdio given
    interactive: bool = False  # with tty: our stdin goes to the terminal
    window: tuple[int, int] = (24, 80)  # rows, columns


# -- the interface -------------------------------------------------------------------------------


class RuntimeClient(Protocol):
    """What the supervisor needs of a runtime. Every method raises runtime.errors: NotFound
    for an unknown id, StateError for an operation the container's state forbids (the rules
    of ``runtime.state.ALLOWED``), AlreadyExists for a taken id, Error for the rest."""

    async def create(
        self,
        container_id: str,
        bundle: str | os.PathLike[str],
        options: CreateOptions | None = None,
    ) -> ContainerInfo:
        """Create (or with ``options.start``, run) a container from an OCI bundle."""
        ...

    async def start(self, container_id: str) -> None: ...

    async def state(self, container_id: str) -> ContainerInfo: ...

    async def list(self) -> builtins.list[ContainerInfo]:
        """Every container, by id."""
        ...

    async def kill(self, container_id: str, signal: int = _signal.SIGTERM) -> None: ...

    async def stop(
        self, container_id: str, timeout: float = DEFAULT_STOP_TIMEOUT, signal: int | None = None
    ) -> ExitStatus:
        """Send ``signal`` (default: the image's stop signal, else SIGTERM), wait ``timeout``
        seconds, then SIGKILL and wait up to ``KILL_TIMEOUT``. A paused container is resumed
        first; a stopped one returns its exit at once."""
        ...

    async def delete(self, container_id: str, force: bool = False) -> None:
        """Remove a created or stopped container; ``force`` kills a running or paused one
        first."""
        ...

    async def pause(self, container_id: str) -> None: ...

    async def resume(self, container_id: str) -> None: ...

    async def stats(self, container_id: str) -> Stats: ...

    async def exec(
        self,
        container_id: str,
        request: ExecRequest,
        stdio: tuple[int, int, int] = (0, 1, 2),
        *,
        limiter: trio.CapacityLimiter | None = None,
    ) -> int:
        """Run ``request`` in the running container with ``stdio``; its exit status.
        ``limiter``: where its thread comes from, if not trio's default limiter."""
        ...

    async def attach(
        self, container_id: str, rows: int = 24, columns: int = 80
    ) -> trio.abc.HalfCloseableStream:
        """A stream joined to the container's terminal: what it receives is the terminal's
        output (from the moment of the call), what it sends is typed in; it ends with the
        container."""
        ...

    async def wait(self, container_id: str, timeout: float) -> ExitStatus | None:
        """The container's exit once it has ended, or None after ``timeout`` seconds
        (``math.inf``: no limit). Many may wait on one container at once."""
        ...


# -- the real runtime ----------------------------------------------------------------------------


class LocalRuntime:
    """``RuntimeClient`` over ``runtime.api.Runtime(root, fork_server=True)``."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        cgroup_root: str = "/sys/fs/cgroup",
        cgroup_parent: str | None = None,
        kill_timeout: float = KILL_TIMEOUT,
    ) -> None:
        """Reads the cgroup layout once, here (blocking, a few ms). ``cgroup_parent``: by
        default ``runtime.cgroups.default_parent()``."""
        from runtime.api import Runtime

        self.runtime: Runtime = Runtime(
            root, cgroup_root=cgroup_root, cgroup_parent=cgroup_parent, fork_server=True
        )
        self.root = self.runtime.root
        self.kill_timeout = kill_timeout
        self._watches: dict[tuple[int, int], _ExitWatch] = {}

    async def _call(self, fn: Callable[[], T]) -> T:
        # Not abandoned on cancel: the call completes and its effect is known (a launch
        # abandoned half way would leave a container nobody knows of).
        return await trio.to_thread.run_sync(fn)

    # lifecycle -------------------------------------------------------------------------------

    async def create(
        self,
        container_id: str,
        bundle: str | os.PathLike[str],
        options: CreateOptions | None = None,
    ) -> ContainerInfo:
        o = options or CreateOptions()
        launch = self.runtime.run if o.start else self.runtime.create
        created = await self._call(
            lambda: launch(
                container_id,
                bundle,
                log_path=o.log_path,
                pid_file=o.pid_file,
                log_max_size=o.log_max_size,
                log_max_files=o.log_max_files,
                cleanup_paths=o.cleanup_paths,
                console_socket=o.console_socket,
                stdin=o.stdin,
            )
        )
        return ContainerInfo.from_state(created)

    async def start(self, container_id: str) -> None:
        await self._call(lambda: self.runtime.start(container_id))

    async def state(self, container_id: str) -> ContainerInfo:
        return ContainerInfo.from_state(await self._call(lambda: self.runtime.state(container_id)))

    async def kill(self, container_id: str, signal: int = _signal.SIGTERM) -> None:
        await self._call(lambda: self.runtime.kill(container_id, signal))

    async def stop(
        self, container_id: str, timeout: float = DEFAULT_STOP_TIMEOUT, signal: int | None = None
    ) -> ExitStatus:
        info = await self.state(container_id)
        if info.exit is not None:
            return info.exit
        if info.status == "paused":
            await self._resume_quietly(container_id)
        stop_signal = signal if signal is not None else stop_signal_of(info.annotations)
        await self._kill_quietly(container_id, stop_signal)
        ended = await self.wait(container_id, timeout)
        if ended is None:
            await self._kill_quietly(container_id, _signal.SIGKILL)
            ended = await self.wait(container_id, self.kill_timeout)
        if ended is None:
            raise Error(f"container {container_id} did not end {self.kill_timeout} s after SIGKILL")
        return ended

    async def delete(self, container_id: str, force: bool = False) -> None:
        info = await self.state(container_id)
        if info.status in ("running", "paused") and not force:
            raise StateError(container_id, info.status, "delete")
        if info.exit is None:
            # Done here rather than in Runtime.delete, which would hold a thread while waiting.
            if info.status == "paused":
                await self._resume_quietly(container_id)
            await self._kill_quietly(container_id, _signal.SIGKILL)
            if await self.wait(container_id, self.kill_timeout) is None:
                raise Error(f"container {container_id} did not end after SIGKILL")
        await self._monitor_gone(container_id, MONITOR_EXIT_TIMEOUT)
        await self._call(lambda: self.runtime.delete(container_id, force))

    async def pause(self, container_id: str) -> None:
        await self._call(lambda: self.runtime.pause(container_id))

    async def resume(self, container_id: str) -> None:
        await self._call(lambda: self.runtime.resume(container_id))

    async def stats(self, container_id: str) -> Stats:
        return await self._call(lambda: self._stats_blocking(container_id))

    async def exec(
        self,
        container_id: str,
        request: ExecRequest,
        stdio: tuple[int, int, int] = (0, 1, 2),
        *,
        limiter: trio.CapacityLimiter | None = None,
    ) -> int:
        """``Runtime.exec`` in a worker thread (the fork server makes the process that enters
        the container: this one never forks). No deadline: a cancelled caller stops waiting
        at once, and the command goes on (its thread with it) until it ends. That thread holds its ``limiter`` token until then: a
        caller whose commands may hang (healthchecks) passes a limiter of its own, so that they
        never take the threads of every other call."""
        call = functools.partial(self._exec_blocking, container_id, request, stdio)
        return await trio.to_thread.run_sync(call, abandon_on_cancel=True, limiter=limiter)

    def _exec_blocking(
        self, container_id: str, request: ExecRequest, stdio: tuple[int, int, int]
    ) -> int:
        return self.runtime.exec(
            container_id,
            request.args,
            env=request.env,
            user=request.user,
            cwd=request.cwd,
            stdio=stdio,
            tty=request.tty,
            interactive=request.interactive,
            window=request.window,
        )

    async def attach(
        self, container_id: str, rows: int = 24, columns: int = 80
    ) -> trio.SocketStream:
        st.validate_id(container_id)
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                stream = await self._connect_monitor(container_id)
                try:
                    await stream.send_all(f"attach {rows} {columns}\n".encode())
                    # Byte by byte: what follows the answer is the terminal's output, ours.
                    answer = b""
                    while not answer.endswith(b"\n"):
                        chunk = await stream.receive_some(1)
                        if not chunk:
                            raise Error(
                                f"container {container_id} has no terminal to attach to, "
                                "or it ended"
                            )
                        answer += chunk
                except BaseException:
                    await trio.aclose_forcefully(stream)
                    raise
        except trio.TooSlowError:
            raise Error(
                f"container {container_id}: its monitor did not answer in {CONNECT_TIMEOUT} s"
            ) from None
        return stream

    async def _connect_monitor(self, container_id: str) -> trio.SocketStream:
        while True:
            try:
                dirfd, address = _socket_address(self.root / container_id)
            except FileNotFoundError:
                raise NotFound(f"container {container_id} does not exist") from None
            try:
                sock = await _connect(address)
            finally:
                os.close(dirfd)  # (only needed to reach the socket)
            if sock is not None:
                return trio.SocketStream(sock)
            # Nobody listens: the container has stopped, or it is so new that its monitor
            # does not listen yet.
            if (await self.state(container_id)).status == "stopped":
                raise StateError(container_id, "stopped", "attach to")
            await trio.sleep(0.005)

    async def list(self) -> builtins.list[ContainerInfo]:
        states = await self._call(self.runtime.list)
        return [ContainerInfo.from_state(s) for s in states]

    # waiting ---------------------------------------------------------------------------------

    async def wait(self, container_id: str, timeout: float) -> ExitStatus | None:
        """Holds no thread: one connection to the container's monitor, shared by every waiter
        of this client on that container, on which the monitor writes the exit record. Each
        container waited on costs two descriptors (its directory and the connection) while
        waited on: thousands of waits need RLIMIT_NOFILE above the usual 1024."""
        if not timeout >= 0:
            raise ValueError(f"timeout must be 0 or more, not {timeout}")
        watch = self._join_watch(container_id)
        try:
            if watch.result is None:
                watch.result = _read_exit_file(watch.dirfd)  # (even with timeout 0)
            if watch.result is not None:
                return watch.result
            with trio.move_on_after(timeout):
                async with watch.lock:  # one reader at a time; the others find the result
                    if watch.result is None:
                        watch.result = await watch.read_exit()
                return watch.result
            return None
        finally:
            watch.users -= 1
            if not watch.users:
                del self._watches[watch.key]
                watch.close()

    def _join_watch(self, container_id: str) -> _ExitWatch:
        st.validate_id(container_id)
        try:
            dirfd, address = _socket_address(self.root / container_id)
        except FileNotFoundError:
            raise NotFound(f"container {container_id} does not exist") from None
        try:
            info = os.fstat(dirfd)
            # While a watch holds its dirfd, no other directory can have that inode: a
            # container deleted and made again under the same id gets its own watch.
            key = (info.st_dev, info.st_ino)
            watch = self._watches.get(key)
            if watch is None:
                os.stat("state.json", dir_fd=dirfd)  # created yet (what state() demands)?
                watch = self._watches[key] = _ExitWatch(key, dirfd, address)
            else:
                os.close(dirfd)
        except FileNotFoundError:
            os.close(dirfd)
            raise NotFound(f"container {container_id} does not exist") from None
        except BaseException:
            os.close(dirfd)
            raise
        watch.users += 1
        return watch

    # helpers ---------------------------------------------------------------------------------

    async def _kill_quietly(self, container_id: str, sig: int) -> None:
        try:
            await self.kill(container_id, sig)
        except StateError:
            pass  # it ended meanwhile

    async def _resume_quietly(self, container_id: str) -> None:
        try:
            await self.resume(container_id)
        except StateError:
            pass  # resumed or ended meanwhile

    async def _monitor_gone(self, container_id: str, timeout: float) -> None:
        """Wait (on a pidfd, no thread) until the monitor has finished its cleanup."""

        def open_monitor() -> int | None:
            record = self.runtime.state(container_id).record
            pid = int(record.get("monitor_pid") or 0)
            if pid <= 0:
                return None
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                return None
            # Holding the pidfd pins the process; its start time proves it is the monitor.
            if st.process_start_time(pid) != record.get("monitor_start"):
                os.close(pidfd)
                return None
            return pidfd

        pidfd = await self._call(open_monitor)
        if pidfd is None:
            return
        try:
            with trio.move_on_after(timeout):
                await trio.lowlevel.wait_readable(pidfd)
        finally:
            os.close(pidfd)

    def _stats_blocking(self, container_id: str) -> Stats:
        from runtime.cgroups.base import Stats as CgroupStats

        current = self.runtime.state(container_id)  # NotFound
        usage: CgroupStats = self.runtime.stats(container_id)
        memory_limit, pids_limit = _limits(current.bundle)
        return Stats(
            memory_usage=usage.memory_usage,
            memory_max_usage=usage.memory_max_usage,
            memory_limit=memory_limit,
            cpu_usage_ns=usage.cpu_usage_ns,
            pids_current=usage.pids_current,
            pids_limit=pids_limit,
            oom_kills=usage.oom_kills,
        )


class _ExitWatch:
    """One container's exit, as its monitor reports it, shared by this client's waiters."""

    def __init__(self, key: tuple[int, int], dirfd: int, address: str) -> None:
        self.key = key
        self.dirfd = dirfd  # holds the directory: the short socket path goes through it
        self.address = address
        self.sock: trio.socket.SocketType | None = None
        self.received = b""
        self.monitor_gone = False
        self.result: ExitStatus | None = None
        self.lock = trio.Lock()
        self.users = 0

    async def read_exit(self) -> ExitStatus:
        # A reader cancelled half way leaves the connection and what it read to the next one.
        if not self.monitor_gone:
            line = await self._line_from_monitor()
            if line is not None:
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if not isinstance(record, dict):
                    return ExitStatus.unknown(UNREADABLE)
                return ExitStatus.from_record(record)
            self.monitor_gone = True
        recorded = _read_exit_file(self.dirfd)
        if recorded is not None:
            return recorded
        # The monitor died without a record, and its container may well outlive it: the end
        # of the init is all there is left to wait for (its exit code is lost).
        await self._init_gone()
        return _read_exit_file(self.dirfd) or ExitStatus.unknown(self._why_unknown())

    async def _line_from_monitor(self) -> bytes | None:
        """The exit record's line, or None once the monitor is gone without sending one."""
        while self.sock is None:
            self.sock = await _connect(self.address)
            if self.sock is not None:
                break
            # Nobody listens: the monitor recorded the exit and left (exit.json is written
            # before the socket goes), or died, or does not listen yet (a container still
            # being created: state.json comes just before the socket).
            if _read_exit_file(self.dirfd) is not None or not self._monitor_alive():
                return None
            await trio.sleep(0.005)
        while b"\n" not in self.received:
            try:
                chunk = await self.sock.recv(4096)
            except OSError as exc:
                if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                    raise
                chunk = b""
            if not chunk:
                return None
            self.received += chunk
        return self.received.partition(b"\n")[0]

    async def _init_gone(self) -> None:
        record = _read_json_at(self.dirfd, "state.json") or {}
        pid = record.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            return
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        try:
            # Holding the pidfd pins the process; its start time proves it is the init.
            if st.process_start_time(pid) == record.get("pid_start"):
                await trio.lowlevel.wait_readable(pidfd)  # readable once it has exited
        finally:
            os.close(pidfd)

    def _monitor_alive(self) -> bool:
        record = _read_json_at(self.dirfd, "state.json") or {}
        pid = record.get("monitor_pid")
        if not isinstance(pid, int) or pid <= 0:
            return False
        return st.process_start_time(pid) == record.get("monitor_start")

    def _why_unknown(self) -> str:
        return STATE_REMOVED if os.fstat(self.dirfd).st_nlink == 0 else MONITOR_GONE

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        os.close(self.dirfd)


# -- helpers -------------------------------------------------------------------------------------


def _socket_address(directory: Path) -> tuple[int, str]:
    from runtime.monitor_client import socket_address

    return socket_address(directory)


async def _connect(address: str) -> trio.socket.SocketType | None:
    """A connection to a monitor's socket; None when nobody listens there.

    Not trio's ``connect``: on a unix socket whose listen backlog is full, connect(2) fails
    with EAGAIN and nothing is in progress, which trio would take for success."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.setblocking(False)
    try:
        while True:
            try:
                sock.connect(address)
                break
            except BlockingIOError:  # the backlog is full; the monitor accepts soon
                await trio.sleep(0.002)
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                return None
    except BaseException:
        sock.close()
        raise
    return trio.socket.from_stdlib_socket(sock)


def _read_json_at(dirfd: int, name: str) -> dict[str, object] | None:
    """A small JSON file of the container's directory (read on the trio thread: microseconds
    from the page cache), or None when it is missing or unreadable."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dirfd)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_exit_file(dirfd: int) -> ExitStatus | None:
    try:
        os.stat("exit.json", dir_fd=dirfd)
    except FileNotFoundError:
        return None
    record = _read_json_at(dirfd, "exit.json")
    return ExitStatus.from_record(record) if record is not None else ExitStatus.unknown(UNREADABLE)


def stop_signal_of(annotations: Mapping[str, str]) -> int:
    """The image's stop signal (``org.opencontainers.image.stopSignal``), else SIGTERM."""
    from runtime.spec import parse_signal

    name = annotations.get("org.opencontainers.image.stopSignal")
    try:
        return parse_signal(name) if name else _signal.SIGTERM
    except ValueError:
        return _signal.SIGTERM


def _limits(bundle: str) -> tuple[int | None, int | None]:
    """(memory limit, pids limit) from the bundle's config; None when unlimited or unknown."""
    from runtime.cgroups.resources import Resources
    from runtime.spec import load_bundle

    try:
        resources = Resources.from_oci(load_bundle(bundle).resources)
    except (Error, OSError, ValueError, TypeError):
        return None, None

    def positive(value: int | None) -> int | None:
        return value if value is not None and value > 0 else None

    return positive(resources.memory_limit), positive(resources.pids_limit)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "KILL_TIMEOUT",
    "MONITOR_EXIT_TIMEOUT",
    "ContainerInfo",
    "CreateOptions",
    "ExecRequest",
    "ExitStatus",
    "LocalRuntime",
    "RuntimeClient",
    "Stats",
    "Status",
    "stop_signal_of",
]

if TYPE_CHECKING:

    def _conforms(client: LocalRuntime) -> RuntimeClient:
        return client  # mypy checks that LocalRuntime implements the protocol
