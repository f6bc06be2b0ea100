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

import dataclasses
import errno
import os
import signal
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


def run(state: ContainerState, config: ContainerConfig, cgroup: object, opts: ExecOptions) -> int:
    """Run ``opts.args`` in the container ``state`` describes; its exit status."""
    if not opts.args:
        raise Error("exec: no command given")
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)  # carries a setup error before the exec
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        try:
            _enter(state, config, cgroup, opts, ready_w)
        except BaseException as exc:
            try:
                os.write(ready_w, init.describe(exc).encode())
            finally:
                os._exit(126)
    os.close(ready_w)
    try:
        failure = b""
        while chunk := os.read(ready_r, 4096):
            failure += chunk
    finally:
        os.close(ready_r)
    _, status = os.waitpid(pid, 0)
    if failure:
        raise Error(failure.decode(errors="replace"))
    return _exit_code(status)


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _enter(
    state: ContainerState, config: ContainerConfig, cgroup: object, opts: ExecOptions, ready: int
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
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, lambda s, _f: os.kill(child, s))  # pass them on
        while True:
            try:
                _, status = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        os._exit(_exit_code(status))
    _become(config, opts, ready)


def _become(config: ContainerConfig, opts: ExecOptions, ready: int) -> NoReturn:
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
    for target, fd in enumerate(opts.stdio):
        if fd != target:
            os.dup2(fd, target, inheritable=True)
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


def _merge_env(base: tuple[str, ...], extra: tuple[str, ...]) -> list[str]:
    merged = {e.split("=", 1)[0]: e for e in base}
    for e in extra:
        if "=" not in e:
            raise Error(f"exec: environment {e!r} is not KEY=VALUE")
        merged[e.split("=", 1)[0]] = e
    return list(merged.values())
