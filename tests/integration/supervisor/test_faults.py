"""The supervisor keeps running and serving through faults (issue 12, "Bad input and faults"):
a full disk, a monitor that dies, a state file it cannot read, a client that goes away
mid-stream, and a healthcheck that hangs. Against the real runtime."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli import REPO, make_orc
from tests.conftest import process_alive
from tests.integration.supervisor.conftest import (
    STOPS_ON_TERM,
    rows,
    shut_down_supervisor,
    wait_for,
)

pytestmark = pytest.mark.root

CMD = json.dumps(STOPS_ON_TERM)

TWO = f"""
name: pair
services:
  a:
    image: busybox
    command: {CMD}
    restart: always
  b:
    image: busybox
    command: {CMD}
    restart: always
"""


def supervisor_pid(state_root: Path) -> int:
    return int((state_root / "supervisor.lock").read_text())


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runtime_state(state_root: Path, container_id: str) -> dict[str, Any]:
    return dict(json.loads((state_root / "runtime" / container_id / "state.json").read_text()))


def log_of(state_root: Path) -> str:
    try:
        return (state_root / "supervisor.log").read_text()
    except FileNotFoundError:
        return ""


def kill_supervisor(state_root: Path) -> None:
    pid = supervisor_pid(state_root)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not process_alive(pid), what="the supervisor to end")


# -- a full disk ---------------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(state_root: Path, size: str = "48m") -> Iterator[None]:
    """The state root on its own small tmpfs; at the end (after the test took everything down)
    the fork server stopped and the tmpfs unmounted, before the leak check looks."""
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "orc-faults", str(state_root)],
        check=True,
    )
    try:
        yield
    finally:
        from runtime.forkserver import stop

        try:
            supervisor = supervisor_pid(state_root)
        except (OSError, ValueError):
            supervisor = 0
        shut_down_supervisor(state_root)
        if supervisor:  # (it lets its lock go a moment before it ends)
            wait_for(lambda: not process_alive(supervisor), what="the supervisor to end")
        stop(state_root / "runtime")
        if subprocess.run(["umount", str(state_root)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(state_root)], check=True)


def fill(path: Path) -> None:
    """Write ``path`` until the disk is full."""
    chunk = b"\0" * (1 << 20)
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                assert exc.errno == 28, exc  # ENOSPC
                break
    # the last bytes too: nothing is left
    with open(path, "ab", buffering=0) as f, contextlib.suppress(OSError):
        while f.write(b"\0" * 512):
            pass


def test_a_full_disk_is_survived_reported_and_converges_once_freed(
    state_root: Path, busybox_tar: Path, tmp_path: Path
) -> None:
    with small_tmpfs(state_root):
        orc = make_orc(state_root)
        try:
            orc("image", "import", str(busybox_tar), "busybox")
            compose = tmp_path / "compose.yaml"
            compose.write_text(TWO)

            def run(*args: str, check: bool = True) -> Any:
                return orc("-f", str(compose), *args, check=check)

            run("up", "-d")
            supervisor = supervisor_pid(state_root)
            before = rows(run)
            filler = state_root / "filler"
            fill(filler)
            os.kill(before["pair-a-1"]["pid"], signal.SIGKILL)  # restart: always
            time.sleep(1.5)  # its restarts fail, and are retried
            assert process_alive(supervisor), log_of(state_root)
            table = rows(run)  # ps still answers
            assert table["pair-b-1"]["state"] == "running"
            assert table["pair-b-1"]["pid"] == before["pair-b-1"]["pid"]
            if table["pair-a-1"]["state"] != "running":
                # said in ps (and in the log, when the log's disk lets it)
                assert "No space left on device" in str(table["pair-a-1"]["last_error"]), table
            # (else its restart fitted in the space its own old state freed: a restart now
            # needs no more than that)
            # a change that needs new space cannot be carried out: one clear error
            compose.write_text(TWO + f"  c:\n    image: busybox\n    command: {CMD}\n")
            done = run("up", "-d", check=False)
            assert done.returncode != 0
            assert "Traceback" not in done.stderr
            errors = [line for line in done.stderr.splitlines() if "orchestrator:" in line]
            assert len(errors) == 1, done.stderr
            print(f"up on a full disk: {errors[0]}\nps: {table['pair-a-1']['last_error']}")
            assert "No space left on device" in errors[0] or "full" in errors[0], done.stderr
            assert process_alive(supervisor)
            # space again: everything converges
            filler.unlink()
            run("up", "-d")
            wait_for(
                lambda: all(r["state"] == "running" for r in rows(run).values()),
                timeout=20,
                what="the stack to run again",
            )
            after = rows(run)
            assert sorted(after) == ["pair-a-1", "pair-b-1", "pair-c-1"]
            assert after["pair-a-1"]["pid"] != before["pair-a-1"]["pid"]
            assert run("up", "--dry-run").stdout == "nothing to do\n"
            assert supervisor_pid(state_root) == supervisor
            run("down")
            assert rows(run) == {}
        finally:
            with contextlib.suppress(OSError):
                (state_root / "filler").unlink()
            listing = orc("ps", "-a", "-q", check=False).stdout.split()
            if listing:
                orc("rm", "-f", *listing, check=False)


# -- a monitor that dies -------------------------------------------------------------------------


def test_a_killed_monitor_neither_spins_nor_crashes_the_supervisor(
    stack: Callable[..., Any], state_root: Path
) -> None:
    run = stack(TWO)
    run("up", "-d")
    before = rows(run)
    supervisor = supervisor_pid(state_root)
    record = runtime_state(state_root, before["pair-a-1"]["id"])
    monitor = int(record["monitor_pid"])
    assert process_alive(monitor)
    os.kill(monitor, signal.SIGKILL)
    wait_for(lambda: not process_alive(monitor), what="the monitor to end")
    time.sleep(0.3)  # (the supervisor hears its watch's connection close)
    cpu_before = cpu_seconds(supervisor)
    time.sleep(2)
    used = cpu_seconds(supervisor) - cpu_before
    print(f"supervisor CPU over 2 s after a monitor died: {used:.3f} s")
    assert used < 0.2, f"the supervisor spins: {used:.2f} s of CPU in 2 s"
    assert process_alive(supervisor)
    table = rows(run)
    # its process runs on without a monitor: said so, with the same pid
    assert table["pair-a-1"]["state"] == "running"
    assert table["pair-a-1"]["pid"] == before["pair-a-1"]["pid"]
    assert "monitor died" in table["pair-a-1"]["last_error"]
    assert table["pair-b-1"]["state"] == "running"
    assert table["pair-b-1"]["last_error"] is None
    assert table["pair-b-1"]["pid"] == before["pair-b-1"]["pid"]
    # the other is still kept
    os.kill(before["pair-b-1"]["pid"], signal.SIGKILL)
    wait_for(lambda: rows(run)["pair-b-1"]["restart_count"] == 1, what="b restarted")
    run("down", "-t", "2")
    assert rows(run) == {}
    assert not process_alive(before["pair-a-1"]["pid"])


def test_a_container_whose_monitor_died_is_restarted_when_it_ends(
    stack: Callable[..., Any], state_root: Path
) -> None:
    run = stack(TWO)
    run("up", "-d")
    before = rows(run)
    record = runtime_state(state_root, before["pair-a-1"]["id"])
    os.kill(int(record["monitor_pid"]), signal.SIGKILL)
    time.sleep(0.2)
    os.kill(before["pair-a-1"]["pid"], signal.SIGKILL)  # its end is seen through its pid
    wait_for(
        lambda: (
            rows(run)["pair-a-1"]["state"] == "running"
            and rows(run)["pair-a-1"]["restart_count"] == 1
        ),
        what="a restarted without its old monitor",
    )
    assert rows(run)["pair-a-1"]["pid"] != before["pair-a-1"]["pid"]
    run("down", "-t", "2")


# -- a state file it cannot read -----------------------------------------------------------------


@pytest.mark.parametrize("which", ["container.json", "state.json"])
def test_an_unreadable_state_file_is_named_and_the_rest_adopted(
    stack: Callable[..., Any], state_root: Path, which: str
) -> None:
    run = stack(TWO)
    run("up", "-d")
    before = rows(run)
    broken = before["pair-a-1"]
    directory = state_root / ("containers" if which == "container.json" else "runtime")
    path = directory / broken["id"] / which
    kill_supervisor(state_root)
    path.write_text('{"id": "half written')
    run("up", "-d", check=False)  # a new supervisor; the outcome for the broken one may vary
    supervisor = supervisor_pid(state_root)
    assert process_alive(supervisor)
    assert str(path) in log_of(state_root), log_of(state_root)
    after = rows(run)
    assert after["pair-b-1"]["state"] == "running"
    assert after["pair-b-1"]["pid"] == before["pair-b-1"]["pid"]  # adopted, not restarted
    os.kill(before["pair-b-1"]["pid"], signal.SIGKILL)  # and kept
    wait_for(lambda: rows(run)["pair-b-1"]["restart_count"] == 1, what="b restarted")
    run("down", "-t", "2")
    assert process_alive(supervisor)
    assert rows(run) == {}
    assert not (state_root / "containers" / broken["id"]).exists()
    assert not (state_root / "runtime" / broken["id"]).exists()
    assert not process_alive(broken["pid"])


# -- clients that go away ------------------------------------------------------------------------


def _raw_request(state_root: Path, method: str, target: str, body: Any = None) -> socket.socket:
    from orchestrator.supervisor.httpclient import _open, _send

    sock = _open(state_root / "supervisor.sock", 10)
    _send(sock, method, target, body)
    return sock


def test_clients_that_go_away_mid_stream_leave_the_supervisor_serving(
    stack: Callable[..., Any], state_root: Path
) -> None:
    # the services wait for a gate that turns healthy after a second: the CLI is killed
    # while its `up` waits, and the events that follow go to a client that is gone
    gate = json.dumps(["sh", "-c", "sleep 1; touch /tmp/ready; " + STOPS_ON_TERM[2]])
    many = (
        TWO
        + f"""  gate:
    image: busybox
    command: {gate}
    healthcheck:
      test: ["CMD", "test", "-e", "/tmp/ready"]
      interval: 100ms
      start_period: 10s
      start_interval: 100ms
