"""The container's first process, from fork to ``execve`` of the user's program.

It runs in a child of the monitor that is already PID 1 of the new PID namespace and already in
the container's cgroup. It enters the remaining namespaces, builds the root filesystem, pivots
into it, checks everything that can fail (cwd, the executable, limits), tells the monitor it is
ready, waits on the exec FIFO when the container is only created, then drops privileges and
execs. Before "ready" an error goes back to the monitor as a message; after it, to stderr (the
container's log) with exit status 127 (not found) or 126 (not executable), as shells do.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # (the C module: see reset_signals)
import errno
import fcntl
import os
import resource
import stat
import termios
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from runtime import hooks, rootfs, seccomp, users
from runtime.channel import Channel
from runtime.errors import Error, SetupError
from runtime.linux import caps, loopback
from runtime.linux import syscalls as sc
from runtime.spec import NAMESPACE_FLAGS, ContainerConfig
from runtime.trace import mark

if TYPE_CHECKING:
    from runtime.premount import Premounted

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Namespaces created by the monitor before forking us (pid) or by an earlier step (user).
# The cgroup namespace comes once the monitor has moved us into the container's cgroup.
_NOT_HERE = sc.CLONE_NEWPID | sc.CLONE_NEWUSER | sc.CLONE_NEWCGROUP


def run(
    config: ContainerConfig,
    to_monitor: Channel,
    from_monitor: Channel,
    stdio: tuple[int, int, int],
    exec_fifo: str | int | None,
    seccomp_cache: str | None = None,
    cgroup_version: int | None = None,
) -> NoReturn:
    """``exec_fifo``: its path, or (in a user namespace, whose root may not open it) a
    descriptor opened for us."""
    joined = False

    def join_cgroup() -> None:
        # The monitor moves us into the cgroup while we build the root filesystem (on cgroup v1
        # that move waits for an RCU grace period, milliseconds we need not wait for twice).
        # The cgroup namespace, and the cgroup mounts, must come after the move.
        nonlocal joined
        if joined:
            return
        mark("init-wait-go")
        message = from_monitor.receive()
        mark("init-go")
        if not message or not message.get("go"):
            os._exit(1)
        if config.clone_flags & sc.CLONE_NEWCGROUP:
            sc.unshare(sc.CLONE_NEWCGROUP)
        joined = True

    def hook_state() -> dict[str, Any]:
        # The setup child runs prestart and createRuntime hooks (in the runtime's
        # namespaces), then tells us the state (our pid, as the host sees it).
        to_monitor.send(hooks=True)
        message = from_monitor.receive()
        if not message or "state" not in message:
            os._exit(1)  # a hook failed: the setup child says so
        return dict(message["state"])

    try:
        mark("init")
        os.setsid()
        enter_namespaces(config)
        mark("init-namespaces")
        ready = prepare(
            config,
            exec_fifo,
            join_cgroup,
            seccomp_cache=seccomp_cache,
            hook_state=hook_state,
            cgroup_version=cgroup_version,
        )
    except Exception as exc:  # even a bug in setup is one message, and the monitor cleans up
        _report_and_exit(to_monitor, describe(exc))
    _start(config, ready, to_monitor, from_monitor, stdio)


# What a pre-made init has already entered: the set Docker gives a container by default.
POOL_NAMESPACES = (
    sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWNET | sc.CLONE_NEWCGROUP
)


def _start(
    config: ContainerConfig,
    ready: Ready,
    to_monitor: Channel,
    from_monitor: Channel,
    stdio: tuple[int, int, int],
) -> NoReturn:
    fds, mount_ns = for_the_monitor(ready)
    to_monitor.send(ready=True, fds=fds, mount_ns=mount_ns is not None)
    for fd in fds:
        os.close(fd)
    to_monitor.close()
    from_monitor.close()
    execute(config, ready, stdio)


def for_the_monitor(ready: Ready) -> tuple[tuple[int, ...], int | None]:
    """The descriptors the monitor keeps: the terminal's master and a copy of its slave (with
    the slave open there, the master never reports a hang-up that could lose the last output
    of a quick exit), and our mount namespace, which it holds until it has recorded our exit:
    otherwise the exit itself would take it down (every mount, and an RCU grace period)
    before the kernel lets anyone know we ended."""
    fds: tuple[int, ...] = ()
    if ready.console:
        master, slave = ready.console
        fds = (master, os.dup(slave))
    try:
        mount_ns: int | None = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # a container without /proc
        mount_ns = None
    return (*fds, mount_ns) if mount_ns is not None else fds, mount_ns


def execute(config: ContainerConfig, ready: Ready, stdio: tuple[int, int, int]) -> NoReturn:
    """Become the container's program: stdio, user, signals, the wait for `start`, exec."""
    if ready.console:
        slave = ready.console[1]
        stdio = (slave, slave, slave)
    try:
        # stdio first: from here on an error reaches the container's log or terminal
        for target, fd in enumerate(stdio):
            if fd != target:
                os.dup2(fd, target, inheritable=True)
        if ready.console:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the terminal becomes our controlling one
        become_user(config, ready)
        reset_signals()
        if ready.fifo_fd is not None:  # all done but the exec when `start` comes
            _wait_for_start(ready.fifo_fd)
        if ready.hook_state is not None:
            hooks.run(config.hooks.get("startContainer", ()), ready.hook_state, "startContainer")
        mark("exec")
        os.closerange(3, 1 << 20)
        lock_down(config, ready)
        os.execve(ready.executable, config.args, dict(e.split("=", 1) for e in ready.env))
    except SetupError as exc:
        _die(str(exc), 127)
    except OSError as exc:
        _die(f"exec {config.args[0]}: {exc.strerror}", 126 if exc.errno == errno.EACCES else 127)
    except Exception as exc:
        _die(f"container start: {exc!r}", 127)


