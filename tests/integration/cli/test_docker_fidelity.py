"""Issue 9, Docker's behaviour where scripts rely on it: signals passed on by a foreground
run, logs --tail/--since/-f, ps's columns, order, filters and templates, inspect -f, run --pull,
--network host's name files, messages in the user's terms, the working directory made, and
ONBUILD triggers. Each against the real CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import REPO, Orc
from tests.integration.registry.helpers import Registry, start_registry

pytestmark = pytest.mark.root


def popen(state_root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env=dict(os.environ, ORCHESTRATOR_ROOT=str(state_root)),
    )


def wait_for(condition: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


TRAP = 'trap "echo got TERM; exit 7" TERM; echo ready; while :; do sleep 0.1; done'


def _term_when_ready(orc: Orc, proc: subprocess.Popen[str], name: str) -> tuple[str, str]:
    """SIGTERM to the attached CLI once the container's trap is set; its output."""
    try:
        wait_for(lambda: "ready" in orc("logs", name, check=False).stdout, "the trap")
        proc.send_signal(signal.SIGTERM)
        return proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_foreground_run_passes_sigterm_on_and_returns_its_status(
    orc: Orc, state_root: Path
) -> None:
    proc = popen(state_root, "run", "--rm", "--name", "trapper", "busybox", "sh", "-c", TRAP)
    out, err = _term_when_ready(orc, proc, "trapper")
    assert proc.returncode == 7, err
    assert "got TERM" in out
    assert orc("ps", "-a", "-q").stdout == ""  # --rm: nothing left
    assert not list((state_root / "containers").glob("[0-9a-f]*"))


def test_sigint_too_and_sig_proxy_false_does_not(orc: Orc, state_root: Path) -> None:
    proc = popen(
        state_root, "run", "--name", "intr", "busybox", "sh", "-c", TRAP.replace("TERM", "INT")
    )
    wait_for(lambda: "ready" in orc("logs", "intr", check=False).stdout, "the trap")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 7
    orc("rm", "intr")

    proc = popen(
        state_root, "run", "--sig-proxy=false", "--name", "kept", "busybox", "sh", "-c", TRAP
    )
    wait_for(lambda: "ready" in orc("logs", "kept", check=False).stdout, "the trap")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGTERM  # we ended; the container did not hear it
    assert json.loads(orc("inspect", "kept").stdout)[0]["State"]["Status"] == "running"
    assert "got TERM" not in orc("logs", "kept").stdout
    orc("rm", "-f", "kept")


def test_start_attached_passes_signals_on_too(orc: Orc, state_root: Path) -> None:
    orc("create", "--name", "later", "busybox", "sh", "-c", TRAP)
    proc = popen(state_root, "start", "-a", "later")
    out, err = _term_when_ready(orc, proc, "later")
    assert proc.returncode == 7, err
    assert "got TERM" in out
    orc("rm", "later")


def test_logs_tail_since_until_and_follow(orc: Orc) -> None:
    script = "for i in 1 2 3 4 5; do echo line$i; done; sleep 2; echo late"
    orc("run", "-d", "--name", "talker", "busybox", "sh", "-c", script)
    wait_for(lambda: "line5" in orc("logs", "talker").stdout, "the first lines")
    assert orc("logs", "--tail", "2", "talker").stdout == "line4\nline5\n"
    assert orc("logs", "-n", "0", "talker").stdout == ""
    assert orc("logs", "--tail", "all", "talker").stdout.count("line") == 5
    stamped = orc("logs", "-t", "--tail", "1", "talker").stdout
    assert stamped.startswith("20") and "Z line5\n" in stamped
    assert orc("logs", "--since", "1h", "talker").stdout.count("line") == 5
    assert orc("logs", "--until", "1h", "talker").stdout == ""
    assert (
        orc("logs", "--since", "2000-01-01T00:00:00Z", "--tail", "1", "talker").stdout == "line5\n"
    )
    # -f with --tail: the last line, then what comes, until the container ends
    followed = orc("logs", "-f", "--tail", "1", "talker", timeout=30)
    assert followed.stdout == "line5\nlate\n"
    bad = orc("logs", "--since", "someday", "talker", check=False)
    assert bad.returncode == 1 and "--since someday" in bad.stderr and "Traceback" not in bad.stderr


