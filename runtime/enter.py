"""One way into a running container: work done inside its namespaces by a fresh process.

exec, healthchecks, network setup from inside a container's network namespace and mounts into
a running container all need a process that has joined the container's namespaces. Joining
(setns) is only allowed to a single-threaded process, and forking a multi-threaded caller (the
trio supervisor) is unsafe. So the caller never forks: it asks the fork server for an *enter*
job, and the server's template (a pristine single-threaded process) forks a child that does
the work and answers on the caller's connection:

- ``exec``: the child joins the container's cgroup and namespaces (through the init's
  /proc/PID/ns files, opened while the init's start time proves it is still the container's),
  then forks once more so that the process lives in the container's PID namespace; it takes the
  container's user, capabilities, no_new_privileges and rlimits (or the user asked for), the
  container's environment plus the caller's additions, and the caller's stdio (passed over the
  connection); with ``tty``, a terminal from the container's devpts whose master comes back to
  the caller, which relays it. The child forwards signals the caller sends, and answers the exit
  status (128 + signal when killed).
- ``socket``: the child joins only the container's network namespace and sends back a socket
  made there (a netlink socket to configure its interfaces, say); the caller keeps using it from
  outside.
- ``mount`` and ``unmount``: a bind mount into the running container, or out of it; the source
  is cloned in the host's mount namespace first, then the child joins the container's
  (runtime.hotmount).

The wire format is in runtime.protocol.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import select
import signal
import socket
import struct
import termios
from typing import Any, NoReturn

from runtime import init, protocol, seccomp, users
from runtime.channel import Channel
from runtime.errors import Error, StateError
from runtime.linux import syscalls as sc
from runtime.spec import ContainerConfig
from runtime.state import ContainerState, process_start_time

# /proc/PID/ns names, in the order they are joined: the user namespace first (it grants the
# rights to join the others), the mount namespace last (it changes our root).
_NAMESPACES = (
    ("user", sc.CLONE_NEWUSER),
    ("ipc", sc.CLONE_NEWIPC),
    ("uts", sc.CLONE_NEWUTS),
    ("net", sc.CLONE_NEWNET),
    ("cgroup", sc.CLONE_NEWCGROUP),
    ("pid", sc.CLONE_NEWPID),
    ("mnt", sc.CLONE_NEWNS),
)


@dataclasses.dataclass(frozen=True)
class ExecOptions:
    args: tuple[str, ...]
    env: tuple[str, ...] = ()  # KEY=VALUE, added to (or replacing) the container's
    user: str | None = None  # user[:group], as Docker's --user; default: the container's
    cwd: str | None = None  # default: the container's
    stdio: tuple[int, int, int] = (0, 1, 2)
    # A terminal from the container's own devpts, its master relayed to ``stdio``; our input
    # goes to it only when ``interactive``.
    tty: bool = False
    interactive: bool = False
    window: tuple[int, int] = (24, 80)  # rows, columns


@dataclasses.dataclass(frozen=True)
class Target:
    """The container to enter, as its state says it is: the init's pid and start time (the
    proof that the pid is still the container's), its bundle, and where its cgroup is."""

    id: str
    pid: int
    pid_start: int | None
    bundle: str
    cgroup_root: str
    cgroup_parent: str
    cgroup_version: int | None
    cgroup_name: str = ""  # (empty: the id) a config's linux.cgroupsPath may name another

    @classmethod
    def of(cls, state: ContainerState, cgroup_place: tuple[str, str, int | None]) -> Target:
        """``cgroup_place``: (root, parent, version) of the runtime; the state's record says
        where the container's cgroup is when it is elsewhere."""
        pid_start = state.record.get("pid_start")
        root, parent, version = cgroup_place
        return cls(
            state.id,
            state.pid,
            int(pid_start) if pid_start is not None else None,
            state.bundle,
            root,
            str(state.record.get("cgroup_parent", parent)),
            version,
            str(state.record.get("cgroup") or state.id),
        )


# -- the caller's side -----------------------------------------------------------------------------


def run(server: Any, target: Target, opts: ExecOptions) -> int:
    """Run ``opts.args`` in the container through the fork server ``server`` (a
    ForkServerClient); its exit status. Safe from any caller, threads included."""
    if not opts.args:
        raise Error("exec: no command given")
    request = protocol.EnterRequest(
        job="exec",
        target=dataclasses.asdict(target),
        exec={
            "args": list(opts.args),
            "env": list(opts.env),
            "user": opts.user,
            "cwd": opts.cwd,
            "tty": opts.tty,
            "window": list(opts.window),
        },
    )
    # With a terminal the process's stdio is the terminal: ours stay here, for the relay.
    sock = server.enter(request, () if opts.tty else opts.stdio)
    channel = Channel(sock.fileno(), is_socket=True)
    try:
        while True:
            try:
                message = channel.receive()
            except KeyboardInterrupt:  # Ctrl-C reaches us, not the process: pass it on
                with contextlib.suppress(OSError):
                    sock.sendall(protocol.encode(signal=int(signal.SIGINT)))
                continue
            if message is None:
                raise Error(f"exec in {target.id}: the fork server's child died")
            if message.get("terminal"):
                (master,) = channel.take_fds()
                relay_terminal(master, opts.stdio[0], opts.stdio[1], opts.interactive)
                continue
            if "error" in message:
                raise Error(str(message["error"]))
            return int(message["exit_code"])
    finally:
        channel.close()
        sock.detach()


