"""runtime.client.LocalRuntime against the real kernel, and one scenario that FakeRuntime and
LocalRuntime must both pass (the fake stays honest)."""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from runtime.client import (
    ContainerInfo,
    CreateOptions,
    ExecRequest,
    ExitStatus,
    LocalRuntime,
    RuntimeClient,
)
from runtime.errors import AlreadyExists, Error, NotFound, StateError
from runtime.testing import FakeRuntime
from tests.busybox import bundle

LONG = ["sleep", "30"]  # PID 1 without a handler: SIGTERM does nothing to it


@pytest.fixture
def client(state_root: Path) -> Iterator[LocalRuntime]:
    from runtime.forkserver import stop

    root = state_root / "runtime"
    local = LocalRuntime(root)
    yield local
    for state in local.runtime.list():  # what a failed test left
        try:
            local.runtime.delete(state.id, force=True)
        except Error:
            pass
    stop(root)


def _bundle(tmp_path: Path, rootfs: Path, name: str, args: list[str], **changes: object) -> Path:
    return bundle(tmp_path / name, args, lower=rootfs, **changes)


# -- the shared scenario -------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundles:
    long: Path  # runs until killed, ignores SIGTERM
    exit3: Path  # exits with 3 at once
    # after a step that takes a moment on a real kernel (an exit that is not ours)
    settle: Callable[[], Awaitable[None]]


def _code(status: ExitStatus | None) -> tuple[int | None, int | None, bool] | None:
    return None if status is None else (status.exit_code, status.signal, status.oom_killed)


async def scenario(rt: RuntimeClient, b: Bundles) -> None:
    """What every RuntimeClient must do the same way."""
    info = await rt.create("s1", b.long)
    assert (info.id, info.status, info.exit) == ("s1", "created", None)
    assert info.pid and info.bundle == str(b.long)
    with pytest.raises(AlreadyExists):
        await rt.create("s1", b.long)
    with pytest.raises(Error, match="invalid container id"):
        await rt.create("../x", b.long)
    with pytest.raises(StateError, match="s1 is created: cannot pause it"):
        await rt.pause("s1")
    assert await rt.wait("s1", timeout=0.05) is None

    await rt.start("s1")
    assert (await rt.state("s1")).status == "running"
    with pytest.raises(StateError, match="running: cannot start"):
        await rt.start("s1")
    with pytest.raises(StateError, match="running: cannot delete"):
        await rt.delete("s1")
    await rt.kill("s1", signal.SIGTERM)  # ignored by this PID 1
    assert await rt.wait("s1", timeout=0.2) is None
    await rt.pause("s1")
    assert (await rt.state("s1")).status == "paused"
    with pytest.raises(StateError, match="paused: cannot pause"):
        await rt.pause("s1")
    await rt.resume("s1")
    assert [(i.id, i.status) for i in await rt.list()] == [("s1", "running")]

    stopped = await rt.stop("s1", timeout=0.3)  # SIGTERM ignored: SIGKILL after 0.3 s
    assert _code(stopped) == (137, 9, False) and stopped.unknown_reason is None
    info = await rt.state("s1")
    assert (info.status, info.pid, _code(info.exit)) == ("stopped", None, (137, 9, False))
    assert _code(await rt.wait("s1", timeout=0)) == (137, 9, False)
    assert _code(await rt.stop("s1")) == (137, 9, False)  # stopped: its exit at once
    with pytest.raises(StateError, match="stopped: cannot kill"):
        await rt.kill("s1")
    await rt.delete("s1")
    with pytest.raises(NotFound):
        await rt.state("s1")
    with pytest.raises(NotFound):
        await rt.wait("s1", timeout=1)

    # run (create and start at once), an exit of its own, waiters before and after
    async with trio.open_nursery() as nursery:
        results: list[ExitStatus | None] = []

        async def waiter() -> None:
            results.append(await rt.wait("s2", timeout=10))

        info = await rt.create("s2", b.exit3, CreateOptions(start=True))
        assert info.status in ("running", "stopped")
        for _ in range(3):
            nursery.start_soon(waiter)
    assert [_code(r) for r in results] == [(3, None, False)] * 3
    await b.settle()
    assert (await rt.state("s2")).status == "stopped"
    await rt.delete("s2")

    # delete(force) of a running container; delete of a created one
    await rt.create("s3", b.long, CreateOptions(start=True))
    await rt.create("s4", b.long)
    await rt.delete("s3", force=True)
    await rt.delete("s4")
    assert await rt.list() == []


