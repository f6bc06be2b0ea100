"""Pre-made containers: the fork server keeps a monitor and its init ready.

Most of a container start does not depend on the container: forking the monitor and the init;
the PID namespace and the default mount, uts, ipc, net and cgroup namespaces; moving the init
into a cgroup, which on cgroup v1 waits for an RCU grace period; and mounting /proc, /dev and
/sys (runtime.premount). A *shell* does all of that ahead of time, in a cgroup named
``_pool-<hex>``.

At a launch request the fork server passes the request and the client's connection straight to
the shell's init, which does the start itself: it parses the config, renames its cgroup to the
container's id (a rename moves no process, so it waits for nothing), sets the limits (through
descriptors of the cgroup, valid under any name), writes state.json, builds the root
filesystem, pivots, hands the watch to its monitor (the listener socket, the terminal, its
mount namespace), answers the client and execs. The monitor only watches from then on (see
runtime.monitor). Then the fork server makes the next shell.

A request a shell cannot serve (other namespaces, a user namespace, inherited stdio, a cgroup
name already taken) falls back to the ordinary path in the same monitor. Only cgroup v1 can
rename a cgroup, so this pool exists only there (runtime.pool2 is v2's). A shell whose server
goes away cleans up after itself; one killed with its server is collected by the next server
(``collect_stale``).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import secrets
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from runtime import hooks, init, launch, monitor, premount, rootfs, seccomp
from runtime.cgroups import open_manager
from runtime.cgroups.resources import Resources
from runtime.channel import Channel, pipe_pair, socket_pair
from runtime.errors import SetupError
from runtime.launch import LaunchOptions
from runtime.linux import syscalls as sc
from runtime.monitor import Outputs
from runtime.spec import ContainerConfig, parse_config
from runtime.state import process_start_time, write_json_atomic
from runtime.trace import mark

POOL_PREFIX = "_pool-"
# A config the shell's init fits: exactly the default namespaces, all new.
POOL_CLONE_FLAGS = init.POOL_NAMESPACES | sc.CLONE_NEWPID


class Shell:
    """The fork server's handle on one pre-made container."""

    def __init__(self, pid: int, control: socket.socket) -> None:
        self.pid = pid
        self.control = control
        self.pidfd = os.pidfd_open(pid)
        self.requests = -1  # the socket on which the init takes its request
        self.init_pid = 0

    def prepared(self) -> bool:
        """Read what the shell said once it was made: ``ready INIT``, with the init's request
        socket. False if it gave up."""
        try:
            said, fds, _, _ = socket.recv_fds(self.control, 64, 1, socket.MSG_CMSG_CLOEXEC)
        except OSError:
            return False
        words = said.split()
        if len(fds) != 1 or len(words) != 2 or words[0] != b"ready":
            for fd in fds:
                os.close(fd)
            return False
        self.requests, self.init_pid = fds[0], int(words[1])
        return True

    def hand_over(self, request: bytes, client: int) -> None:
        """Pass the request and the client's connection straight to the init, which starts the
        container and answers the client. The control socket stays open until the container
        is created (the shell's monitor closes its end then): making the next shell meanwhile
        would contend with this start."""
        sock = socket.socket(fileno=self.requests)
        self.requests = -1
        for pid in (self.pid, self.init_pid):  # made at idle priority: from now on it counts
            with contextlib.suppress(OSError):
                os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))
        try:
            sent = socket.send_fds(sock, [request], [client])
            sock.sendall(request[sent:])
        except OSError:
            pass  # it died: its monitor tells the client
        finally:
            sock.close()

    def close(self) -> None:
        """Without a request, the shell removes its init and cgroup and exits."""
        if self.requests >= 0:
            os.close(self.requests)
            self.requests = -1
        if self.control.fileno() >= 0:
            self.control.close()

    def wait_gone(self, timeout: float) -> None:
        import select

        select.select([self.pidfd], [], [], timeout)
        os.close(self.pidfd)


_collected: set[tuple[str, str]] = set()


def collect_stale(cgroup_root: str, cgroup_parent: str) -> list[str]:
    """Remove the cgroups of shells whose monitor is gone without cleaning up: killed with
    its server (``kill -9`` of a process group, the OOM killer, a power cut simulated by a
    test). A live shell's cgroup is never touched: its name says which monitor (pid and start
    time) owns it. The names removed."""
    removed: list[str] = []
    try:
        probe = open_manager("probe", root=cgroup_root, parent=cgroup_parent, version=1)
        parents = {os.path.dirname(d) for d in probe.unique_dirs()}
    except Exception:
        return removed
    names: set[str] = set()
    for parent in parents:
        with contextlib.suppress(OSError):
            names.update(n for n in os.listdir(parent) if n.startswith(POOL_PREFIX))
    for name in sorted(names):
        owner = name.removeprefix(POOL_PREFIX).split("-")
        if len(owner) != 3 or not owner[0].isdigit() or not owner[1].isdigit():
            continue  # not a name this code makes
        try:
            alive = process_start_time(int(owner[0])) == int(owner[1])
        except (OSError, ValueError):
            alive = False
        if alive:
            continue
        manager = open_manager(name, root=cgroup_root, parent=cgroup_parent, version=1)
        with contextlib.suppress(Exception):
            manager.remove()
            removed.append(name)
    return removed


