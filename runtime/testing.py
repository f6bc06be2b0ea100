"""FakeRuntime: the runtime client in memory, for fast tests of what drives it (no root, no
kernel, no threads). An importable testing aid:

    from runtime.client import CreateOptions
    from runtime.errors import SetupError
    from runtime.testing import FakeRuntime

    async def test_restarts(autojump_clock):       # pytest-trio; trio.testing.MockClock
        fake = FakeRuntime()
        fake.exits_after("web", 2.0, code=1)       # each start of "web" fails 2 s later
        await fake.create("web", "/bundles/web", CreateOptions(start=True))
        assert (await fake.wait("web", timeout=10)).exit_code == 1
        fake.fail_next("start", SetupError("no such image"))
        assert [c.operation for c in fake.calls] == ["create", "wait"]

Containers go through the real state machine (``runtime.state.ALLOWED``) and raise the real
errors. Time is trio's clock: planned exits happen when it reaches them (a paused container's
clock stops), so MockClock's autojump runs a test of minutes in milliseconds. A bundle path
need not exist; when its config.json does, its annotations and ``process.terminal`` are used.

Signals: SIGKILL ends a container with 137; another signal ends a running one as if the signal
killed it (128 + n) unless ``ignore_signals`` says otherwise (a PID 1 without a handler);
a created container (its init waits on exec.fifo) ignores everything but SIGKILL. Signals
reach a paused container at once (the real one, frozen, takes them when thawed).
"""

from __future__ import annotations

import builtins
import itertools
import json
import os
import signal as _signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import trio
import trio.testing

from runtime import state as st
from runtime.client import (
    DEFAULT_STOP_TIMEOUT,
    KILL_TIMEOUT,
    MONITOR_GONE,
    ContainerInfo,
    CreateOptions,
    ExecRequest,
    ExitStatus,
    Stats,
    Status,
    stop_signal_of,
)
from runtime.errors import AlreadyExists, Error, NotFound, StateError
from runtime.logs import timestamp

#: Which containers a rule applies to: an id, or a test on the container.
Match = str | Callable[[ContainerInfo], bool]
ConsoleStream = trio.StapledStream[trio.testing.MemorySendStream, trio.testing.MemoryReceiveStream]

# Signals whose default action is not to end a process.
_HARMLESS = frozenset(
    {0, _signal.SIGCHLD, _signal.SIGCONT, _signal.SIGURG, _signal.SIGWINCH, _signal.SIGSTOP}
)


@dataclass(frozen=True)
class PlannedExit:
    """How a started container will end: ``after`` seconds of running (trio's clock)."""

    after: float = 0.0
    code: int | None = None  # default: 128 + signal, or 0
    signal: int | None = None
    oom: bool = False


@dataclass(frozen=True)
class Call:
    """One call on the fake, recorded before it acts (failed calls too)."""

    operation: str
    container_id: str | None = None
    arguments: tuple[object, ...] = ()


@dataclass
class _Container:
    id: str
    bundle: str
    options: CreateOptions
    annotations: dict[str, str]
    terminal: bool
    pid: int
    monitor_pid: int
    created: str
    status: Status = "created"
    started: str | None = None
    exit: ExitStatus | None = None
    plan: PlannedExit | None = None
    due: float | None = None  # trio time of the planned exit, while running
    remaining: float | None = None  # what was left of it when paused
    stats: Stats = field(default_factory=Stats)
    consoles: list[ConsoleStream] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


