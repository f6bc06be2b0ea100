"""Service options the supervisor acts on while a stack runs: ``init``, dependents restarted
with their dependency, per-service backoff knobs, the file's scale."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

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
    states = run("exec", "app", "sh", "-c", "cat /proc/[0-9]*/stat").stdout
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
    # the first restart at once, the next after the service's delay (1 s; by default 100 ms,
    # 200 ms, 400 ms...: several restarts in the same time)
    run = stack(
        """
name: bo
services:
  quick:
    image: busybox
    command: ["sh", "-c", "exit 3"]
    restart: always
    x-restart-backoff: {delay: 1s, max_delay: 1s}
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
    time.sleep(1.0)
    assert rows(run)["bo-quick-1"]["restart_count"] == 2
