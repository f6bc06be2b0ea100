"""The per-container monitor: parent and subreaper of the container's init.

``spawn`` forks the monitor from the calling process (which must be single-threaded: a CLI, the
benchmark, or the fork server). The monitor detaches (own session, stdio on /dev/null), becomes
a subreaper and forks a short-lived helper that does the start: a setup child makes the cgroup
and forks the init into a new PID namespace; the helper reports the init's pid (or the error) to
the caller and hands the watch over. From then on the monitor only watches (``_watch``): it
copies the container's output into the JSON log, serves waiters and attached clients on
``monitor.sock``, and when the init ends records ``exit.json`` atomically (exit code, signal,
OOM kill), tells the waiters and removes the cgroup. Pre-made containers (runtime.pool) use the
same watch. The container never depends on the process that created it: that process may exit,
crash or be upgraded.

One module on purpose: split in two (start, watch), each monitor cost 35 KiB more.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # (the C module: see become_monitor)
import gc
import json
import os
import select
import shutil
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from runtime import init, userns
from runtime.cgroups import open_manager
from runtime.cgroups.resources import Resources
from runtime.channel import Channel, pipe_pair, socket_pair
from runtime.errors import AlreadyExists, SetupError
from runtime.linux import syscalls as sc
from runtime.logs import LogWriter, timestamp
from runtime.protocol import ATTACH, ATTACHED, MONITOR_SOCKET, STDIN
from runtime.spec import ContainerConfig
from runtime.state import process_start_time, write_json_atomic
from runtime.trace import mark

SOCKET_NAME = MONITOR_SOCKET
EXITED_DIR = ".exited"  # exit records of removed (--rm) containers, in the runtime root


@dataclass(frozen=True)
class LaunchOptions:
    create_only: bool = False  # wait on exec.fifo for `start`
    log_path: str | None = None
    log_max_size: int = 10 * 1024 * 1024
    log_max_files: int = 3
    cgroup_root: str = "/sys/fs/cgroup"
    cgroup_parent: str = "orchestrator"
    cgroup_version: int | None = None  # detected once by the caller, not in every monitor
    inherit_stdio: bool = False  # the container writes to our stdio instead of the log
    cleanup_paths: tuple[str, ...] = ()  # removed with the container's state once it ends (--rm)
    console_socket: str | None = None  # where to send the terminal's master (OCI --console-socket)
    stdin: bool = False  # keep the container's stdin open for clients that attach with "stdin"


@dataclass(frozen=True)
class Launched:
    monitor_pid: int
    pid: int


def socket_address(directory: Path) -> tuple[int, str]:
    """(dirfd, short path) to reach monitor.sock whatever the length of the state path."""
    dirfd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return dirfd, f"/proc/self/fd/{dirfd}/{SOCKET_NAME}"


def prepare_directory(container_id: str, directory: Path, options: LaunchOptions) -> None:
    """The container's state directory (and exec FIFO): the id is taken once this succeeds."""
    try:
        directory.mkdir(parents=False)
    except FileExistsError:
        raise AlreadyExists(f"container {container_id} already exists") from None
    try:
        if options.create_only:
            os.mkfifo(directory / "exec.fifo", 0o600)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


# A loaded config, or a function that loads it: the fork server hands over the raw request
# and lets the monitor's setup child parse it, so that the server's own pages stay untouched
# (every page it writes after a fork becomes a private copy in each monitor).
ConfigSource = ContainerConfig | Callable[[], ContainerConfig]
MonitorArgs = tuple[str, ConfigSource, Path, LaunchOptions]


def fork_monitor(
    arguments: Callable[[], MonitorArgs],
    report: Channel,
    stdio: tuple[int, int, int] | None = None,
    close_in_child: tuple[int, ...] = (),
) -> int:
    """Fork the monitor; it reports ``{"pid": N}`` or ``{"error": "..."}`` on ``report``.

    ``arguments`` runs in the child and gives (id, config, state directory, options). The
    calling process must be single-threaded. ``stdio``, when given, is what the container writes
    to instead of the log (the caller's own stdio, for ``runtime run`` in the foreground).
    """
    mark("spawn")
    monitor_pid = os.fork()
    if monitor_pid == 0:
        # Everything inherited is left to the collector's permanent generation: a collection
        # would otherwise touch, and so copy, every page shared with the parent.
        gc.freeze()
        for fd in close_in_child:
            os.close(fd)
        try:
            container_id, config, directory, options = arguments()
            inherited = tuple(os.dup(fd) for fd in stdio) if stdio else ()  # before /dev/null
            run_monitor(
                "orc-mon",
                lambda to_monitor, devnull: _start_container(
                    container_id, config, directory, options, report, inherited, to_monitor, devnull
                ),
                helper_only=(report.fd, *inherited),
            )
        except BaseException as exc:  # the caller hears of it through the report channel
            try:
                report.send(error=init.describe(exc))
            except BaseException:
                pass
        finally:
            os._exit(1)
    return monitor_pid


