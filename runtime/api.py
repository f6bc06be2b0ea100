"""The runtime's Python API: the OCI lifecycle over a state directory.

    rt = Runtime(Path("/var/lib/orchestrator/runtime"))
    rt.create("web", bundle)      # set up and waiting on exec.fifo
    rt.start("web")               # the user's program runs
    rt.state("web").status        # "running"
    rt.kill("web", signal.SIGTERM)
    rt.wait("web")                # {"exit_code": 143, ...}
    rt.delete("web")

``run`` is create and start in one step (no FIFO round trip). Every call checks the state machine
and raises ``StateError`` for an operation the state forbids. The calling process must be
single-threaded when it creates containers (a fork follows); a multi-threaded caller such as the
trio supervisor goes through the fork server instead.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from runtime import hooks
from runtime import state as st
from runtime.errors import Error, NotFound, StateError
from runtime.launching import LaunchOptions
from runtime.linux.topdir import mark_top
from runtime.logs import timestamp
from runtime.monitor_client import wait_exit
from runtime.spec import ContainerConfig, load_bundle


class Runtime:
    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        cgroup_root: str = "/sys/fs/cgroup",
        cgroup_parent: str | None = None,
        fork_server: bool = False,
    ) -> None:
        """``fork_server`` launches monitors from the root's fork server (started on demand)
        instead of forking this process: required when this process has threads, and cheaper
        in memory for containers that outlive a short-lived caller. ``cgroup_parent`` defaults
        to ``runtime.cgroups.default_parent()``."""
        from runtime.cgroups import default_parent

        self.root = Path(root).absolute()
        self.fork_server = fork_server
        self.cgroup_root = cgroup_root
        self.cgroup_parent = cgroup_parent or default_parent()
        self.cgroup_version = _preload_cgroups(cgroup_root, managers=not fork_server)
        self._spread = False  # whether the root is made and marked to spread its directories

    # lifecycle -------------------------------------------------------------------------------

    def create(
        self, container_id: str, bundle: str | os.PathLike[str], **options: Any
    ) -> st.ContainerState:
        return self._launch(container_id, load_bundle(bundle), create_only=True, **options)

    def run(
        self, container_id: str, bundle: str | os.PathLike[str], **options: Any
    ) -> st.ContainerState:
        return self._launch(container_id, load_bundle(bundle), create_only=False, **options)

    def launch(
        self, container_id: str, config: ContainerConfig, *, create_only: bool, **options: Any
    ) -> st.ContainerState:
        """Like create/run with an already loaded config."""
        return self._launch(container_id, config, create_only=create_only, **options)

    def _launch(
        self,
        container_id: str,
        config: ContainerConfig,
        *,
        create_only: bool,
        log_path: str | None = None,
        pid_file: str | None = None,
        log_max_size: int = 10 * 1024 * 1024,
        log_max_files: int = 3,
        inherit_stdio: bool = False,
        cleanup_paths: tuple[str, ...] = (),
        console_socket: str | None = None,
        stdin: bool = False,
    ) -> st.ContainerState:
        st.validate_id(container_id)
        self.root.mkdir(parents=True, exist_ok=True)
        if not self._spread:  # (see runtime.linux.topdir)
            mark_top(self.root)
            self._spread = True
        self.forget_exit(container_id)  # a new container of that id: the old one's exit goes
        options = LaunchOptions(
            create_only=create_only,
            log_path=log_path,
            log_max_size=log_max_size,
            log_max_files=log_max_files,
            cgroup_root=self.cgroup_root,
            cgroup_parent=self.cgroup_parent,
            cgroup_version=self.cgroup_version,
            inherit_stdio=inherit_stdio,
            cleanup_paths=cleanup_paths,
            console_socket=console_socket,
            stdin=stdin,
        )
        directory = self.root / container_id
        try:
            if self.fork_server:
                launched = self.fork_server_client().launch(
                    container_id, config, directory, options
                )
            else:
                from runtime.launch import spawn  # (here: the fork server's clients need not)

                launched = spawn(container_id, config, directory, options)
                self._monitors = getattr(self, "_monitors", {})
                self._monitors[container_id] = launched.monitor_pid
        except Error as exc:
            if str(exc).startswith(tuple(f"{kind} hook" for kind in hooks.CREATE_KINDS)):
                # a create hook failed: the container is gone; on to the poststop hooks
                self._run_hooks(config.hooks.get("poststop", ()), container_id, config, "stopped")
            raise
        if pid_file:
            tmp = f"{pid_file}.tmp"
            with open(tmp, "w") as f:
                f.write(str(launched.pid))
            os.replace(tmp, pid_file)
        try:
            current = self.state(container_id)
        except NotFound:
            if not cleanup_paths:
                raise
            # (--rm) It has ended and its monitor removed it already: its exit record is left.
            record = {"id": container_id, "pid": launched.pid, "bundle": str(config.bundle)}
            exit_record = self.exited(container_id) or {"exit_code": None}
            return st.ContainerState(container_id, directory, record, exit_record, st.STOPPED)
        if not create_only and "poststart" in config.hooks:
            self._run_hooks(config.hooks["poststart"], container_id, config, "running", current)
        return current

    def start(self, container_id: str) -> None:
        """Let a created container run its program: the init, all set up and waiting on
        exec.fifo, execs once a byte arrives there.

        The FIFO exists only while the container is created, and opens for writing only while
        its init holds it: so the byte goes first, and the state is read only to say why not
        (or to record the start, while the program already runs)."""
        directory = self.root / st.validate_id(container_id)
        fifo = directory / "exec.fifo"
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            current = self.state(container_id)  # NotFound, or the state that forbids it
            st.check_transition(container_id, current.status, "start")
            raise StateError(container_id, current.status, "start") from None
        except OSError as exc:  # ENXIO: nobody holds it open, the init is gone
            raise Error(f"container {container_id} died before it could start") from exc
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
        try:
            current = self.state(container_id)
        except NotFound:
            return  # it has run, ended and been removed already (--rm)
        try:
            fifo.unlink()
        except FileNotFoundError:
            pass
        record = dict(current.record, started=timestamp())
        try:
            st.write_json_atomic(directory / "state.json", record)
        except FileNotFoundError:
            return  # (removed meanwhile, as above)
        if "hooks" in record:
            poststart = hooks.from_record(record["hooks"], "poststart")
            self._run_hooks(poststart, container_id, None, "running", current)

    def exec(
        self,
        container_id: str,
        args: list[str] | tuple[str, ...],
        *,
        env: tuple[str, ...] = (),
        user: str | None = None,
        cwd: str | None = None,
        stdio: tuple[int, int, int] = (0, 1, 2),
        tty: bool = False,
        interactive: bool = False,
        window: tuple[int, int] = (24, 80),
    ) -> int:
        """Run ``args`` in the running container, with ``stdio`` (through a terminal of the
        container's relayed to them, with ``tty``); its exit status. The work is done by a
        fresh child of the fork server (runtime.enter): this process never forks, so any
        caller may exec, threads and all."""
        from runtime.enter import ExecOptions, Target, run

        current = self.state(container_id)
        st.check_transition(container_id, current.status, "exec in")
        options = ExecOptions(tuple(args), tuple(env), user, cwd, stdio, tty, interactive, window)
        return run(self.fork_server_client(), Target.of(current, self._cgroup_place()), options)

    def open_socket(self, container_id: str, family: int, kind: int, proto: int = 0) -> Any:
        """A socket made inside the container's network namespace (runtime.enter); a created
        container's will do (its network is wired before its program runs)."""
        from runtime.enter import Target, open_socket

        current = self.state(container_id)
        if current.status not in (st.CREATED, st.RUNNING, st.PAUSED):
            raise StateError(container_id, current.status, "open a socket in")
        target = Target.of(current, self._cgroup_place())
        return open_socket(self.fork_server_client(), target, family, kind, proto)

    def mount(self, container_id: str, spec: Any) -> None:
        """Bind ``spec.source`` (a host path) at ``spec.target`` inside the running container
        (``spec``: runtime.hotmount.MountSpec); its processes see it at once."""
        import dataclasses

        from runtime import hotmount
        from runtime.enter import Target

        current = self.state(container_id)
        st.check_transition(container_id, current.status, "exec in")
        target = dataclasses.asdict(Target.of(current, self._cgroup_place()))
        hotmount.request(self.fork_server_client(), target, "mount", dataclasses.asdict(spec))

    def unmount(self, container_id: str, target_path: str) -> None:
        """Detach the mount at ``target_path`` inside the running container."""
        import dataclasses

        from runtime import hotmount
        from runtime.enter import Target

        current = self.state(container_id)
        st.check_transition(container_id, current.status, "exec in")
        target = dataclasses.asdict(Target.of(current, self._cgroup_place()))
        hotmount.request(self.fork_server_client(), target, "unmount", {"target": target_path})

    def state(self, container_id: str) -> st.ContainerState:
        return st.load(self.root, container_id)

    def list(self, unreadable: list[st.Unreadable] | None = None) -> list[st.ContainerState]:
        """Every container; one whose state cannot be read is left out (and added to
        ``unreadable`` when given): it must not hide the others."""
        self._prune_exits()
        result = []
        for container_id in st.list_ids(self.root):
            try:
                result.append(self.state(container_id))
            except NotFound:
                continue  # deleted meanwhile
            except st.Unreadable as exc:
                if unreadable is not None:
                    unreadable.append(exc)
        return result

    def kill(self, container_id: str, sig: int = signal.SIGTERM) -> None:
        current = self.state(container_id)
        st.check_transition(container_id, current.status, "kill")
        try:
            pidfd = os.pidfd_open(current.pid)
        except ProcessLookupError:
            return  # it ended on its own
        try:
            # Holding the pidfd pins the process; the start time proves it is still ours.
            if st.process_start_time(current.pid) != current.record.get("pid_start"):
                return
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            pass
        finally:
            os.close(pidfd)

    def attach(self, container_id: str, rows: int = 24, columns: int = 80) -> Any:
        """A socket joined to the container's terminal: what it reads is the terminal's output,
        what it sends is typed in. It closes when the container ends."""
        from runtime import monitor_client, protocol

        words = protocol.ATTACH + f" {rows} {columns}".encode()
        try:
            sock = monitor_client.command(self.state(container_id).directory, words, True)
        except Error:
            sock = None
        if sock is None:
            raise Error(f"container {container_id} has no terminal to attach to, or it ended")
        return sock

    def feed_stdin(self, container_id: str) -> Any:
        """A socket whose bytes become the container's stdin (created with ``stdin=True``);
        shutting its writing side down ends the container's input."""
        from runtime import monitor_client, protocol

        sock = monitor_client.command(self.state(container_id).directory, protocol.STDIN)
        if sock is None:
            raise StateError(container_id, "stopped", "send input to")
        return sock

    def connect_waiter(self, container_id: str) -> Any:
        """A socket that receives the exit record (one JSON line) when the container ends."""
        from runtime import monitor_client

        return monitor_client.connect(self.state(container_id).directory)

    def kill_all(self, container_id: str, sig: int = signal.SIGTERM) -> None:
        """Signal every process in the container's cgroup (``kill --all``)."""
        current = self.state(container_id)
        st.check_transition(container_id, current.status, "kill")
        self._cgroup(container_id, current).kill_all(sig)

    def wait(
        self, container_id: str, timeout: float | None = None, *, until_removed: bool = False
    ) -> dict[str, Any] | None:
        """The exit record once the container has ended (None on timeout).

        ``until_removed`` also waits for the monitor to finish its cleanup (the cgroup, and for a
        container launched with ``cleanup_paths``, its whole state). A container removed by its
        monitor meanwhile (``cleanup_paths``) still has its exit record: ``exited``.
        """
        try:
            current = self.state(container_id)
        except NotFound:
            record = self.exited(container_id)
            if record is None:
                raise
            return record
        result = wait_exit(current.directory, timeout)
        if result is None and not current.directory.exists():
            result = self.exited(container_id)
        if until_removed and result is not None:
            self.wait_monitor_gone(current)
        self._reap_monitor(container_id)
        if result is None and timeout is None:
            # The monitor died without recording an exit: the kernel is the only witness left.
            return {"exit_code": None, "signal": None, "oom_killed": False, "finished": None}
        return result

    def exited(self, container_id: str) -> dict[str, Any] | None:
        """The exit record its monitor left for a container it removed (``cleanup_paths``)."""
        from runtime.monitor import EXITED_DIR

        try:
            return dict(
                st.read_json(self.root / EXITED_DIR / f"{st.validate_id(container_id)}.json")
            )
        except (OSError, ValueError):
            return None

    def _prune_exits(self, max_age: float = 24 * 3600) -> None:
        """Exit records of removed containers are kept a day: long enough for a supervisor to
        come back from a crash and learn them, not for ever. (And the state a monitor killed
        in its --rm cleanup left out of sight, ``.removed-<id>``: none takes a minute.)"""
        import time

        from runtime.monitor import EXITED_DIR

        try:
            for entry in os.scandir(self.root):
                if entry.name.startswith(".removed-") and entry.stat().st_mtime < time.time() - 60:
                    shutil.rmtree(entry.path, ignore_errors=True)
        except FileNotFoundError:
            return
        try:
            entries = list(os.scandir(self.root / EXITED_DIR))
        except FileNotFoundError:
            return
        too_old = time.time() - max_age
        for entry in entries:
            try:
                if entry.stat().st_mtime < too_old:
                    os.unlink(entry.path)
            except FileNotFoundError:
                pass

    def forget_exit(self, container_id: str) -> None:
        """Drop the exit record ``exited`` keeps (the id is about to be reused, say)."""
        from runtime.monitor import EXITED_DIR

        try:
            os.unlink(self.root / EXITED_DIR / f"{st.validate_id(container_id)}.json")
        except FileNotFoundError:
            pass

    def stop(
        self, container_id: str, timeout: float = 10.0, sig: int | None = None
    ) -> dict[str, Any] | None:
        """Send the stop signal, wait up to ``timeout`` seconds, then SIGKILL."""
        current = self.state(container_id)
        if current.status == st.STOPPED:
            return current.exit
        if current.status == st.PAUSED:
            self.resume(container_id)
        stop_signal = sig if sig is not None else _stop_signal(current)
        self.kill(container_id, stop_signal)
        result = self.wait(container_id, timeout)
        if result is None:
            self.kill(container_id, signal.SIGKILL)
            result = self.wait(container_id)
        return result

    def delete(self, container_id: str, force: bool = False) -> None:
        try:
            current = self.state(container_id)
        except st.Unreadable:
            if not force:
                raise
            self._delete_unreadable(container_id)
            return
        if current.status in (st.RUNNING, st.PAUSED) and not force:
            raise StateError(container_id, current.status, "delete")
        if current.status != st.STOPPED:
            if current.status == st.PAUSED:
                self.resume(container_id)
            self.kill(container_id, signal.SIGKILL)
            self.wait(container_id)
        self.wait_monitor_gone(current)  # a live monitor is still removing the cgroup
        # Its monitor was killed (before the container ended, or after): nobody recorded the
        # exit or removed the cgroup.
        recorded = current.exit is not None or (current.directory / "exit.json").exists()
        if (
            not current.monitor_alive
            and current.directory.exists()
            # (killed after recording the exit, before removing the cgroup: one stat to see)
            and (not recorded or self._cgroup(current.id, current).exists())
        ):
            self._cleanup_orphan(current)
        shutil.rmtree(current.directory, ignore_errors=True)
        if "hooks" in current.record:
            poststop = hooks.from_record(current.record["hooks"], "poststop")
            self._run_hooks(poststop, container_id, None, "stopped", current)

    def pause(self, container_id: str) -> None:
        current = self.state(container_id)
        st.check_transition(container_id, current.status, "pause")
        self._cgroup(container_id, current).freeze()

    def resume(self, container_id: str) -> None:
        current = self.state(container_id)
        st.check_transition(container_id, current.status, "resume")
        self._cgroup(container_id, current).thaw()

    def stats(self, container_id: str) -> Any:
        return self._cgroup(container_id).stats()

    # helpers ---------------------------------------------------------------------------------

    def _run_hooks(
        self,
        which: tuple[hooks.Hook, ...],
        container_id: str,
        config: ContainerConfig | None,
        status: str,
        current: st.ContainerState | None = None,
    ) -> None:
        """Run poststart or poststop hooks: a failure is a warning (on stderr), as the spec
        has it; the lifecycle goes on."""
        if not which:
            return
        if current is not None:
            bundle, annotations = current.bundle, current.record.get("annotations", {})
        else:
            assert config is not None
            bundle, annotations = str(config.bundle), config.annotations
        pid = current.pid if current is not None and status != st.STOPPED else None
        if pid and status == st.RUNNING:
            _wait_executed(pid)  # poststart: once the program runs, not the init before it
        state = hooks.state(container_id, status, pid, bundle, annotations)
        kind = "poststart" if status == st.RUNNING else "poststop"
        for warning in hooks.run_warning(which, state, kind):
            print(f"runtime: warning: {warning}", file=sys.stderr)

    def fork_server_client(self) -> Any:
        """The client of this root's fork server, which it starts (when none runs) with our
        cgroup place, so that its pre-made containers serve our requests."""
        from runtime.forkserver import ForkServerClient, default_config

        return ForkServerClient(
            self.root, default_config(self.root, self.cgroup_root, self.cgroup_parent)
        )

    def _cgroup_place(self) -> tuple[str, str, int | None]:
        return (self.cgroup_root, self.cgroup_parent, self.cgroup_version)

    def _cgroup(self, container_id: str, current: st.ContainerState | None = None) -> Any:
        """The container's cgroup manager, where its state says the cgroup is (a config's
        linux.cgroupsPath), else ``<cgroup_parent>/<id>``."""
        from runtime.cgroups import open_manager

        record = (current or self.state(container_id)).record
        return open_manager(
            str(record.get("cgroup") or container_id),
            root=self.cgroup_root,
            parent=str(record.get("cgroup_parent", self.cgroup_parent)),
            version=self.cgroup_version,
        )

    def _delete_unreadable(self, container_id: str) -> None:
        """Remove a container whose state.json cannot be read: its pid is not known, but its
        cgroup (``<cgroup_parent>/<id>``) holds its processes. Killing them ends its monitor
        too, which records the exit and removes the cgroup; we wait for that, then finish."""
        import time

        from runtime import monitor_client

        directory = self.root / container_id
        waiter = monitor_client.connect(directory)
        cgroup = self._cgroup(
            container_id, st.ContainerState(container_id, directory, {}, None, "")
        )
        try:
            cgroup.kill_all(signal.SIGKILL)
        except Exception as exc:
            if waiter is not None:
                waiter.close()
            raise Error(f"container {container_id}: cannot kill its processes: {exc}") from None
        if waiter is not None:
            waiter.settimeout(10)
            try:
                while waiter.recv(4096):
                    pass
            except OSError:
                pass
            finally:
                waiter.close()
        deadline = time.monotonic() + 10
        while waiter is not None and cgroup.exists() and time.monotonic() < deadline:
            time.sleep(0.02)  # the monitor removes it
        try:
            cgroup.destroy()
        except Exception as exc:
            raise Error(f"container {container_id}: cannot remove its cgroup: {exc}") from None
        shutil.rmtree(directory, ignore_errors=True)

    def _cleanup_orphan(self, current: st.ContainerState) -> None:
        """The monitor died without recording an exit: remove what it would have."""
        try:
            if current.record.get("cgroup", current.id) == current.id:
                self._cgroup(current.id, current).remove()
            else:  # a cgroup its config named: maybe not its alone
                self._cgroup(current.id, current).destroy()
        except Exception as exc:
            raise Error(f"container {current.id}: cannot remove its cgroup: {exc}") from None

    def _reap_monitor(self, container_id: str, block: bool = False) -> None:
        """Reap a monitor we forked ourselves, so it does not linger as a zombie."""
        monitors = getattr(self, "_monitors", {})
        pid = monitors.get(container_id)
        if not pid:
            return
        try:
            if os.waitpid(pid, 0 if block else os.WNOHANG)[0] == pid:
                del monitors[container_id]
        except ChildProcessError:
            del monitors[container_id]

    def wait_monitor_gone(self, current: st.ContainerState, timeout: float = 10.0) -> None:
        """The monitor finishes its cleanup (the cgroup) after reporting the exit: wait for it."""
        pid = int(current.record.get("monitor_pid") or 0)
        if pid and st.process_start_time(pid) == current.record.get("monitor_start"):
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                pidfd = -1
            if pidfd >= 0:
                try:
                    if st.process_start_time(pid) == current.record.get("monitor_start"):
                        select.select([pidfd], [], [], timeout)
                finally:
                    os.close(pidfd)
        self._reap_monitor(current.id, block=True)


def _preload_cgroups(root: str, managers: bool = True) -> int:
    """Detect the cgroup version and import its manager here, once, rather than in each monitor
    (``managers``: monitors are forked from here, not from the fork server)."""
    from runtime.cgroups import detect_version

    version = detect_version(root)
    if not managers:
        pass
    elif version == 2:
        import runtime.cgroups.v2
    else:
        import runtime.cgroups.v1

        runtime.cgroups.v1.layout(root)
    return version


def _wait_executed(pid: int, timeout: float = 2.0) -> None:
    """Until ``pid``, a container's init (a fork of a Python process like this one), has
    executed the container's program, or ended."""
    import time

    ours = os.readlink("/proc/self/exe")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{pid}/exe") != ours:
                return
        except OSError:
            return  # it has ended
        time.sleep(0.001)


def _stop_signal(current: st.ContainerState) -> int:
    from runtime.spec import parse_signal

    name = current.record.get("annotations", {}).get("org.opencontainers.image.stopSignal")
    try:
        return parse_signal(name) if name else signal.SIGTERM
    except ValueError:
        return signal.SIGTERM
