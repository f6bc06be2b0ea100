"""Starting a container the ordinary way: the code that runs in the caller, in the monitor's
short-lived helper and in the setup child, never in the long-lived monitor (runtime.monitor).

``spawn`` forks the monitor from the calling process (single-threaded: a CLI, the benchmark,
the fork server's template; the supervisor goes through the fork server). The monitor forks a
helper that does the start (``_start_container``): a setup child makes the cgroup and forks
the init into a new PID namespace (``_setup``); the helper reports the init's pid (or the
error) to the caller and hands the watch over to the monitor (``take_over``). Pre-made
containers (runtime.pool) use ``state_record`` and ``watch_message`` from here too.

Split from runtime.monitor by which process runs the code: the monitor's pages are its own
once written, for as long as its container runs, so it should touch as little as it can.
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from runtime import hooks, init, seccomp, userns
from runtime.cgroups import open_manager
from runtime.cgroups.resources import Resources
from runtime.channel import Channel, pipe_pair, socket_pair
from runtime.errors import SetupError
from runtime.launching import Launched, LaunchOptions, finish_launch, prepare_directory
from runtime.linux import syscalls as sc
from runtime.logs import timestamp
from runtime.monitor import (
    Outputs,
    _CgroupHandle,
    _destroy_quietly,
    _listen,
    _reap,
    run_monitor,
)
from runtime.spec import ContainerConfig
from runtime.state import process_start_time, write_json_atomic
from runtime.trace import mark

__all__ = ["LaunchOptions", "Launched", "finish_launch", "fork_monitor", "prepare_directory"]


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
    """(the monitor's helper) The ordinary start: the helper makes the init itself, or, for a
    user namespace, a setup child does (it joins that namespace, and the helper must stay
    privileged on the host to clean up)."""
    try:
        outputs = Outputs(stdin=options.stdin)
        init_stdio = (
            (inherited[0], inherited[1], inherited[2]) if inherited else outputs.for_init(devnull)
        )
        monitor_pid = os.getppid()
        loaded = config if isinstance(config, ContainerConfig) else config()  # (see ConfigSource)
        ours = (*outputs.monitor_side(), report.fd, to_monitor.fd)
        if "user" in loaded.namespaces:
            setup_pid, from_setup = fork_setup(
                lambda to_helper: _setup(
                    container_id, loaded, directory, options, to_helper, init_stdio, monitor_pid
                ),
                close_in_child=ours,
            )
            outputs.close_theirs()
            for fd in inherited:
                os.close(fd)
        else:
            # One process fewer per start (each forked Python costs its page copies). The
            # init's ends of the outputs are closed by _setup once the init has them.
            setup_pid = 0
            from_setup = setup_here(
                lambda to_helper: _setup(
                    container_id,
                    loaded,
                    directory,
                    options,
                    to_helper,
                    init_stdio,
                    monitor_pid,
                    close_in_init=ours,
                )
            )
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


def setup_here(work: Callable[[Channel], None]) -> Channel:
    """Run ``work(to_helper)`` in this process (what ``fork_setup`` does in a child); what it
    said (or the error it raised) waits on the channel returned."""
    from_setup, to_helper = socket_pair()
    try:
        work(to_helper)
    except BaseException as exc:
        to_helper.send(error=init.describe(exc))
    finally:
        to_helper.close()
    return from_setup


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
    parent, name, shared, prune = (message or {}).get("cgroup") or (
        options.cgroup_parent,
        container_id,
        False,
        0,
    )
    cgroup = _CgroupHandle(
        container_id, options.cgroup_root, parent, options.cgroup_version, name, shared, prune
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
        container_id,
        pid,
        directory,
        options,
        stdin_w,
        console,
        console_slave,
        mount_ns,
        (parent, name, shared, prune),
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
    place: tuple[str, str, bool, int] | None = None,
) -> tuple[dict[str, Any], list[int]]:
    """What the monitor needs to watch a container (``watch_container``), and the descriptors
    to send along after the listener and the output pipes. ``place``: the cgroup's parent,
    name, whether other containers may share it, and how many of its parents are ours to
    remove (``cgroup_place``)."""
    parent, name, shared, prune = place or (options.cgroup_parent, container_id, False, 0)
    extra = [fd for fd in (stdin_w, console, console_slave, mount_ns) if fd is not None]
    return {
        "id": container_id,
        "pid": pid,
        "directory": str(directory),
        "log": [options.log_path, options.log_max_size, options.log_max_files]
        if options.log_path
        else None,
        "cgroup": [options.cgroup_root, parent, options.cgroup_version, name, shared, prune],
        "cleanup_paths": list(options.cleanup_paths),
        "stdin": stdin_w is not None,
        "console": console is not None,
        "console_slave": console_slave is not None,
        "mount_ns": mount_ns is not None,
    }, extra


def _setup(
    container_id: str,
    source: ConfigSource,
    directory: Path,
    options: LaunchOptions,
    to_monitor: Channel,
    init_stdio: tuple[int, int, int],
    monitor_pid: int | None = None,
    close_in_init: tuple[int, ...] = (),
) -> None:
    """The setup (in a short-lived child, or in the monitor's helper itself): cgroup, the
    init, state.json; reports the init's pid to the monitor's helper, which leaves the init
    to the monitor (a subreaper). ``close_in_init``: what the init must not keep."""
    config = source if isinstance(source, ContainerConfig) else source()
    try:
        resources = Resources.from_oci(config.resources)
    except (ValueError, TypeError) as exc:
        raise SetupError(f"config.json: linux.resources: {exc}") from None
    parent, name, shared, prune = cgroup_place(container_id, config, options)
    cgroup = open_manager(
        name, root=options.cgroup_root, parent=parent, version=options.cgroup_version
    )
    pid = 0
    try:
        from_init, to_setup = socket_pair()
        from_setup, to_init = pipe_pair()
        fifo: str | int | None = str(directory / "exec.fifo") if options.create_only else None
        new_userns = "user" in config.namespaces  # made, or joined by path
        mark("cgroup-create")
        cgroup.create()
        cgroup.set(resources)
        if new_userns:
            # Join the cgroup ourselves while still privileged on the host: the init inherits it.
            cgroup.add_process(os.getpid())
            if isinstance(fifo, str):  # (root of the namespace may not open host root's FIFO)
                fifo = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)
            config, _ = userns.stage_host_paths(config, None)
            userns_path = config.namespaces["user"]
            if userns_path is None:
                userns.enter(config)
            else:
                userns.join(userns_path)
        if config.clone_flags & sc.CLONE_NEWPID:
            # Our next child becomes PID 1 of a new namespace (owned by the user namespace, when
            # there is one, so that it may mount its /proc); we ourselves stay outside it.
            sc.unshare(sc.CLONE_NEWPID)
        elif config.namespaces.get("pid"):
            init.join_namespace("pid", str(config.namespaces["pid"]))  # our next child is in it
        mark("fork-init")
        # cgroup v2: the init is born in its cgroup (clone3), where a kernel can do it
        born_in_cgroup = (
            options.cgroup_version == 2
            and not new_userns
            and not os.environ.get("ORCHESTRATOR_NO_CLONE3")  # (the benchmark's comparison)
        )
        pid = _fork_into(cgroup) if born_in_cgroup else -1
        if pid < 0:
            born_in_cgroup = False
            pid = os.fork()
        if pid == 0:
            try:
                to_monitor.close()
                from_init.close()
                to_init.close()
                for fd in close_in_init:
                    os.close(fd)
                init.run(
                    config,
                    to_setup,
                    from_setup,
                    init_stdio,
                    fifo,
                    seccomp.cache_of(directory),
                    options.cgroup_version,
                )
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
        try:
            if not new_userns and not born_in_cgroup:
                cgroup.add_process(pid)
            mark("cgroup-added")
            to_init.send(go=True)
        except BrokenPipeError:
            pass  # the init has failed already: its own report says why
        except (OSError, SetupError):
            if _still_running(pid):
                raise
            pid = 0  # (reaped) it has failed: its report says why
        reply = from_init.receive()
        if reply and reply.get("hooks"):  # its mounts are made: ours run before its pivot
            hook_state = hooks.state(
                container_id, "created", pid, str(config.bundle), config.annotations
            )
            for kind in ("prestart", "createRuntime"):
                hooks.run(config.hooks.get(kind, ()), hook_state, kind)
            to_init.send(state=hook_state)
            reply = from_init.receive()
        if not reply or not reply.get("ready"):
            _reap(pid)
            pid = 0
            raise SetupError((reply or {}).get("error") or "container setup failed: init died")
        mark("init-ready")
        record = state_record(
            container_id,
            config,
            options,
            pid,
            cgroup,
            monitor_pid=monitor_pid,
            place=(parent, name),
        )
        if not new_userns:
            write_json_atomic(directory / "state.json", record)
    except BaseException:
        if pid:
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
        if not shared and "user" not in config.namespaces:
            _destroy_quietly(cgroup)  # (in a user namespace we are in it: the helper removes it)
        raise
    fds = tuple(from_init.take_fds())  # the terminal's master and slave, the mount namespace
    extra = {"record": record} if new_userns else {}
    place = [parent, name, shared, prune]
    to_monitor.send(pid=pid, fds=fds, mount_ns=bool(reply.get("mount_ns")), cgroup=place, **extra)
    for fd in fds:
        os.close(fd)


def _fork_into(cgroup: Any) -> int:
    """Fork with the child born in ``cgroup`` (a v2 manager's directory); -1 when the kernel
    cannot (before 5.7, a laid-out tree that is not a cgroup2 mount...): nothing forked then."""
    try:
        fd = os.open(cgroup.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return -1
    try:
        pid = sc.fork_into_cgroup(fd)
    except OSError:
        return -1
    finally:
        os.close(fd)
    if pid == 0:
        mark("init-born-in-cgroup")
    return pid


def cgroup_place(
    container_id: str, config: ContainerConfig, options: LaunchOptions
) -> tuple[str, str, bool, int]:
    """(parent, name, shared, prune) of the container's cgroup: ``<our parent>/<id>``, or
    where ``linux.cgroupsPath`` says: an absolute path from the hierarchy's root, a relative
    one below our parent (the same path is the same cgroup). A cgroup the config names may be
    shared with other containers: it is removed once empty, its processes never killed; the
    ``prune`` parents made below ours for a relative path go too once empty."""
    path = config.cgroups_path
    if not path:
        return options.cgroup_parent, container_id, False, 0
    parts = [p for p in path.split("/") if p]
    if not parts or (":" in path and not path.startswith("/")):
        raise SetupError(
            f"config.json: linux.cgroupsPath {path!r}: give a cgroup path (a systemd"
            " slice:prefix:name is not supported)"
        )
    if path.startswith("/"):
        return "/".join(parts[:-1]), parts[-1], True, 0
    return "/".join([options.cgroup_parent, *parts[:-1]]), parts[-1], True, len(parts) - 1


def _still_running(pid: int) -> bool:
    """False once ``pid`` (our child) has ended; it is reaped then."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != pid
    except ChildProcessError:
        return False


def state_record(
    container_id: str,
    config: ContainerConfig,
    options: LaunchOptions,
    pid: int,
    cgroup: Any,
    starts: tuple[int | None, int | None] | None = None,
    monitor_pid: int | None = None,
    place: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """What state.json holds (written by the setup child, the monitor's child, or by a
    pre-made init). ``starts``: the start times of the init and the monitor, when known;
    ``place``: the cgroup's parent and name (``cgroup_place``), when not ours by default."""
    parent, name = place or (options.cgroup_parent, container_id)
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
        "cgroup": name,
        "cgroup_parent": parent,
        "freezer_state": _freezer_file(cgroup),
        "log_path": options.log_path,
        **_later_hooks(config),
    }


def _later_hooks(config: ContainerConfig) -> dict[str, Any]:
    """The hooks start and delete run (runtime.hooks), kept with the state."""
    later = {k: v for k, v in config.hooks.items() if k in ("poststart", "poststop")}
    return {"hooks": hooks.to_record(later)} if later else {}


def _freezer_file(cgroup: Any) -> str | None:
    path = getattr(cgroup, "freezer_state_file", None)
    return str(path) if path else None


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
