"""``save`` and ``load`` on stdout and stdin, as Docker's: a round trip through a pipe,
files with -o/-i, and the refusals (a terminal, an empty input)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.cli import REPO, Orc

pytestmark = pytest.mark.root


def _env(state_root: Path) -> dict[str, str]:
    return dict(os.environ, ORCHESTRATOR_ROOT=str(state_root))


def test_save_to_stdout_and_load_from_stdin(orc: Orc, state_root: Path, tmp_path: Path) -> None:
    archive = tmp_path / "bb.tar"
    with open(archive, "wb") as out:
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator", "save", "busybox"],
            stdout=out,
            stderr=subprocess.PIPE,
            env=_env(state_root),
            cwd=REPO,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    with tarfile.open(archive) as tar:
        assert "manifest.json" in tar.getnames()  # Docker's layout by default
    orc("tag", "busybox", "copy:1")
    orc("rmi", "busybox", "copy:1")
    assert "busybox" not in orc("images").stdout
    with open(archive, "rb") as source:
        loaded = subprocess.run(
            [sys.executable, "-m", "orchestrator", "load"],
            stdin=source,
            capture_output=True,
            text=True,
            env=_env(state_root),
            cwd=REPO,
            timeout=60,
        )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout == "Loaded image: busybox:latest\n"
    assert orc("run", "--rm", "busybox", "echo", "ok").stdout == "ok\n"
    # and through a pipe, in the OCI layout (loading what is there already changes nothing)
    saver = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "save", "--format", "oci", "busybox"],
        stdout=subprocess.PIPE,
        env=_env(state_root),
        cwd=REPO,
    )
    piped = subprocess.run(
        [sys.executable, "-m", "orchestrator", "load"],
        stdin=saver.stdout,
        capture_output=True,
        text=True,
        env=_env(state_root),
        cwd=REPO,
        timeout=60,
    )
    assert saver.stdout is not None
    saver.stdout.close()
    assert saver.wait(30) == 0 and piped.returncode == 0, piped.stderr
    assert "Loaded image: busybox:latest" in piped.stdout


def test_files_with_o_and_i(orc: Orc, tmp_path: Path) -> None:
    orc("save", "-o", str(tmp_path / "out.tar"), "busybox")
    orc("rmi", "busybox")
    assert orc("load", "-i", str(tmp_path / "out.tar")).stdout == "Loaded image: busybox:latest\n"
    done = orc("load", "-i", str(tmp_path / "missing.tar"), check=False)
    assert done.returncode == 1 and "missing.tar: no such file" in done.stderr


def test_refusals(orc: Orc, state_root: Path) -> None:
    done = orc("load", check=False)  # stdin is /dev/null: empty
    assert done.returncode == 1 and "stdin is empty" in done.stderr
    done = orc("save", "-o", "/tmp/never.tar", "nosuch", check=False)
    assert done.returncode == 1 and "nosuch" in done.stderr and "Traceback" not in done.stderr
    # a terminal on stdout: refused, nothing written to it
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(_env(state_root))
        os.chdir(REPO)
        os.execv(sys.executable, [sys.executable, "-m", "orchestrator", "save", "busybox"])
    output = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1
    assert b"cowardly refusing to save to a terminal" in output and len(output) < 500
