"""Running the orchestrator CLI in tests, on a test's own state root."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

Orc = Callable[..., subprocess.CompletedProcess[str]]


def make_orc(state_root: Path) -> Orc:
    def run(
        *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            capture_output=True,
            text=True,
            env=dict(os.environ, ORCHESTRATOR_ROOT=str(state_root)),  # (as the test set it now)
            cwd=REPO,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"orchestrator {' '.join(args)} exited {done.returncode}: {done.stderr}"
            )
        return done

    return run