def idle_priority() -> None:
    """A shell is made at SCHED_IDLE: on a busy machine it takes only the CPU nobody wants
    (the starts of a stack's up, the stops of its down come first)."""
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def normal_priority() -> None:
    """Back to the usual policy at the request (the server sets it for the shell's monitor and
    init as it hands the request over; this is for a server that could not)."""
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def fork_shell(
    control: socket.socket,
    cgroup_root: str,
    cgroup_parent: str,
    staging: str,
    close_in_child: tuple[int, ...],
) -> int:
    """Fork a shell whose end of the control socket is ``control``; returns its pid. Its init
    mounts the default kernel filesystems under ``staging`` (runtime.premount). The first
    time for a cgroup parent, stale shells' cgroups there are collected first."""
    if (cgroup_root, cgroup_parent) not in _collected:
        _collected.add((cgroup_root, cgroup_parent))
        collect_stale(cgroup_root, cgroup_parent)
    return fork_shell_process(
        lambda: _shell(control, _Shape(cgroup_root, cgroup_parent, staging)), close_in_child
    )


def fork_shell_process(run: Callable[[], None], close_in_child: tuple[int, ...]) -> int:
    """Fork a shell's monitor (for either pool): at idle priority, which its children inherit,
    with ``close_in_child`` closed, running ``run`` (which makes its own shape there: a shape
    is named by the monitor's pid). Its pid."""
    pid = os.fork()
    if pid == 0:
        gc.freeze()  # as in launch.fork_monitor: a collection would copy every shared page
        try:
            idle_priority()
            for fd in close_in_child:
                os.close(fd)
            run()
        finally:
            os._exit(0)
    return pid


class _Shape:
    """Where a shell lives: its cgroup's name, root and parent, and its staging directory."""

    def __init__(self, cgroup_root: str, cgroup_parent: str, staging: str) -> None:
        # Named by the shell's monitor (pid and start time): a cgroup whose monitor is gone
        # is known to be stale (collect_stale), whoever looks.
        me = os.getpid()
        self.pool_name = f"{POOL_PREFIX}{me}-{process_start_time(me)}-{secrets.token_hex(4)}"
        self.cgroup_root = cgroup_root
        self.cgroup_parent = cgroup_parent
        self.staging = staging

    def cgroup(self, name: str | None = None) -> Any:
        return open_manager(
            name or self.pool_name, root=self.cgroup_root, parent=self.cgroup_parent, version=1
        )


def _shell(control: socket.socket, shape: _Shape) -> NoReturn:
    """The shell's monitor: it forks the init (whose parent it must be, to learn of its end
    at once), tells the server once the init is ready for a request, and watches the container
    the init then starts (or starts it the ordinary way when the init does not fit)."""
    devnull = monitor.become_monitor("orc-pool")
    outputs = Outputs()
    requests, server_end = socket.socketpair(
        socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC
    )
    from_init, to_monitor = socket_pair()
    identity_r, identity_w = pipe_pair()
    init_pid = _fork_init(
        lambda: _premade_init(shape, identity_r, requests, to_monitor, outputs.for_init(devnull)),
        (*outputs.ours(), server_end.fileno(), from_init.fd, identity_w.fd, control.fileno()),
    )
    requests.close()
    to_monitor.close()
    identity_r.close()
    outputs.close_theirs()
    # Told here: the init sees neither its host pid nor us (we are outside its namespace).
    identity_w.send(
        pid=init_pid,
        pid_start=process_start_time(init_pid),
        monitor_pid=os.getpid(),
        monitor_start=process_start_time(os.getpid()),
    )
    identity_w.close()
    prepared = from_init.receive() or {}
    try:
        if prepared.get("prepared"):  # the server hands out only shells that said so
            socket.send_fds(control, [f"ready {init_pid}".encode()], [server_end.fileno()])
    except OSError:
        pass  # the server is gone: so is its end of the init's socket, and the init sees it
    server_end.close()
    message = from_init.receive() or {}  # when the request is served (or the pool closes)
    normal_priority()
    fds = from_init.take_fds()
    from_init.close()
    if "watch" in message:
        control.close()  # the container exists: the server may make the next shell
        monitor.watch_container(message["watch"], fds, outputs=outputs.ours())
    if "fallback" in message:
        # The pre-made init does not fit: it has gone; start the usual way, in a helper.
        monitor._reap(init_pid)
        _destroy(shape.cgroup())
        for fd in outputs.ours():
            os.close(fd)
        start_ordinarily(message, fds, control, devnull)
    # It failed, or the pool is closing. Nothing of it may stay; then the client hears why.
    control.close()
    with contextlib.suppress(ProcessLookupError):
        os.kill(init_pid, signal.SIGKILL)
    monitor._reap(init_pid)
    _destroy(shape.cgroup())
    if message.get("renamed"):
        _destroy(shape.cgroup(message["renamed"]))
    if fds and "error" in message:
        with contextlib.suppress(OSError):
            Channel(fds[0]).send(error=message["error"])
    os._exit(0)


