"""FakeRuntime follows the runtime's state machine and errors, on trio's clock."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import trio
import trio.testing

from runtime import state as st
from runtime.client import CreateOptions, ExecRequest, ExitStatus, Stats
from runtime.errors import AlreadyExists, Error, NotFound, SetupError, StateError
from runtime.testing import Call, FakeRuntime, PlannedExit

BUNDLE = "/bundles/app"


async def _in_state(fake: FakeRuntime, container_id: str, status: str) -> None:
    await fake.create(container_id, BUNDLE)
    if status in ("running", "paused", "stopped"):
        await fake.start(container_id)
    if status == "paused":
        await fake.pause(container_id)
    if status == "stopped":
        fake.exit(container_id, 0)
    assert (await fake.state(container_id)).status == status


OPERATIONS = ["start", "kill", "pause", "resume", "delete", "exec in"]


@pytest.mark.parametrize("status", ["created", "running", "paused", "stopped"])
@pytest.mark.parametrize("operation", OPERATIONS)
async def test_the_state_machine_is_the_runtimes(status: str, operation: str) -> None:
    fake = FakeRuntime()
    await _in_state(fake, "c", status)
    calls = {
        "start": lambda: fake.start("c"),
        "kill": lambda: fake.kill("c", signal.SIGKILL),
        "pause": lambda: fake.pause("c"),
        "resume": lambda: fake.resume("c"),
        "delete": lambda: fake.delete("c"),
        "exec in": lambda: fake.exec("c", ExecRequest(("true",))),
    }
    if status in st.ALLOWED[operation]:
        await calls[operation]()
    else:
        with pytest.raises(StateError) as caught:
            await calls[operation]()
        assert (caught.value.state, caught.value.operation) == (status, operation)
        assert str(caught.value) == f"container c is {status}: cannot {operation} it"


async def test_lifecycle_and_records() -> None:
    fake = FakeRuntime()
    info = await fake.create("web", BUNDLE, CreateOptions(log_path="/logs/web"))
    assert (info.status, info.bundle, info.log_path, info.exit) == (
        "created",
        BUNDLE,
        "/logs/web",
        None,
    )
    assert info.pid and info.monitor_pid and info.created and info.started is None
    with pytest.raises(AlreadyExists):
        await fake.create("web", BUNDLE)
    with pytest.raises(Error, match="invalid container id"):
        await fake.create("no/slash", BUNDLE)
    await fake.start("web")
    info = await fake.state("web")
    assert info.status == "running" and info.started
    await fake.kill("web", signal.SIGKILL)
    info = await fake.state("web")
    assert (info.status, info.pid) == ("stopped", None)
    assert info.exit is not None
    assert (info.exit.exit_code, info.exit.signal, info.exit.finished is not None) == (137, 9, True)
    await fake.delete("web")
    for call in (fake.state("web"), fake.wait("web", 1), fake.kill("web"), fake.delete("web")):
        with pytest.raises(NotFound):
            await call
    assert [c.operation for c in fake.calls[:3]] == ["create", "create", "create"]
    assert fake.calls[3] == Call("start", "web")
    assert fake.calls_to("kill") == [Call("kill", "web", (9,)), Call("kill", "web", (15,))]


async def test_planned_exits_follow_trios_clock(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeRuntime()
    fake.exits_after("job", 5.0, code=3)
    await fake.create("job", BUNDLE, CreateOptions(start=True))
    began = trio.current_time()
    assert await fake.wait("job", timeout=1) is None
    status = await fake.wait("job", timeout=100)
    assert status is not None and status.exit_code == 3
    assert trio.current_time() - began == pytest.approx(5.0)
    # a paused container's clock stops
    await fake.delete("job")
    await fake.create("job", BUNDLE, CreateOptions(start=True))
    began = trio.current_time()
    await trio.sleep(2)
    await fake.pause("job")
    await trio.sleep(60)
    assert (await fake.state("job")).status == "paused"
    await fake.resume("job")
    status = await fake.wait("job", timeout=100)
    assert status is not None and trio.current_time() - began == pytest.approx(65.0)


async def test_exit_wakes_every_waiter(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeRuntime()
    await fake.create("c", BUNDLE, CreateOptions(start=True))
    got: list[ExitStatus | None] = []

    async def waiter(timeout: float) -> None:
        got.append(await fake.wait("c", timeout))

    async with trio.open_nursery() as nursery:
        for timeout in (1, 100, 100):
            nursery.start_soon(waiter, timeout)
        await trio.sleep(10)
        assert got == [None]
        fake.exit("c", signal=signal.SIGSEGV)
    assert [(s.exit_code, s.signal) for s in got if s] == [(139, 11)] * 2
    with pytest.raises(StateError, match="stopped: cannot end"):
        fake.exit("c", 1)
    oom = FakeRuntime()
    await oom.create("o", BUNDLE, CreateOptions(start=True))
    status = oom.exit("o", oom=True)
    assert (status.exit_code, status.signal, status.oom_killed) == (137, 9, True)


async def test_on_start_scripts_each_start() -> None:
    fake = FakeRuntime()
    starts: list[str] = []

    def plan(info: object) -> PlannedExit | None:
        starts.append("x")
        return PlannedExit(0, code=1) if len(starts) <= 2 else None

    fake.on_start(lambda info: info.id.startswith("flaky"), plan)
    for expected in ("stopped", "stopped", "running"):
        info = await fake.create("flaky", BUNDLE, CreateOptions(start=True))
        assert info.status == expected
        await fake.delete("flaky", force=True)
    fake.on_start("flaky", PlannedExit(0, code=9))  # the latest matching rule wins
    info = await fake.create("flaky", BUNDLE, CreateOptions(start=True))
    assert info.exit is not None and info.exit.exit_code == 9


async def test_fail_next_injects_one_fault() -> None:
    fake = FakeRuntime()
    fake.fail_next("create", SetupError("no such image"))
    with pytest.raises(SetupError):
        await fake.create("a", BUNDLE)
    with pytest.raises(NotFound):
        await fake.state("a")  # the failed call did nothing
    await fake.create("a", BUNDLE)
    await fake.create("b", BUNDLE)
    fake.fail_next("start", OSError("boom"), container_id="b")
    await fake.start("a")
    with pytest.raises(OSError):
        await fake.start("b")
    await fake.start("b")
    assert [c.container_id for c in fake.calls_to("start")] == ["a", "b", "b"]


async def test_signals_stop_and_the_stop_signal(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fake = FakeRuntime()
    await fake.create("c", BUNDLE)
    await fake.kill("c", signal.SIGTERM)  # a created container's init waits: only SIGKILL
    await fake.start("c")
    await fake.kill("c", signal.SIGWINCH)
    assert (await fake.state("c")).status == "running"
    status = await fake.stop("c")
    assert status.exit_code == 143 and status.signal == signal.SIGTERM

    fake.ignore_signals("deaf", signal.SIGTERM)
    await fake.create("deaf", BUNDLE, CreateOptions(start=True))
    began = trio.current_time()
    status = await fake.stop("deaf", timeout=3)
    assert (status.exit_code, trio.current_time() - began) == (137, 3)

    (tmp_path / "config.json").write_text(
        json.dumps({"annotations": {"org.opencontainers.image.stopSignal": "SIGQUIT"}})
    )
    await fake.create("q", tmp_path, CreateOptions(start=True))
    await fake.pause("q")
    status = await fake.stop("q")  # resumed first, then its own stop signal
    assert status.signal == signal.SIGQUIT
    with pytest.raises(ValueError):
        fake.ignore_signals("x", signal.SIGKILL)


async def test_cleanup_paths_remove_the_state_with_the_exit() -> None:
    fake = FakeRuntime()
    await fake.create("rm", BUNDLE, CreateOptions(start=True, cleanup_paths=("/x",)))
    async with trio.open_nursery() as nursery:
        got: list[ExitStatus | None] = []

        async def waiter() -> None:
            got.append(await fake.wait("rm", 10))

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        fake.exit("rm", 0)
    assert got[0] is not None and got[0].exit_code == 0
    with pytest.raises(NotFound):
        await fake.state("rm")


async def test_a_lost_monitor_leaves_an_unknown_exit() -> None:
    fake = FakeRuntime()
    await fake.create("c", BUNDLE, CreateOptions(start=True))
    fake.lose_monitor("c")
    info = await fake.state("c")
    assert info.status == "stopped" and info.exit is not None
    assert info.exit.exit_code is None
    assert info.exit.unknown_reason == "the monitor ended without recording the exit"


async def test_attach_exec_and_stats(tmp_path: Path) -> None:
    fake = FakeRuntime()
    await fake.create("t", BUNDLE, CreateOptions(start=True))
    stream = await fake.attach("t")
    (console,) = fake.consoles("t")
    await console.send_all(b"output")
    assert await stream.receive_some(100) == b"output"
    await stream.send_all(b"typed")
    assert await console.receive_some(100) == b"typed"
    fake.on_exec("t", lambda request: len(request.args))
    assert await fake.exec("t", ExecRequest(("a", "b", "c"))) == 3
    fake.set_stats("t", Stats(memory_usage=1 << 20, pids_current=2))
    assert (await fake.stats("t")).pids_current == 2
    fake.exit("t", 0)
    assert await stream.receive_some(100) == b""  # ends with the container
    with pytest.raises(StateError, match="stopped: cannot attach to"):
        await fake.attach("t")
    assert await fake.stats("t") == Stats()

    (tmp_path / "config.json").write_text(json.dumps({"process": {"terminal": False}}))
    await fake.create("plain", tmp_path, CreateOptions(start=True))
    with pytest.raises(Error, match="no terminal"):
        await fake.attach("plain")


def test_the_monitor_side_never_imports_trio() -> None:
    """Monitors fork from the fork server: trio (100 ms, megabytes) must stay out of them."""
    import subprocess
    import sys

    code = (
        "import sys, runtime.api, runtime.monitor, runtime.forkserver, runtime.pool, "
        "runtime.enter; assert 'trio' not in sys.modules and 'runtime.client' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_the_docstring_example(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeRuntime()
    fake.exits_after("web", 2.0, code=1)
    await fake.create("web", "/bundles/web", CreateOptions(start=True))
    status = await fake.wait("web", timeout=10)
    assert status is not None and status.exit_code == 1
    fake.fail_next("start", SetupError("no such image"))
    assert [c.operation for c in fake.calls] == ["create", "wait"]
