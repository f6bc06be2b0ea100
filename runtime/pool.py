"""Pre-made containers: the fork server keeps a monitor and its init ready.

Most of a container start does not depend on the container: forking the monitor and the init;
the PID namespace and the default mount, uts, ipc, net and cgroup namespaces; moving the init
into a cgroup, which on cgroup v1 waits for an RCU grace period; and mounting /proc, /dev and
/sys (runtime.premount). A *shell* does all of that ahead of time, in a cgroup named
``_pool-<hex>``.

At a launch request the fork server writes the request straight to the shell's init and hands
the shell's monitor the request and the client's connection. The init does the start itself:
it parses the config, sets the limits (through descriptors of its cgroup), writes state.json,
builds the root filesystem, pivots, tells the monitor it is ready and execs. Meanwhile the
monitor renames the cgroup to the container's id (a rename moves no process, so it waits for
nothing), then reports to the client and watches the container as any monitor does. Then the
fork server makes the next shell.

A request a shell cannot serve (other namespaces, a user namespace, inherited stdio, a cgroup
name already taken) falls back to the ordinary path in the same monitor. Only cgroup v1 can
rename a cgroup, so the pool exists only there. A shell whose server goes away cleans up after
itself.
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

from runtime import init, monitor, premount, rootfs
from runtime.cgroups import open_manager
from runtime.cgroups.resources import Resources
from runtime.channel import Channel, pipe_pair, socket_pair
from runtime.errors import SetupError
from runtime.linux import syscalls as sc
from runtime.monitor import LaunchOptions, Outputs
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
        self.requests = -1  # where the init reads the request
        self.init_pid = 0

    def prepared(self) -> bool:
        """Read what the shell said once it was made: ``ready INIT``, with the init's request
        pipe. False if it gave up."""
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
        """Pass the request on: straight to the init, which starts on it at once, and to the
        shell's monitor with the client's connection. The control socket stays open until the
        container is created (the shell closes its end then): making the next shell meanwhile
        would contend with this start."""
        try:
            _write_all(self.requests, request)
        except BrokenPipeError:
            pass  # it died: the monitor finds out and tells the client
        os.close(self.requests)
        self.requests = -1
        socket.send_fds(self.control, [request], [client])

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


def fork_shell(
    control: socket.socket,
    cgroup_root: str,
    cgroup_parent: str,
    staging: str,
    close_in_child: tuple[int, ...],
) -> int:
    """Fork a shell whose end of the control socket is ``control``; returns its pid. Its init
    mounts the default kernel filesystems under ``staging`` (runtime.premount)."""
    pid = os.fork()
    if pid == 0:
        gc.freeze()  # as in monitor.fork_monitor: a collection would copy every shared page
        try:
            for fd in close_in_child:
                os.close(fd)
            _shell(control, _Shape(cgroup_root, cgroup_parent, staging))
        finally:
            os._exit(0)
    return pid


class _Shape:
    """Where a shell lives: its cgroup's name, root and parent, and its staging directory."""

    def __init__(self, cgroup_root: str, cgroup_parent: str, staging: str) -> None:
        self.pool_name = POOL_PREFIX + secrets.token_hex(6)
        self.cgroup_root = cgroup_root
        self.cgroup_parent = cgroup_parent
        self.staging = staging

    def cgroup(self, name: str | None = None) -> Any:
        return open_manager(
            name or self.pool_name, root=self.cgroup_root, parent=self.cgroup_parent, version=1
        )


def _shell(control: socket.socket, shape: _Shape) -> NoReturn:
    """The shell's monitor: it forks the init (whose parent it must be, to learn of its end
    at once), leaves the rest to a helper, and watches the container once started."""
    devnull = monitor.become_monitor("orc-pool")
    outputs = Outputs()
    requests_r, requests_w = pipe_pair()
    from_init, to_helper = socket_pair()
    identity_r, identity_w = pipe_pair()
    init_pid = _fork_init(
        lambda: _premade_init(shape, identity_r, requests_r, to_helper, outputs.for_init(devnull)),
        (*outputs.ours(), requests_w.fd, from_init.fd, identity_w.fd, control.fileno()),
    )
    requests_r.close()
    to_helper.close()
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
    monitor.watch_for_helper(
        lambda to_watcher: _shell_helper(
            control, shape, to_watcher, devnull, init_pid, outputs, requests_w, from_init
        ),
        helper_only=(control.fileno(), requests_w.fd, from_init.fd, *outputs.ours()),
        children=(init_pid,),
    )


