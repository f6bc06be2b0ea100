"""``orchestrator cp``, end to end: both directions, running and stopped containers, tar streams
on stdio, Docker's path rules, and no way out of the container's root through its symlinks."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.cli import REPO, Orc

pytestmark = pytest.mark.root

SETUP = "mkdir -p /d/sub; echo hi > /d/a; echo deep > /d/sub/b; ln -s /etc /link; ln -s /d/a /alink"


def _running(orc: Orc, name: str = "cc") -> None:
    orc("run", "-d", "--name", name, "busybox", "sh", "-c", f"{SETUP}; touch /ready; sleep 300")
    for _ in range(100):
        if orc("exec", name, "test", "-e", "/ready", check=False).returncode == 0:
            return
        import time

        time.sleep(0.05)
    raise AssertionError("the container did not get ready")


def _stopped(orc: Orc, name: str = "cc") -> None:
    assert orc("run", "--name", name, "busybox", "sh", "-c", SETUP).returncode == 0


def _cp_stdio(
    state_root: Path, *args: str, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "cp", *args],
        input=stdin,
        capture_output=True,
        env=dict(os.environ, ORCHESTRATOR_ROOT=str(state_root)),
        cwd=REPO,
        timeout=60,
    )


@pytest.mark.parametrize("state", ["running", "stopped"])
def test_copy_out_follows_dockers_rules(orc: Orc, tmp_path: Path, state: str) -> None:
    (_running if state == "running" else _stopped)(orc)
    out = tmp_path / "out"
    out.mkdir()
    orc("cp", "cc:/d/a", str(out / "a.txt"))  # a file to a new name
    assert (out / "a.txt").read_text() == "hi\n"
    orc("cp", "cc:/d", str(out))  # a directory into an existing one
    assert (out / "d" / "sub" / "b").read_text() == "deep\n"
    orc("cp", "cc:/d", str(out / "fresh"))  # a directory to a new name
    assert (out / "fresh" / "a").read_text() == "hi\n"
    orc("cp", "cc:/d/.", str(out))  # SRC/. : the contents
    assert (out / "a").read_text() == "hi\n" and (out / "sub" / "b").exists()
    orc("cp", "cc:/alink", str(out / "link"))  # a symlink as it is
    assert os.readlink(out / "link") == "/d/a"
    orc("cp", "-L", "cc:/alink", str(out / "followed"))  # -L: what it points to
    assert (out / "followed").read_text() == "hi\n"
    for src, dest, message in (
        ("cc:/nope", str(out / "x"), "cc:/nope: no such file or directory"),
        ("cc:/d/a/", str(out / "x"), "cc:/d/a/: not a directory"),
        ("cc:/d", str(out / "a.txt"), "cannot copy a directory to a file"),
        ("cc:/d/a", str(out / "missing") + "/", "no such directory"),
    ):
        done = orc("cp", src, dest, check=False)
        assert done.returncode == 1 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize("state", ["running", "stopped"])
def test_copy_in_lands_in_the_container(orc: Orc, tmp_path: Path, state: str) -> None:
    check = "cat /d/f.txt /d/renamed /d/tree/x/y /d/sub/x/y"
    if state == "running":
        _running(orc)
    else:  # its first run sets up, the next shows what was copied meanwhile
        orc(
            "run",
            "--name",
            "cc",
            "busybox",
            "sh",
            "-c",
            f"if [ -e /d ]; then {check}; else {SETUP}; fi",
        )
    (tmp_path / "f.txt").write_text("from host\n")
    (tmp_path / "tree" / "x").mkdir(parents=True)
    (tmp_path / "tree" / "x" / "y").write_text("Y\n")
    orc("cp", str(tmp_path / "f.txt"), "cc:/d/")
    orc("cp", str(tmp_path / "f.txt"), "cc:/d/renamed")
    orc("cp", str(tmp_path / "tree"), "cc:/d")
    orc("cp", str(tmp_path / "tree") + "/.", "cc:/d/sub")
    done = orc("exec", "cc", "sh", "-c", check) if state == "running" else orc("start", "-a", "cc")
    assert done.stdout == "from host\nfrom host\nY\nY\n"


def test_copy_into_a_stopped_container_persists_to_its_next_start(orc: Orc, tmp_path: Path) -> None:
    orc(
        "create", "--name", "cc", "-v", "vol:/data", "busybox", "sh", "-c", "cat /f.txt /data/v.txt"
    )
    (tmp_path / "f.txt").write_text("in the layer\n")
    (tmp_path / "v.txt").write_text("in the volume\n")
    orc("cp", str(tmp_path / "f.txt"), "cc:/")
    orc("cp", str(tmp_path / "v.txt"), "cc:/data/")  # a volume of a created container
    done = orc("start", "-a", "cc")
    assert done.stdout == "in the layer\nin the volume\n"


@pytest.mark.parametrize("state", ["running", "stopped"])
def test_a_symlink_in_the_container_never_reaches_the_host(
    orc: Orc, tmp_path: Path, state: str
) -> None:
    (_running if state == "running" else _stopped)(orc)
    name = f"orc-cp-escape-{os.getpid()}-{state}"
    assert not Path("/etc", name).exists()
    (tmp_path / "payload").write_text("payload\n")
    try:
        orc("cp", str(tmp_path / "payload"), f"cc:/link/{name}")  # /link -> /etc
        assert not Path("/etc", name).exists()  # not the host's /etc
        orc("cp", f"cc:/link/{name}", str(tmp_path / "back"))  # but the container's
        assert (tmp_path / "back").read_text() == "payload\n"
        # reading through the link gives the container's files, not the host's
        orc("cp", "cc:/link/hostname", str(tmp_path / "hostname"))
        ours = (tmp_path / "hostname").read_text().strip()
        assert ours != Path("/etc/hostname").read_text().strip()
    finally:
        Path("/etc", name).unlink(missing_ok=True)


def test_tar_streams_on_stdout_and_stdin(orc: Orc, state_root: Path) -> None:
    _running(orc)
    done = _cp_stdio(state_root, "cc:/d", "-")
    assert done.returncode == 0, done.stderr
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        assert sorted(tar.getnames()) == ["d", "d/a", "d/sub", "d/sub/b"]
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("in/z")
        info.size = 2
        info.uid = 1234
        tar.addfile(info, io.BytesIO(b"z\n"))
    done = _cp_stdio(state_root, "-", "cc:/tmp", stdin=data.getvalue())
    assert done.returncode == 0, done.stderr
    assert orc("exec", "cc", "stat", "-c", "%u %n", "/tmp/in/z").stdout == "0 /tmp/in/z\n"
    done = _cp_stdio(state_root, "-a", "-", "cc:/tmp/a", stdin=data.getvalue())
    assert done.returncode == 1 and "must be an existing directory" in done.stderr.decode()
    orc("exec", "cc", "mkdir", "/tmp/a")
    assert _cp_stdio(state_root, "-a", "-", "cc:/tmp/a", stdin=data.getvalue()).returncode == 0
    assert orc("exec", "cc", "stat", "-c", "%u", "/tmp/a/in/z").stdout == "1234\n"  # -a: kept
    hostile = io.BytesIO()
    with tarfile.open(fileobj=hostile, mode="w") as tar:
        info = tarfile.TarInfo("../../escape")
        tar.addfile(info, io.BytesIO(b""))
    done = _cp_stdio(state_root, "-", "cc:/tmp/a", stdin=hostile.getvalue())
    assert done.returncode == 1 and "refused" in done.stderr.decode()


def test_cp_argument_errors(orc: Orc) -> None:
    for args, message in (
        (("a:/x", "b:/y"), "copying between containers is not supported"),
        (("/x", "/y"), "name a container"),
        (("nosuch:/x", "/tmp"), "no such container: nosuch"),
    ):
        done = orc("cp", *args, check=False)
        assert done.returncode != 0 and message in done.stderr, done.stderr