async def _no_settle() -> None:
    pass


async def test_scenario_on_the_fake() -> None:
    fake = FakeRuntime()
    b = Bundles(Path("/bundles/long"), Path("/bundles/exit3"), _no_settle)
    fake.ignore_signals(lambda info: info.bundle == str(b.long), signal.SIGTERM)
    fake.exits_after(lambda info: info.bundle == str(b.exit3), 0.0, code=3)
    await scenario(fake, b)


@pytest.mark.root
async def test_scenario_on_the_real_runtime(
    client: LocalRuntime, tmp_path: Path, busybox_rootfs: Path
) -> None:
    b = Bundles(
        _bundle(tmp_path, busybox_rootfs, "long", LONG),
        _bundle(tmp_path, busybox_rootfs, "exit3", ["sh", "-c", "exit 3"]),
        lambda: trio.sleep(0.05),  # (the monitor records the exit first, then answers)
    )
    await scenario(client, b)


# -- LocalRuntime on its own ---------------------------------------------------------------------


@pytest.mark.root
async def test_records_are_typed(
    client: LocalRuntime, tmp_path: Path, busybox_rootfs: Path
) -> None:
    b = _bundle(
        tmp_path,
        busybox_rootfs,
        "b",
        LONG,
        annotations={"org.example": "yes"},
        linux__resources={"memory": {"limit": 64 << 20}, "pids": {"limit": 50}},
    )
    log = tmp_path / "log"
    info = await client.create("typed", b, CreateOptions(start=True, log_path=str(log)))
    assert isinstance(info, ContainerInfo)
    assert info.annotations["org.example"] == "yes"
    assert info.log_path == str(log) and info.created and info.started and info.monitor_pid
    stats = await client.stats("typed")
    assert stats.memory_limit == 64 << 20 and stats.pids_limit == 50
    assert stats.pids_current == 1 and stats.memory_usage and stats.cpu_usage_ns is not None
    with pytest.raises(NotFound):
        await client.stats("nothing")
    await client.kill("typed", signal.SIGKILL)
    await client.wait("typed", timeout=10)
    with trio.fail_after(5):
        while (await client.stats("typed")).memory_usage is not None:
            await trio.sleep(0.01)  # (the monitor removes the cgroup just after the exit)
    assert (await client.stats("typed")).memory_limit == 64 << 20
    with pytest.raises(ValueError):
        await client.wait("typed", -1)
    await client.delete("typed")


@pytest.mark.root
async def test_a_waiter_before_start_hears_a_quick_exit(
    client: LocalRuntime, tmp_path: Path, busybox_rootfs: Path
) -> None:
    b = _bundle(tmp_path, busybox_rootfs, "b", ["true"])
    await client.create("quick", b)
    async with trio.open_nursery() as nursery:
        got: list[ExitStatus | None] = []

        async def waiter() -> None:
            got.append(await client.wait("quick", timeout=10))

        nursery.start_soon(waiter)
        await trio.sleep(0.05)
        await client.start("quick")
    assert _code(got[0]) == (0, None, False)
    await client.delete("quick")


