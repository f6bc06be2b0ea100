"""kill -9 of the CLI at random points of `run -d`, `rm`, `image import` and `build`: the next
command (or prune) collects whatever the dead process left, judged by pid and start time, and
`ps -a` stays consistent (issue 9)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import REPO, Orc

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _killed(state_root: Path, args: list[str], delay: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=REPO,
        env=dict(os.environ, ORCHESTRATOR_ROOT=str(state_root)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _consistent(orc: Orc, state_root: Path) -> list[dict[str, object]]:
    """ps -a lists every record once, each in a state it can be in; the runtime has no
    container without a record (but a step container of a build running now)."""
    rows = list(json.loads(orc("ps", "-a", "--format", "json").stdout))
    ids = [str(r["id"]) for r in rows]
    assert len(ids) == len(set(ids))
    assert all(r["state"] in ("created", "running", "exited") for r in rows), rows
    runtime = state_root / "runtime"
    states = {p.parent.name for p in runtime.glob("*/state.json") if p.parent.name[0] != "."}
    assert {s for s in states if not s.startswith("build-")} <= set(ids)
    return rows


def test_kill_9_at_random_points_leaves_nothing_behind(
    orc: Orc, state_root: Path, tmp_path: Path, busybox_tar: Path
) -> None:
    rng = random.Random(int(os.environ.get("KILL_POINTS_SEED", "9")))
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nRUN echo built > /f && sleep 0.2\n")
    names: list[str] = []
    for round_ in range(56):
        kind = ("run", "rm", "import", "build")[round_ % 4]
        delay = rng.uniform(0.0, 0.35)
        if kind == "run":
            name = f"c{round_}"
            _killed(state_root, ["run", "-d", "--name", name, "busybox", "sleep", "1000"], delay)
            names.append(name)
        elif kind == "rm":
            victim = f"v{round_}"
            orc("run", "-d", "--name", victim, "busybox", "sleep", "1000")
            _killed(state_root, ["rm", "-f", victim], delay)
        elif kind == "import":
            _killed(state_root, ["image", "import", str(busybox_tar), f"imp{round_}"], delay)
        else:
            _killed(state_root, ["build", "--no-cache", "-t", "built", str(context)], delay)
        rows = _consistent(orc, state_root)  # the ordinary command after each kill
        # a name whose creation was cut short is free again at once
        if kind == "run" and name not in [r["name"] for r in rows]:
            orc("run", "-d", "--name", name, "busybox", "sleep", "1000")
    # the next import and build collect what killed ones left; prune the rest
    orc("image", "import", str(busybox_tar), "again")
    orc("build", "-t", "built", str(context))
    orc("image", "prune")
    assert list((state_root / "images" / "tmp").iterdir()) == []
    assert list((state_root / "build-cache" / "tmp").iterdir()) == []
    rows = _consistent(orc, state_root)
    orc("rm", "-f", *[str(r["id"]) for r in rows])
    assert _consistent(orc, state_root) == []
    assert [p.name for p in (state_root / "containers").iterdir() if p.name != ".lock"] == []
    leftover = [p.parent.name for p in (state_root / "runtime").glob("[!.]*/state.json")]
    assert leftover == []
