"""``orchestrator run`` and friends, end to end through the CLI, real containers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.cli import Orc

pytestmark = pytest.mark.root


def test_run_prints_output_and_returns_the_exit_code(orc: Orc) -> None:
    done = orc("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert done.returncode == 3
    assert done.stdout == "out\n"
    assert done.stderr == "err\n"
    assert orc("ps", "-a", "-q").stdout == ""  # --rm removed it


def test_detached_container_outlives_the_cli(orc: Orc) -> None:
    cid = orc(
        "run", "-d", "--name", "bg", "busybox", "sh", "-c", "echo hi; sleep 30"
    ).stdout.strip()
    assert len(cid) == 64
    rows = json.loads(orc("ps", "--format", "json").stdout)
    assert [r["name"] for r in rows] == ["bg"]
    row = rows[0]
    assert row["state"] == "running" and row["pid"] > 0 and row["image"] == "busybox"
    assert row["exit_code"] is None and row["oom_killed"] is False
    assert row["created"] and row["started"]
    deadline = time.monotonic() + 5
    while "hi" not in orc("logs", "bg").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    orc("stop", "-t", "1", "bg")
    assert time.monotonic() - started < 10
    row = json.loads(orc("ps", "-a", "--format", "json").stdout)[0]
    assert row["state"] == "exited" and row["exit_code"] == 137 and row["finished"]
    orc("rm", "bg")
    assert json.loads(orc("ps", "-a", "--format", "json").stdout) == []


def test_create_start_restart_and_persistent_writable_layer(orc: Orc) -> None:
    orc("create", "--name", "counter", "busybox", "sh", "-c", "echo x >> /count; wc -l < /count")
    row = json.loads(orc("ps", "-a", "--format", "json").stdout)[0]
    assert row["state"] == "created" and row["pid"] == 0
    assert orc("start", "-a", "counter").stdout.strip() == "1"
    assert orc("start", "-a", "counter").stdout.strip() == "2"  # its writable layer persists
    orc("restart", "counter")
    orc("wait", "counter")
    assert orc("logs", "counter").stdout.split() == ["1", "2", "3"]


def test_memory_limit_oom_shows_in_ps(orc: Orc) -> None:
    done = orc(
        "run",
        "--name",
        "hog",
        "-m",
        "32m",
        "busybox",
        "sh",
        "-c",
        "x=aaaaaaaa; while true; do x=$x$x; done",
        check=False,
    )
    assert done.returncode == 137
    row = json.loads(orc("ps", "-a", "--format", "json").stdout)[0]
    assert row["oom_killed"] is True and row["exit_code"] == 137


@pytest.mark.cgroup_v1
def test_limits_user_workdir_env_hostname(orc: Orc) -> None:
    script = "id -u; pwd; echo $GREETING; hostname; cat /sys/fs/cgroup/pids/pids.max; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us"
    done = orc(
        "run",
        "--rm",
        "--user",
        "nobody",
        "--workdir",
        "/tmp",
        "-e",
        "GREETING=hello",
        "--hostname",
        "web1",
        "--pids-limit",
        "50",
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        script,
    )
    assert done.stdout.split() == ["65534", "/tmp", "hello", "web1", "50", "50000"]


def test_kill_with_signal_and_rm_force(orc: Orc) -> None:
    orc(
        "run",
        "-d",
        "--name",
        "killme",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 12' USR1; while true; do sleep 0.05; done",
    )
    time.sleep(0.3)
    orc("kill", "-s", "USR1", "killme")
    assert orc("wait", "killme").stdout.strip() == "12"
    orc("run", "-d", "--name", "forced", "busybox", "sleep", "30")
    refused = orc("rm", "forced", check=False)
    assert refused.returncode == 1 and "is running: stop it first or use -f" in refused.stderr
    orc("rm", "-f", "forced")


def test_user_errors_are_one_line(orc: Orc) -> None:
    cases = [
        (["run", "no-such-image"], "no such image"),
        (["run", "-m", "12zz", "busybox", "true"], "--memory '12zz' is not a size"),
        (["logs", "ghost"], "no such container: ghost"),
        (["run", "busybox", "no-such-command"], "executable file not found"),
        (["run", "--network", "nope", "busybox", "true"], "--network nope: no such network"),
    ]
    for args, message in cases:
        done = orc(*args, check=False)
        assert done.returncode != 0, args
        assert message in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
    orc("run", "--name", "taken", "busybox", "true")
    dup = orc("run", "--name", "taken", "busybox", "true", check=False)
    assert dup.returncode == 125 and "already in use" in dup.stderr
    # a failed run leaves no container behind
    assert [r["name"] for r in json.loads(orc("ps", "-a", "--format", "json").stdout)] == ["taken"]


def test_logs_rotate(orc: Orc, state_root: Path) -> None:
    script = "i=0; while [ $i -lt 3000 ]; do echo line-$i-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; i=$((i+1)); done"
    orc("run", "--name", "chatty", "busybox", "sh", "-c", script)
    lines = orc("logs", "chatty").stdout.splitlines()
    assert lines[-1].startswith("line-2999-")
    assert len(lines) == 3000


def test_interactive_terminal(orc: Orc, state_root: Path) -> None:
    """`run -it` under a real terminal: keys reach the shell, its output comes back."""
    import os
    import subprocess
    import sys

    master, slave = os.openpty()
    env = dict(os.environ, ORCHESTRATOR_ROOT=str(state_root))
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", "--rm", "-it", "busybox", "sh"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=Path(__file__).resolve().parents[3],
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 20
    sent = False
    while proc.poll() is None and time.monotonic() < deadline:
        import select

        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                output += os.read(master, 4096)
            except OSError:
                break
        if not sent and b"# " in output:
            os.write(master, b"echo typed-$((40+2)); exit 6\r")
            sent = True
    proc.wait(10)
    os.close(master)
    assert proc.returncode == 6
    assert b"typed-42" in output


def test_tty_without_input(orc: Orc) -> None:
    done = orc("run", "--rm", "-t", "busybox", "sh", "-c", "tty; exit 2", check=False)
    assert done.returncode == 2
    assert done.stdout.replace("\r", "") == "/dev/pts/0\n"


def test_pause_unpause(orc: Orc) -> None:
    orc("run", "-d", "--name", "napper", "busybox", "sleep", "30")
    orc("pause", "napper")
    assert json.loads(orc("ps", "--format", "json").stdout)[0]["state"] == "paused"
    again = orc("pause", "napper", check=False)
    assert again.returncode == 1 and "is paused" in again.stderr
    orc("unpause", "napper")
    assert json.loads(orc("ps", "--format", "json").stdout)[0]["state"] == "running"
    orc("rm", "-f", "napper")


def test_capabilities_drop_then_add_and_read_only(orc: Orc) -> None:
    done = orc(
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "net_raw",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    )
    assert done.stdout.split()[1] == f"{1 << 13:016x}"  # CAP_NET_RAW alone
    done = orc("run", "--rm", "--read-only", "busybox", "sh", "-c", "touch /x || echo refused")
    assert "refused" in done.stdout
    bad = orc("run", "--rm", "--cap-add", "CAP_FLYING", "busybox", "true", check=False)
    assert bad.returncode == 125 and "unknown capability" in bad.stderr


def test_interactive_without_terminal_pipes_stdin(orc: Orc, state_root: Path) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, ORCHESTRATOR_ROOT=str(state_root))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            "--rm",
            "-i",
            "busybox",
            "sh",
            "-c",
            "wc -l; exit 3",
        ],
        input="one\ntwo\nthree\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[3],
        timeout=60,
    )
    assert done.returncode == 3
    assert done.stdout.strip() == "3"


def test_exec_runs_in_the_container_and_returns_its_status(orc: Orc) -> None:
    orc("run", "-d", "--name", "ex", "--hostname", "exhost", "busybox", "sleep", "30")
    done = orc(
        "exec",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "ex",
        "sh",
        "-c",
        "hostname; echo $FOO; pwd; exit 3",
        check=False,
    )
    assert done.returncode == 3
    assert done.stdout.split("\n")[:3] == ["exhost", "bar", "/tmp"]
    assert orc("exec", "-u", "nobody", "ex", "id", "-u").stdout.strip() == "65534"
    missing = orc("exec", "ex", "no-such-program", check=False)
    assert missing.returncode != 0 and "executable file not found" in missing.stderr
    orc("rm", "-f", "ex")
    gone = orc("exec", "ex", "true", check=False)
    assert gone.returncode != 0 and "ex" in gone.stderr and "Traceback" not in gone.stderr


def test_exec_with_a_terminal(orc: Orc) -> None:
    orc("run", "-d", "--name", "ext", "busybox", "sleep", "30")
    done = orc("exec", "-t", "ext", "sh", "-c", "test -t 1 && echo out-is-tty")
    assert done.stdout.replace("\r", "").strip() == "out-is-tty"
    orc("rm", "-f", "ext")