@pytest.mark.root
async def test_stop_uses_the_signal_then_sigkill(
    client: LocalRuntime, tmp_path: Path, busybox_rootfs: Path
) -> None:
    trap = ["sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.05; done"]
    await client.create(
        "polite", _bundle(tmp_path, busybox_rootfs, "p", trap), CreateOptions(start=True)
    )
    await client.create(
        "deaf", _bundle(tmp_path, busybox_rootfs, "d", LONG), CreateOptions(start=True)
    )
    await trio.sleep(0.1)  # (the trap is set)
    start = trio.current_time()
    assert _code(await client.stop("polite", timeout=5)) == (7, None, False)
    assert trio.current_time() - start < 2
    start = trio.current_time()
    assert _code(await client.stop("deaf", timeout=0.5)) == (137, 9, False)
    assert 0.5 <= trio.current_time() - start < 3
    await client.delete("polite")
    await client.delete("deaf")


@pytest.mark.root
async def test_waits_of_a_monitor_killed_or_a_removed_state(
    client: LocalRuntime, tmp_path: Path, busybox_rootfs: Path
) -> None:
    b = _bundle(tmp_path, busybox_rootfs, "b", LONG)
    info = await client.create("orphan", b, CreateOptions(start=True))
    assert info.monitor_pid
    async with trio.open_nursery() as nursery:
        got: list[ExitStatus | None] = []

        async def waiter() -> None:
            got.append(await client.wait("orphan", timeout=10))

        nursery.start_soon(waiter)
        await trio.sleep(0.05)
        os.kill(info.monitor_pid, signal.SIGKILL)  # nobody is left to record the exit
        await trio.sleep(0.2)
        assert got == []  # the container outlives its monitor: the wait goes on
        assert (await client.state("orphan")).status == "running"
        assert info.pid
        os.kill(info.pid, signal.SIGKILL)
    assert got[0] is not None and got[0].exit_code is None
    assert got[0].unknown_reason == "the monitor ended without recording the exit"
    state = await client.state("orphan")
    assert state.status == "stopped" and state.exit == got[0]
    await client.delete("orphan")  # kills the init, removes the cgroup

    # cleanup_paths: the monitor removes the state once the container has ended
    gone = _bundle(tmp_path, busybox_rootfs, "g", ["sh", "-c", "sleep 0.2; exit 4"])
    await client.create("rm", gone, CreateOptions(start=True, cleanup_paths=(str(tmp_path / "x"),)))
    assert _code(await client.wait("rm", timeout=10)) == (4, None, False)
    with trio.fail_after(5):
        while (client.root / "rm").exists():
            await trio.sleep(0.01)


@pytest.mark.root
async def test_many_waiters_share_one_connection(
    client: LocalRuntime, tmp_path: Path, busybox_rootfs: Path
) -> None:
    """More waiters than the monitor's listen backlog (16), on one container."""
    await client.create(
        "shared", _bundle(tmp_path, busybox_rootfs, "b", LONG), CreateOptions(start=True)
    )
    got: list[ExitStatus | None] = []
    async with trio.open_nursery() as nursery:

        async def waiter(timeout: float) -> None:
            got.append(await client.wait("shared", timeout))

        for i in range(50):
            nursery.start_soon(waiter, 0.05 if i % 10 == 0 else 30)  # some give up early
        await trio.sleep(0.2)
        assert len(client._watches) == 1
        watch = next(iter(client._watches.values()))
        assert watch.users == 45 and watch.sock is not None
        await client.kill("shared", signal.SIGKILL)
    assert got.count(None) == 5
    assert [_code(r) for r in got if r is not None] == [(137, 9, False)] * 45
    assert client._watches == {}
    await client.delete("shared")


