"""Pre-made containers: the fork server keeps one monitor, setup child and init ready.

Most of a container start does not depend on the container: forking the monitor, the setup child
and the init; the PID namespace and the default mount, uts, ipc, net and cgroup namespaces; and,
costliest on cgroup v1, moving the init into a cgroup, which waits for an RCU grace period. A
*shell* does all of that ahead of time, in a cgroup named ``_pool-<hex>``. When a launch request
arrives, the fork server hands the shell the request (and the client's connection); the setup
child renames the cgroup to the container's id (a rename moves no process, so it waits for
nothing), applies the limits and sends the init its config; the init builds the root filesystem,
pivots and execs as usual. Then the fork server makes the next shell.

A request a shell cannot serve (other namespaces, a user namespace, inherited stdio, a cgroup name
already taken) falls back to the ordinary path in the same monitor. Only cgroup v1 can rename a
cgroup, so the pool exists only there. A shell whose server goes away cleans up after itself.
"""

from __future__ import annotations

import gc
import json
import os
import secrets
import signal
import socket
from pathlib import Path
from typing import Any, NoReturn

from runtime import init, monitor
from runtime.cgroups import open_manager
from runtime.cgroups.resources import Resources
from runtime.channel import Channel, pipe_pair, socket_pair
from runtime.errors import SetupError
from runtime.linux import syscalls as sc
from runtime.monitor import LaunchOptions, Outputs
from runtime.spec import ContainerConfig, parse_config
from runtime.state import write_json_atomic
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

    def hand_over(self, request: bytes, client: int) -> None:
        """Pass the request on. The control socket stays open until the container is created
        (the shell closes its end then): making the next shell meanwhile would contend for the
        cgroup lock with this start."""
        socket.send_fds(self.control, [request], [client])

    def close(self) -> None:
        """Without a request, the shell removes its init and cgroup and exits."""
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
            _shell(control, cgroup_root, cgroup_parent, staging)
        finally:
            os._exit(0)
    return pid