def start_ordinarily(
    message: dict[str, Any], fds: list[int], control: socket.socket, devnull: int
) -> None:
    """A request the pre-made container does not fit (this pool's or runtime.pool2's): start
    it the ordinary way, in a helper that this monitor then watches."""
    container_id, source, directory, options = parse_request(message["request"].encode())
    report = Channel(fds[0])
    monitor.watch_for_helper(
        lambda to_watcher: launch._start_container(
            container_id,
            source,
            directory,
            options,
            report,
            (),
            to_watcher,
            devnull,
            (control.fileno(),),
        ),
        helper_only=(report.fd, control.fileno()),
    )


def finish_start(
    config: ContainerConfig,
    container_id: str,
    pid: int,
    directory: Path,
    options: LaunchOptions,
    record: dict[str, Any],
    premounted: premount.Premounted | None,
    to_monitor: Channel,
    cgroup_version: int | None = None,
) -> init.Ready:
    """(a pre-made init, either pool's, at its request, its cgroup ready) The rest of the
    start: state.json, the root filesystem, the pivot and checks; then the watch goes to the
    monitor. What ``init.execute`` needs."""
    # Listening before the state is written: whoever finds the container finds its monitor.
    listener = monitor._listen(directory)
    write_json_atomic(directory / "state.json", record)
    fifo = str(directory / "exec.fifo") if options.create_only else None
    ready = init.prepare(
        config,
        fifo,
        lambda: None,
        premounted,
        seccomp.cache_of(directory),
        lambda: hooks.state(container_id, "created", pid, str(config.bundle), config.annotations),
        cgroup_version,
    )
    # Ready: the monitor watches from now on, then the client hears of us.
    hand_over(ready, container_id, pid, directory, options, listener, to_monitor)
    return ready


def hand_over(
    ready: Any,
    container_id: str,
    pid: int,
    directory: Any,
    options: LaunchOptions,
    listener: socket.socket,
    to_monitor: Any,
) -> None:
    """(the pre-made init, ready) Hand the watch to the monitor: the listener, the terminal
    and the container's mount namespace."""
    handed, mount_ns = init.for_the_monitor(ready)
    console = handed[:2] if ready.console else ()
    watch, extra = launch.watch_message(
        container_id,
        pid,
        directory,
        options,
        None,
        console[0] if console else None,
        console[1] if console else None,
        mount_ns,
    )
    to_monitor.send(watch=watch, fds=(listener.fileno(), *extra))


def parse_request(data: bytes) -> launch.MonitorArgs:
    from runtime.forkserver import _arguments

    return _arguments(data)


