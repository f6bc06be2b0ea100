"""Single containers with a restart policy (``run -d --restart``): the supervisor keeps them,
as Docker's daemon does; stop, kill and rm by hand are not undone; a supervisor killed and
started again picks them up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import Orc
from tests.integration.supervisor.conftest import STOPS_ON_TERM, shut_down_supervisor, wait_for

pytestmark = pytest.mark.root


@pytest.fixture
def kept(orc: Orc, state_root: Path) -> Iterator[Orc]:
    yield orc
    for name in orc("ps", "-a", "-q").stdout.split():
        orc("rm", "-f", name, check=False)
    shut_down_supervisor(state_root)


def _pid(orc: Orc, name: str) -> int:
    return int(orc("inspect", "-f", "{{.State.Pid}}", name).stdout.strip() or 0)


def _status(orc: Orc, name: str) -> str:
    return orc("inspect", "-f", "{{.State.Status}}", name).stdout.strip()


def test_a_kept_container_comes_back_and_a_stop_by_hand_is_not_undone(
    kept: Orc, state_root: Path
) -> None:
    kept("run", "-d", "--restart", "always", "--name", "kk", "busybox", *STOPS_ON_TERM)
    first = _pid(kept, "kk")
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: _pid(kept, "kk") not in (0, first), what="k to come back")
    assert _status(kept, "kk") == "running"
    # stop by hand: stays stopped
    kept("stop", "kk")
    time.sleep(0.5)
    assert _status(kept, "kk") == "exited"
    # started again: kept again
    kept("start", "kk")
    second = _pid(kept, "kk")
    os.kill(second, signal.SIGKILL)
    wait_for(lambda: _pid(kept, "kk") not in (0, second), what="k to come back again")
    # kill by hand (a fatal signal): not restarted
    kept("kill", "kk")
    time.sleep(0.5)
    assert _status(kept, "kk") == "exited"
    # a kept container is removed for good
    kept("start", "kk")
    kept("rm", "-f", "kk")
    time.sleep(0.3)
    assert kept("ps", "-a", "-q").stdout.split() == []


def test_on_failure_gives_up_after_its_count_and_rm_conflicts(kept: Orc) -> None:
    kept("run", "-d", "--restart", "on-failure:2", "--name", "ff", "busybox", "sh", "-c", "exit 3")
    wait_for(lambda: _status(kept, "ff") == "exited", what="f to end")
    time.sleep(1.5)  # two restarts (at once, then after 100 ms) and no more
    assert _status(kept, "ff") == "exited"
    done = kept("run", "--rm", "--restart", "always", "busybox", "true", check=False)
    assert done.returncode == 125
    assert "conflicting options: --restart and --rm" in done.stderr
    bad = kept("run", "-d", "--restart", "sometimes", "busybox", "true", check=False)
    assert bad.returncode == 125 and "--restart" in bad.stderr


def test_a_new_supervisor_restarts_what_died_while_none_ran(kept: Orc, state_root: Path) -> None:
    kept("run", "-d", "--restart", "always", "--name", "kk", "busybox", *STOPS_ON_TERM)
    kept("run", "-d", "--restart", "unless-stopped", "--name", "uu", "busybox", *STOPS_ON_TERM)
    kept("stop", "uu")
    supervisor = int((state_root / "supervisor.lock").read_text())
    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{supervisor}").exists(), what="the supervisor to end")
    first = _pid(kept, "kk")
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: _status(kept, "kk") == "exited", what="k to end")
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from orchestrator.commands.stack import ensure_supervisor;"
            " ensure_supervisor(pathlib.Path(sys.argv[1]))",
            str(state_root),
        ],
        check=True,
    )
    wait_for(lambda: _status(kept, "kk") == "running", what="k restarted by the new supervisor")
    assert _status(kept, "uu") == "exited"  # stopped by hand: unless-stopped keeps it so


def test_single_containers_healthchecks_run_and_show(kept: Orc, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        'FROM busybox\nHEALTHCHECK --interval=200ms CMD true\nCMD ["sleep", "300"]\n'
    )
    kept("build", "-t", "checked", str(tmp_path))
    kept("run", "-d", "--name", "good", "checked")
    kept(
        "run",
        "-d",
        "--name",
        "bad",
        "--health-cmd",
        "exit 1",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "300",
    )
    kept("run", "-d", "--name", "none", "--no-healthcheck", "checked")

    def health(name: str) -> str:
        return kept("inspect", "-f", "{{with .State.Health}}{{.Status}}{{end}}", name).stdout

    wait_for(lambda: health("good") == "healthy\n", what="good to turn healthy")
    wait_for(lambda: health("bad") == "unhealthy\n", what="bad to turn unhealthy")
    assert health("none") == "\n"
    table = {line.split()[-1]: line for line in kept("ps").stdout.splitlines()[1:]}
    assert "(healthy)" in table["good"] and "(unhealthy)" in table["bad"]
    assert "health" not in table["none"]