def _shell(control: socket.socket, cgroup_root: str, cgroup_parent: str, staging: str) -> NoReturn:
    """The shell's monitor: wait for a request, then serve it as any monitor does."""
    devnull = monitor.become_monitor("orc-pool")
    pool_name = POOL_PREFIX + secrets.token_hex(6)
    outputs = Outputs()
    to_setup_r, to_setup = pipe_pair()
    to_init_r, to_init = pipe_pair()  # the request goes to the init too, to work in parallel
    setup_pid, from_setup = monitor.fork_setup(
        lambda to_monitor: _premade_setup(
            _Shape(pool_name, cgroup_root, cgroup_parent, staging),
            to_setup_r,
            to_init_r,
            to_monitor,
            outputs.for_init(devnull),
        ),
        close_in_child=(*outputs.ours(), to_setup.fd, to_init.fd, control.fileno()),
    )
    to_setup_r.close()
    to_init_r.close()
    outputs.close_theirs()
    prepared = from_setup.receive()
    try:
        if prepared and prepared.get("prepared"):
            control.send(b"ready")  # the server hands out only shells that said so
        data, fds, _, _ = socket.recv_fds(control, 1 << 20, 1)
    except OSError:
        data, fds = b"", []
    if not data or not fds:
        control.close()
        to_init.close()
        _abandon(setup_pid, to_setup, from_setup, pool_name, cgroup_root, cgroup_parent)
    report = Channel(fds[0])
    try:
        container_id, source, directory, options = parse_request(data)
        comm = os.open("/proc/self/comm", os.O_WRONLY | os.O_CLOEXEC)
        os.write(comm, b"orc-mon")
        os.close(comm)
        # As it came (re-encoding it would only cost us memory); the init first, which has more
        # to do: it builds the root filesystem while the setup child renames the cgroup.
        try:
            _write_all(to_init.fd, data)
        except BrokenPipeError:
            pass  # the init died: the setup child finds out and says so
        to_init.close()
        _write_all(to_setup.fd, data)
        message = from_setup.receive()
        if message and message.get("fallback"):
            # The pre-made init does not fit: clear the shell away, then start the usual way.
            _reap_all()
            _destroy(pool_name, cgroup_root, cgroup_parent)
            to_setup.close()
            from_setup.close()
            for fd in outputs.ours():
                os.close(fd)
            outputs = Outputs(stdin=options.stdin)  # the shell's pipes went to the pre-made init
            setup_pid, from_setup = monitor.fork_setup(
                lambda to_monitor: monitor._setup(
                    container_id, source, directory, options, to_monitor, outputs.for_init(devnull)
                ),
                close_in_child=(*outputs.monitor_side(), report.fd),
            )
            outputs.close_theirs()
            monitor.adopt(
                container_id,
                directory,
                options,
                report,
                setup_pid,
                from_setup,
                outputs,
                (control.fileno(),),
            )
        to_setup.close()
        monitor.adopt(
            container_id,
            directory,
            options,
            report,
            setup_pid,
            _Replay(message, from_setup),
            outputs,
            (control.fileno(),),
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


class _Shape:
    """Where a shell lives: its cgroup's name, root and parent, and its staging directory."""

    def __init__(self, pool_name: str, cgroup_root: str, cgroup_parent: str, staging: str):
        self.pool_name = pool_name
        self.cgroup_root = cgroup_root
        self.cgroup_parent = cgroup_parent
        self.staging = staging


def _premade_setup(
    shape: _Shape,
    from_monitor: Channel,
    init_requests: Channel,
    to_monitor: Channel,
    init_stdio: tuple[int, int, int],
) -> None:
    cgroup_root = shape.cgroup_root
    cgroup = open_manager(shape.pool_name, root=cgroup_root, parent=shape.cgroup_parent, version=1)
    cgroup.create()
    pid = 0
    try:
        cgroup.add_process(os.getpid())  # the grace period, paid before anyone waits for it
        sc.unshare(sc.CLONE_NEWPID)
        from_init, to_setup = socket_pair()
        from_setup, to_init = pipe_pair()
        pid = os.fork()
        if pid == 0:
            try:
                to_monitor.close()
                from_monitor.close()
                from_init.close()
                to_init.close()
                init.run_premade(to_setup, from_setup, init_requests, init_stdio, shape.staging)
            finally:
                os._exit(1)
        init_requests.close()
        for fd in init_stdio:
            if fd > 2:
                os.close(fd)
        to_setup.close()
        from_setup.close()
        init.warm_up_parsing()
        _warm_up_setup(cgroup, directory_hint=cgroup_root)
        prepared = from_init.receive()
        if not prepared or not prepared.get("prepared"):
            raise SetupError((prepared or {}).get("error") or "the pre-made init died")
        to_monitor.send(prepared=True)
        request = read_request(from_monitor.fd)
        if not request:
            return  # the pool is closing: the init dies with us (PID 1 of a namespace we own)
        mark("premade-request")
        container_id, source, directory, options = parse_request(request)
        config = source() if not isinstance(source, ContainerConfig) else source
        reason = unfit(config, options) or _cgroup_taken(options, container_id)
        if reason:
            os.kill(pid, signal.SIGKILL)
            monitor._reap(pid)
            pid = 0
            to_monitor.send(fallback=reason)
            return
        try:
            resources = Resources.from_oci(config.resources)
        except (ValueError, TypeError) as exc:
            raise SetupError(f"config.json: linux.resources: {exc}") from None
        cgroup = cgroup.rename(container_id)
        cgroup.set(resources)
        # Written while the init still works (its pid is known): off the start's path. Should
        # the init fail, the caller removes the whole directory.
        record = monitor.state_record(container_id, config, options, pid, cgroup)
        write_json_atomic(directory / "state.json", record)
        try:
            to_init.send(go=True)  # the cgroup is the container's: the init may run its program
        except BrokenPipeError:
            pass  # it failed: its reply says why
        reply = from_init.receive()
        if not reply or not reply.get("ready"):
            monitor._reap(pid)
            pid = 0
            raise SetupError((reply or {}).get("error") or "container setup failed: init died")
        mark("init-ready")
    except BaseException:
        if pid:
            os.kill(pid, signal.SIGKILL)
            monitor._reap(pid)
        raise
    fds = tuple(from_init.take_fds())
    to_monitor.send(pid=pid, fds=fds, mount_ns=bool(reply.get("mount_ns")))
    for fd in fds:
        os.close(fd)


def read_request(fd: int) -> bytes:
    """The launch request the monitor passes on (three lines), or b"" when the pool closes."""
    data = b""
    while data.count(b"\n") < 3:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b""
        data += chunk
    return data


def _warm_up_setup(cgroup: Any, directory_hint: str) -> None:
    """Run what the request will run, minus its effects (see init.warm_up_parsing)."""
    from runtime.specgen import default_spec

    config = parse_config(default_spec(["true"], rootfs="/"), Path("/"))
    options = LaunchOptions(cgroup_root=directory_hint, cgroup_version=1)
    for _ in range(1):  # the first pass copies the pages and fills the caches
        unfit(config, options)
        _cgroup_taken(options, "_warm-up")
        cgroup.set(Resources())
        record = monitor.state_record("_warm-up", config, options, os.getpid(), cgroup)
        json.dumps(record)
        json.dumps(config.raw)


def unfit(config: ContainerConfig, options: LaunchOptions) -> str | None:
    """Why a pre-made init cannot serve ``config`` (None when it can)."""
    if config.clone_flags != POOL_CLONE_FLAGS or any(path for path in config.namespaces.values()):
        return "namespaces differ from the default set"
    if options.inherit_stdio or options.stdin:
        return "inherits stdio or takes stdin"
    return None


def _cgroup_taken(options: LaunchOptions, container_id: str) -> str | None:
    taken = open_manager(
        container_id, root=options.cgroup_root, parent=options.cgroup_parent, version=1
    )
    if taken.exists():
        return "a cgroup of that name exists"
    return None


def _abandon(
    setup_pid: int, to_setup: Channel, from_setup: Channel, pool_name: str, root: str, parent: str
) -> NoReturn:
    to_setup.close()  # the setup child sees the end, and exits; its init (PID 1) dies with it
    from_setup.close()
    _reap_all()
    _destroy(pool_name, root, parent)
    os._exit(0)


def _reap_all() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _destroy(pool_name: str, root: str, parent: str) -> None:
    manager = open_manager(pool_name, root=root, parent=parent, version=1)
    try:
        if manager.exists():
            manager.kill_all(signal.SIGKILL)
            manager.destroy()
    except Exception:
        pass
