"""Restart decisions (pure), and the restart loop against FakeRuntime on a mock clock."""

from __future__ import annotations

import itertools
import math

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as hs

from orchestrator.backoff import (
    Backoff,
    Decision,
    RestartLoop,
    Run,
    decide,
    restart_on_boot,
    trim_runs,
)
from orchestrator.stack.model import RestartPolicy
from orchestrator.stack.units import parse_restart
from runtime.client import ContainerInfo, CreateOptions
from runtime.errors import NotFound, SetupError
from runtime.testing import FakeRuntime, PlannedExit

ALWAYS = parse_restart("always")
BUNDLE = "/bundles/app"


def quick_runs(count: int, code: int | None = 1, start: float = 0.0) -> list[Run]:
    """``count`` runs of 1 s, back to back; all but the first began with a restart."""
    return [Run(start + i, start + i + 1, code, restart=i > 0) for i in range(count)]


# -- decisions -----------------------------------------------------------------------------------


def test_backoff_doubles_from_nothing_to_the_cap() -> None:
    backoff = Backoff()
    assert [backoff.delay(n) for n in range(1, 6)] == [0, 0.1, 0.2, 0.4, 0.8]
    assert backoff.delay(12) == 60 and backoff.delay(10_000) == 60
    assert backoff.delay(backoff.saturation()) == 60 > backoff.delay(backoff.saturation() - 1)


def test_always_restarts_at_once_then_doubling_capped() -> None:
    delays = [decide(ALWAYS, quick_runs(n)).delay for n in range(1, 16)]
    assert delays[:6] == [0, 0.1, 0.2, 0.4, 0.8, 1.6]
    assert delays[-3:] == [60, 60, 60]
    decision = decide(ALWAYS, quick_runs(3, code=0))
    assert decision == Decision(True, 0.2, "exited with 0: restart 3 in 0.2 s", 3)


def test_a_long_run_resets_the_backoff() -> None:
    runs = [*quick_runs(5), Run(5, 15, 1, restart=True)]  # ran 10 s
    assert decide(ALWAYS, runs).delay == 0
    runs.append(Run(15, 16, 1, restart=True))
    assert decide(ALWAYS, runs).delay == 0  # the first quick exit since
    runs.append(Run(16, 17, 1, restart=True))
    assert decide(ALWAYS, runs).delay == 0.1
    custom = Backoff(base=1, cap=4, reset_after=60)
    assert decide(ALWAYS, [*quick_runs(5), Run(5, 15, 1, restart=True)], custom).delay == 4


def test_on_failure_counts_attempts() -> None:
    policy = parse_restart("on-failure:3")
    assert decide(policy, quick_runs(1, code=0)) == Decision(
        False, reason="exited with 0 (restart on failure only)"
    )
    assert [decide(policy, quick_runs(n)).restart for n in range(1, 6)] == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert decide(policy, quick_runs(4)).reason == "gave up after 3 restarts"
    assert decide(policy, quick_runs(3)).attempt == 3
    assert decide(policy, quick_runs(1, code=None)).restart  # an unknown exit is a failure
    unlimited = parse_restart("on-failure")
    assert decide(unlimited, quick_runs(100)).restart
    assert decide(RestartPolicy("on-failure", 0), quick_runs(100)).restart  # 0: no limit


def test_no_never_restarts_and_a_stop_by_hand_never_does() -> None:
    assert decide(parse_restart("no"), quick_runs(1)) == Decision(
        False, reason="restart policy is no"
    )
    stopped = [Run(0, 1, 143, stopped_manually=True)]
    for name in ("always", "unless-stopped", "on-failure"):
        assert decide(parse_restart(name), stopped) == Decision(False, reason="stopped by hand")


def test_window_counts_only_recent_restarts() -> None:
    # deploy.restart_policy: condition on-failure, max_attempts 2, window 60 s
    policy = RestartPolicy("on-failure", 2, window_ns=60 * 10**9)
    runs = quick_runs(3)  # restarts at 1 and 2
    assert decide(policy, runs) == Decision(False, reason="gave up after 2 restarts within 60 s")
    # the same restarts, judged 70 s later (a run that lasted): both are out of the window
    later = [*runs[:-1], Run(2, 72, 1, restart=True)]
    assert decide(policy, later).restart
    assert decide(policy, runs, now=62.5).restart  # only the restart at 2 s counts


