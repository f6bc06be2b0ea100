"""Service options the supervisor acts on while a stack runs: ``init``, dependents restarted
with their dependency, per-service backoff knobs, the file's scale."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import process_alive
from tests.integration.supervisor.conftest import STOPS_ON_TERM, rows, wait_for

pytestmark = pytest.mark.root

CMD = json.dumps(STOPS_ON_TERM)


def test_init_true_runs_the_command_under_an_init_that_reaps_and_forwards(
    stack: Callable[..., Any],
) -> None:
    # sh -c with a trailing command execs it; the subshell's orphan (sleep) is reparented to
    # pid 1: only an init that reaps leaves no zombie behind
    run = stack(
        f"""
name: ini
services:
  app:
    image: busybox
    init: true
    command: {CMD}
  bare:
    image: busybox
    command: {CMD}
"""
    )
    run("up", "-d")
    first = run("exec", "app", "cat", "/proc/1/cmdline").stdout.split("\0")
    assert first[:2] == ["/sbin/docker-init", "--"]
    assert first[2:4] == ["sh", "-c"]
    assert run("exec", "bare", "cat", "/proc/1/cmdline").stdout.split("\0")[0] == "sh"
    # an orphan that dies is reaped by the init
    run("exec", "app", "sh", "-c", "(sleep 0.1 &) ; true")
    time.sleep(0.5)
    # (processes come and go meanwhile: the loop's sleeps; a vanished one is no error)
    states = run(
        "exec", "app", "sh", "-c", "for f in /proc/[0-9]*/stat; do cat $f 2>/dev/null; done; true"
    ).stdout
    assert " Z " not in states, states
    # SIGTERM reaches the command through the init: it ends at once, status 0
    started = time.monotonic()
    run("stop", "-t", "5", "app")
    assert time.monotonic() - started < 3
    assert rows(run)["ini-app-1"]["exit_code"] == 0


def test_up_without_scale_goes_back_to_the_files_replicas(stack: Callable[..., Any]) -> None:
    run = stack(
        f"""
name: sc
services:
  web:
    image: busybox
    command: {CMD}
    deploy: {{replicas: 2}}
"""
    )
    run("up", "-d")
    assert sorted(rows(run)) == ["sc-web-1", "sc-web-2"]
    run("scale", "web=3")
    assert sorted(rows(run)) == ["sc-web-1", "sc-web-2", "sc-web-3"]
    assert run("up", "--dry-run").stdout == "remove web-3: scaled to 2\n"
    run("up", "-d")
    assert sorted(rows(run)) == ["sc-web-1", "sc-web-2"]


DEPENDENTS = f"""
name: dep
services:
  db:
    image: busybox
    command: {CMD}
    restart: always
  api:
    image: busybox
    command: {CMD}
    depends_on:
      db: {{condition: service_started, restart: true}}
  web:
    image: busybox
    command: {CMD}
    depends_on:
      api: {{condition: service_started, restart: true}}
  worker:
    image: busybox
    command: {CMD}
    depends_on: [db]
"""


def test_dependents_with_restart_true_restart_with_their_dependency(
    stack: Callable[..., Any],
) -> None:
    run = stack(DEPENDENTS)
    run("up", "-d")
    before = rows(run)
    # a restart by the policy (the container killed from outside)
    os.kill(before["dep-db-1"]["pid"], signal.SIGKILL)
    wait_for(
        lambda: all(
            rows(run)[f"dep-{s}-1"]["pid"] not in (None, before[f"dep-{s}-1"]["pid"])
            for s in ("db", "api", "web")
        ),
        what="db, api and web to restart",
    )
    after = rows(run)
    assert after["dep-worker-1"]["pid"] == before["dep-worker-1"]["pid"]
    assert all(r["state"] == "running" for r in after.values())
    assert after["dep-api-1"]["started"] > after["dep-db-1"]["started"]
    assert after["dep-web-1"]["started"] > after["dep-api-1"]["started"]
    # ``restart db`` by hand: the same
    restarted = run("restart", "db")
    assert restarted.returncode == 0, restarted.stderr
    again = rows(run)
    for service in ("db", "api", "web"):
        assert again[f"dep-{service}-1"]["pid"] != after[f"dep-{service}-1"]["pid"], service
    assert again["dep-worker-1"]["pid"] == before["dep-worker-1"]["pid"]


def test_backoff_knobs_space_the_restarts(stack: Callable[..., Any]) -> None:
    # the first restart at once, the next after the service's delay (2 s; by default 100 ms,
    # 200 ms, 400 ms...: several restarts in the same time)
    run = stack(
        """
name: bo
services:
  quick:
    image: busybox
    command: ["sh", "-c", "exit 3"]
    restart: always
    x-restart-backoff: {delay: 2s, max_delay: 2s}
  default:
    image: busybox
    command: ["sh", "-c", "exit 3"]
    restart: always