def spawn(
    container_id: str, config: ContainerConfig, directory: Path, options: LaunchOptions
) -> Launched:
    """Fork the monitor from this process and wait until the container is created."""
    prepare_directory(container_id, directory, options)
    try:
        report_r, report_w = pipe_pair()
        stdio = (0, 1, 2) if options.inherit_stdio else None
        monitor_pid = fork_monitor(
            lambda: (container_id, config, directory, options), report_w, stdio
        )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    report_w.close()
    try:
        message = report_r.receive()
    finally:
        report_r.close()
    return finish_launch(directory, message, monitor_pid)


def finish_launch(
    directory: Path, message: dict[str, Any] | None, monitor_pid: int | None
) -> Launched:
    if not message or "pid" not in message:
        if monitor_pid:
            _reap(monitor_pid)
        shutil.rmtree(directory, ignore_errors=True)
        error = (message or {}).get("error") or "container setup failed: the monitor died"
        raise SetupError(error)
    return Launched(int(message.get("monitor_pid") or monitor_pid or 0), int(message["pid"]))


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


def _start_container(
    container_id: str,
    config: ConfigSource,
    directory: Path,
    options: LaunchOptions,
    report: Channel,
    inherited: tuple[int, ...],
    to_monitor: Channel,
    devnull: int,
    close_after_report: tuple[int, ...] = (),
) -> None:
    """(the monitor's helper) The ordinary start: a setup child makes the init."""
    try:
        outputs = Outputs(stdin=options.stdin)
        init_stdio = (
            (inherited[0], inherited[1], inherited[2]) if inherited else outputs.for_init(devnull)
        )
        monitor_pid = os.getppid()
        setup_pid, from_setup = fork_setup(
            lambda to_helper: _setup(
                container_id, config, directory, options, to_helper, init_stdio, monitor_pid
            ),
            close_in_child=(*outputs.monitor_side(), report.fd, to_monitor.fd),
        )
        outputs.close_theirs()
        for fd in inherited:
            os.close(fd)
        take_over(
            container_id,
            directory,
            options,
            report,
            setup_pid,
            from_setup,
            outputs,
            to_monitor,
            close_after_report,
        )
    except BaseException as exc:
        try:
            report.send(error=init.describe(exc))
        finally:
            os._exit(1)


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


def fork_setup(
    work: Callable[[Channel], None], close_in_child: tuple[int, ...]
) -> tuple[int, Channel]:
    """Fork the short-lived setup child running ``work(to_monitor)``; it reports on the channel
    returned (an error message if ``work`` raises)."""
    from_setup, to_monitor = socket_pair()
    setup_pid = os.fork()
    if setup_pid == 0:
        try:
            for fd in close_in_child:
                os.close(fd)
            from_setup.close()
            work(to_monitor)
        except BaseException as exc:
            try:
                to_monitor.send(error=init.describe(exc))
            except BaseException:
                pass
        finally:
            os._exit(0)
    to_monitor.close()
    return setup_pid, from_setup