def _shell_helper(
    control: socket.socket,
    shape: _Shape,
    to_watcher: Channel,
    devnull: int,
    init_pid: int,
    outputs: Outputs,
    requests_w: Channel,
    from_init: Channel,
) -> NoReturn:
    """Wait for a request, then take the container over as any monitor's helper does (or
    start it the ordinary way when the pre-made init does not fit)."""
    monitor_pid = os.getppid()
    prepared = from_init.receive() or {}
    cgroup_dirs: list[str] = prepared.get("cgroups") or []
    if not prepared.get("prepared"):
        requests_w.close()
        control.close()  # the server drops us
        from_init.close()
        _abandon(shape)
    try:  # the server hands out only shells that said so; it writes the request itself
        socket.send_fds(control, [f"ready {init_pid}".encode()], [requests_w.fd])
    except OSError:
        pass  # the server is gone, and so is its copy of the pipe: the init sees the end
    requests_w.close()
    try:
        data, fds, _, _ = socket.recv_fds(control, 1 << 20, 1, socket.MSG_CMSG_CLOEXEC)
    except OSError:
        data, fds = b"", []
    if not data or not fds:
        control.close()
        from_init.close()  # the init reads the end of its requests and exits
        _abandon(shape)
    report = Channel(fds[0])
    try:
        container_id, source, directory, options = parse_request(data)
        # The cgroup takes the container's name while the init works (it reaches the cgroup
        # through descriptors). Renaming moves no process: it waits for no grace period.
        renamed = _rename(cgroup_dirs, container_id)
        message = from_init.receive() if renamed else {"fallback": "a cgroup of that name exists"}
        cgroup = shape.cgroup(container_id if renamed else None)
        if message and message.get("fallback"):
            # The pre-made init does not fit: clear the shell away, then start the usual way.
            with contextlib.suppress(ProcessLookupError):
                os.kill(init_pid, signal.SIGKILL)  # (the monitor, its parent, reaps it)
            _destroy(cgroup)
            from_init.close()
            for fd in outputs.ours():
                os.close(fd)
            outputs = Outputs(stdin=options.stdin)  # the shell's pipes went to the pre-made init
            setup_pid, from_setup = monitor.fork_setup(
                lambda to_helper: monitor._setup(
                    container_id,
                    source,
                    directory,
                    options,
                    to_helper,
                    outputs.for_init(devnull),
                    monitor_pid,
                ),
                close_in_child=(*outputs.monitor_side(), report.fd, to_watcher.fd),
            )
            outputs.close_theirs()
            monitor.take_over(
                container_id,
                directory,
                options,
                report,
                setup_pid,
                from_setup,
                outputs,
                to_watcher,
                (control.fileno(),),
                rename=True,
                reap=(init_pid,),
            )
        if not message or not message.get("ready"):
            # Nothing of the container may stay: its cgroup, under either name.
            with contextlib.suppress(ProcessLookupError):
                os.kill(init_pid, signal.SIGKILL)  # (the monitor, its parent, reaps it)
            _destroy(cgroup)
            raise SetupError((message or {}).get("error") or "container setup failed: init died")
        ready = {"pid": init_pid, "mount_ns": bool(message.get("mount_ns"))}
        monitor.take_over(
            container_id,
            directory,
            options,
            report,
            0,
            _Replay(ready, from_init),
            outputs,
            to_watcher,
            (control.fileno(),),
            rename=True,
        )
    except BaseException as exc:
        try:
            report.send(error=init.describe(exc))
        finally:
            os._exit(1)


