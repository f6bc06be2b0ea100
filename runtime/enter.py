"""Run another process in a running container (``exec``), as runc and Docker do.

The process joins the container's cgroup and namespaces (through the init's /proc/PID/ns
files, opened while the init's start time proves it is still the container's), then forks once
more so that it lives in the container's PID namespace. It takes the container's user,
capabilities, no_new_privileges and rlimits, unless told another user; its environment is the
container's plus what the caller adds; its stdio are the caller's; no other descriptor of ours
reaches it. ``exec`` blocks until the process ends and returns its exit status (128 + signal
when killed), as a shell would.

The caller forks: it must be single-threaded (the CLI is; the supervisor will go through the
fork server, as it does to launch).
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
from typing import NoReturn

from runtime import init, users
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


def run(state: ContainerState, config: ContainerConfig, cgroup: object, opts: ExecOptions) -> int:
    """Run ``opts.args`` in the container ``state`` describes; its exit status."""
    if not opts.args:
        raise Error("exec: no command given")
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)  # carries a setup error before the exec
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        ours.close()
        try:
            _enter(state, config, cgroup, opts, ready_w, theirs)
        except BaseException as exc:
            try:
                os.write(ready_w, init.describe(exc).encode())
            finally:
                os._exit(126)
    os.close(ready_w)
    theirs.close()
    try:
        if opts.tty:
            _relay_terminal(ours, opts)
        failure = b""
        while chunk := os.read(ready_r, 4096):
            failure += chunk
    finally:
        os.close(ready_r)
        ours.close()
    _, status = os.waitpid(pid, 0)
    if failure:
        raise Error(failure.decode(errors="replace"))
    return _exit_code(status)


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _relay_terminal(sock: socket.socket, opts: ExecOptions) -> None:
    """Receive the terminal's master from the process (or nothing, if it failed first) and
    relay it to our stdio until the process and its children have let go of the terminal."""
    from runtime.attach import raw_terminal

    _, fds, _, _ = socket.recv_fds(sock, 16, 1, socket.MSG_CMSG_CLOEXEC)
    if not fds:
        return
    master = fds[0]
    stdin, stdout = opts.stdio[0], opts.stdio[1]
    sources = [master, stdin] if opts.interactive else [master]
    try:
        with raw_terminal(stdin) if opts.interactive else contextlib.nullcontext():
            while True:
                readable, _, _ = select.select(sources, [], [])
                if master in readable:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: no process holds the terminal any more
                        return
                    if not data:
                        return
                    os.write(stdout, data)
                if stdin in readable:
                    data = os.read(stdin, 65536)
                    if not data:
                        sources.remove(stdin)  # our input ended; its output may go on
                        continue
                    os.write(master, data)
    finally:
        os.close(master)


def _enter(
    state: ContainerState,
    config: ContainerConfig,
    cgroup: object,
    opts: ExecOptions,
    ready: int,
    terminal_to: socket.socket,
) -> NoReturn:
    target = state.pid
    joins: list[tuple[int, int]] = []
    for name, flag in _NAMESPACES:
        path = f"/proc/{target}/ns/{name}"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StateError(state.id, "stopped", "exec in") from None
        if os.stat(f"/proc/self/ns/{name}").st_ino == os.fstat(fd).st_ino:
            os.close(fd)  # shared with us (a container without that namespace)
            continue
        joins.append((fd, flag))
    # The descriptors pin the namespaces; the start time proves they were the container's.
    if process_start_time(target) != state.record.get("pid_start"):
        raise StateError(state.id, "stopped", "exec in")
    cgroup.add_process(os.getpid())  # type: ignore[attr-defined]
    for fd, flag in joins:
        sc.setns(fd, flag)
        os.close(fd)
    # setns into the mount namespace made its root ours: the container's, after pivot_root.
    child = os.fork()  # joining the PID namespace takes effect for children only
    if child:
        os.close(ready)  # the caller reads the end (or an error from the child)
        terminal_to.close()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, lambda s, _f: os.kill(child, s))  # pass them on
        while True:
            try:
                _, status = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        os._exit(_exit_code(status))
    _become(config, opts, ready, terminal_to)


def _become(
    config: ContainerConfig, opts: ExecOptions, ready: int, terminal_to: socket.socket
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
        stdio = _open_terminal(user, opts.window, terminal_to)
    terminal_to.close()
    for target, fd in enumerate(stdio):
        if fd != target:
            os.dup2(fd, target, inheritable=True)
    if opts.tty:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # (we lead a new session: see _open_terminal)
    ready_obj = init.Ready(executable, env, user, None)
    init.become_user(config, ready_obj)
    init.reset_signals()
    os.close(ready)  # from here on an error goes to stderr, with a shell's status
    os.closerange(3, 1 << 20)
    try:
        os.execve(executable, list(opts.args), dict(e.split("=", 1) for e in env))
    except OSError as exc:
        os.write(2, f"exec {opts.args[0]}: {exc.strerror}\n".encode())
        os._exit(126 if exc.errno == errno.EACCES else 127)


def _open_terminal(
    user: users.ResolvedUser, window: tuple[int, int], terminal_to: socket.socket
) -> tuple[int, int, int]:
    """A terminal from the container's devpts (our root is the container's now), its slave
    owned by the user; the master goes to the caller. We lead a new session, so that the
    terminal can become ours."""
    master, slave = init.open_console(user)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", window[0], window[1], 0, 0))
    socket.send_fds(terminal_to, [b"t"], [master])
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