"""
        + "".join(
            f"  s{i}:\n    image: busybox\n    command: {CMD}\n"
            "    depends_on: {gate: {condition: service_healthy}}\n"
            for i in range(6)
        )
    )
    run = stack(TWO)
    run("up", "-d")
    supervisor = supervisor_pid(state_root)
    # an events client that stops reading (its receive buffer made small), then closes
    stalled = _raw_request(state_root, "GET", "/v1/events")
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader = _raw_request(state_root, "GET", "/v1/events?project=pair")
    reader.settimeout(10)
    time.sleep(0.3)
    for _ in range(3):
        run("restart", "-t", "1", "b")
    stalled.close()
    # an `up` whose CLI is killed part way
    compose = next((state_root.parent / "project").glob("compose.yaml"))
    compose.write_text(many)
    up = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "-f", str(compose), "up", "-d"],
        env=dict(os.environ, ORCHESTRATOR_ROOT=str(state_root)),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: "pair-gate-1" in rows(run), timeout=20, what="the up to begin")
    up.kill()
    up.wait()
    assert process_alive(supervisor)
    # the supervisor carries the `up` through without its client
    wait_for(
        lambda: len(rows(run)) == 9 and all(r["state"] == "running" for r in rows(run).values()),
        timeout=20,
        what="the interrupted up to finish",
    )
    run("up", "-d")  # and the next one has nothing left to do: every service once
    table = rows(run)
    assert sorted(table) == sorted(
        ["pair-a-1", "pair-b-1", "pair-gate-1"] + [f"pair-s{i}-1" for i in range(6)]
    )
    assert all(r["state"] == "running" for r in table.values()), table
    assert run("up", "--dry-run").stdout == "nothing to do\n"
    # the other client still gets events
    run("kill", "b")
    seen = b""
    deadline = time.monotonic() + 10
    while b'"restart"' not in seen.split(b"pair-b-1")[-1] and time.monotonic() < deadline:
        seen += reader.recv(65536)
    reader.close()
    assert b'"container": "pair-b-1", "action": "kill"' in seen
    assert supervisor_pid(state_root) == supervisor and process_alive(supervisor)
    run("down", "-t", "2")


# -- one bad container does not stall the others ------------------------------------------------


@pytest.mark.slow  # (some 11 s: the hung checks must have time to pile up)
def test_a_hanging_healthcheck_does_not_stall_the_others(
    stack: Callable[..., Any], state_root: Path
) -> None:
    """Checks that never end, many of them: the supervisor's other work (a restart, ps) goes
    on at its usual pace."""
    run = stack(
        f"""
