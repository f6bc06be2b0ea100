"""The fork server: a small, warm, single-threaded process that forks container monitors.

Forking a monitor from here rather than from the caller costs less time (a small process forks
and copies fewer pages) and much less memory (every monitor shares this process's pages, where
a monitor forked from a CLI keeps that CLI's whole image alive alone). It is also what lets a
multi-threaded caller, such as the trio supervisor, create containers: it never forks itself.

One server per runtime root, started on demand by ``ForkServerClient`` with a ``ServerConfig``
and gone after its idle time without a request. Its requests (runtime.protocol): ``launch`` a
container (the server forks at once; the monitor parses the request and answers on the same
connection), ``enter`` a running one (a fresh child of the template does the job: runtime.enter),
``ping``, ``stop``; and ``cli``: a call of a command line kept warm in the server's zygote
(runtime.zygote, runtime.warmcli). Monitors do not depend on the server: they outlive it.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # (the C module: see become_monitor)
import errno
import gc
import json
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime import protocol, warmcli
from runtime.channel import Channel
from runtime.errors import Error, SetupError
from runtime.filelock import open_lock, try_lock
from runtime.launching import Launched, LaunchOptions, finish_launch, prepare_directory
from runtime.linux import syscalls as sc
from runtime.linux.topdir import mark_top
from runtime.trace import mark

if TYPE_CHECKING:  # (the server's side imports them: a client need not)
    from runtime.launch import MonitorArgs
    from runtime.spec import ContainerConfig

_LOADED_AT_NS = time.time_ns()  # sources changed after it are not what this process runs
# The protocol version is in the name: a server of another version is never spoken to.
SOCKET_NAME = protocol.FORK_SERVER_SOCKET
LOCK_NAME = "forkserver.lock"
IDLE_TIMEOUT = 30.0
MAX_REQUEST = protocol.MAX_REQUEST


@dataclass(frozen=True)
class ServerConfig:
    """How a fork server runs, chosen by whoever starts it (``ForkServerClient``), not read from
    the server's environment: where its pre-made containers' cgroups live, how long it stays
    up without requests, whether it keeps pre-made containers at all (None: yes, runtime.pool
    on cgroup v1, runtime.pool2 on v2). Requests for another cgroup root or parent
    are still served, the ordinary way."""

    root: Path
    cgroup_root: str = "/sys/fs/cgroup"
    cgroup_parent: str = "orchestrator"
    idle_timeout: float = IDLE_TIMEOUT
    pool: bool | None = None
    zygote: str = ""  # the module whose PRELOAD a zygote keeps warm (runtime.zygote)

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "root": str(self.root)})

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        raw = json.loads(text)
        return cls(**{**raw, "root": Path(raw["root"])})


def _address(root: Path) -> tuple[int, str]:
    dirfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return dirfd, f"/proc/self/fd/{dirfd}/{SOCKET_NAME}"


# -- server ---------------------------------------------------------------------------------------


_SO_SNDBUFFORCE = 32  # (socket(7); the socket module lacks the names)
_SO_RCVBUFFORCE = 33


class _Template:
    """A pristine copy of the warm server that does nothing but fork.

    Monitors and pre-made containers are forked from it, not from the server: every page the
    server writes after a fork (accepting, reading requests, keeping the pool) becomes a private
    copy in each monitor forked before, which then costs memory as long as its container runs.
    The template's only writes are its receive buffer."""

    def __init__(self, server_fds: tuple[int, ...]) -> None:
        ours, theirs = socket.socketpair(
            socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC
        )
        for sock in (ours, theirs):  # a request is one message: room for the largest
            sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, 4 * MAX_REQUEST)
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, 4 * MAX_REQUEST)
        self.pid = os.fork()
        if self.pid == 0:
            try:
                ours.close()
                for fd in server_fds:
                    os.close(fd)
                _template_loop(theirs)
            finally:
                os._exit(0)
        theirs.close()
        self.sock = ours

    def launch(self, request: bytes, fds: list[int]) -> None:
        socket.send_fds(self.sock, [b"L" + request], fds)

    def enter(self, request: bytes, fds: list[int]) -> None:
        socket.send_fds(self.sock, [b"E" + request], fds)

    def shell(self, cgroup_root: str, cgroup_parent: str, staging: Path) -> Any:
        from runtime.pool import Shell

        ours, theirs = socket.socketpair(
            socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC
        )
        request = f"S{cgroup_root}\n{cgroup_parent}\n{staging}".encode()
        socket.send_fds(self.sock, [request], [theirs.fileno()])
        theirs.close()
        pid = int(self.sock.recv(64))
        return Shell(pid, ours)

    def close(self) -> None:
        self.sock.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _template_loop(sock: socket.socket) -> None:
    from runtime.launch import fork_monitor

    sc.set_process_name("orc-template")
    # Children are reaped by the kernel; a monitor sets SIGCHLD back to default for its own.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    own = (sock.fileno(),)
    while True:
        data, fds, _, _ = socket.recv_fds(sock, 4 * MAX_REQUEST, 4, socket.MSG_CMSG_CLOEXEC)
        if not data:
            return
        try:
            if data[:1] == b"L":
                stdio = (fds[1], fds[2], fds[3]) if len(fds) == 4 else None
                fork_monitor(partial(_arguments, data[1:]), Channel(fds[0]), stdio, own)
            elif data[:1] == b"E":
                _fork_enter(data[1:], fds, own)
            elif data[:1] == b"S":
                root, parent, staging = data[1:].decode().split("\n")
                fork_shell = _shell_maker(root)
                control = socket.socket(fileno=os.dup(fds[0]))
                pid = fork_shell(control, root, parent, staging, (*own, fds[0]))
                control.close()
                sock.send(str(pid).encode())
        finally:
            for fd in fds:
                os.close(fd)