def _fork_init(run: Callable[[], None], close_in_child: tuple[int, ...]) -> int:
    """Fork the init as PID 1 of a new PID namespace; this process's later children stay in
    its own namespace (the ordinary start after a fallback forks one)."""
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.unshare(sc.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            try:
                for fd in (*close_in_child, own):
                    os.close(fd)
                run()
            finally:
                os._exit(1)
        sc.setns(own, sc.CLONE_NEWPID)
    finally:
        os.close(own)
    return pid


def _premade_init(
    shape: _Shape,
    identity: Channel,
    requests: socket.socket,
    to_monitor: Channel,
    stdio: tuple[int, int, int],
) -> NoReturn:
    """The pre-made init: PID 1 of its own PID namespace, it moves into the pool's cgroup (the
    grace period, paid before anyone waits for it), enters the default namespaces and mounts
    the default kernel filesystems (runtime.premount). At the request it does the whole start
    itself: the cgroup's name and limits, state.json, the root filesystem; then it hands the
    watch to its monitor, answers the client and runs the program."""
    report: Channel | None = None
    renamed = ""
    try:
        os.setsid()
        pool = shape.cgroup()
        pool.create()
        pool.add_process(os.getpid())
        sc.unshare(init.POOL_NAMESPACES)  # the cgroup namespace after the move: rooted there
        init.bring_loopback_up()
        rootfs.make_slave()
        try:
            premounted: premount.Premounted | None = premount.prepare(shape.staging)
        except OSError:
            premounted = None  # a kernel without one of them: the request mounts them itself
        me = identity.receive() or {}
        identity.close()
        cgroup = pool.pinned()  # reaches the cgroup whatever its name
        _warm_up(shape, cgroup)
        request, report = take_request(requests, to_monitor)
        container_id, source, directory, options = parse_request(request)
        config = source() if callable(source) else source
        reason = unfit(config, options, shape)
        if not reason:
            try:
                pool.rename(container_id)  # moves no process: waits for no grace period
            except SetupError:
                reason = "a cgroup of that name exists"
        if reason:
            to_monitor.send(fallback=reason, request=request.decode(), fds=(report.fd,))
            os._exit(0)
        renamed = container_id
        try:
            resources = Resources.from_oci(config.resources)
        except (ValueError, TypeError) as exc:
            raise SetupError(f"config.json: linux.resources: {exc}") from None
        cgroup.set(resources)
        named = shape.cgroup(container_id)
        starts = (me.get("pid_start"), me.get("monitor_start"))
        pid, monitor_pid = int(me.get("pid") or 0), int(me.get("monitor_pid") or 0)
        record = launch.state_record(
            container_id, config, options, pid, named, starts, monitor_pid=monitor_pid
        )
        ready = finish_start(
            config, container_id, pid, directory, options, record, premounted, to_monitor
        )
        report.send(pid=pid, monitor_pid=monitor_pid)
    except Exception as exc:
        try:  # the monitor cleans up, then tells the client
            handed_on = (report.fd,) if report is not None else ()
            to_monitor.send(error=init.describe(exc), renamed=renamed, fds=handed_on)
        finally:
            os._exit(1)
    init.execute(config, ready, stdio)


def take_request(requests: socket.socket, to_monitor: Channel) -> tuple[bytes, Channel]:
    """(a pre-made init or holder, made) Tell the monitor it is ready, wait for the launch
    request; the request and the client's connection. Exits when the pool closes instead."""
    to_monitor.send(prepared=True)
    request, fds = _receive_request(requests)
    normal_priority()
    requests.close()
    if not request or not fds:
        os._exit(0)  # the pool is closing
    mark("init")
    return request, Channel(fds[0])


def _receive_request(sock: socket.socket) -> tuple[bytes, list[int]]:
    """The launch request (three lines) and the client's connection that came with it."""
    data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 1, socket.MSG_CMSG_CLOEXEC)
    while data and data.count(b"\n") < 3:
        more = sock.recv(1 << 20)
        if not more:
            return b"", fds
        data += more
    return data, list(fds)


_WARM_UP_PROFILE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {
            "names": ["ioctl"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}],
        },
    ],
}


def _warm_up(shape: _Shape, cgroup: Any) -> None:
    """Run what the request will run, minus its effects: the first execution in a freshly
    forked process copies pages and fills caches, milliseconds better spent now."""
    from runtime.specgen import default_spec

    config = parse_config(default_spec(["true"], rootfs="/"), Path("/"))
    options = LaunchOptions(
        cgroup_root=shape.cgroup_root, cgroup_parent=shape.cgroup_parent, cgroup_version=1
    )
    unfit(config, options, shape)
    cgroup.set(Resources.from_oci(config.resources))
    record = launch.state_record("_warm-up", config, options, 1, cgroup, (0, 0), monitor_pid=0)
    json.dumps(record)
    # the cache's path (and once, the compiler's) that the request's filter will take
    seccomp.load(_WARM_UP_PROFILE, seccomp.cache_of(shape.staging))


def unfit(config: ContainerConfig, options: LaunchOptions, shape: _Shape) -> str | None:
    """Why a pre-made init cannot serve ``config`` (None when it can)."""
    if (options.cgroup_root, options.cgroup_parent) != (shape.cgroup_root, shape.cgroup_parent):
        return "its cgroup lives elsewhere than the pool's"
    if config.cgroups_path:
        return "its config names its cgroup (linux.cgroupsPath)"
    if "prestart" in config.hooks or "createRuntime" in config.hooks:
        return "it has hooks to run in the runtime's namespaces"
    if config.clone_flags != POOL_CLONE_FLAGS or any(path for path in config.namespaces.values()):
        return "namespaces differ from the default set"
    if options.inherit_stdio or options.stdin:
        return "inherits stdio or takes stdin"
    if options.console_socket:
        return "hands its terminal to a console socket"
    return None


def _destroy(manager: Any) -> None:
    with contextlib.suppress(Exception):
        manager.remove()
