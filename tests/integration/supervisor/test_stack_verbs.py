"""A stack's run (one-off containers), top, stats, port, images and wait, against the real
runtime and supervisor."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.supervisor.conftest import STOPS_ON_TERM, rows

pytestmark = pytest.mark.root

CMD = json.dumps(STOPS_ON_TERM)

STACK = f"""
name: verbs
services:
  db:
    image: busybox
    command: {CMD}
    restart: always
    healthcheck:
      test: ["CMD", "true"]
      interval: 200ms
  app:
    image: busybox
    command: {CMD}
    restart: always
    environment:
      GREETING: hello
    ports: ["127.0.0.1::8080"]
    depends_on:
      db: {{condition: service_healthy}}
"""


def test_run_brings_dependencies_up_and_leaves_no_replica(stack: Callable[..., Any]) -> None:
    run = stack(STACK)
    done = run(
        "run", "--rm", "-e", "EXTRA=1", "app", "sh", "-c",
        'echo "$GREETING $EXTRA"; grep -qw db /etc/hosts && exit 3',
        check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert done.stdout == "hello 1\n"
    table = rows(run)
    # the dependency came up (healthy first); app itself did not, and the --rm one-off went
    assert list(table) == ["verbs-db-1"], table
    assert table["verbs-db-1"]["state"] == "running"
    assert table["verbs-db-1"]["health"] == "healthy"


def test_a_detached_one_off_is_no_replica_and_down_removes_it(stack: Callable[..., Any]) -> None:
    run = stack(STACK)
    run("up", "-d")
    name = run("run", "-d", "--no-deps", "app", *STOPS_ON_TERM).stdout.strip()
    assert re.fullmatch(r"verbs-app-run-[0-9a-f]{12}", name), name
    # not a replica, not an orphan: up changes nothing, ps lists it with -a only
    assert run("up", "--dry-run").stdout == "nothing to do\n"
    listed = [r["name"] for r in json.loads(run("ps", "--format", "json").stdout)]
    assert name not in listed
    every = rows(run)
    assert every[name]["state"] == "running" and every[name]["oneoff"] is True
    assert every[name]["ports"] == []  # run publishes none of the service's ports
    record = json.loads(run("inspect", name).stdout)[0]  # (the single-container verb)
    assert record["options"]["identity"]["oneoff"] is True
    config = json.loads((_bundle_of(record) / "config.json").read_text())
    assert config["annotations"]["org.orchestrator.oneoff"] == "true"
    # a named one-off with an exit status, then down removes every one
    done = run("run", "--name", "once", "--no-deps", "-T", "app", "sh", "-c", "exit 4", check=False)
    assert done.returncode == 4
    assert rows(run)["once"]["exit_code"] == 4
    run("down")
    assert rows(run) == {}


def test_a_one_off_answers_to_the_service_name_only_with_use_aliases(
    stack: Callable[..., Any],
) -> None:
    run = stack(STACK)
    alias = 'grep -qE "[[:space:]]app([[:space:]]|$)" /etc/hosts && exit 5; exit 0'
    plain = run("run", "--rm", "-T", "app", "sh", "-c", alias, check=False)
    assert plain.returncode == 0, plain.stderr  # its own name only, as Compose's one-offs
    aliased = run("run", "--rm", "-T", "--use-aliases", "app", "sh", "-c", alias, check=False)
    assert aliased.returncode == 5, aliased.stderr


def _bundle_of(record: dict[str, Any]) -> Any:
    import os
    from pathlib import Path

    return Path(os.environ["ORCHESTRATOR_ROOT"]) / "containers" / record["id"] / "bundle"


def test_run_with_an_unknown_service_or_bad_flag_is_one_line(stack: Callable[..., Any]) -> None:
    run = stack(STACK)
    done = run("run", "nope", check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == "orchestrator: no service 'nope' in the stack"
    done = run("run", "--no-deps", "-p", "x:y", "app", check=False)
    assert done.returncode == 1 and done.stderr.startswith("orchestrator: -p x:y:"), done.stderr
    assert "Traceback" not in done.stderr


def test_top_stats_port_images(stack: Callable[..., Any]) -> None:
    run = stack(
        STACK.replace("    restart: always\n    environment", "    mem_limit: 64m\n    environment")
    )
    run("up", "-d")
    table = rows(run)
    app = table["verbs-app-1"]
    # port: the published address, as ps shows it
    address = run("port", "app", "8080").stdout.strip()
    assert re.fullmatch(r"127\.0\.0\.1:\d+", address)
    assert app["ports"] == [f"{address}->8080/tcp"]
    done = run("port", "app", "9090", check=False)
    assert done.returncode == 1
    assert "no port 9090/tcp for container verbs-app-1: 8080/tcp" in done.stderr
    # top: each container's processes, host pids
    text = run("top").stdout
    assert "verbs-app-1\nUID" in text and "verbs-db-1\nUID" in text
    pids = {int(line.split()[1]) for line in text.splitlines() if line.startswith("root ")}
    assert {app["pid"], table["verbs-db-1"]["pid"]} <= pids
    assert "verbs-db-1" not in run("top", "app").stdout
    # stats: the memory limit from the stack file
    stats = [
        json.loads(line)
        for line in run("stats", "--no-stream", "--format", "json").stdout.splitlines()
    ]
    by_name = {s["Name"]: s for s in stats}
    assert set(by_name) == {"verbs-app-1", "verbs-db-1"}
    assert by_name["verbs-app-1"]["memory_limit"] == 64 << 20
    assert by_name["verbs-app-1"]["MemUsage"].endswith(" / 64MiB")
    assert by_name["verbs-app-1"]["pids"] >= 2  # sh and its sleep
    assert "NET I/O" in run("stats", "--no-stream", "app").stdout
    # images: the image each container uses
    images = json.loads(run("images", "--format", "json").stdout)
    assert [(i["ContainerName"], i["Repository"], i["Tag"]) for i in images] == [
        ("verbs-app-1", "busybox", "latest"),
        ("verbs-db-1", "busybox", "latest"),
    ]
    assert images[0]["ID"] == app["image_id"] and images[0]["Size"] > 0
    assert "REPOSITORY" in run("images").stdout


def test_wait_prints_exit_codes_and_returns_the_last(stack: Callable[..., Any]) -> None:
    run = stack(
        f"""
name: waiting
services:
  job:
    image: busybox
    command: ["sh", "-c", "sleep 2; exit 5"]
  server:
    image: busybox
    command: {CMD}
"""
    )
    run("up", "-d")
    done = run("wait", "job", check=False)
    assert done.returncode == 5, done.stderr
    assert re.fullmatch(r'container "[0-9a-f]{64}" exited with status code 5\n', done.stdout)
    assert rows(run)["waiting-server-1"]["state"] == "running"
    done = run("wait", "job", check=False)  # nothing of it runs any more
    assert done.returncode == 1 and "no running containers of job" in done.stderr
    # --down-project: once the first container stops, the stack goes
    run("up", "-d")
    done = run("wait", "--down-project", "job", "server", check=False)
    assert done.returncode == 5, done.stderr
    assert rows(run) == {}