def test_ps_columns_order_filters_and_templates(orc: Orc) -> None:
    orc("run", "-d", "--name", "first", "-l", "tier=front", "busybox", "sleep", "100")
    orc("run", "--name", "second", "busybox", "sh", "-c", "exit 3", check=False)
    orc("create", "--name", "third", "busybox", "true")
    orc("run", "-d", "--name", "fourth", "--entrypoint", "sleep", "busybox", "100")
    orc("pause", "fourth")

    lines = orc("ps", "-a").stdout.splitlines()
    header = lines[0].split()
    assert header[:2] == ["CONTAINER", "ID"] and header[-1] == "NAMES"
    assert [line.split()[-1] for line in lines[1:]] == ["fourth", "third", "second", "first"]
    columns = {line.split()[-1]: line for line in lines[1:]}
    assert '"sleep 100"' in columns["first"] and "Up " in columns["first"]
    assert "Exited (3) " in columns["second"] and " ago" in columns["second"]
    assert "Created" in columns["third"]
    assert "(Paused)" in columns["fourth"]
    assert len(lines[1].split()[0]) == 12
    assert len(orc("ps", "-a", "--no-trunc", "-q").stdout.split()[0]) == 64

    running = orc("ps", "--format", "{{.Names}}").stdout.split()
    assert running == ["fourth", "first"]
    assert orc("ps", "-n", "2", "--format", "{{.Names}}").stdout.split() == ["fourth", "third"]
    assert orc("ps", "-l", "--format", "{{.Names}}").stdout.split() == ["fourth"]

    def names(*filters: str) -> list[str]:
        args = [a for f in filters for a in ("--filter", f)]
        return orc("ps", "-a", *args, "--format", "{{.Names}}").stdout.split()

    assert names("status=exited") == ["second"]
    assert names("status=exited", "status=created") == ["third", "second"]
    assert names("name=ir") == ["third", "first"]
    assert names("name=ir", "status=running") == ["first"]
    assert names("label=tier=front") == ["first"]
    assert names("exited=3") == ["second"]
    assert names("ancestor=busybox") == ["fourth", "third", "second", "first"]
    assert names("ancestor=nosuch") == []
    assert orc("ps", "-f", "status=created", "--format", "{{.Names}}").stdout.split() == ["third"]

    row = json.loads(orc("ps", "-f", "name=first", "--format", "{{json .}}").stdout)
    assert row["Names"] == "first" and row["State"] == "running" and row["Labels"] == "tier=front"
    assert row["Status"].startswith("Up ") and row["Command"] == '"sleep 100"'
    table = orc("ps", "-a", "--format", r"table {{.Names}}\t{{.Status}}").stdout.splitlines()
    assert table[0].split() == ["NAMES", "STATUS"]
    assert table[1].startswith("fourth ") and "(Paused)" in table[1]
    assert (
        orc("ps", "-a", "--format", '{{index .Labels "tier"}}', "-f", "name=first").stdout
        == "front\n"
    )

    for bad, message in (
        (["--format", "{{.Names"], "--format: template"),
        (["--format", "{{.Nope}}"], "can't evaluate field Nope"),
        (["--filter", "colour=red"], "invalid filter 'colour'"),
        (["--filter", "status=asleep"], "invalid status"),
    ):
        done = orc("ps", "-a", *bad, check=False)
        assert done.returncode == 1, bad
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_ps_shows_the_images_command_when_none_was_given(orc: Orc, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        'FROM busybox\nHEALTHCHECK CMD ["true"]\nCMD ["sleep", "300"]\n'
    )
    orc("build", "-t", "sleeper", str(tmp_path))
    orc("run", "-d", "--name", "imgcmd", "sleeper")
    line = orc("ps").stdout.splitlines()[1]
    assert '"sleep 300"' in line and line.split()[1] == "sleeper"
    # its healthcheck is kept, and run by the supervisor (the first after the default 30 s)
    record = json.loads(orc("inspect", "imgcmd").stdout)[0]
    assert record["Config"]["Healthcheck"]["Test"] == ["CMD", "true"]
    assert record["State"]["Health"]["Status"] == "starting"
    assert "(health: starting)" in orc("ps").stdout


