"""stop with no grace period: the stop signal, then SIGKILL at once (Docker's `stop -t 0`)."""

from __future__ import annotations

import json
import time

import pytest

from tests.cli import Orc

pytestmark = pytest.mark.root


def test_stop_with_no_grace_kills_a_container_that_ignores_term(orc: Orc) -> None:
    orc("run", "-d", "--name", "stubborn", "busybox", "sleep", "1000")  # PID 1 ignores TERM
    started = time.monotonic()
    done = orc("stop", "-t", "0", "stubborn", check=False)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 5
    row = json.loads(orc("ps", "-a", "--format", "json").stdout)[0]
    assert row["state"] == "exited" and row["exit_code"] == 137
    orc("rm", "stubborn")
