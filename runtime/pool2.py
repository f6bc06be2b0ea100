"""Pre-made containers for cgroup v2, whose cgroups cannot be renamed (runtime.pool is v1's).

A v1 shell's init is made ahead, in a pool cgroup renamed to the container's id at the
request. On v2 the init is made at the request instead, born in the container's new cgroup
(clone3 with CLONE_INTO_CGROUP: no move, so no RCU grace period), by a *holder* made ahead:

- the shell's monitor (the process the fork server forked) forks the holder;
- the holder enters new mount, uts, ipc and net namespaces, brings loopback up and mounts
  /dev (device nodes, devpts, shm, mqueue: runtime.premount) under the staging directory;
  then it waits for a request;
- at the request it checks the config fits (runtime.pool.unfit), makes the container's cgroup
  with its limits, and clones the init into it: CLONE_NEWPID (the init is PID 1 of a new PID
  namespace), CLONE_PARENT (its parent is the monitor, which watches it), the holder's
  namespaces inherited; tells the monitor the init's pid, the init who it is, and exits;
- the init enters its own cgroup namespace (rooted at its cgroup), mounts /proc and /sys
  itself (they show the mounter's PID and cgroup namespaces), and from there starts as a v1
  pre-made init does: state.json, the root filesystem, the watch handed to the monitor, the
  client answered, the program run.

A request the holder cannot serve falls back to the ordinary path in the same monitor, as on v1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from typing import Any, NoReturn

from runtime import init, launch, monitor, premount, rootfs
from runtime.cgroups import open_manager
from runtime.cgroups.resources import Resources
from runtime.channel import Channel, pipe_pair, socket_pair
from runtime.errors import SetupError
from runtime.linux import syscalls as sc
from runtime.monitor import Outputs
from runtime.pool import (
    finish_start,
    fork_shell_process,
    normal_priority,
    parse_request,
    start_ordinarily,
    take_request,
    unfit,
)
from runtime.state import process_start_time
from runtime.trace import mark

# The holder's namespaces: the init's cgroup namespace comes after its birth in its cgroup.
HOLDER_NAMESPACES = init.POOL_NAMESPACES & ~sc.CLONE_NEWCGROUP


class _Shape:
    """Where a v2 shell's containers live: their cgroups' root and parent, the staging folder."""

    def __init__(self, cgroup_root: str, cgroup_parent: str, staging: str) -> None:
        self.cgroup_root = cgroup_root
        self.cgroup_parent = cgroup_parent
        self.staging = staging

    def cgroup(self, name: str) -> Any:
        return open_manager(name, root=self.cgroup_root, parent=self.cgroup_parent, version=2)


def fork_shell(
    control: socket.socket,
    cgroup_root: str,
    cgroup_parent: str,
    staging: str,
    close_in_child: tuple[int, ...],
) -> int:
    """Fork a v2 shell whose end of the control socket is ``control``; returns its pid."""
    return fork_shell_process(
        lambda: _shell(control, _Shape(cgroup_root, cgroup_parent, staging)), close_in_child
    )


def _shell(control: socket.socket, shape: _Shape) -> NoReturn:
    """The shell's monitor: forks the holder, tells the server once it is ready, then watches
    the container whose init the holder clones for it (or starts one the ordinary way)."""
    devnull = monitor.become_monitor("orc-pool")
    outputs = Outputs()
    requests, server_end = socket.socketpair(
        socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC
    )
    from_holder, to_monitor = socket_pair()
    holder = os.fork()
    if holder == 0:
        try:
            for fd in (*outputs.ours(), server_end.fileno(), from_holder.fd, control.fileno()):
                os.close(fd)
            _holder(shape, requests, to_monitor, outputs.for_init(devnull))
        finally:
            os._exit(1)
    requests.close()
    to_monitor.close()
    outputs.close_theirs()
    prepared = from_holder.receive() or {}
    try:
        if prepared.get("prepared"):  # the server hands out only shells that said so
            socket.send_fds(control, [f"ready {holder}".encode()], [server_end.fileno()])
    except OSError:
        pass  # the server is gone: so is its end of the holder's socket, and it sees that
    server_end.close()
    message = from_holder.receive() or {}  # at the request (or when the pool closes)
    normal_priority()
    init_pid = int(message.get("born") or 0)
    cgroup = str(message.get("cgroup") or "")
    if init_pid:
        message = from_holder.receive() or {}  # now from the init, on the same channel
        cgroup = str(message.get("cgroup") or cgroup)
    fds = from_holder.take_fds()
    from_holder.close()
    monitor._reap(holder)
    if "watch" in message:
        control.close()  # the container exists: the server may make the next shell
        monitor.watch_container(message["watch"], fds, outputs=outputs.ours())
    if "fallback" in message:
        for fd in outputs.ours():
            os.close(fd)
        start_ordinarily(message, fds, control, devnull)
    # It failed, or the pool is closing. Nothing of it may stay; then the client hears why.
    control.close()
    if init_pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(init_pid, signal.SIGKILL)
        monitor._reap(init_pid)
    if cgroup:
        with contextlib.suppress(Exception):
            shape.cgroup(cgroup).remove()
    if fds and "error" in message:
        with contextlib.suppress(OSError):
            Channel(fds[0]).send(error=message["error"])
    os._exit(0)


def _holder(
    shape: _Shape, requests: socket.socket, to_monitor: Channel, stdio: tuple[int, int, int]
) -> NoReturn:
    """Namespaces and /dev ahead; at the request, the container's cgroup and its init."""
    report: Channel | None = None
    made = ""
    try:
        sc.unshare(HOLDER_NAMESPACES)
        init.bring_loopback_up()
        rootfs.make_slave()
        try:
            premounted: premount.Premounted | None = premount.prepare(shape.staging, ("/dev",))
        except OSError:
            premounted = None  # a kernel without one of them: the request mounts them itself
        _warm_up(shape)
        request, report = take_request(requests, to_monitor)
        container_id, source, directory, options = parse_request(request)
        config = source() if callable(source) else source
        reason = unfit(config, options, shape)  # type: ignore[arg-type]
        cgroup = shape.cgroup(container_id)
        if not reason and cgroup.exists():
            reason = "a cgroup of that name exists"
        if reason:
            to_monitor.send(fallback=reason, request=request.decode(), fds=(report.fd,))
            os._exit(0)
        try:
            resources = Resources.from_oci(config.resources)
        except (ValueError, TypeError) as exc:
            raise SetupError(f"config.json: linux.resources: {exc}") from None
        cgroup.create()
        made = container_id
        cgroup.set(resources)
        mark("v2-cgroup-made")
        identity_r, identity_w = pipe_pair()
        where = os.open(cgroup.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            pid = sc.fork_into_cgroup(where, sc.CLONE_PARENT | sc.CLONE_NEWPID)
        finally:
            os.close(where)
        if pid == 0:
            mark("premade-v2-born")
            identity_w.close()
            _init(container_id, config, directory, options, premounted, identity_r, report, to_monitor, stdio, shape)  # fmt: skip
        identity_r.close()
        # Told in this order: the monitor knows the init before the init may speak to it.
        to_monitor.send(born=pid, cgroup=container_id)
        monitor_pid = os.getppid()
        identity_w.send(
            pid=pid,
            pid_start=process_start_time(pid),
            monitor_pid=monitor_pid,
            monitor_start=process_start_time(monitor_pid),
        )
        os._exit(0)
    except Exception as exc:
        try:  # the monitor cleans up, then tells the client
            handed_on = (report.fd,) if report is not None else ()
            to_monitor.send(error=init.describe(exc), cgroup=made, fds=handed_on)
        finally:
            os._exit(1)


def _warm_up(shape: _Shape) -> None:
    """Ahead of the request: the default config parsed once, and its device filter loaded
    (the kernel's verifier: a millisecond); the request's filter is then only attached."""
    from pathlib import Path

    from runtime.cgroups import devicefilter
    from runtime.spec import parse_config
    from runtime.specgen import default_spec

    config = parse_config(default_spec(["true"], rootfs="/"), Path("/"))
    devices = Resources.from_oci(config.resources).devices
    if devices is not None:
        with contextlib.suppress(OSError, SetupError):
            devicefilter.load_cached(devices)


def _init(
    container_id: str,
    config: Any,
    directory: Any,
    options: Any,
    premounted: premount.Premounted | None,
    identity: Channel,
    report: Channel,
    to_monitor: Channel,
    stdio: tuple[int, int, int],
    shape: _Shape,
) -> NoReturn:
    """The init, PID 1 of its namespace since its first instruction and in its cgroup: the
    rest of the start, as a v1 pre-made init does it."""
    try:
        os.setsid()
        sc.unshare(sc.CLONE_NEWCGROUP)  # rooted at the cgroup it was born in
        me = identity.receive() or {}
        identity.close()
        starts = (me.get("pid_start"), me.get("monitor_start"))
        pid, monitor_pid = int(me.get("pid") or 0), int(me.get("monitor_pid") or 0)
        record = launch.state_record(
            container_id,
            config,
            options,
            pid,
            shape.cgroup(container_id),
            starts,
            monitor_pid=monitor_pid,
        )
        ready = finish_start(
            config,
            container_id,
            pid,
            directory,
            options,
            record,
            premounted,
            to_monitor,
            options.cgroup_version,
        )
        report.send(pid=pid, monitor_pid=monitor_pid)
    except Exception as exc:
        try:
            to_monitor.send(error=init.describe(exc), cgroup=container_id, fds=(report.fd,))
        finally:
            os._exit(1)
    init.execute(config, ready, stdio)