name: hang
services:
  stuck:
    image: busybox
    command: {CMD}
    deploy: {{replicas: 6}}
    healthcheck:
      test: ["CMD", "sleep", "1000"]
      interval: 100ms
      timeout: 1s
      retries: 1
  other:
    image: busybox
    command: {CMD}
    restart: always
"""
    )
    run("up", "-d")
    wait_for(
        lambda: rows(run)["hang-stuck-1"]["health"] == "unhealthy",
        timeout=10,
        what="the hanging check to fail",
    )
    time.sleep(8)  # checks pile up: more than trio's 40 worker threads, if each held one
    pid = rows(run)["hang-other-1"]["pid"]
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: (
            rows(run)["hang-other-1"]["state"] == "running"
            and rows(run)["hang-other-1"]["pid"] != pid
        ),
        timeout=10,
        what="other restarted",
    )
    took = time.monotonic() - killed
    print(f"restart seen by ps after {took:.2f} s")
    assert took < 1.5, took
    run("down", "-t", "1")


def test_a_crash_after_downs_answer_leaves_no_network_for_long(
    stack: Callable[..., Any], state_root: Path
) -> None:
    # ``down`` answers before its bridges go; a supervisor killed just then leaves a network
    # of a project it no longer knows: the next supervisor removes it.
    run = stack(TWO)
    run("up", "-d")  # (pair is a project the supervisor knows)
    run("network", "create", "--label", "org.orchestrator.project=gone", "gone_default")
    run("network", "create", "keep_mine")  # (a network of the user's own: none of ours)
    shut_down_supervisor(state_root)
    run("up", "-d")  # a new supervisor adopts the stack
    listed = run("network", "ls").stdout
    assert "gone_default" not in listed, listed
    assert "keep_mine" in listed and "pair_default" in listed
    run("down")
    run("network", "rm", "keep_mine")