class _Replay(Channel):
    """A channel whose first message was already read."""

    def __init__(self, first: dict[str, Any] | None, rest: Channel) -> None:
        super().__init__(rest.fd, rest.is_socket)
        self._fds = rest.take_fds()
        self.first: dict[str, Any] | None = first
        self.replayed = False

    def receive(self) -> dict[str, Any] | None:
        if not self.replayed:
            self.replayed = True
            return self.first
        return super().receive()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def parse_request(data: bytes) -> monitor.MonitorArgs:
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
    requests: Channel,
    to_monitor: Channel,
    stdio: tuple[int, int, int],
) -> NoReturn:
    """The pre-made init: PID 1 of its own PID namespace, it moves into the pool's cgroup (the
    grace period, paid before anyone waits for it), enters the default namespaces and mounts
    the default kernel filesystems (runtime.premount). At the request it does the whole start
    itself: limits, state.json, the root filesystem; then it tells the monitor it is ready and
    runs the program."""
    try:
        os.setsid()
        pool = shape.cgroup()
        pool.create()
        pool.add_process(os.getpid())
        sc.unshare(init.POOL_NAMESPACES)  # the cgroup namespace after the move: rooted there
        rootfs.make_slave()
        try:
            premounted: premount.Premounted | None = premount.prepare(shape.staging)
        except OSError:
            premounted = None  # a kernel without one of them: the request mounts them itself
        me = identity.receive() or {}
        identity.close()
        cgroup = pool.pinned()  # the monitor renames it at the request
        _warm_up(shape, cgroup)
        to_monitor.send(prepared=True, cgroups=pool.unique_dirs())
        request = read_request(requests.fd)
        requests.close()
        if not request:
            os._exit(0)  # the pool is closing
        mark("init")
        container_id, source, directory, options = parse_request(request)
        config = source() if callable(source) else source
        reason = unfit(config, options)
        if reason:
            to_monitor.send(fallback=reason)
            os._exit(0)
        try:
            resources = Resources.from_oci(config.resources)
        except (ValueError, TypeError) as exc:
            raise SetupError(f"config.json: linux.resources: {exc}") from None
        cgroup.set(resources)
        starts = (me.get("pid_start"), me.get("monitor_start"))
        record = monitor.state_record(
            container_id,
            config,
            options,
            int(me.get("pid") or 0),
            shape.cgroup(container_id),
            starts,
            monitor_pid=int(me.get("monitor_pid") or 0),
        )
        write_json_atomic(directory / "state.json", record)
        fifo = str(directory / "exec.fifo") if options.create_only else None
        ready = init.prepare(config, fifo, lambda: None, premounted)
    except Exception as exc:
        try:
            to_monitor.send(error=init.describe(exc))
        finally:
            os._exit(1)
    init._start(config, ready, to_monitor, requests, stdio)


def read_request(fd: int) -> bytes:
    """The launch request (three lines), or b"" when the pool closes."""
    data = b""
    while data.count(b"\n") < 3:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b""
        data += chunk
    return data


def _warm_up(shape: _Shape, cgroup: Any) -> None:
    """Run what the request will run, minus its effects: the first execution in a freshly
    forked process copies pages and fills caches, milliseconds better spent now."""
    from runtime.specgen import default_spec

    init.warm_up_parsing()
    config = parse_config(default_spec(["true"], rootfs="/"), Path("/"))
    options = LaunchOptions(cgroup_root=shape.cgroup_root, cgroup_version=1)
    unfit(config, options)
    cgroup.set(Resources())
    record = monitor.state_record("_warm-up", config, options, 1, cgroup, (0, 0), monitor_pid=0)
    json.dumps(record)


def unfit(config: ContainerConfig, options: LaunchOptions) -> str | None:
    """Why a pre-made init cannot serve ``config`` (None when it can)."""
    if config.clone_flags != POOL_CLONE_FLAGS or any(path for path in config.namespaces.values()):
        return "namespaces differ from the default set"
    if options.inherit_stdio or options.stdin:
        return "inherits stdio or takes stdin"
    return None


def _rename(dirs: list[str], name: str) -> bool:
    """Rename the pool's cgroup directories to ``name`` (all, or none when one is taken)."""
    done: list[tuple[str, str]] = []
    try:
        for old in dirs:
            new = f"{os.path.dirname(old)}/{name}"
            os.rename(old, new)
            done.append((old, new))
    except OSError:
        for old, new in reversed(done):
            with contextlib.suppress(OSError):
                os.rename(new, old)
        return False
    return bool(dirs)


def _abandon(shape: _Shape) -> NoReturn:
    # The server closed its end of the request pipe (or never had it): the init reads the end
    # and exits.
    _reap_all()
    _destroy(shape.cgroup())
    os._exit(0)


def _reap_all() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _destroy(manager: Any) -> None:
    try:
        if manager.exists():
            manager.kill_all(signal.SIGKILL)
            manager.destroy()
    except Exception:
        pass