class FakeRuntime:
    """An in-memory ``runtime.client.RuntimeClient``; see the module docstring."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._containers: dict[str, _Container] = {}
        self._on_start: list[
            tuple[Match, PlannedExit | Callable[[ContainerInfo], PlannedExit | None]]
        ]
        self._on_start = []
        self._on_exec: list[tuple[Match, int | Callable[[ExecRequest], int]]] = []
        self._ignored: list[tuple[Match, frozenset[int]]] = []
        self._failures: list[tuple[str, str | None, BaseException]] = []
        self._pids = itertools.count(1000)

    # -- scripting ------------------------------------------------------------------------------

    def on_start(
        self,
        match: Match,
        plan: PlannedExit | Callable[[ContainerInfo], PlannedExit | None],
    ) -> None:
        """At each start of a matching container, plan its exit: a PlannedExit, or a function
        of the container giving one (or None: it runs until told). The latest matching rule
        wins."""
        self._on_start.append((match, plan))

    def exits_after(
        self,
        match: Match,
        seconds: float,
        code: int | None = None,
        *,
        signal: int | None = None,
        oom: bool = False,
    ) -> None:
        """Each start of a matching container ends ``seconds`` later with ``code``."""
        self.on_start(match, PlannedExit(seconds, code, signal, oom))

    def ignore_signals(self, match: Match, *signals: int) -> None:
        """Matching containers ignore ``signals`` (as a PID 1 without handlers does)."""
        if _signal.SIGKILL in signals:
            raise ValueError("SIGKILL cannot be ignored")
        self._ignored.append((match, frozenset(signals)))

    def on_exec(self, match: Match, result: int | Callable[[ExecRequest], int]) -> None:
        """What exec returns in matching containers (default 0); the latest matching rule wins."""
        self._on_exec.append((match, result))

    def fail_next(
        self, operation: str, error: BaseException, *, container_id: str | None = None
    ) -> None:
        """The next call of ``operation`` (a method name: "create", "start", "wait", ...), on
        ``container_id`` if given, raises ``error`` before it does anything."""
        self._failures.append((operation, container_id, error))

    def exit(
        self,
        container_id: str,
        code: int | None = None,
        *,
        signal: int | None = None,
        oom: bool = False,
    ) -> ExitStatus:
        """End the container now (its waiters wake). ``oom`` without a signal means SIGKILL;
        ``code`` defaults to 128 + signal, or 0."""
        c = self._get(container_id)
        if c.exit is not None:
            raise StateError(container_id, c.status, "end")
        return self._end(c, _status(code, signal, oom))

    def lose_monitor(self, container_id: str) -> None:
        """The container's monitor dies without recording the exit (as after a SIGKILL)."""
        c = self._get(container_id)
        if c.exit is not None:
            raise StateError(container_id, c.status, "lose the monitor of")
        self._end(c, ExitStatus.unknown(MONITOR_GONE))

    def set_stats(self, container_id: str, stats: Stats) -> None:
        self._get(container_id).stats = stats

    def consoles(self, container_id: str) -> builtins.list[ConsoleStream]:
        """The container's side of each attached stream: what a test sends there, the
        attached client receives."""
        return list(self._get(container_id).consoles)

    def calls_to(self, operation: str) -> builtins.list[Call]:
        return [c for c in self.calls if c.operation == operation]

    # -- RuntimeClient --------------------------------------------------------------------------

    async def create(
        self,
        container_id: str,
        bundle: str | os.PathLike[str],
        options: CreateOptions | None = None,
    ) -> ContainerInfo:
        o = options or CreateOptions()
        await self._enter("create", container_id, (str(bundle), o))
        st.validate_id(container_id)
        if container_id in self._containers:
            raise AlreadyExists(f"container {container_id} already exists")
        annotations, terminal = _read_bundle(Path(bundle))
        c = _Container(
            id=container_id,
            bundle=str(bundle),
            options=o,
            annotations=annotations,
            terminal=terminal,
            pid=next(self._pids),
            monitor_pid=next(self._pids),
            created=timestamp(),
        )
        self._containers[container_id] = c
        if o.start:
            self._start(c)
        return self._info(c)

    async def start(self, container_id: str) -> None:
        await self._enter("start", container_id)
        c = self._settled(container_id)
        st.check_transition(container_id, c.status, "start")
        self._start(c)

    async def state(self, container_id: str) -> ContainerInfo:
        await self._enter("state", container_id)
        return self._info(self._settled(container_id))

    async def kill(self, container_id: str, signal: int = _signal.SIGTERM) -> None:
        await self._enter("kill", container_id, (int(signal),))
        self._kill(self._settled(container_id), int(signal))

    async def stop(
        self, container_id: str, timeout: float = DEFAULT_STOP_TIMEOUT, signal: int | None = None
    ) -> ExitStatus:
        await self._enter("stop", container_id, (timeout, signal))
        c = self._settled(container_id)
        if c.exit is not None:
            return c.exit
        if c.status == "paused":
            self._resume(c)
        self._kill(c, signal if signal is not None else stop_signal_of(c.annotations))
        ended = await self._wait(c, timeout)
        if ended is None:
            self._kill(c, _signal.SIGKILL)
            ended = await self._wait(c, KILL_TIMEOUT)
        assert ended is not None  # SIGKILL always works here
        return ended

    async def delete(self, container_id: str, force: bool = False) -> None:
        await self._enter("delete", container_id, (force,))
        c = self._settled(container_id)
        if c.status in ("running", "paused") and not force:
            raise StateError(container_id, c.status, "delete")
        if c.exit is None:
            self._end(c, _status(None, _signal.SIGKILL, False))
        self._containers.pop(container_id, None)

    async def pause(self, container_id: str) -> None:
        await self._enter("pause", container_id)
        c = self._settled(container_id)
        st.check_transition(container_id, c.status, "pause")
        if c.due is not None:
            c.remaining, c.due = max(0.0, c.due - trio.current_time()), None
        c.status = "paused"
        c.notify()

    async def resume(self, container_id: str) -> None:
        await self._enter("resume", container_id)
        c = self._settled(container_id)
        st.check_transition(container_id, c.status, "resume")
        self._resume(c)

    async def stats(self, container_id: str) -> Stats:
        await self._enter("stats", container_id)
        c = self._settled(container_id)
        return c.stats if c.exit is None else Stats()

    async def exec(
        self,
        container_id: str,
        request: ExecRequest,
        stdio: tuple[int, int, int] = (0, 1, 2),
        *,
        limiter: trio.CapacityLimiter | None = None,  # (no threads here)
    ) -> int:
        await self._enter("exec", container_id, (request, stdio))
        c = self._settled(container_id)
        st.check_transition(container_id, c.status, "exec in")
        info = self._info(c)
        for match, result in reversed(self._on_exec):
            if _matches(match, info):
                return result if isinstance(result, int) else result(request)
        return 0

    async def attach(
        self, container_id: str, rows: int = 24, columns: int = 80
    ) -> trio.abc.HalfCloseableStream:
        await self._enter("attach", container_id, (rows, columns))
        c = self._settled(container_id)
        if c.exit is not None:
            raise StateError(container_id, "stopped", "attach to")
        if not c.terminal:
            raise Error(f"container {container_id} has no terminal to attach to, or it ended")
        ours, theirs = trio.testing.memory_stream_pair()
        c.consoles.append(theirs)
        return ours

    async def wait(self, container_id: str, timeout: float) -> ExitStatus | None:
        await self._enter("wait", container_id, (timeout,))
        if not timeout >= 0:
            raise ValueError(f"timeout must be 0 or more, not {timeout}")
        return await self._wait(self._settled(container_id), timeout)

    async def list(self) -> builtins.list[ContainerInfo]:
        await self._enter("list", None)
        return [self._info(self._settled(i)) for i in sorted(self._containers)]

    # -- the model ------------------------------------------------------------------------------

    async def _enter(
        self, operation: str, container_id: str | None, arguments: tuple[object, ...] = ()
    ) -> None:
        self.calls.append(Call(operation, container_id, arguments))
        await trio.lowlevel.checkpoint()  # as the real client's calls are
        for i, (name, target, error) in enumerate(self._failures):
            if name == operation and target in (None, container_id):
                del self._failures[i]
                raise error

    def _get(self, container_id: str) -> _Container:
        c = self._containers.get(container_id)
        if c is None:
            raise NotFound(f"container {container_id} does not exist")
        return c

    def _settled(self, container_id: str) -> _Container:
        c = self._get(container_id)
        self._settle(c)
        if self._containers.get(container_id) is not c:  # ended with cleanup_paths: removed
            raise NotFound(f"container {container_id} does not exist")
        return c

    def _settle(self, c: _Container) -> None:
        """Carry out a planned exit whose time has come."""
        if c.due is not None and c.plan is not None and trio.current_time() >= c.due:
            self._end(c, _status(c.plan.code, c.plan.signal, c.plan.oom))

    def _start(self, c: _Container) -> None:
        c.status, c.started = "running", timestamp()
        info = self._info(c)
        for match, plan in reversed(self._on_start):
            if _matches(match, info):
                c.plan = plan if isinstance(plan, PlannedExit) else plan(info)
                break
        if c.plan is not None:
            c.due = trio.current_time() + c.plan.after
        c.notify()
        self._settle(c)

    def _resume(self, c: _Container) -> None:
        if c.remaining is not None:
            c.due, c.remaining = trio.current_time() + c.remaining, None
        c.status = "running"
        c.notify()
        self._settle(c)

    def _kill(self, c: _Container, sig: int) -> None:
        st.check_transition(c.id, c.status, "kill")
        if sig == _signal.SIGKILL:
            self._end(c, _status(None, sig, False))
            return
        if c.status == "created" or sig in _HARMLESS:
            return
        info = self._info(c)
        if any(sig in signals and _matches(m, info) for m, signals in self._ignored):
            return
        self._end(c, _status(None, sig, False))

    def _end(self, c: _Container, status: ExitStatus) -> ExitStatus:
        if status.finished is None and status.unknown_reason is None:
            status = ExitStatus(status.exit_code, status.signal, status.oom_killed, timestamp())
        c.status, c.exit, c.due, c.remaining = "stopped", status, None, None
        for console in c.consoles:  # the attached see their stream end
            console.send_stream.close()
            console.receive_stream.close()
        c.consoles.clear()
        c.notify()
        if c.options.cleanup_paths:  # as the monitor does: the state goes with the container
            self._containers.pop(c.id, None)
        return status

    async def _wait(self, c: _Container, timeout: float) -> ExitStatus | None:
        deadline = trio.current_time() + timeout
        while True:
            self._settle(c)
            if c.exit is not None:
                return c.exit
            if trio.current_time() >= deadline:
                return None
            wake = deadline if c.due is None else min(deadline, c.due)
            with trio.move_on_at(wake):
                await c.changed.wait()

    def _info(self, c: _Container) -> ContainerInfo:
        return ContainerInfo(
            id=c.id,
            status=c.status,
            pid=c.pid if c.exit is None else None,
            bundle=c.bundle,
            annotations=MappingProxyType(dict(c.annotations)),
            created=c.created,
            started=c.started,
            monitor_pid=c.monitor_pid,
            exit=c.exit,
            log_path=c.options.log_path,
        )