def test_ps_size_measures_the_writable_layer_and_the_image(orc: Orc) -> None:
    script = "head -c 50000 /dev/zero > /blob; sleep 300"
    orc("run", "-d", "--name", "sized", "busybox", "sh", "-c", script)
    wait_for(lambda: "50kB" in orc("ps", "-s").stdout, "the blob to be written")
    lines = orc("ps", "-s").stdout.splitlines()
    assert lines[0].split()[-1] == "SIZE"
    found = re.search(r"(\S+) \(virtual (\S+)\)$", lines[1])
    assert found is not None, lines
    own, virtual = found.groups()
    assert own == "50kB" and virtual.endswith("MB") and float(virtual[:-2]) > 1
    assert orc("ps", "--format", "{{.Size}}").stdout.startswith("50kB (virtual ")
    orc("rm", "-f", "sized")


def test_inspect_format(orc: Orc) -> None:
    orc("run", "-d", "--name", "seen", "-l", "k=v", "busybox", "sleep", "100")
    orc("run", "--name", "gone", "busybox", "sh", "-c", "exit 4", check=False)
    template = (
        "{{.State.Status}} {{.State.ExitCode}} {{.Name}} {{.Config.Image}}"
        ' {{index .Config.Labels "k"}} {{json .Config.Cmd}} {{.NetworkSettings.Networks}}'
    )
    out = orc("inspect", "-f", template, "seen", "gone").stdout.splitlines()
    assert out == [
        'running 0 /seen busybox v ["sleep","100"] map[]',
        'exited 4 /gone busybox <no value> ["sh","-c","exit 4"] map[]',
    ]
    pid = int(orc("inspect", "--format", "{{.State.Pid}}", "seen").stdout)
    assert Path(f"/proc/{pid}").exists()
    record = json.loads(orc("inspect", "seen").stdout)[0]
    assert record["State"]["Running"] is True and record["name"] == "seen"  # both shapes
    done = orc("inspect", "-f", "{{.State", "seen", check=False)
    assert done.returncode == 1 and "--format: template" in done.stderr


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


def test_run_pull_missing_always_never(orc: Orc, registry: Registry) -> None:
    ref = f"{registry.domain}/issue9/busybox:1"
    orc("push", "-q", "busybox", ref)  # (pushed under that name, not tagged so here)
    done = orc("run", "--rm", ref, "echo", "pulled")
    assert done.stdout == "pulled\n"
    assert "Unable to find image" in done.stderr and "Downloaded newer image" in done.stderr
    again = orc("run", "--rm", ref, "true")  # present now: no pull
    assert "Unable to find" not in again.stderr and "Status" not in again.stderr
    always = orc("run", "--rm", "--pull", "always", ref, "true")
    assert "Image is up to date" in always.stderr
    never = orc(
        "run", "--rm", "--pull", "never", f"{registry.domain}/issue9/absent:1", "true", check=False
    )
    assert never.returncode == 125
    assert "No such image: " in never.stderr and "Traceback" not in never.stderr
    missing = orc("create", "--pull", "never", "nosuchimage", "true", check=False)
    assert missing.returncode == 125 and "No such image: nosuchimage" in missing.stderr
    assert orc("ps", "-a", "-q").stdout == ""