class Ready:
    def __init__(
        self,
        executable: str,
        env: list[str],
        user: users.ResolvedUser,
        fifo_fd: int | None,
        console: tuple[int, int] | None = None,
        seccomp_filter: tuple[bytes, int] | None = None,
    ):
        self.executable = executable
        self.env = env
        self.user = user
        self.fifo_fd = fifo_fd
        self.console = console  # (master, slave) of the container's terminal
        self.seccomp = seccomp_filter  # (program, flags), installed last (lock_down)
        self.restore_caps: tuple[int, int, int] | None = None  # after it (become_user)
        self.hook_state: dict[str, Any] | None = None  # the state startContainer hooks read


def prepare(
    config: ContainerConfig,
    exec_fifo: str | int | None,
    join_cgroup: Callable[[], None],
    premounted: Premounted | None = None,
    seccomp_cache: str | None = None,
    hook_state: Callable[[], dict[str, Any]] | None = None,
    cgroup_version: int | None = None,
) -> Ready:
    """Everything after the namespaces: root filesystem, pivot, checks and limits.
    ``premounted``: the kernel filesystems a pre-made init mounted ahead (runtime.premount);
    ``seccomp_cache``: where compiled seccomp programs are kept (runtime.seccomp.load);
    ``hook_state``: for a config with hooks, runs the runtime's own (prestart, createRuntime)
    and gives the state the init's hooks read (runtime.hooks); ``cgroup_version``: of the
    container's cgroup (its /sys/fs/cgroup mount shows that hierarchy)."""
    if config.hostname:
        sc.sethostname(config.hostname)
    if config.domainname:
        sc.setdomainname(config.domainname)
    # Opened for reading and writing, a FIFO opens at once; the read in _wait_for_start then
    # blocks until `start` writes (after we dropped privileges: opened now, as root).
    fifo_fd = exec_fifo if isinstance(exec_fifo, int) else None
    if isinstance(exec_fifo, str):
        fifo_fd = os.open(exec_fifo, os.O_RDWR | os.O_CLOEXEC)
    # Compiled while the host's paths are in reach (the cache, the syscall tables' module).
    seccomp_filter = None
    if config.seccomp:
        mark("seccomp-load")
        seccomp_filter = seccomp.load(config.seccomp, seccomp_cache)
        mark("seccomp-loaded")
    state = None
    if "mount" not in config.namespaces:
        # The host's mount namespace: nothing is mounted (it would be the host's); the root
        # is root.path all the same, by chroot.
        join_cgroup()
        if config.hooks and hook_state:
            state = _create_hooks(config, hook_state)
        apply_sysctls(config.sysctl)
        if str(config.root_path) != "/":
            os.chroot(config.root_path)
        os.chdir("/")
    else:
        rootfs.mount_rootfs(config, propagation_done=premounted is not None)
        rootfd = os.open(config.root_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            moved = rootfs.apply_mounts(config, rootfd, join_cgroup, premounted, cgroup_version)
            join_cgroup()
            mark("init-mounted")
            if config.hooks and hook_state:
                state = _create_hooks(config, hook_state)
            rootfs.pivot(rootfd)
            mark("init-pivoted")
        finally:
            os.close(rootfd)
        rootfs.set_root_propagation(config)
        apply_sysctls(config.sysctl)
        masked, readonly = (
            premounted.done_masks(moved) if premounted else (frozenset(), frozenset())
        )
        rootfs.mask_paths(p for p in config.masked_paths if p not in masked)
        rootfs.readonly_paths(p for p in config.readonly_paths if p not in readonly)
        if config.root_readonly:
            rootfs.remount_root_readonly()
    user = resolve_user(config)
    env = list(config.env)
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home}")
    check_cwd(config.cwd)
    executable = find_executable(config.args[0], env)
    apply_limits(config)
    check_capabilities(config)
    console = open_console(user) if config.terminal else None
    ready = Ready(executable, env, user, fifo_fd, console, seccomp_filter)
    ready.hook_state = state
    return ready


