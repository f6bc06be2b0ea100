"""``orchestrator events`` for single containers: what the CLI did, as history (--since,
--until) and as it happens, with filters and formats; the death of a detached container is
seen by ``events`` itself while it follows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli import REPO, Orc

pytestmark = pytest.mark.root


def _actions(orc: Orc, *args: str) -> list[tuple[str, str]]:
    lines = orc("events", "--since", "1h", "--until", "0s", "--format", "json", *args).stdout
    events = [json.loads(line) for line in lines.splitlines()]
    return [(e["Action"], e["Actor"]["Attributes"]["name"]) for e in events]


def test_history_of_a_containers_life(orc: Orc) -> None:
    orc("run", "-d", "--name", "web", "busybox", "sleep", "300")
    orc("pause", "web")
    orc("unpause", "web")
    orc("kill", "web")
    orc("wait", "web")
    orc("rename", "web", "front")
    orc("start", "front")
    orc("stop", "-t", "0", "front")
    orc("rm", "front")
    assert _actions(orc) == [
        ("create", "web"),
        ("start", "web"),
        ("pause", "web"),
        ("unpause", "web"),
        ("kill", "web"),
        ("die", "web"),
        ("rename", "front"),
        ("start", "front"),
        ("die", "front"),
        ("stop", "front"),
        ("destroy", "front"),
    ]
    assert _actions(orc, "--filter", "event=die") == [("die", "web"), ("die", "front")]
    assert _actions(orc, "--filter", "container=front", "--filter", "event=destroy") == [
        ("destroy", "front")
    ]
    text = orc("events", "--since", "1h", "--until", "0s", "--filter", "event=kill").stdout
    assert text.count("\n") == 1 and " container kill " in text and "signal=9" in text
    template = "{{.Action}} {{.Actor.Attributes.exitCode}}"
    out = orc(
        "events", "--since", "1h", "--until", "0s", "--filter", "event=die", "--format", template
    )
    assert out.stdout == "die 137\ndie 137\n"


def test_an_attached_run_records_its_exit_and_since_bounds_the_history(orc: Orc) -> None:
    orc("run", "--rm", "--name", "early", "busybox", "true")
    time.sleep(1.1)
    middle = time.time()
    time.sleep(0.1)
    done = orc("run", "--rm", "--name", "late", "busybox", "sh", "-c", "exit 3", check=False)
    assert done.returncode == 3
    names = {n for _, n in _actions(orc)}
    assert names == {"early", "late"}
    lines = orc("events", "--since", f"{middle:.3f}", "--until", "0s", "--format", "json").stdout
    recent = [
        (json.loads(x)["Action"], json.loads(x)["Actor"]["Attributes"]) for x in lines.splitlines()
    ]
    assert [a for a, _ in recent] == ["create", "start", "die"]
    assert recent[-1][1]["exitCode"] == "3" and recent[-1][1]["name"] == "late"


def test_events_follows_and_sees_a_detached_containers_own_death(
    orc: Orc, state_root: Path
) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "events", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, ORCHESTRATOR_ROOT=str(state_root)),
        cwd=REPO,
        text=True,
    ) as follower:
        _follow(orc, follower)
    # recorded once, though both `events` and the next `wait` learnt of it
    orc("wait", "brief")
    assert [a for a, _ in _actions(orc, "--filter", "container=brief")].count("die") == 1


def _follow(orc: Orc, follower: subprocess.Popen[str]) -> None:
    try:
        time.sleep(1.0)  # (it follows from now on)
        orc("run", "-d", "--name", "brief", "busybox", "sh", "-c", "sleep 1; exit 4")
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 15
        assert follower.stdout is not None
        while time.monotonic() < deadline:
            line = follower.stdout.readline()
            if not line:
                break
            seen.append(json.loads(line))
            if seen[-1]["Action"] == "die":
                break
        assert [e["Action"] for e in seen] == ["create", "start", "die"]
        assert seen[-1]["Actor"]["Attributes"]["exitCode"] == "4"
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 0, follower.stderr.read() if follower.stderr else ""


def test_bad_values_are_one_line(orc: Orc) -> None:
    for args, message in (
        (("--since", "yesterday"), "--since yesterday"),
        (("--filter", "colour=red"), "--filter 'colour=red'"),
        (("--until", "0s", "--format", "{{.Nope}}"), None),
    ):
        done = orc("events", *args, check=False)
        if message is None:
            assert done.returncode == 0  # no event: nothing to format
            continue
        assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