def open_socket(
    server: Any, target: Target, family: int, kind: int, proto: int = 0
) -> socket.socket:
    """A socket made inside the container's network namespace (``socket(family, kind,
    proto)``), to use from here: a netlink socket that configures its interfaces, say."""
    request = protocol.EnterRequest(
        job="socket", target=dataclasses.asdict(target), socket=[family, kind, proto]
    )
    sock = server.enter(request, ())
    channel = Channel(sock.fileno(), is_socket=True)
    try:
        message = channel.receive()
        fds = channel.take_fds()
        if message and message.get("socket") and len(fds) == 1:
            return socket.socket(fileno=fds[0])
        for fd in fds:
            os.close(fd)
        raise Error(str((message or {}).get("error") or f"{target.id}: the enter job died"))
    finally:
        channel.close()
        sock.detach()
        sock.close()


def relay_terminal(master: int, stdin: int, stdout: int, interactive: bool) -> None:
    """Relay the terminal's master to our stdio until no process holds the terminal."""
    from runtime.attach import relay_fd

    try:
        relay_fd(master, interactive, stdin, stdout)
    finally:
        os.close(master)


# -- the fork server's side (a fresh child of its template) ----------------------------------------


def serve(request: protocol.EnterRequest, conn: socket.socket, stdio: list[int]) -> NoReturn:
    """Do ``request`` and answer on ``conn``; then exit. Runs in a fresh single-threaded child
    of the fork server's template, which has nothing else to do."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # (the template ignores it: we wait)
    channel = Channel(conn.fileno(), is_socket=True)
    try:
        target = Target(**request.target)
        if request.job == "exec":
            code = _serve_exec(target, request.exec or {}, stdio, conn)
            channel.send(exit_code=code)
        elif request.job == "socket":
            family, kind, proto = request.socket or (0, 0, 0)
            joins = _open_namespaces(target, ("net",))
            for fd, flag in joins:
                sc.setns(fd, flag)
                os.close(fd)
            made = socket.socket(family, kind, proto)
            channel.send(socket=True, fds=(made.fileno(),))
        elif request.job in ("mount", "unmount"):
            _serve_mount(target, request.job, request.mount or {})
            channel.send(done=True)
        else:
            raise Error(f"unknown enter job {request.job!r}")
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            channel.send(error=init.describe(exc))
    os._exit(0)


def _serve_mount(target: Target, job: str, spec: dict[str, Any]) -> None:
    """A mount into the running container, or out of it (runtime.hotmount): the source is
    opened here first, in the host's mount namespace; then we join the container's."""
    from runtime import hotmount

    def join() -> None:
        joins = _open_namespaces(target, ("mnt",))
        if not joins:  # its mount namespace is ours: a mount would land on the host
            raise Error(f"container {target.id} shares the host's mount namespace")
        for fd, flag in joins:
            try:
                sc.setns(fd, flag)
            finally:
                os.close(fd)

    if job == "mount":
        try:
            owner = hotmount.root_ids(target.pid)
        except OSError:
            raise StateError(target.id, "stopped", "mount in") from None
        hotmount.serve_mount(spec, join, owner)
    else:
        hotmount.serve_unmount(spec, join)


def _open_namespaces(target: Target, names: tuple[str, ...] | None = None) -> list[tuple[int, int]]:
    """Descriptors of the init's namespaces that differ from ours, checked to be the
    container's: they pin the namespaces, and the init's start time proves whose they are."""
    joins: list[tuple[int, int]] = []
    try:
        for name, flag in _NAMESPACES:
            if names is not None and name not in names:
                continue
            try:
                fd = os.open(f"/proc/{target.pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise StateError(target.id, "stopped", "exec in") from None
            if os.stat(f"/proc/self/ns/{name}").st_ino == os.fstat(fd).st_ino:
                os.close(fd)  # shared with us (a container without that namespace)
                continue
            joins.append((fd, flag))
        if process_start_time(target.pid) != target.pid_start:
            raise StateError(target.id, "stopped", "exec in")
    except BaseException:
        for fd, _ in joins:
            os.close(fd)
        raise
    return joins


def _serve_exec(target: Target, raw: dict[str, Any], stdio: list[int], conn: socket.socket) -> int:
    from runtime.cgroups import open_manager
    from runtime.spec import load_bundle

    window = raw.get("window") or [24, 80]
    opts = ExecOptions(
        args=tuple(raw["args"]),
        env=tuple(raw.get("env") or ()),
        user=raw.get("user"),
        cwd=raw.get("cwd"),
        stdio=(stdio[0], stdio[1], stdio[2]) if len(stdio) == 3 else (-1, -1, -1),
        tty=bool(raw.get("tty")),
        window=(int(window[0]), int(window[1])),
    )
    config = load_bundle(target.bundle)  # a host path: read before we take the container's root
    # the container's seccomp filter, compiled while the host's modules are in reach
    seccomp_filter = seccomp.load(config.seccomp) if config.seccomp else None
    cgroup = open_manager(
        target.cgroup_name or target.id,
        root=target.cgroup_root,
        parent=target.cgroup_parent,
        version=target.cgroup_version,
    )
    joins = _open_namespaces(target)
    cgroup.add_process(os.getpid())
    for fd, flag in joins:
        sc.setns(fd, flag)
        os.close(fd)
    # setns into the mount namespace made its root ours: the container's, after pivot_root.
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)  # carries a setup error before the exec
    child = os.fork()  # joining the PID namespace takes effect for children only
    if child == 0:
        os.close(ready_r)
        try:
            _become(config, opts, ready_w, conn, seccomp_filter)
        except BaseException as exc:
            try:
                os.write(ready_w, init.describe(exc).encode())
            finally:
                os._exit(126)
    os.close(ready_w)
    for fd in stdio:
        os.close(fd)
    failure = b""
    while chunk := os.read(ready_r, 4096):
        failure += chunk
    os.close(ready_r)
    status = _wait_forwarding_signals(child, conn)
    if failure:
        raise Error(failure.decode(errors="replace"))
    return exit_code(status)


def _wait_forwarding_signals(child: int, conn: socket.socket) -> int:
    """Wait for ``child``, passing on the signals the caller asks for meanwhile."""
    pidfd = os.pidfd_open(child)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(conn.fileno(), select.POLLIN)
    channel = Channel(os.dup(conn.fileno()), is_socket=True)
    try:
        while True:
            events = dict(poller.poll())
            if pidfd in events:
                return os.waitpid(child, 0)[1]
            try:
                message = channel.receive()
            except (OSError, ValueError):
                message = None
            if message is None:  # the caller has gone; the process goes on
                poller.unregister(conn.fileno())
                continue
            if isinstance(message.get("signal"), int):
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(pidfd, message["signal"])
    finally:
        os.close(pidfd)
        channel.close()


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _become(
    config: ContainerConfig,
    opts: ExecOptions,
    ready: int,
    conn: socket.socket,
    seccomp_filter: tuple[bytes, int] | None = None,
) -> NoReturn:
    env = _merge_env(config.env, opts.env)
    if opts.user is not None:
        resolved = users.resolve(opts.user)
        config = dataclasses.replace(
            config,
            uid=resolved.uid,
            gid=resolved.gid,
            additional_gids=resolved.additional_gids,
            user_name=None,
        )
        user = resolved
    else:
        user = init.resolve_user(config)
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home}")
    init.check_cwd(opts.cwd or config.cwd)
    executable = init.find_executable(opts.args[0], env)
    init.apply_limits(config)
    stdio = opts.stdio
    if opts.tty:
        stdio = _open_terminal(user, opts.window, conn)
    for target, fd in enumerate(stdio):
        if fd < 0:
            fd = os.open(os.devnull, os.O_RDWR)
        if fd != target:
            os.dup2(fd, target, inheritable=True)
    if opts.tty:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # (we lead a new session: see _open_terminal)
    ready_obj = init.Ready(executable, env, user, None, seccomp_filter=seccomp_filter)
    init.become_user(config, ready_obj)
    init.reset_signals()
    os.close(ready)  # from here on an error goes to stderr, with a shell's status
    os.closerange(3, 1 << 20)
    try:
        init.lock_down(config, ready_obj)  # the container's seccomp filter, as its init had
        os.execve(executable, list(opts.args), dict(e.split("=", 1) for e in env))
    except Error as exc:
        os.write(2, f"{exc}\n".encode())
        os._exit(127)
    except OSError as exc:
        os.write(2, f"exec {opts.args[0]}: {exc.strerror}\n".encode())
        os._exit(126 if exc.errno == errno.EACCES else 127)


def _open_terminal(
    user: users.ResolvedUser, window: tuple[int, int], conn: socket.socket
) -> tuple[int, int, int]:
    """A terminal from the container's devpts (our root is the container's now), its slave
    owned by the user; the master goes to the caller. We lead a new session, so that the
    terminal can become ours."""
    master, slave = init.open_console(user)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", window[0], window[1], 0, 0))
    Channel(os.dup(conn.fileno()), is_socket=True).send(terminal=True, fds=(master,))
    os.close(master)
    os.setsid()
    return (slave, slave, slave)


def _merge_env(base: tuple[str, ...], extra: tuple[str, ...]) -> list[str]:
    merged = {e.split("=", 1)[0]: e for e in base}
    for e in extra:
        if "=" not in e:
            raise Error(f"exec: environment {e!r} is not KEY=VALUE")
        merged[e.split("=", 1)[0]] = e
    return list(merged.values())