def test_delay_is_the_least_wait() -> None:
    policy = RestartPolicy("always", delay_ns=5 * 10**9)
    assert decide(policy, quick_runs(1)).delay == 5
    assert decide(policy, quick_runs(12)).delay == 60


def test_restart_on_boot() -> None:
    by_hand = Run(0, 1, 143, stopped_manually=True)
    crashed = Run(0, 1, 1)
    clean = Run(0, 1, 0)
    table = {
        "no": (False, False, False),
        "always": (True, True, True),
        "unless-stopped": (False, True, True),
        "on-failure": (False, True, False),
    }
    for name, expected in table.items():
        policy = parse_restart(name)
        got = tuple(restart_on_boot(policy, run) for run in (by_hand, crashed, clean))
        assert got == expected, name


run_strategy = hs.builds(
    lambda start, length, code, restart: Run(start, start + length, code, False, restart),
    hs.floats(0, 1e6),
    hs.sampled_from([0.0, 0.5, 3.0, 9.99, 10.0, 50.0]),
    hs.sampled_from([0, 1, None]),
    hs.booleans(),
)
policy_strategy = hs.builds(
    RestartPolicy,
    hs.sampled_from(["no", "always", "on-failure", "unless-stopped"]),
    hs.sampled_from([None, 0, 1, 3, 20]),
    hs.sampled_from([None, 10**9]),
    hs.sampled_from([None, 0, 30 * 10**9]),
)


@given(policy_strategy, hs.lists(run_strategy, min_size=1, max_size=40))
def test_trimmed_runs_decide_the_same(policy: RestartPolicy, runs: list[Run]) -> None:
    runs.sort(key=lambda r: r.started)
    full, trimmed = decide(policy, runs), decide(policy, trim_runs(policy, runs))
    assert (full.restart, full.delay) == (trimmed.restart, trimmed.delay)


# -- the loop ------------------------------------------------------------------------------------


class Harness:
    """A FakeRuntime container "app" and a relaunch that deletes and runs it again."""

    def __init__(self, policy: RestartPolicy, backoff: Backoff | None = None) -> None:
        self.fake = FakeRuntime()
        self.relaunched_at: list[float] = []
        self.loop = RestartLoop(
            self.fake, "app", policy, self.relaunch, backoff=backoff or Backoff()
        )

    async def relaunch(self) -> None:
        self.relaunched_at.append(trio.current_time())
        try:
            await self.fake.delete("app", force=True)
        except NotFound:
            pass  # (a relaunch before failed to create it)
        await self.fake.create("app", BUNDLE, CreateOptions(start=True))

    async def run(self, until: float, *, started: bool = False) -> Decision | None:
        """Start the container (unless ``started``), and run the loop for ``until`` seconds
        at most."""
        if not started:
            await self.fake.create("app", BUNDLE, CreateOptions(start=True))
        with trio.move_on_after(until):
            return await self.loop.run()
        return None

    def gaps(self, began: float) -> list[float]:
        times = [began, *self.relaunched_at]
        return [round(b - a, 6) for a, b in itertools.pairwise(times)]


async def test_loop_always_restarts_at_once_then_doubling_capped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    h = Harness(ALWAYS, Backoff(base=0.1, cap=1.6))
    h.fake.exits_after("app", 0.0, code=1)  # dies as soon as it starts
    began = trio.current_time()
    assert await h.run(until=10) is None  # still restarting
    assert h.gaps(began)[:8] == [0, 0.1, 0.2, 0.4, 0.8, 1.6, 1.6, 1.6]
    assert h.loop.restarts == len(h.relaunched_at)
    assert h.loop.decision is not None and h.loop.decision.restart