def take_over(
    container_id: str,
    directory: Path,
    options: LaunchOptions,
    report: Channel,
    setup_pid: int,
    from_setup: Channel,
    outputs: Outputs,
    to_monitor: Channel,
    close_after_report: tuple[int, ...] = (),
) -> NoReturn:
    """(the monitor's helper) Take the init over from the setup child (or a pre-made init),
    tell the caller, and hand the watch to the monitor; then exit. ``close_after_report`` are
    closed once the caller knows (the pool's server waits for it)."""
    listener = _listen(directory)  # while the setup child works
    message = from_setup.receive()
    terminal = from_setup.take_fds()  # the terminal's master and slave, if one was asked for
    # (and last, the init's mount namespace: held until the exit is recorded)
    mount_ns = terminal.pop() if message and message.get("mount_ns") and terminal else None
    console = terminal[0] if terminal else None
    console_slave = terminal[1] if len(terminal) > 1 else None
    from_setup.close()
    cgroup = _CgroupHandle(
        container_id, options.cgroup_root, options.cgroup_parent, options.cgroup_version
    )
    if not message or "pid" not in message:
        _reap(setup_pid)
        # The setup child may have died, or lost the privilege to clean up (in a user namespace).
        cgroup.remove_all()
        raise SetupError(
            (message or {}).get("error") or "container setup failed: the setup process died"
        )
    pid = int(message["pid"])

    def give_up() -> None:
        os.kill(pid, signal.SIGKILL)
        _reap(setup_pid)
        _reap(pid)
        cgroup.remove_all()

    if "record" in message:
        try:
            # The setup child could not write it: it is unprivileged in a user namespace.
            write_json_atomic(directory / "state.json", message["record"])
        except BaseException:
            give_up()
            raise
    if console is not None and options.console_socket:
        try:
            send_console(options.console_socket, console)
        except BaseException:
            give_up()
            raise
        os.close(console)
        console = None
        if console_slave is not None:
            os.close(console_slave)
            console_slave = None
    # The monitor watches from now on: it has the listener before the caller hears of us.
    stdin_w = outputs.stdin_writer()
    watch, extra = watch_message(
        container_id, pid, directory, options, stdin_w, console, console_slave, mount_ns
    )
    to_monitor.send(
        watch=watch,
        fds=(listener.fileno(), *outputs.ours(), *extra),
    )
    mark("reported")
    report.send(pid=pid, monitor_pid=os.getppid())
    report.close()
    for fd in close_after_report:
        os.close(fd)
    _reap(setup_pid)  # it ends once it has said the init's pid
    os._exit(0)


def watch_message(
    container_id: str,
    pid: int,
    directory: Path,
    options: LaunchOptions,
    stdin_w: int | None,
    console: int | None,
    console_slave: int | None,
    mount_ns: int | None,
) -> tuple[dict[str, Any], list[int]]:
    """What the monitor needs to watch a container (``watch_container``), and the descriptors
    to send along after the listener and the output pipes."""
    extra = [fd for fd in (stdin_w, console, console_slave, mount_ns) if fd is not None]
    return {
        "id": container_id,
        "pid": pid,
        "directory": str(directory),
        "log": [options.log_path, options.log_max_size, options.log_max_files]
        if options.log_path
        else None,
        "cgroup": [options.cgroup_root, options.cgroup_parent, options.cgroup_version],
        "cleanup_paths": list(options.cleanup_paths),
        "stdin": stdin_w is not None,
        "console": console is not None,
        "console_slave": console_slave is not None,
        "mount_ns": mount_ns is not None,
    }, extra


class _CgroupHandle:
    """The container's cgroup as the monitor needs it at the end; made only then."""

    def __init__(self, container_id: str, root: str, parent: str, version: int | None) -> None:
        self.container_id = container_id
        self.where = (root, parent, version)
        self._manager: Any = None

    def manager(self) -> Any:
        if self._manager is None:
            root, parent, version = self.where
            self._manager = open_manager(
                self.container_id, root=root, parent=parent, version=version
            )
        return self._manager

    def oom_killed(self) -> bool:
        return bool(self.manager().oom_killed())

    def pids(self) -> list[int]:
        return list(self.manager().pids())

    def kill_all(self, sig: int) -> None:
        self.manager().kill_all(sig)

    def destroy(self) -> None:
        self.manager().destroy()

    def remove_all(self) -> None:
        try:
            self.manager().remove()
        except Exception:
            pass


