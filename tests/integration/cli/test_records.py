"""Container records: what a container is travels in the runtime's annotations, records are
versioned, and a creation cut short never blocks a name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.cli import Orc

pytestmark = pytest.mark.root


def _record_path(state_root: Path, cid: str) -> Path:
    return state_root / "containers" / cid / "container.json"


def test_labels_and_identity_travel_in_the_runtime_annotations(orc: Orc, state_root: Path) -> None:
    from runtime.api import Runtime

    cid = orc(
        "run",
        "-d",
        "--name",
        "tagged",
        "--label",
        "tier=web",
        "--label",
        "team=a b",
        "busybox",
        "sleep",
        "30",
    ).stdout.strip()
    record = json.loads(_record_path(state_root, cid).read_text())
    assert record["version"] == 2 and record["state"] == "created"
    assert "creator" not in record
    # the runtime alone can say what the container is
    (state,) = [s for s in Runtime(state_root / "runtime").list() if s.id == cid]
    annotations = state.record["annotations"]
    assert annotations["org.orchestrator.container.name"] == "tagged"
    assert annotations["org.orchestrator.label.tier"] == "web"
    assert annotations["org.orchestrator.label.team"] == "a b"
    assert annotations["org.orchestrator.record-version"] == "2"
    orc("rm", "-f", "tagged")


def test_a_creation_cut_short_is_collected_and_frees_its_name(orc: Orc, state_root: Path) -> None:
    """A record still marked 'creating' whose creator has died (pid and start time) is
    collected by the next command: it is not listed, and its name can be taken again."""
    cid = orc("create", "--name", "half", "busybox", "true").stdout.strip()
    path = _record_path(state_root, cid)
    record = json.loads(path.read_text())
    # as left by a creator killed with SIGKILL: a process that has ended
    dead = subprocess.Popen(["true"])
    dead.wait()
    record.update(state="creating", creator=[dead.pid, 1])
    path.write_text(json.dumps(record))
    assert orc("ps", "-a", "-q").stdout.strip() == ""
    assert not path.parent.exists()
    orc("create", "--name", "half", "busybox", "true")
    orc("rm", "half")


def test_a_creation_under_way_is_left_alone(orc: Orc, state_root: Path) -> None:
    """A record marked 'creating' by a live process (ours here) is not collected."""
    cid = orc("create", "--name", "busy", "busybox", "true").stdout.strip()
    path = _record_path(state_root, cid)
    record = json.loads(path.read_text())
    from runtime.state import process_start_time

    record.update(state="creating", creator=[os.getpid(), process_start_time(os.getpid())])
    path.write_text(json.dumps(record))
    orc("ps", "-a")
    assert path.exists()
    record["state"] = "created"
    path.write_text(json.dumps(record))
    orc("rm", "busy")


def test_a_cli_killed_during_run_leaves_nothing_that_blocks(orc: Orc, state_root: Path) -> None:
    """SIGKILL the CLI at several points of `run -d`; then the name is always usable."""
    import sys
    import time

    from tests.cli import REPO

    for delay in (0.05, 0.1, 0.15, 0.2, 0.3):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator",
                "run",
                "-d",
                "--name",
                "kk",
                "busybox",
                "sleep",
                "30",
            ],
            env=dict(os.environ, ORCHESTRATOR_ROOT=str(state_root)),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        orc("rm", "-f", "kk", check=False)
        assert '"kk"' not in orc("ps", "-a", "--format", "json").stdout
    orc("run", "-d", "--name", "kk", "busybox", "sleep", "30")
    orc("rm", "-f", "kk")