def _create_hooks(config: ContainerConfig, hook_state: Callable[[], dict[str, Any]]) -> Any:
    """The runtime runs prestart and createRuntime (``hook_state``), then we run
    createContainer, in the container's namespaces, before pivot_root. The state, for
    startContainer later."""
    state = hook_state()
    hooks.run(config.hooks.get("createContainer", ()), state, "createContainer")
    return state


def open_console(user: users.ResolvedUser) -> tuple[int, int]:
    """A terminal from the container's own devpts (opened after pivot_root, so /dev/ptmx is
    the container's), its slave owned by the container's user, as Docker does."""
    try:
        master, slave = os.openpty()
    except OSError as exc:
        raise SetupError(
            f"process.terminal: cannot open a terminal in the container: {exc.strerror}"
        ) from None
    os.fchown(slave, user.uid, user.gid)
    os.set_inheritable(master, False)
    return master, slave


def enter_namespaces(config: ContainerConfig) -> None:
    """Join the namespaces given by path (the user and PID ones were joined by the setup
    child: see runtime.launch), the mount namespace last (it changes our view of paths);
    then make the new ones."""
    joins = sorted(
        (kind == "mount", kind, path)
        for kind, path in config.namespaces.items()
        if path is not None and kind not in ("user", "pid")
    )
    for _, kind, path in joins:
        join_namespace(kind, path)
    flags = config.clone_flags & ~_NOT_HERE
    if flags:
        sc.unshare(flags)
    if flags & sc.CLONE_NEWNET:
        bring_loopback_up()


NS_GET_NSTYPE = 0xB703  # ioctl (linux/nsfs.h): a namespace file's CLONE_NEW* type