def _shell_maker(cgroup_root: str) -> Any:
    """The pre-made containers' maker for the hierarchy at ``cgroup_root``: v1 renames a pool
    cgroup (runtime.pool), v2 clones the init into a new one (runtime.pool2)."""
    from runtime.cgroups import detect_version

    if detect_version(cgroup_root) == 2:
        from runtime.pool2 import fork_shell
    else:
        from runtime.pool import fork_shell
    return fork_shell


def _fork_enter(data: bytes, fds: list[int], close_in_child: tuple[int, ...]) -> None:
    """(in the template) Fork a fresh child for an enter job (runtime.enter): the caller's
    connection is ``fds[0]``, its stdio the rest."""
    if os.fork() == 0:
        gc.freeze()
        try:
            for fd in close_in_child:
                os.close(fd)
            from runtime import enter

            request = protocol.EnterRequest.from_wire(data)
            enter.serve(request, socket.socket(fileno=os.dup(fds[0])), list(fds[1:]))
        finally:
            os._exit(1)


class _Warm:
    """The server's zygote (runtime.zygote): made when the server first idles if its config
    names what to keep warm, else at the first call (with what the call names)."""

    def __init__(self, warm: str) -> None:
        self.warm = warm
        self.zygote: Any = None

    def get(self, warm: str) -> Any:
        from runtime.zygote import Zygote

        if self.zygote is not None and not self.zygote.alive():
            self.zygote.close(0)
            self.zygote = None
        if self.zygote is None:
            self.zygote = Zygote(self.warm or warm, _LOADED_AT_NS)
        return self.zygote

    def idle(self) -> None:
        if self.warm and (self.zygote is None or not self.zygote.alive()):
            self.get(self.warm)

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None