"""
    )
    run("up", "-d")
    time.sleep(0.8)
    counts = {r["service"]: r["restart_count"] for r in rows(run).values()}
    assert counts["quick"] == 1, counts
    assert counts["default"] >= 3, counts
    time.sleep(1.6)
    assert rows(run)["bo-quick-1"]["restart_count"] == 2


def _kill_everything_of(root: Path, pids: list[int]) -> None:
    """A power cut, as far as a test can have one: every process of the state root (the
    supervisor, the fork server, the monitors, the pre-made containers) and the containers'
    own processes die at once, with no chance to record anything."""
    victims = set(pids)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if str(root).encode() in f.read():
                    victims.add(int(entry))
        except OSError:
            continue
    victims.discard(os.getpid())
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: not any(Path(f"/proc/{p}/stat").exists() and process_alive(p) for p in victims),
        what="every process to end",
    )


def _start_supervisor(root: Path) -> None:
    """As the CLI does when none runs (and without anything else, such as a reconcile)."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from orchestrator.commands.stack import ensure_supervisor;"
            " ensure_supervisor(pathlib.Path(sys.argv[1]))",
            str(root),
        ],
        check=True,
    )


def test_after_a_reboot_nothing_is_believed_running_and_histories_start_over(
    stack: Callable[..., Any], state_root: Path
) -> None:
    from orchestrator.supervisor.store import Store

    run = stack(
        f"""
name: boot
services:
  db:
    image: busybox
    command: {CMD}
    restart: always
  web:
    image: busybox
    command: {CMD}
    restart: "no"
"""
    )
    run("up", "-d")
    first = rows(run)
    os.kill(first["boot-db-1"]["pid"], signal.SIGKILL)
    wait_for(lambda: rows(run)["boot-db-1"]["restart_count"] == 1, what="db to restart")
    before = rows(run)
    _kill_everything_of(state_root, [r["pid"] for r in before.values()])
    store = Store(state_root / "supervisor.db")
    store.set_meta("boot_id", "the-boot-before")  # as if the machine had rebooted since
    store.close()
    _start_supervisor(state_root)
    wait_for(lambda: rows(run)["boot-db-1"]["state"] == "running", what="db started on boot")
    after = rows(run)
    # always: started again, its history forgotten (one restart: this one); no: stays down
    assert after["boot-db-1"]["pid"] not in (None, before["boot-db-1"]["pid"])
    assert after["boot-db-1"]["restart_count"] == 1
    assert after["boot-web-1"]["state"] == "exited"
    assert after["boot-web-1"]["restart_count"] == 0
    print("IDS", {n: r["id"] for n, r in {**first, **before, **after}.items()})
    print("FIRST", {n: r["id"] for n, r in first.items()})
    run("down")
    assert rows(run) == {}


def test_create_down_rmi_logs_since_exec_detached_and_global_profile(
    stack: Callable[..., Any], tmp_path: Path, orc: Any, state_root: Path
) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nRUN echo built > /built\n")
    run = stack(
        f"""
name: cr
services:
  app:
    build: {context}
    command: ["sh", "-c", "echo first; sleep 1.2; echo second; trap 'exit 0' TERM; while :; do sleep 0.1; done"]
  extra:
    image: busybox
    command: {CMD}
    profiles: [debug]
"""
    )
    # create: made, not started
    made = run("create")
    assert made.returncode == 0, made.stderr
    table = rows(run)
    assert list(table) == ["cr-app-1"] and table["cr-app-1"]["state"] == "created"
    run("start")
    wait_for(lambda: "second" in run("logs").stdout, what="both lines")
    # logs --since: only what came after a moment between the two lines
    lines = run("logs", "--since", "1s", "--no-color").stdout
    assert "second" in lines and "first" not in lines, lines
    assert run("logs", "--tail", "1").stdout.endswith("second\n")
    # exec -d returns at once; its command runs in the container
    started = time.monotonic()
    run("exec", "-d", "app", "sh", "-c", "sleep 0.3; touch /detached")
    assert time.monotonic() - started < 2
    wait_for(
        lambda: run("exec", "app", "ls", "/detached", check=False).returncode == 0,
        what="the detached command to run",
    )
    # the global --profile (Compose's place for it) enables the profile's services
    compose = tmp_path / "project" / "compose.yaml"
    orc("--profile", "debug", "-f", str(compose), "up", "-d")
    assert sorted(rows(run)) == ["cr-app-1", "cr-extra-1"]
    # down --rmi local: the image built for the service goes, busybox stays
    run("down", "--rmi", "local")
    images = orc("images").stdout
    assert "cr-app" not in images and "busybox" in images
