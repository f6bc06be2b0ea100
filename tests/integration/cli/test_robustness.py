"""No crash or bad state file breaks the container CLI (issue 9): one unreadable record is
named and skipped, `rm -f` still removes all it owns; a killed monitor, a paused container,
a state root that cannot be used, and Docker's exit statuses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import REPO, Orc

pytestmark = pytest.mark.root


def _state(state_root: Path, cid: str) -> dict[str, object]:
    return dict(json.loads((state_root / "runtime" / cid / "state.json").read_text()))


def _alive(pid: int, start: object) -> bool:
    from runtime.state import process_start_time

    return process_start_time(pid) == start


def _ps(orc: Orc) -> list[dict[str, object]]:
    return list(json.loads(orc("ps", "-a", "--format", "json").stdout))


def test_an_unreadable_runtime_state_is_named_and_rm_f_removes_all_it_owns(
    orc: Orc, state_root: Path
) -> None:
    broken = orc("run", "-d", "--name", "broken", "busybox", "sleep", "1000").stdout.strip()
    orc("run", "-d", "--name", "fine", "busybox", "sleep", "1000")
    other = orc("run", "-d", "--name", "other", "busybox", "sleep", "1000").stdout.strip()
    state = _state(state_root, broken)
    (state_root / "runtime" / broken / "state.json").write_text("{garbage")
    for args in (("ps",), ("ps", "-a")):
        done = orc(*args)
        assert "fine" in done.stdout and "Traceback" not in done.stderr
        assert "broken" in done.stderr and "unreadable state.json" in done.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "runtime", "--root", str(state_root / "runtime"), "list"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert listing.returncode == 0 and other in listing.stdout
    assert broken in listing.stderr and "warning" in listing.stderr
    orc("rm", "-f", "other")  # removing another container works
    done = orc("rm", "-f", "broken", check=False)
    assert done.returncode == 0, done.stderr
    assert not _alive(int(str(state["pid"])), state["pid_start"])
    assert not _alive(int(str(state["monitor_pid"])), state["monitor_start"])
    assert not (state_root / "runtime" / broken).exists()
    assert not (state_root / "containers" / broken).exists()
    assert [r["name"] for r in _ps(orc)] == ["fine"]


def test_an_unreadable_record_is_named_keeps_its_name_and_rm_f_removes_it(
    orc: Orc, state_root: Path
) -> None:
    cid = orc("run", "-d", "--name", "lost", "busybox", "sleep", "1000").stdout.strip()
    orc("run", "-d", "--name", "kept", "busybox", "sleep", "1000")
    state = _state(state_root, cid)
    (state_root / "containers" / cid / "container.json").write_bytes(b"\xff not json")
    done = orc("ps", "-a")
    assert "kept" in done.stdout
    assert "lost" in done.stderr and "unreadable container.json" in done.stderr
    taken = orc("run", "-d", "--name", "lost", "busybox", "true", check=False)
    assert taken.returncode == 125 and "already in use" in taken.stderr
    orc("rm", "-f", "lost")
    assert not _alive(int(str(state["pid"])), state["pid_start"])
    assert not (state_root / "containers" / cid).exists()
    assert not (state_root / "runtime" / cid).exists()
    done = orc("ps", "-a")
    assert "lost" not in done.stderr and "kept" in done.stdout


def test_a_state_root_that_is_a_file_or_read_only_gives_one_line(
    orc: Orc, state_root: Path, tmp_path: Path, busybox_tar: Path
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    for args in (("ps",), ("run", "--rm", "busybox", "true"), ("images",)):
        done = orc("--root", str(afile), *args, check=False)
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert done.stderr.strip() == f"orchestrator: the state root {afile} is not a directory"
    readonly = tmp_path / "ro"
    readonly.mkdir()
    orc("--root", str(readonly), "image", "import", str(busybox_tar), "busybox")
    subprocess.run(["mount", "--bind", "-o", "ro", str(readonly), str(readonly)], check=True)
    try:
        for args in (("run", "--rm", "busybox", "true"), ("rmi", "busybox")):
            done = orc("--root", str(readonly), *args, check=False)
            assert done.returncode != 0 and "Traceback" not in done.stderr
            assert len(done.stderr.splitlines()) == 1 and "Read-only" in done.stderr
    finally:
        subprocess.run(["umount", str(readonly)], check=True)


def test_an_env_file_that_is_not_utf8_is_named(orc: Orc, tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.write_bytes(b"A=1\nB=\xff\xfe\n")
    done = orc("run", "--rm", "--env-file", str(env), "busybox", "true", check=False)
    assert done.returncode == 125
    assert done.stderr.strip() == f"orchestrator: --env-file {env}: line 2 is not valid UTF-8"


def test_a_killed_monitor_gives_an_explicit_unknown_and_rm_is_honoured(
    orc: Orc, state_root: Path
) -> None:
    cid = orc("run", "-d", "--name", "orphan", "busybox", "sleep", "1000").stdout.strip()
    state = _state(state_root, cid)
    os.kill(int(str(state["monitor_pid"])), signal.SIGKILL)
    if _alive(int(str(state["pid"])), state["pid_start"]):
        os.kill(int(str(state["pid"])), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(int(str(state["pid"])), state["pid_start"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    (row,) = _ps(orc)
    assert row["state"] == "exited" and row["exit_code"] is None
    assert "monitor" in str(row["exit_unknown"])
    assert "Exited (unknown)" in orc("ps", "-a").stdout
    orc("rm", "orphan")
    # --rm: nobody is left to remove it but the next command
    cid = orc("run", "-d", "--rm", "busybox", "sleep", "1000").stdout.strip()
    state = _state(state_root, cid)
    os.kill(int(str(state["monitor_pid"])), signal.SIGKILL)
    os.kill(int(str(state["pid"])), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(int(str(state["pid"])), state["pid_start"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _ps(orc) == []
    assert not (state_root / "containers" / cid).exists()
    assert not (state_root / "runtime" / cid).exists()


def test_a_foreground_run_rm_whose_monitor_is_killed_is_removed(orc: Orc, state_root: Path) -> None:
    env = dict(os.environ, ORCHESTRATOR_ROOT=str(state_root))
    cmd = [sys.executable, "-m", "orchestrator", "run", "--rm", "--name", "fg", "busybox"]
    proc = subprocess.Popen(
        [*cmd, "sleep", "1000"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 20
    states: list[Path] = []
    while not states and time.monotonic() < deadline:
        states = [
            p for p in (state_root / "runtime").glob("*/state.json") if p.parent.name[0] != "."
        ]
        time.sleep(0.05)
    time.sleep(0.2)
    os.kill(int(json.loads(states[0].read_text())["monitor_pid"]), signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "exit status unknown" in err
    assert _ps(orc) == []


def test_kill_of_a_paused_container_ends_it(orc: Orc) -> None:
    orc("run", "-d", "--name", "frozen", "busybox", "sleep", "1000")
    orc("pause", "frozen")
    orc("kill", "frozen")
    deadline = time.monotonic() + 5
    while _ps(orc)[0]["state"] != "exited" and time.monotonic() < deadline:
        time.sleep(0.05)
    (row,) = _ps(orc)
    assert row["state"] == "exited" and row["exit_code"] == 137
    orc("rm", "frozen")


def test_it_without_a_terminal_says_so(state_root: Path, orc: Orc) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "--rm", "-it", "busybox", "cat"],
        input="x\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, ORCHESTRATOR_ROOT=str(state_root)),
        timeout=20,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "orchestrator: the input device is not a TTY"
    assert _ps(orc) == []


def test_dockers_exit_statuses(orc: Orc) -> None:
    assert orc("run", "--rm", "busybox", "nosuchcmd", check=False).returncode == 127
    assert orc("run", "--rm", "busybox", "/etc/passwd", check=False).returncode == 126
    assert orc("run", "--rm", "busybox", "sh", "-c", "exit 7", check=False).returncode == 7
    assert orc("run", "--rm", "nosuchimage", check=False).returncode == 125
    assert orc("run", "--bogus", "busybox", "true", check=False).returncode == 125
    abbreviated = orc("run", "--pid", "5", "busybox", "true", check=False)  # not --pids-limit
    assert abbreviated.returncode == 125 and "--pid" in abbreviated.stderr
    assert orc("ps", "--al", check=False).returncode != 0  # no abbreviations anywhere
    orc("run", "-d", "--name", "target", "busybox", "sleep", "1000")
    assert orc("exec", "target", "nosuch", check=False).returncode == 127
    assert orc("exec", "target", "/etc/passwd", check=False).returncode == 126
    assert orc("exec", "target", "sh", "-c", "exit 3", check=False).returncode == 3
    orc("rm", "-f", "target")
    assert _ps(orc) == []


def test_verbs_of_several_containers_try_each_and_report_failures_at_the_end(orc: Orc) -> None:
    for name in ("one", "two"):
        orc("run", "-d", "--name", name, "busybox", "sleep", "1000")
    done = orc("stop", "-t", "0", "one", "nosuch", "two", check=False)
    assert done.returncode == 1 and done.stdout.split() == ["one", "two"]
    assert done.stderr.strip() == "orchestrator: no such container: nosuch"
    done = orc("wait", "one", "two", "nosuch", check=False)
    assert done.returncode == 1 and done.stdout.split() == ["137", "137"]
    for verb in ("start", "pause", "unpause", "restart", "kill"):
        flags = ["-t", "0"] if verb == "restart" else []  # (sleep ignores TERM)
        done = orc(verb, *flags, "nosuch", "one", "two", check=False)
        assert done.returncode == 1 and done.stdout.split() == ["one", "two"], (verb, done)
        assert done.stderr.strip() == "orchestrator: no such container: nosuch", verb
    done = orc("inspect", "one", "nosuch", check=False)
    assert done.returncode == 1 and len(json.loads(done.stdout)) == 1
    done = orc("rm", "nosuch", "one", "two", check=False)
    assert done.returncode == 1 and done.stdout.split() == ["one", "two"]
    assert _ps(orc) == []