class _Pool:
    """Pre-made containers (runtime.pool on cgroup v1, runtime.pool2 on v2), made one at a
    time and only while no handed-over one is still starting (making one contends for the
    cgroup lock with a start), handed out only once they say they are ready.

    ``SIZE`` are kept ready; after a burst of launches (a stack's up), as many as it had, up to
    ``MOST`` (each costs some 5.5 MB of PSS while it waits, monitor and init; the server, and
    its pool, goes after ``IDLE_TIMEOUT`` without launches). 12 covers a small stack whole:
    `up -d` of 10 services after a `down` took 163-167 ms with 8 (the last two started the
    ordinary way), 136-138 ms with 12. While launches come closer than ``QUIET`` to each
    other, none is made until ``QUIET`` after the last: it would only compete for the CPU with
    the starts under way. (Shells are made at SCHED_IDLE besides: runtime.pool.)"""

    SIZE = 2
    MOST = 12
    QUIET = 0.05
    BURST_GAP = 1.0  # launches this close belong to one burst

    def __init__(self, config: ServerConfig, enabled: bool, template: _Template) -> None:
        self.enabled = enabled
        self.template = template
        self.cgroup = (config.cgroup_root, config.cgroup_parent)
        self.staging = config.root / "premade"  # where each shell's init mounts /proc, /dev, /sys
        self.ready: list[Any] = []
        self.preparing: Any = None
        self.busy: Any = None  # handed over; we make the next once it has created its container
        self.busy_since = 0.0
        self.last_launch = 0.0
        self.burst = 0  # launches in the latest burst
        self.rushed = False  # whether the latest launch came hard on the previous one
        self.wanted = self.SIZE

    def waiting_on(self) -> list[Any]:
        return [s.control for s in (self.busy, self.preparing) if s is not None]

    def poll(self, readable: list[Any]) -> None:
        """Take note of what the shells said (or that they gave up), and make more if due."""
        busy = self.busy
        # a handed-over shell closes its end once its container exists (or is given up on)
        if busy is not None and (
            busy.control in readable or time.monotonic() > self.busy_since + 2.0
        ):
            busy.close()
            os.close(busy.pidfd)
            self.busy = None
        preparing = self.preparing
        if preparing is not None and preparing.control in readable:
            self.preparing = None
            if preparing.prepared():
                self.ready.append(preparing)
            else:
                preparing.close()
                os.close(preparing.pidfd)
        self.fill()

    def fill(self) -> None:
        if (
            self.enabled
            and self.busy is None
            and self.preparing is None
            and len(self.ready) < self.wanted
            and self.quiet_for() <= 0
        ):
            self.preparing = self.template.shell(*self.cgroup, self.staging)

    def quiet_for(self) -> float:
        """How long until a shell may be made (0 or less: now): launches closer than
        ``QUIET`` to each other are a burst, and no shell is made until ``QUIET`` after it."""
        if not self.rushed:
            return 0.0
        return self.last_launch + self.QUIET - time.monotonic()

    def wanting(self) -> bool:
        """Whether a shell is due once the launches have been quiet for long enough."""
        return self.enabled and self.preparing is None and len(self.ready) < self.wanted

    def launched(self) -> None:
        """Take note of a launch (the pool grows to the size of the bursts it sees)."""
        now = time.monotonic()
        self.rushed = now - self.last_launch < self.QUIET
        self.burst = self.burst + 1 if now - self.last_launch < self.BURST_GAP else 1
        self.wanted = max(self.wanted, min(self.MOST, self.burst))
        self.last_launch = now

    def take(self) -> Any:
        if not self.ready:
            return None
        shell = self.ready.pop(0)
        self.busy, self.busy_since = shell, time.monotonic()
        return shell

    def drain(self) -> None:
        if self.busy is not None:
            self.busy.close()
            self.busy = None
        for shell in [*self.ready, *([self.preparing] if self.preparing else [])]:
            shell.close()
        for shell in [*self.ready, *([self.preparing] if self.preparing else [])]:
            shell.wait_gone(5.0)
        self.ready, self.preparing = [], None


def serve(config: ServerConfig) -> None:
    """Serve ``config.root`` until stopped or idle."""
    root = config.root
    root.mkdir(parents=True, exist_ok=True)
    lock = open_lock(root / LOCK_NAME)
    if not try_lock(lock):
        os.close(lock)
        return  # another server has this root
    sc.set_process_name("orc-forkserver")
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, _reap_children)
    _preload(config.cgroup_root)
    _warm_up(root)
    dirfd, address = _address(root)
    try:
        try:
            os.unlink(SOCKET_NAME, dir_fd=dirfd)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        listener.bind(address)
        listener.listen(64)
    finally:
        os.close(dirfd)
    gc.freeze()  # what is loaded now is shared by every monitor; keep collections off it
    inherited_by_no_one = (lock, listener.fileno())
    pool = config.pool is not False  # (None: on either version)
    template = _Template(inherited_by_no_one)
    shells = _Pool(config, pool, template)
    shells.staging.mkdir(exist_ok=True)
    mark_top(shells.staging)  # (runtime.linux.topdir)
    warm = _Warm(config.zygote)
    last = time.monotonic()
    try:
        shells.fill()
        while True:
            try:
                wait = 0.2 if warm.warm else 1.0  # (a zygote is made, or remade, when idle)
                if shells.wanting():
                    wait = min(wait, max(0.0, shells.quiet_for()) + 0.001)
                ready, _, _ = select.select([listener, *shells.waiting_on()], [], [], wait)
            except InterruptedError:
                continue
            shells.poll(ready)
            ready = [r for r in ready if r is listener]
            if not ready:
                if time.monotonic() - last > config.idle_timeout:
                    return
                if not shells.waiting_on():
                    warm.idle()
                continue
            conn, _ = listener.accept()
            last = time.monotonic()
            try:
                if not _handle(root, conn, template, shells, warm):
                    return
            except Exception as exc:  # a bad request must not take the server down
                try:
                    Channel(conn.fileno()).send(error=f"fork server: {exc}")
                except OSError:
                    pass
            finally:
                conn.close()
    finally:
        try:
            os.unlink(root / SOCKET_NAME)
        except FileNotFoundError:
            pass
        listener.close()
        shells.drain()
        warm.close()
        template.close()