def _status(code: int | None, signal: int | None, oom: bool) -> ExitStatus:
    if oom and signal is None:
        signal = _signal.SIGKILL
    if code is None:
        code = 128 + signal if signal is not None else 0
    return ExitStatus(code, signal, oom)


def _matches(match: Match, info: ContainerInfo) -> bool:
    return match == info.id if isinstance(match, str) else match(info)


def _read_bundle(bundle: Path) -> tuple[dict[str, str], bool]:
    """(annotations, terminal) from the bundle's config.json; ({}, True) without one."""
    try:
        raw = json.loads((bundle / "config.json").read_bytes())
    except (OSError, ValueError):
        return {}, True
    if not isinstance(raw, dict):
        return {}, True
    annotations = raw.get("annotations")
    process = raw.get("process")
    terminal = bool(process.get("terminal")) if isinstance(process, dict) else False
    if not isinstance(annotations, dict):
        return {}, terminal
    return {str(k): str(v) for k, v in annotations.items()}, terminal


__all__ = ["Call", "FakeRuntime", "Match", "PlannedExit"]

if TYPE_CHECKING:
    from runtime.client import RuntimeClient

    def _conforms(fake: FakeRuntime) -> RuntimeClient:
        return fake  # mypy checks that FakeRuntime implements the protocol