@pytest.mark.root
@pytest.mark.slow
async def test_200_concurrent_waits_hold_no_thread(
    client: LocalRuntime, tmp_path: Path, busybox_rootfs: Path
) -> None:
    count = 200
    bundles = [_bundle(tmp_path, busybox_rootfs, f"b{i}", LONG) for i in range(count)]
    began = time.monotonic()
    async with trio.open_nursery() as nursery:
        for i in range(count):  # (each its own bundle: an overlay's upper layer is its own)
            nursery.start_soon(client.create, f"w{i}", bundles[i], CreateOptions(start=True))
    created = time.monotonic() - began
    results: dict[str, ExitStatus | None] = {}
    threads_during: list[int] = []
    baseline = threading.active_count()  # trio's idle worker threads from the creates, at most
    async with trio.open_nursery() as nursery:

        async def waiter(container_id: str) -> None:
            results[container_id] = await client.wait(container_id, timeout=60)

        for i in range(count):
            nursery.start_soon(waiter, f"w{i}")
        await trio.sleep(0.5)
        assert len(client._watches) == count  # each waiting, on its own connection
        assert all(w.sock is not None for w in client._watches.values())
        threads_during.append(threading.active_count())
        assert trio.to_thread.current_default_thread_limiter().borrowed_tokens == 0
        began = time.monotonic()
        for state in client.runtime.list():  # (sync on purpose: no worker thread involved)
            client.runtime.kill(state.id, signal.SIGKILL)
        killed = time.monotonic() - began
        threads_during.append(threading.active_count())
    waited = time.monotonic() - began
    assert len(results) == count
    assert all(_code(r) == (137, 9, False) for r in results.values())
    assert max(threads_during) <= baseline
    print(
        f"\n{count} containers created in {created:.2f} s; killed in {killed * 1000:.0f} ms; "
        f"every wait returned {waited * 1000:.0f} ms after the first kill; threads: {baseline} "
        "before, "
        f"{max(threads_during)} during the waits"
    )
    async with trio.open_nursery() as nursery:
        for i in range(count):
            nursery.start_soon(client.delete, f"w{i}")
    assert await client.list() == []


@pytest.mark.root
async def test_attach_and_exec(client: LocalRuntime, tmp_path: Path, busybox_rootfs: Path) -> None:
    b = _bundle(
        tmp_path,
        busybox_rootfs,
        "t",
        ["sh", "-c", "read line; echo got:$line; sleep 30"],
        process__terminal=True,
    )
    await client.create("tty", b)
    stream = await client.attach("tty", 30, 100)
    await client.start("tty")
    await stream.send_all(b"hello\r")
    output = b""
    with trio.fail_after(10):
        while b"got:hello" not in output:
            output += await stream.receive_some(4096)

    out = tmp_path / "exec.out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        request = ExecRequest(("sh", "-c", "echo $GREETING; exit 5"), env=("GREETING=hi",))
        assert await client.exec("tty", request, (null, fd, fd)) == 5
    finally:
        os.close(fd)
        os.close(null)
    assert out.read_text() == "hi\n"

    await client.kill("tty", signal.SIGKILL)
    with trio.fail_after(10):
        while await stream.receive_some(4096):
            pass  # the stream ends with the container
    await stream.aclose()
    assert _code(await client.wait("tty", timeout=10)) == (137, 9, False)
    with pytest.raises(StateError, match="stopped: cannot attach"):
        await client.attach("tty")
    await client.delete("tty")

    plain = _bundle(tmp_path, busybox_rootfs, "p", LONG)
    await client.create("plain", plain, CreateOptions(start=True))
    with pytest.raises(Error, match="no terminal"):
        await client.attach("plain")
    await client.delete("plain", force=True)


@pytest.mark.root
async def test_wait_without_limit_and_cancelled(
    client: LocalRuntime, tmp_path: Path, busybox_rootfs: Path
) -> None:
    await client.create(
        "c", _bundle(tmp_path, busybox_rootfs, "b", LONG), CreateOptions(start=True)
    )
    with trio.move_on_after(0.1) as scope:
        await client.wait("c", math.inf)
    assert scope.cancelled_caught and client._watches == {}
    await client.delete("c", force=True)