def _handle(
    root: Path, conn: socket.socket, template: _Template, shells: _Pool, warm: _Warm
) -> bool:
    """Read ``OP\n`` and, for a launch, the request line; fork at once. Parsing the request and
    the config happens in the monitor, so that serving costs the server (almost) no writes."""
    data, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 4, socket.MSG_CMSG_CLOEXEC)
    try:
        op, _, _ = data.partition(b"\n")
        if op.startswith(warmcli.OP + b" "):
            _call(conn, data, fds, warm)
            return True
        if op == protocol.STOP:
            return False
        if op == protocol.PING:
            Channel(conn.fileno()).send(pong=os.getpid(), pool=len(shells.ready))
            return True
        if op not in (protocol.LAUNCH, protocol.ENTER):
            raise Error(f"unknown request {op[:20]!r}")
        while data.count(b"\n") < protocol.lines_expected(op):
            more = conn.recv(MAX_REQUEST)
            if not more:
                raise Error("truncated request")
            data += more
        if op == protocol.ENTER:
            template.enter(data, [conn.fileno(), *fds])
            return True
        stdio = (fds[0], fds[1], fds[2]) if len(fds) == 3 else None
        mark("server-got")
        shells.launched()
        shell = shells.take() if stdio is None else None
        if shell is not None:
            shell.hand_over(data, conn.fileno())
            return True
        template.launch(data, [conn.fileno(), *(stdio or ())])
    finally:
        for fd in fds:
            os.close(fd)
    return True


def _call(conn: socket.socket, data: bytes, fds: list[int], warm: _Warm) -> None:
    """Hand a warm call over to the zygote (whose guard answers on the connection)."""
    from runtime.zygote import MAX_CALL

    op, _, payload = data.partition(b"\n")
    size = int(op.split()[1])
    if size > MAX_CALL:
        raise Error("call too large")
    while len(payload) < size:
        more = conn.recv(size - len(payload))
        if not more:
            raise Error("truncated request")
        payload += more
    warm.get(str(warmcli.decode_request(payload)["warm"])).submit(payload, [conn.fileno(), *fds])


def _arguments(data: bytes) -> MonitorArgs:
    """(in the monitor) The launch request (runtime.protocol.launch_from_wire)."""
    from runtime.spec import parse_config

    request, config_text = protocol.launch_from_wire(data)
    raw_options = request["options"]
    options = LaunchOptions(**{**raw_options, "cleanup_paths": tuple(raw_options["cleanup_paths"])})
    bundle = Path(request["bundle"])
    return (
        request["id"],
        lambda: parse_config(json.loads(config_text), bundle),
        Path(request["directory"]),
        options,
    )


def _reap_children(signum: int, frame: Any) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _preload(cgroup_root: str) -> None:
    """Import now what each monitor needs, once, so that forks share it."""
    from runtime.cgroups import detect_version

    if detect_version(cgroup_root) == 2:
        import runtime.cgroups.v2
        import runtime.pool2
    else:
        import runtime.cgroups.v1

        runtime.cgroups.v1.layout(cgroup_root)
    import runtime.launch  # the start's code, the init's with it
    import runtime.pool
    import runtime.premount
    import runtime.spec
    import runtime.users