def _setup(
    container_id: str,
    source: ConfigSource,
    directory: Path,
    options: LaunchOptions,
    to_monitor: Channel,
    init_stdio: tuple[int, int, int],
    monitor_pid: int | None = None,
) -> None:
    """The short-lived setup child: cgroup, the init, state.json; reports the init's pid to the
    monitor's helper and exits, leaving the init to the monitor (a subreaper)."""
    config = source if isinstance(source, ContainerConfig) else source()
    try:
        resources = Resources.from_oci(config.resources)
    except (ValueError, TypeError) as exc:
        raise SetupError(f"config.json: linux.resources: {exc}") from None
    cgroup = open_manager(
        container_id,
        root=options.cgroup_root,
        parent=options.cgroup_parent,
        version=options.cgroup_version,
    )
    pid = 0
    try:
        from_init, to_setup = socket_pair()
        from_setup, to_init = pipe_pair()
        fifo = str(directory / "exec.fifo") if options.create_only else None
        new_userns = config.clone_flags & sc.CLONE_NEWUSER
        mark("cgroup-create")
        cgroup.create()
        cgroup.set(resources)
        if new_userns:
            # Join the cgroup ourselves while still privileged on the host: the init inherits it.
            cgroup.add_process(os.getpid())
            config, fifo = userns.stage_host_paths(config, fifo)
            userns.enter(config)
        if config.clone_flags & sc.CLONE_NEWPID:
            # Our next child becomes PID 1 of a new namespace (owned by the user namespace, when
            # there is one, so that it may mount its /proc); we ourselves stay outside it.
            sc.unshare(sc.CLONE_NEWPID)
        mark("fork-init")
        pid = os.fork()
        if pid == 0:
            try:
                to_monitor.close()
                from_init.close()
                to_init.close()
                init.run(config, to_setup, from_setup, init_stdio, fifo)
            finally:
                os._exit(1)
        for fd in init_stdio:
            if fd > 2:
                os.close(fd)
        to_setup.close()
        from_setup.close()
        # The init builds its root filesystem meanwhile; it waits for "go" before it may run
        # anything of the user's or enter its cgroup namespace.
        mark("cgroup-add")
        if not new_userns:
            cgroup.add_process(pid)
        mark("cgroup-added")
        to_init.send(go=True)
        reply = from_init.receive()
        if not reply or not reply.get("ready"):
            _reap(pid)
            pid = 0
            raise SetupError((reply or {}).get("error") or "container setup failed: init died")
        mark("init-ready")
        record = state_record(container_id, config, options, pid, cgroup, monitor_pid=monitor_pid)
        if not new_userns:
            write_json_atomic(directory / "state.json", record)
    except BaseException:
        if pid:
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
        _destroy_quietly(cgroup)
        raise
    fds = tuple(from_init.take_fds())  # the terminal's master and slave, the mount namespace
    extra = {"record": record} if new_userns else {}
    to_monitor.send(pid=pid, fds=fds, mount_ns=bool(reply.get("mount_ns")), **extra)
    for fd in fds:
        os.close(fd)


def state_record(
    container_id: str,
    config: ContainerConfig,
    options: LaunchOptions,
    pid: int,
    cgroup: Any,
    starts: tuple[int | None, int | None] | None = None,
    monitor_pid: int | None = None,
) -> dict[str, Any]:
    """What state.json holds (written by the setup child, the monitor's child, or by a
    pre-made init). ``starts``: the start times of the init and the monitor, when known."""
    now = timestamp()
    if monitor_pid is None:
        monitor_pid = os.getppid()
    if starts is None:
        starts = (process_start_time(pid), process_start_time(monitor_pid))
    return {
        "id": container_id,
        "pid": pid,
        "pid_start": starts[0],
        "bundle": str(config.bundle),
        "annotations": config.annotations,
        "created": now,
        "started": None if options.create_only else now,
        "monitor_pid": monitor_pid,
        "monitor_start": starts[1],
        "cgroup": container_id,
        "freezer_state": _freezer_file(cgroup),
        "log_path": options.log_path,
    }


def _freezer_file(cgroup: Any) -> str | None:
    path = getattr(cgroup, "freezer_state_file", None)
    return str(path) if path else None


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


def send_console(path: str, master: int) -> None:
    """Hand the terminal's master to ``path`` (runc's --console-socket protocol)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
        socket.send_fds(sock, [b"console"], [master])
    except OSError as exc:
        raise SetupError(f"--console-socket {path}: {exc.strerror}") from None
    finally:
        sock.close()


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
    if cleanup_paths:
        # The exit outlives the container's state, for whoever asks after it is gone.
        try:
            tombstones = directory.parent / EXITED_DIR
            tombstones.mkdir(exist_ok=True)
            write_json_atomic(tombstones / f"{directory.name}.json", record)
        except OSError:
            pass
        for path in cleanup_paths:
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(directory, ignore_errors=True)
    mark("finished")
    os._exit(0)


def _destroy_quietly(cgroup: Any) -> None:
    try:
        cgroup.destroy()
    except Exception:
        pass