def test_host_network_gets_the_hosts_name_files(orc: Orc) -> None:
    done = orc(
        "run",
        "--rm",
        "--network",
        "host",
        "--add-host",
        "extra.test:10.9.8.7",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hostname",
    )
    hosts, resolv, hostname = done.stdout.split("---\n")
    host_hosts = Path("/etc/hosts").read_text()
    assert hosts.startswith(host_hosts) and "10.9.8.7\textra.test" in hosts
    assert resolv == Path("/etc/resolv.conf").read_text()
    assert hostname.strip() == os.uname().nodename
    # the container writes its copy, never the host's file
    orc("run", "--rm", "--network", "host", "busybox", "sh", "-c", "echo 10.1.1.1 x >> /etc/hosts")
    assert Path("/etc/hosts").read_text() == host_hosts


def test_messages_in_the_users_terms_and_the_workdir_made(orc: Orc) -> None:
    done = orc("run", "--rm", "-m", "1", "busybox", "true", check=False)
    assert done.returncode == 125
    assert done.stderr.strip() == "orchestrator: --memory 1: Minimum memory limit allowed is 6MB"
    swap = orc("run", "--rm", "-m", "8m", "--memory-swap", "4m", "busybox", "true", check=False)
    assert swap.returncode == 125 and "--memory-swap 4m" in swap.stderr
    assert orc("run", "--rm", "-m", "6m", "busybox", "echo", "ok").stdout == "ok\n"

    done = orc(
        "run", "--rm", "-w", "/missing/deeper", "busybox", "sh", "-c", "pwd; stat -c '%U %a' ."
    )
    assert done.stdout == "/missing/deeper\nroot 755\n"
    # a folder that exists below keeps its looks (/tmp stays 1777 with /tmp/x made)
    done = orc("run", "--rm", "-w", "/tmp/x", "busybox", "stat", "-c", "%a", "/tmp")
    assert done.stdout == "1777\n"
    assert orc("run", "--rm", "-w", "/bin", "busybox", "pwd").stdout == "/bin\n"


def test_onbuild_triggers_run_in_the_child_build(orc: Orc, tmp_path: Path) -> None:
    parent, child = tmp_path / "parent", tmp_path / "child"
    parent.mkdir()
    child.mkdir()
    (parent / "Dockerfile").write_text(
        "FROM busybox\n"
        "ONBUILD COPY payload.txt /payload.txt\n"
        "ONBUILD RUN echo triggered > /trigger\n"
        'CMD ["cat", "/payload.txt", "/trigger"]\n'
    )
    (parent / "payload.txt").write_text("from the parent's context\n")
    orc("build", "-t", "onbuild-parent", str(parent))
    config = json.loads(orc("image", "inspect", "onbuild-parent").stdout)
    assert "RUN echo triggered > /trigger" in json.dumps(config)
    # the parent itself did not run them
    done = orc("run", "--rm", "onbuild-parent", "ls", "/trigger", check=False)
    assert done.returncode != 0

    (child / "Dockerfile").write_text("FROM onbuild-parent\nRUN cat /trigger\n")
    (child / "payload.txt").write_text("from the child's context\n")
    built = orc("build", "-t", "onbuild-child", str(child))
    assert "ONBUILD RUN echo triggered" in built.stdout
    assert orc("run", "--rm", "onbuild-child").stdout == "from the child's context\ntriggered\n"
    # the triggers are not passed on to grandchildren
    grandchild = tmp_path / "grandchild"
    grandchild.mkdir()
    (grandchild / "Dockerfile").write_text("FROM onbuild-child\nRUN true\n")
    built = orc("build", "-t", "onbuild-grandchild", str(grandchild))
    assert "ONBUILD" not in built.stdout
    assert "OnBuild" not in orc("image", "inspect", "onbuild-child").stdout