def _warm_up(root: Path, rounds: int = 30) -> None:
    """Run the monitor's own code paths here first. CPython 3.11 specialises bytecode and fills
    caches on the first executions; done in the server, those writes land in pages every
    monitor shares, instead of in private copies in each monitor."""
    from runtime.channel import pipe_pair, socket_pair
    from runtime.launch import watch_message
    from runtime.logs import LogWriter
    from runtime.monitor import Outputs, _accept, _CgroupHandle, _listen
    from runtime.state import process_start_time, write_json_atomic

    scratch = root / ".warm"
    scratch.mkdir(exist_ok=True)

    for _ in range(rounds):
        reader, writer = pipe_pair()
        writer.send(
            pid=1, monitor_pid=2, record={"id": "warm", "annotations": {}, "created": "now"}
        )
        reader.receive()
        json.dumps({"id": "warm", "pid": 1, "annotations": {}})
        poller = select.poll()
        poller.register(reader.fd, select.POLLIN)
        poller.poll(0)
        poller.unregister(reader.fd)
        log = LogWriter(os.devnull)
        log.write("stdout", b"warm\n")
        log.close()
        reader.close()
        writer.close()
        _signal.signal(signal.SIGQUIT, _signal.getsignal(signal.SIGQUIT))
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 0)
        write_json_atomic(
            scratch / "state.json", {"id": "warm", "pid": 1, "annotations": {}, "created": "now"}
        )
        listener = _listen(scratch)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(scratch / "monitor.sock"))
        listener.setblocking(True)
        _accept(listener).close()
        client.close()
        listener.close()
        os.unlink(scratch / "monitor.sock")
        outputs = Outputs()
        outputs.close_theirs()
        for fd in outputs.ours():
            os.close(fd)
        process_start_time(os.getpid())
        options = LaunchOptions(log_path=None)
        described, _ = watch_message("warm", 1, scratch, options, None, None, None, None)
        _CgroupHandle("warm", *described["cgroup"])
        sender, receiver = socket_pair()  # descriptors travel between a monitor and its init
        sender.send(warm=True, fds=(sender.fd,))
        receiver.receive()
        for fd in receiver.take_fds():
            os.close(fd)
        sender.close()
        receiver.close()
    for _ in range(rounds // 3):
        _warm_up_setup(scratch)
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)


def _warm_up_setup(scratch: Path) -> None:
    """The ordinary start's own work up to its first effect (parsing the config, its limits,
    its cgroup's place): a compiled regex, a type's ABC cache, an enum's combined member each
    cost milliseconds in every helper that meets them first."""
    from runtime.cgroups.resources import Resources
    from runtime.launch import LaunchOptions, cgroup_place
    from runtime.spec import parse_config
    from runtime.specgen import default_spec

    spec = default_spec(["true"], rootfs="/")
    spec["hostname"] = "warm"
    spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "0"}
    config = parse_config(spec, scratch)
    Resources.from_oci(config.resources)
    cgroup_place("warm", config, LaunchOptions())


# -- client ---------------------------------------------------------------------------------------


