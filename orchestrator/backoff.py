"""Restart policies: whether a container that ended starts again, and after how long.

``decide`` is pure: the policy and the runs since the container was last started by hand in,
a decision out. ``RestartLoop`` waits for exits through a ``RuntimeClient`` and acts on it.

The policies (``orchestrator.stack.model.RestartPolicy``; the stack converter maps Compose's
``deploy.restart_policy`` condition any/on-failure/none to always/on-failure/no):

- ``no``: never. ``always``: whatever the exit. ``on-failure[:N]``: after a non-zero (or
  unknown) exit, at most N restarts; N = 0 means no limit, as in Docker.
- ``unless-stopped``: as ``always``; it differs only when the supervisor itself starts
  (``restart_on_boot``): a container stopped by hand stays stopped, where ``always`` starts it.
- A stop by hand ends the restarts under every policy (Docker cancels its restart manager).
- ``max_attempts`` is N. ``window``: as swarmkit does, only restarts within the last
  ``window`` count against it (without one, every restart since the start by hand counts).
  ``delay``: the least wait before each restart (swarmkit's fixed delay); backoff may add.

Backoff (``Backoff``): the first restart at once, then 100 ms, doubling up to 60 s; a run of at
least 10 s resets it. A service sets each of the three with ``x-restart-backoff: {delay: 100ms,
max_delay: 1m, reset_after: 10s}`` (``backoff_of``). Docker doubles from 100 ms to 1 min the same way but waits 100 ms even the
first time; a container that crashed once after a long run has nothing to back off from.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from orchestrator.stack.model import RestartPolicy
from runtime.client import DEFAULT_STOP_TIMEOUT, ExitStatus, RuntimeClient
from runtime.errors import Error, NotFound


@dataclass(frozen=True)
class Backoff:
    """Waits between quick restarts (seconds): 0, base, 2 base, 4 base ... at most ``cap``;
    a run of at least ``reset_after`` starts over at 0."""

    base: float = 0.1
    cap: float = 60.0
    reset_after: float = 10.0

    def delay(self, quick_runs: int) -> float:
        """The wait after ``quick_runs`` consecutive short runs (the one just ended included)."""
        if quick_runs <= 1:
            return 0.0
        doublings = min(quick_runs - 2, 1023)  # (2.0 ** 1024 overflows)
        return min(self.cap, self.base * 2.0**doublings)

    def saturation(self) -> int:
        """How many consecutive short runs reach the cap: more change nothing."""
        if self.base <= 0 or self.cap <= self.base:
            return 2
        return 2 + math.ceil(math.log2(self.cap / self.base))


DEFAULT_BACKOFF = Backoff()


def backoff_of(policy: RestartPolicy) -> Backoff:
    """The policy's backoff: the default, with the knobs the service sets
    (``x-restart-backoff``)."""
    base, cap, reset = policy.backoff_delay_ns, policy.backoff_max_ns, policy.backoff_reset_ns
    if base is None and cap is None and reset is None:
        return DEFAULT_BACKOFF
    return Backoff(
        DEFAULT_BACKOFF.base if base is None else base / 1e9,
        max(DEFAULT_BACKOFF.cap if cap is None else cap / 1e9, 0.0 if base is None else base / 1e9),
        DEFAULT_BACKOFF.reset_after if reset is None else reset / 1e9,
    )


@dataclass(frozen=True)
class Run:
    """One run of the container, on one clock (the supervisor's: trio's)."""

    started: float
    ended: float
    exit_code: int | None  # None: unknown (counts as a failure)
    stopped_manually: bool = False
    restart: bool = False  # it began with an automatic restart (not a start by hand)

    @property
    def duration(self) -> float:
        return self.ended - self.started


@dataclass(frozen=True)
class Decision:
    restart: bool
    delay: float = 0.0  # seconds to wait before restarting
    reason: str = ""
    attempt: int = 0  # which restart this is, counted as max_attempts counts (0: none)


def decide(
    policy: RestartPolicy,
    runs: Sequence[Run],
    backoff: Backoff = DEFAULT_BACKOFF,
    now: float | None = None,
) -> Decision:
    """Whether to restart after ``runs[-1]``, and after how long. ``runs``: the runs since the
    last start by hand, oldest first (``trim_runs`` keeps what matters); ``now``: the time of
    the decision (default: the end of the last run)."""
    if not runs:
        raise ValueError("decide needs the run that just ended")
    last = runs[-1]
    now = last.ended if now is None else now
    if last.stopped_manually:
        return Decision(False, reason="stopped by hand")
    if policy.name == "no":
        return Decision(False, reason="restart policy is no")
    if policy.name == "on-failure" and last.exit_code == 0:
        return Decision(False, reason="exited with 0 (restart on failure only)")
    window = (policy.window_ns or 0) / 1e9
    restarts = [r.started for r in runs if r.restart]
    if window > 0:
        restarts = [t for t in restarts if t > now - window]
    count = len(restarts)
    if policy.max_attempts and count >= policy.max_attempts:
        within = f" within {window:g} s" if window > 0 else ""
        return Decision(False, reason=f"gave up after {count} restarts{within}")
    delay = max(backoff.delay(_quick_runs(runs, backoff)), (policy.delay_ns or 0) / 1e9)
    ended = "unknown exit" if last.exit_code is None else f"exited with {last.exit_code}"
    return Decision(True, delay, f"{ended}: restart {count + 1} in {delay:g} s", count + 1)


def _quick_runs(runs: Sequence[Run], backoff: Backoff) -> int:
    count = 0
    for run in reversed(runs):
        if run.duration >= backoff.reset_after:
            break
        count += 1
    return count


def trim_runs(
    policy: RestartPolicy, runs: Sequence[Run], backoff: Backoff = DEFAULT_BACKOFF
) -> tuple[Run, ...]:
    """The runs later decisions still depend on (a container restarting for months must not
    grow its history): the last few for the backoff and, for max_attempts, the restarts that
    can still count. Decisions on the result are the ones on ``runs``."""
    if policy.max_attempts and not policy.window_ns:
        return tuple(runs)  # every restart counts; there are at most max_attempts of them
    keep = max(backoff.saturation(), policy.max_attempts or 0)
    return tuple(runs[-keep:])


def restart_on_boot(policy: RestartPolicy, last: Run) -> bool:
    """Whether the supervisor, starting, starts a container it finds stopped: ``always`` does
    even after a stop by hand, ``unless-stopped`` and ``on-failure`` do not."""
    if policy.name == "always":
        return True
    if last.stopped_manually or policy.name == "no":
        return False
    return policy.name == "unless-stopped" or last.exit_code != 0


class RestartLoop:
    """Watch one container through ``runtime`` and restart it by ``policy``.

        loop = RestartLoop(client, "web", policy, relaunch)
        await nursery.start(loop.run)      # the container runs already
        ...
        await loop.stop()                  # a stop by hand: no restart after it

    ``relaunch()`` starts the container again (with the real runtime: delete the stopped
    container, create it from the same bundle, start it). A runtime Error from it counts as a
    run that failed at once (backoff and max_attempts apply); any other exception is a bug and
    ends the loop. ``run`` returns the decision that ended the loop."""

    def __init__(
        self,
        runtime: RuntimeClient,
        container_id: str,
        policy: RestartPolicy,
        relaunch: Callable[[], Awaitable[None]],
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        started_at: float | None = None,
    ) -> None:
        """``started_at``: when the container started (trio's clock), if not just now."""
        self.runtime = runtime
        self.container_id = container_id
        self.policy = policy
        self.backoff = backoff
        self.restarts = 0  # restarts attempted (failed relaunches included)
        self.runs: tuple[Run, ...] = ()  # the latest runs (trimmed)
        self.last_exit: ExitStatus | None = None
        self.last_error: Error | None = None  # of the last failed relaunch
        self.decision: Decision | None = None  # the latest
        self._relaunch = relaunch
        self._started_at = started_at
        self._stopping = False
        self._pending: trio.CancelScope | None = None
        self._relaunching = trio.Lock()
        self._running = False
        self._done = trio.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def cancel(self) -> None:
        """No restart from now on (a pending one is dropped); the container is left as it is
        and the loop ends at its next exit."""
        self._stopping = True
        if self._pending is not None:
            self._pending.cancel()

    async def stop(
        self, timeout: float = DEFAULT_STOP_TIMEOUT, signal: int | None = None
    ) -> ExitStatus | None:
        """A stop by hand: cancel restarts, stop the container (``runtime.stop``: ``signal``,
        ``timeout`` s, then SIGKILL) once any relaunch under way has finished, and wait for the
        loop to end. The container's exit, or None if it no longer exists."""
        self.cancel()
        async with self._relaunching:
            try:
                result: ExitStatus | None = await self.runtime.stop(
                    self.container_id, timeout, signal
                )
            except NotFound:
                result = None
        if self._running:
            await self._done.wait()
        return result

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> Decision:
        self._running = True
        try:
            return await self._loop(task_status)
        finally:
            self._done.set()

    async def _loop(self, task_status: trio.TaskStatus[None]) -> Decision:
        started = trio.current_time() if self._started_at is None else self._started_at
        restarted = False
        failed_start: ExitStatus | None = None
        task_status.started()
        while True:
            if failed_start is not None:
                status, failed_start = failed_start, None
            else:
                try:
                    waited = await self.runtime.wait(self.container_id, math.inf)
                except NotFound:
                    return self._end(Decision(False, reason="the container was removed"))
                assert waited is not None  # (no timeout)
                status = waited
            now = trio.current_time()
            self.last_exit = status
            run = Run(started, now, status.exit_code, self._stopping, restarted)
            self.runs = trim_runs(self.policy, (*self.runs, run), self.backoff)
            decision = decide(self.policy, self.runs, self.backoff, now)
            self.decision = decision
            if not decision.restart:
                return decision
            with trio.CancelScope() as self._pending:
                await trio.sleep(decision.delay)
            self._pending = None
            async with self._relaunching:
                if self._stopping:
                    return self._end(Decision(False, reason="stopped by hand"))
                self.restarts += 1
                restarted = True
                started = trio.current_time()
                try:
                    await self._relaunch()
                except Error as exc:
                    self.last_error = exc
                    failed_start = ExitStatus.unknown(f"restart failed: {exc}")

    def _end(self, decision: Decision) -> Decision:
        self.decision = decision
        return decision