def join_namespace(kind: str, path: str) -> None:
    """setns into the namespace at ``path``, which must be a ``kind`` namespace."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SetupError(f"joining {kind} namespace {path}: {exc.strerror}") from None
    try:
        try:
            nstype = fcntl.ioctl(fd, NS_GET_NSTYPE)
        except OSError:
            nstype = 0
        if nstype != NAMESPACE_FLAGS[kind]:
            raise SetupError(f"linux.namespaces: {path} is not a {kind} namespace")
        sc.setns(fd, nstype)
    except OSError as exc:
        raise SetupError(f"joining {kind} namespace {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def bring_loopback_up() -> None:
    try:
        loopback.bring_up()
    except OSError as exc:
        raise SetupError(f"network namespace: cannot bring loopback up: {exc.strerror}") from None


def apply_sysctls(sysctl: dict[str, str]) -> None:
    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            fd = sc.openat2(
                -100, path, os.O_WRONLY, 0, sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS
            )
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise SetupError(f"sysctl {key}={value}: {exc.strerror}") from None


def resolve_user(config: ContainerConfig) -> users.ResolvedUser:
    if config.user_name:
        resolved = users.resolve(config.user_name)
        return users.ResolvedUser(
            resolved.uid,
            resolved.gid,
            tuple(dict.fromkeys((*resolved.additional_gids, *config.additional_gids))),
            resolved.home,
        )
    home = "/"
    for row in users._read("/etc/passwd"):
        if len(row) >= 7 and row[2] == str(config.uid):
            home = row[5] or "/"
            break
    return users.ResolvedUser(config.uid, config.gid, config.additional_gids, home)


def check_cwd(cwd: str) -> None:
    """The working directory must exist inside the container, reached without magic links."""
    try:
        fd = sc.openat2(-100, cwd, os.O_PATH | os.O_DIRECTORY, 0, sc.RESOLVE_NO_MAGICLINKS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SetupError(f"process.cwd {cwd}: leads through a /proc magic link") from None
        if exc.errno == errno.ENOENT:
            raise SetupError(f"process.cwd {cwd}: no such directory in the container") from None
        raise SetupError(f"process.cwd {cwd}: {exc.strerror}") from None
    try:
        os.fchdir(fd)
    finally:
        os.close(fd)


def find_executable(name: str, env: list[str]) -> str:
    if "/" in name:
        candidates = [name]
    else:
        path = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
        candidates = [os.path.join(d or ".", name) for d in path.split(":")]
    for candidate in candidates:
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
        if "/" in name:
            raise SetupError(f"exec {name}: permission denied")
    raise SetupError(f"exec {name}: executable file not found in $PATH")


def apply_limits(config: ContainerConfig) -> None:
    for limit in config.rlimits:
        soft = resource.RLIM_INFINITY if limit.soft >= 2**63 else limit.soft
        hard = resource.RLIM_INFINITY if limit.hard >= 2**63 else limit.hard
        try:
            resource.setrlimit(limit.resource, (soft, hard))
        except (ValueError, OSError):
            current = resource.getrlimit(limit.resource)[1]
            raise SetupError(
                f"rlimit {limit.name}: cannot raise the hard limit to {limit.hard} above {current}:"
                " that needs CAP_SYS_RESOURCE, which this host does not grant"
            ) from None
    if config.oom_score_adj is not None:
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(config.oom_score_adj))
        except OSError:
            raise SetupError(
                f"oomScoreAdj {config.oom_score_adj}: lowering it needs CAP_SYS_RESOURCE, which this host does not grant"
            ) from None
    if config.umask is not None:
        os.umask(config.umask)


def check_capabilities(config: ContainerConfig) -> None:
    c = config.capabilities
    held = sc.capget()[1]
    missing = (c.bounding | c.permitted | c.effective | c.inheritable | c.ambient) & ~held
    if missing:
        names = ", ".join(caps.names_of(missing))
        raise SetupError(f"capabilities {names} cannot be granted: this host does not hold them")


def _wait_for_start(fifo_fd: int) -> None:
    while not os.read(fifo_fd, 1):  # (never empty: we hold the FIFO open for writing too)
        pass
    os.close(fifo_fd)


def become_user(config: ContainerConfig, ready: Ready) -> None:
    """The user, groups and capabilities of the process. With a seccomp filter to install
    and neither no_new_privileges nor CAP_SYS_ADMIN, CAP_SYS_ADMIN stays effective until
    ``lock_down`` has installed it (the kernel wants one or the other)."""
    c = config.capabilities
    caps.drop_bounding(c.bounding)
    sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    user = ready.user
    # The primary group leads the supplementary list, as initgroups(3) and Docker have it.
    os.setgroups(list(dict.fromkeys((user.gid, *user.additional_gids))))
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    sc.prctl(sc.PR_SET_KEEPCAPS, 0)
    borrowed = _borrowed_for_seccomp(config, ready)
    caps.apply(c.effective | borrowed, c.permitted | borrowed, c.inheritable, c.ambient)
    if borrowed:
        valid = (1 << (caps.last_cap() + 1)) - 1
        ready.restore_caps = (c.effective & valid, c.permitted & valid, c.inheritable & valid)
    if config.no_new_privileges:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)


_CAP_SYS_ADMIN = 1 << caps.NUMBERS["CAP_SYS_ADMIN"]


def _borrowed_for_seccomp(config: ContainerConfig, ready: Ready) -> int:
    if ready.seccomp is None or config.no_new_privileges:
        return 0
    return _CAP_SYS_ADMIN & ~config.capabilities.effective


def lock_down(config: ContainerConfig, ready: Ready) -> None:
    """Install the seccomp filter, the last step before execve (after the capability drop,
    so that the calls it makes need not be allowed by the profile); then give back
    CAP_SYS_ADMIN if it was held only for that."""
    if ready.seccomp is None:
        return
    program, flags = ready.seccomp
    seccomp.install(program, flags)
    if ready.restore_caps is not None:
        try:
            sc.capset(*ready.restore_caps)
        except OSError as exc:  # the profile refuses capset(2)
            raise SetupError(f"seccomp: dropping CAP_SYS_ADMIN after the filter: {exc}") from None


def describe(exc: BaseException) -> str:
    """One line for people; the whole traceback when ORCHESTRATOR_DEBUG is set."""
    if os.environ.get("ORCHESTRATOR_DEBUG"):
        try:
            import traceback

            return "".join(traceback.format_exception(exc))
        except Exception:
            pass  # after pivot_root the host's library may be out of reach
    if isinstance(exc, Error):
        return str(exc)
    if isinstance(exc, OSError):
        return f"container setup: {exc}"
    return f"container setup failed: {type(exc).__name__}: {exc}"


def reset_signals() -> None:
    """The user's program starts with default dispositions and nothing blocked: an ignored signal
    would stay ignored across exec (the monitor ignores SIGTERM, Python ignores SIGPIPE).
    The C module's calls: the ``signal`` module's wrappers make an enum of every signal and
    handler (a tenth of a millisecond per start)."""
    for sig in _signal.valid_signals():
        if sig in (_signal.SIGKILL, _signal.SIGSTOP):
            continue
        try:
            _signal.signal(sig, _signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def _report_and_exit(channel: Channel, message: str) -> NoReturn:
    try:
        channel.send(error=message)
    finally:
        os._exit(1)


def _die(message: str, status: int) -> NoReturn:
    try:
        os.write(2, f"{message}\n".encode())
    finally:
        os._exit(status)