class ForkServerClient:
    """Launch containers through the fork server of ``root``, starting it when needed with
    ``config`` (by default: the default cgroup place, and the environment's
    ORCHESTRATOR_FORKSERVER_IDLE and ORCHESTRATOR_NO_POOL, read here, by the starter)."""

    def __init__(self, root: Path, config: ServerConfig | None = None) -> None:
        self.root = root
        self.config = config or default_config(root)

    def launch(
        self, container_id: str, config: ContainerConfig, directory: Path, options: LaunchOptions
    ) -> Launched:
        prepare_directory(container_id, directory, options)
        message: dict[str, Any] | None = None
        try:
            sock = self._connect()
            try:
                request = {
                    "id": container_id,
                    "bundle": str(config.bundle),
                    "directory": str(directory),
                    "options": {**options.__dict__, "cleanup_paths": list(options.cleanup_paths)},
                }
                payload = protocol.launch_to_wire(request, config.raw, config.raw_text)
                fds = [0, 1, 2] if options.inherit_stdio else []
                mark("client-send")
                sent = socket.send_fds(sock, [payload], fds) if fds else sock.send(payload)
                if sent < len(payload):
                    sock.sendall(payload[sent:])
                message = Channel(sock.fileno()).receive()
            finally:
                sock.close()
        except BaseException:
            if message is None:
                import shutil

                shutil.rmtree(directory, ignore_errors=True)
            raise
        return finish_launch(directory, message, None)

    def enter(self, request: protocol.EnterRequest, stdio: tuple[int, ...] = ()) -> socket.socket:
        """Send an enter job (runtime.enter); the connection on which its child answers."""
        sock = self._connect()
        try:
            payload = request.to_wire()
            sent = socket.send_fds(sock, [payload], list(stdio)) if stdio else sock.send(payload)
            if sent < len(payload):
                sock.sendall(payload[sent:])
        except BaseException:
            sock.close()
            raise
        return sock

    def _connect(self) -> socket.socket:
        self.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 10
        started = False
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            dirfd, address = _address(self.root)
            try:
                sock.connect(address)
                global _early_used
                _early_used = True
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
            finally:
                os.close(dirfd)
            if not started:
                if not self._server_starting():
                    self._start_server()
                started = True
            if time.monotonic() > deadline:
                raise SetupError(f"the fork server for {self.root} did not start")
            time.sleep(0.005)

    def _server_starting(self) -> bool:
        """Whether a server of this root holds its lock already (started early, still loading:
        ``start_early``); another one would only find the lock taken."""
        lock = open_lock(self.root / LOCK_NAME)
        try:
            return not try_lock(lock)
        finally:
            os.close(lock)

    def _start_server(self, wait: bool = True) -> None:
        import subprocess

        global _early
        starter = subprocess.Popen(
            # -c, not -m: as __main__ this module would be imported a second time by whatever
            # a monitor forked from it imports (milliseconds per container).
            [
                sys.executable,
                "-c",
                "from runtime.forkserver import main; main()",
                self.config.to_json(),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env={k: v for k, v in os.environ.items() if k in _PASSED_ON},
        )
        if wait:
            starter.wait()
        else:
            _early = starter  # (it exits at once, leaving the server: reaped by then)

    def start_early(self) -> None:
        """Start the server now without waiting for it (when none runs): a caller that will
        launch containers later does its own work meanwhile."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not self._server_starting():
            global _early_root
            self._start_server(wait=False)
            _early_root = self.root


def abandon_early(timeout: float = 5.0) -> None:
    """Stop the server ``start_early`` started if nothing of this process used it (the
    command failed before it launched anything): no server is left for nobody."""
    root = _early_root
    if root is None or _early_used:
        return
    deadline = time.monotonic() + timeout
    while not (root / SOCKET_NAME).exists() and time.monotonic() < deadline:
        lock = open_lock(root / LOCK_NAME)
        try:
            if try_lock(lock):
                return  # it has gone already (or never took its lock): nothing to stop
        finally:
            os.close(lock)
        time.sleep(0.005)
    stop(root, timeout)


_PASSED_ON = ("PATH", "LANG", "ORCHESTRATOR_DEBUG", "ORCHESTRATOR_TRACE")
_early: Any = None  # (start_early's starter process, its root, whether we used it since)
_early_root: Path | None = None
_early_used = False


def default_config(
    root: Path, cgroup_root: str = "/sys/fs/cgroup", cgroup_parent: str = "orchestrator"
) -> ServerConfig:
    idle = float(os.environ.get("ORCHESTRATOR_FORKSERVER_IDLE") or IDLE_TIMEOUT)
    pool = False if os.environ.get("ORCHESTRATOR_NO_POOL") else None
    return ServerConfig(root, cgroup_root, cgroup_parent, idle, pool, warmcli.WARM)


def pool_ready(root: Path) -> int:
    """How many pre-made containers the fork server of ``root`` holds ready (0 without one)."""
    try:
        dirfd, address = _address(root)
    except FileNotFoundError:
        return 0
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(address)
        sock.sendall(protocol.PING + b"\n")
        reply = Channel(sock.fileno()).receive()
    except OSError:
        return 0
    finally:
        sock.close()
        os.close(dirfd)
    return int((reply or {}).get("pool") or 0)


def stop(root: Path, timeout: float = 5.0) -> None:
    """Ask the fork server of ``root`` to exit, and wait until it has (no-op when none runs)."""
    try:
        dirfd, address = _address(root)
    except FileNotFoundError:
        return
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(address)
        sock.sendall(protocol.STOP + b"\n")
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ECONNREFUSED):
            raise Error(f"stopping the fork server: {exc}") from None
        return
    finally:
        sock.close()
        os.close(dirfd)
    # The server holds its lock until it exits.
    deadline = time.monotonic() + timeout
    lock = open_lock(root / LOCK_NAME)
    try:
        while not try_lock(lock):
            if time.monotonic() > deadline:
                raise Error("the fork server did not stop")
            time.sleep(0.01)
    finally:
        os.close(lock)


def main() -> None:
    # Daemonise: the starter reaps our first process at once, and the server lives on under the
    # host's init, never a zombie child of whoever happened to start it.
    if os.fork():
        os._exit(0)
    serve(ServerConfig.from_json(sys.argv[1]))


if __name__ == "__main__":
    main()