async def test_loop_backoff_resets_after_a_long_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    h = Harness(ALWAYS)
    durations = iter([1, 1, 1, 15, 1, 1, 1])  # the initial run, then each restart's

    def plan(info: ContainerInfo) -> PlannedExit | None:
        length = next(durations, None)
        return None if length is None else PlannedExit(length, code=2)

    h.fake.on_start("app", plan)
    began = trio.current_time()
    await h.run(until=100)
    # wait before each restart: 0, 0.1, 0.2 (quick runs); 0 after the 15 s run; 0, 0.1, 0.2
    runs = [1, 1, 1, 15, 1, 1, 1]
    waits = [0, 0.1, 0.2, 0, 0, 0.1, 0.2]
    assert h.gaps(began) == [pytest.approx(r + w) for r, w in zip(runs, waits, strict=True)]


async def test_loop_on_failure_3_stops_after_3(autojump_clock: trio.testing.MockClock) -> None:
    h = Harness(parse_restart("on-failure:3"))
    h.fake.exits_after("app", 0.5, code=1)
    decision = await h.run(until=100)
    assert decision == Decision(False, reason="gave up after 3 restarts")
    assert h.loop.restarts == 3 and len(h.relaunched_at) == 3
    assert h.loop.last_exit is not None and h.loop.last_exit.exit_code == 1


async def test_loop_on_failure_ends_on_success(autojump_clock: trio.testing.MockClock) -> None:
    h = Harness(parse_restart("on-failure"))
    codes = iter([1, 1, 0])
    h.fake.on_start("app", lambda info: PlannedExit(0.5, code=next(codes)))
    decision = await h.run(until=100)
    assert decision is not None and not decision.restart and h.loop.restarts == 2


async def test_no_never_restarts(autojump_clock: trio.testing.MockClock) -> None:
    h = Harness(parse_restart("no"))
    h.fake.exits_after("app", 1.0, code=1)
    assert await h.run(until=100) == Decision(False, reason="restart policy is no")
    assert h.relaunched_at == []


@pytest.mark.parametrize("policy", ["always", "unless-stopped"])
async def test_a_stop_by_hand_cancels_a_pending_restart(
    policy: str, autojump_clock: trio.testing.MockClock
) -> None:
    h = Harness(parse_restart(policy), Backoff(base=30))
    h.fake.exits_after("app", 0.0, code=1)
    await h.fake.create("app", BUNDLE, CreateOptions(start=True))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.loop.run)
        await trio.sleep(10)  # restarted once at once; the next restart waits 30 s
        assert len(h.relaunched_at) == 1
        assert h.loop.decision is not None and h.loop.decision.delay == 30
        stopped = await h.loop.stop(timeout=1)
    assert stopped is not None and stopped.exit_code == 1  # it had already ended
    await trio.sleep(100)
    assert len(h.relaunched_at) == 1
    assert h.loop.decision == Decision(False, reason="stopped by hand")


async def test_a_stop_by_hand_of_a_running_container(
    autojump_clock: trio.testing.MockClock,
) -> None:
    h = Harness(ALWAYS)
    await h.fake.create("app", BUNDLE, CreateOptions(start=True))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.loop.run)
        await trio.sleep(5)
        stopped = await h.loop.stop()
    assert stopped is not None and stopped.signal == 15
    assert h.relaunched_at == [] and h.loop.decision == Decision(False, reason="stopped by hand")
    assert (await h.fake.state("app")).status == "stopped"


async def test_a_failed_relaunch_counts_and_backs_off(
    autojump_clock: trio.testing.MockClock,
) -> None:
    h = Harness(parse_restart("on-failure:4"))
    h.fake.exits_after("app", 1.0, code=1)
    await h.fake.create("app", BUNDLE, CreateOptions(start=True))
    h.fake.fail_next("create", SetupError("no such image"))
    h.fake.fail_next("create", SetupError("no such image"))
    began = trio.current_time()
    decision = await h.run(until=math.inf, started=True)
    assert decision == Decision(False, reason="gave up after 4 restarts")
    assert isinstance(h.loop.last_error, SetupError)
    # run 1 s; at once: fails; 0.1 s: fails; 0.2 s: runs 1 s; 0.4 s: runs 1 s; gives up
    assert h.gaps(began) == pytest.approx([1, 0.1, 0.2, 1 + 0.4])
