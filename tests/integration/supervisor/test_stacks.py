"""up and down on stack files under the supervisor, against the real runtime."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.supervisor.conftest import STOPS_ON_TERM, rows, wait_for

pytestmark = pytest.mark.root

CMD = json.dumps(STOPS_ON_TERM)

STACK = f"""
name: shop
services:
  db:
    image: busybox
    command: {CMD}
    restart: always
    healthcheck:
      test: ["CMD", "true"]
      interval: 200ms
  api:
    image: busybox
    command: {CMD}
    depends_on:
      db: {{condition: service_healthy}}
  web:
    image: busybox
    command: {CMD}
    depends_on: [api]
    restart: "no"
"""


def test_up_starts_in_order_ps_reports_and_down_removes(
    stack: Callable[..., Any], state_root: Path
) -> None:
    run = stack(STACK)
    done = run("up", "-d")
    assert done.returncode == 0, done.stderr
    table = rows(run)
    assert sorted(table) == ["shop-api-1", "shop-db-1", "shop-web-1"]
    assert all(r["state"] == "running" for r in table.values())
    assert table["shop-db-1"]["health"] == "healthy"
    assert table["shop-api-1"]["service"] == "api" and table["shop-api-1"]["replica"] == 1
    started = {name: r["started"] for name, r in table.items()}
    assert started["shop-db-1"] < started["shop-api-1"] < started["shop-web-1"]
    # unchanged: nothing is touched
    assert run("up", "--dry-run").stdout == "nothing to do\n"
    run("up", "-d")
    assert {n: r["pid"] for n, r in rows(run).items()} == {n: r["pid"] for n, r in table.items()}
    run("down")
    assert rows(run) == {}
    # its network goes right after down's answer; an up at once waits for that, then makes it
    run("up", "-d", "--no-deps", "db")
    assert sorted(rows(run)) == ["shop-db-1"]
    run("down")
    wait_for(lambda: "shop_default" not in run("network", "ls").stdout, what="the network gone")


def test_a_killed_container_comes_back_by_its_policy(stack: Callable[..., Any]) -> None:
    run = stack(STACK)
    run("up", "-d")
    before = rows(run)
    os.kill(before["shop-db-1"]["pid"], signal.SIGKILL)  # restart: always
    os.kill(before["shop-web-1"]["pid"], signal.SIGKILL)  # restart: "no"
    wait_for(
        lambda: (
            rows(run)["shop-db-1"]["restart_count"] == 1
            and rows(run)["shop-db-1"]["state"] == "running"
        ),
        what="db to come back",
    )
    after = rows(run)
    assert after["shop-db-1"]["pid"] != before["shop-db-1"]["pid"]
    assert after["shop-web-1"]["state"] == "exited"
    assert after["shop-web-1"]["exit_code"] == 137
    assert after["shop-web-1"]["restart_count"] == 0
    # a stop by hand is not undone by the policy
    run("stop", "db")
    time.sleep(0.3)
    assert rows(run)["shop-db-1"]["state"] == "exited"


def test_an_edit_recreates_only_the_changed_service(stack: Callable[..., Any]) -> None:
    run = stack(STACK)
    run("up", "-d")
    before = rows(run)
    stack(
        STACK.replace(
            "  web:\n    image: busybox\n",
            "  web:\n    image: busybox\n    environment: {MODE: new}\n",
        )
    )
    assert run("up", "--dry-run").stdout == "recreate web-1: its configuration changed\n"
    run("up", "-d")
    after = rows(run)
    assert after["shop-web-1"]["id"] != before["shop-web-1"]["id"]
    assert after["shop-db-1"]["id"] == before["shop-db-1"]["id"]
    assert after["shop-api-1"]["pid"] == before["shop-api-1"]["pid"]


def test_after_up_every_container_names_all_the_others(stack: Callable[..., Any]) -> None:
    # db is made first and web last: db's hosts file must name web's replicas all the same
    run = stack(STACK)
    run("up", "-d", "--scale", "web=2")
    names = ["shop-db-1", "shop-api-1", "shop-web-1", "shop-web-2"]
    for service, index in (("db", 1), ("api", 1), ("web", 1), ("web", 2)):
        hosts = run("exec", "-T", "--index", str(index), service, "cat", "/etc/hosts").stdout
        for name in names:
            assert f"\t{name} " in hosts, (service, index, name, hosts)
    # and a replica added later is named by those made before
    run("up", "-d", "--scale", "web=3")
    hosts = run("exec", "-T", "db", "cat", "/etc/hosts").stdout
    assert "\tshop-web-3 " in hosts, hosts


def test_scale_adds_and_removes_replicas(stack: Callable[..., Any]) -> None:
    run = stack(STACK)
    run("up", "-d", "--scale", "web=3")
    assert sorted(n for n in rows(run) if "web" in n) == ["shop-web-1", "shop-web-2", "shop-web-3"]
    run("up", "-d", "--scale", "web=1")
    assert sorted(n for n in rows(run) if "web" in n) == ["shop-web-1"]


def test_a_killed_supervisor_loses_nothing(stack: Callable[..., Any], state_root: Path) -> None:
    """kill -9 of the supervisor: the containers run on; one that dies meanwhile is restarted
    by the next supervisor, the others are adopted as they are (same processes)."""
    run = stack(STACK)
    run("up", "-d")
    before = rows(run)
    supervisor = int((state_root / "supervisor.lock").read_text())
    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{supervisor}").exists(), what="the supervisor to end")
    os.kill(before["shop-db-1"]["pid"], signal.SIGKILL)  # dies while no supervisor runs
    time.sleep(0.2)
    assert all(r["state"] == "running" for n, r in rows(run).items() if n != "shop-db-1")
    run("up", "-d")  # a new supervisor adopts
    wait_for(lambda: rows(run)["shop-db-1"]["state"] == "running", what="db restarted")
    after = rows(run)
    assert after["shop-api-1"]["pid"] == before["shop-api-1"]["pid"]
    assert after["shop-web-1"]["pid"] == before["shop-web-1"]["pid"]
    assert after["shop-db-1"]["pid"] != before["shop-db-1"]["pid"]


def test_down_with_no_supervisor_removes_the_containers_and_networks(
    stack: Callable[..., Any], state_root: Path
) -> None:
    run = stack(STACK)
    run("up", "-d")
    supervisor = int((state_root / "supervisor.lock").read_text())
    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{supervisor}").exists(), what="the supervisor to end")
    done = run("down")
    assert "network shop_default" in done.stderr, done.stderr
    assert rows(run) == {}
    assert "shop_default" not in run("network", "ls").stdout


def test_a_second_supervisor_refuses_naming_the_first(
    stack: Callable[..., Any], orc: Any, state_root: Path
) -> None:
    run = stack(STACK)
    run("up", "-d", "db")
    pid = int((state_root / "supervisor.lock").read_text())
    done = orc("supervisor", check=False)
    assert done.returncode != 0
    assert f"a supervisor already runs for {state_root} (pid {pid})" in done.stderr


def test_bad_input_changes_nothing(stack: Callable[..., Any], state_root: Path) -> None:
    run = stack(STACK.replace("image: busybox\n    command", "image: nosuch\n    command", 1))
    done = run("up", "-d", check=False)
    assert done.returncode != 0
    assert "service db: image 'nosuch' not found" in done.stderr
    assert "Traceback" not in done.stderr
    cyclic = stack(
        STACK.replace("    depends_on: [api]\n", "    depends_on: [api]\n").replace(
            "  db:\n    image: busybox\n", "  db:\n    image: busybox\n    depends_on: [web]\n"
        )
    )
    done = cyclic("up", "-d", check=False)
    assert done.returncode != 0 and "cycle" in done.stderr
    assert not (state_root / "supervisor.sock").exists()  # nothing was started


@pytest.mark.slow
def test_downs_files_go_right_after_its_answer(stack: Callable[..., Any], state_root: Path) -> None:
    """`down` answers once its containers are stopped and their records gone; their files go
    just after (Containers.remove's leftovers); a removal whose remover was killed first is
    finished by the next listing."""
    import subprocess

    run = stack(STACK)
    run("up", "-d")
    containers = state_root / "containers"
    assert len([p for p in containers.iterdir() if not p.name.startswith(".")]) == 3
    run("down")
    assert rows(run) == {}
    wait_for(
        lambda: [p.name for p in containers.iterdir()] == [".lock"],
        what="the containers' files deleted",
    )
    # a removal cut short: the remover (a process now gone) had renamed it out of sight
    remover = subprocess.Popen(["true"])
    remover.wait()
    orphan = containers / f".removed-{'a' * 64}-{remover.pid}-1"
    (orphan / "upper").mkdir(parents=True)
    run("ps", "-a")
    assert not orphan.exists()


def test_a_veth_whose_namespace_lives_on_goes_after_downs_answer(
    stack: Callable[..., Any],
) -> None:
    """`down` leaves the veths the kernel has not removed with their namespaces to after its
    answer (networks.forget_removed); one whose namespace outlives its container (held open
    here) is deleted then."""

    def ours() -> set[str]:
        return {name for name in os.listdir("/sys/class/net") if name.startswith("orc")}

    run = stack(STACK)
    run("up", "-d")
    pid = rows(run)["shop-db-1"]["pid"]
    held = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        assert len(ours()) == 4  # the bridge, a veth per container
        run("down")
        assert rows(run) == {}
        wait_for(lambda: not ours(), what="the bridge and every veth gone")
    finally:
        os.close(held)


def test_up_and_down_converge_after_kills_at_any_point(
    stack: Callable[..., Any], state_root: Path, orc: Any
) -> None:
    """kill -9 of the CLI or of the supervisor part way through `up` or `down`; the same
    command again converges: one running container per replica, and `down` leaves nothing."""
    import subprocess
    import sys

    from tests.cli import REPO

    run = stack(
        STACK.replace("deploy: {replicas: 2}", "").replace(
            '    restart: "no"\n', '    restart: "no"\n    deploy: {replicas: 2}\n'
        )
    )
    compose = next((state_root.parent / "project").glob("compose.yaml"))
    env = dict(os.environ, ORCHESTRATOR_ROOT=str(state_root))
    for round_, delay in enumerate((0.05, 0.15, 0.3, 0.5, 0.8)):
        for verb in ("up", "down"):
            args = ["up", "-d"] if verb == "up" else ["down", "-t", "2"]
            proc = subprocess.Popen(
                [sys.executable, "-m", "orchestrator", "-f", str(compose), *args],
                env=env,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(delay)
            if round_ % 2:  # the supervisor, every other round; the CLI otherwise
                lock = state_root / "supervisor.lock"
                try:
                    os.kill(int(lock.read_text()), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            proc.kill()
            proc.wait()
            run(*args)  # the same command again converges
            table = rows(run)
            if verb == "up":
                assert sorted(table) == ["shop-api-1", "shop-db-1", "shop-web-1", "shop-web-2"]
                assert all(r["state"] == "running" for r in table.values()), table
            else:
                assert table == {}
    run("down")


def test_a_service_that_cannot_start_stops_its_dependents_only(
    stack: Callable[..., Any],
) -> None:
    run = stack(
        STACK.replace(
            f"  api:\n    image: busybox\n    command: {CMD}",
            "  api:\n    image: busybox\n    command: [nosuchbinary]",
        )
    )
    done = run("up", "-d", check=False)
    assert done.returncode == 1
    assert "service api: create api-1:" in done.stderr and "nosuchbinary" in done.stderr
    assert "service web: its dependency api failed" in done.stderr
    assert "Traceback" not in done.stderr
    table = rows(run)
    assert table["shop-db-1"]["state"] == "running"
    assert "shop-web-1" not in table


def test_exec_kill_pause_and_events(stack: Callable[..., Any], state_root: Path) -> None:
    import subprocess
    import sys

    from tests.cli import REPO

    run = stack(STACK)
    run("up", "-d")
    done = run("exec", "api", "sh", "-c", "hostname; exit 3", check=False)
    assert done.returncode == 3
    compose = next((state_root.parent / "project").glob("compose.yaml"))
    events = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "-f", str(compose), "events", "--json"],
        env=dict(os.environ, ORCHESTRATOR_ROOT=str(state_root)),
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)  # subscribed
        run("pause", "api")
        assert rows(run)["shop-api-1"]["state"] == "paused"
        run("unpause", "api")
        run("kill", "db")  # restart: always brings it back
        wait_for(lambda: rows(run)["shop-db-1"]["restart_count"] == 1, what="db restarted")
    finally:
        time.sleep(0.3)
        events.terminate()
        out, _ = events.communicate(timeout=10)
    seen = [(e["container"], e["action"]) for e in map(json.loads, out.splitlines())]
    assert ("shop-api-1", "pause") in seen and ("shop-api-1", "unpause") in seen
    assert ("shop-db-1", "kill") in seen and ("shop-db-1", "restart") in seen


def test_named_volumes_keep_data_across_recreation_and_down(
    stack: Callable[..., Any], state_root: Path
) -> None:
    text = f"""
name: vol
services:
  db:
    image: busybox
    command: {CMD}
    volumes: ["data:/data"]
volumes:
  data: {{}}
"""
    run = stack(text)
    run("up", "-d")
    assert run("exec", "db", "sh", "-c", "echo kept > /data/f").returncode == 0
    run("up", "-d", "--force-recreate")
    assert run("exec", "db", "cat", "/data/f").stdout == "kept\n"
    run("down")
    run("up", "-d")
    assert run("exec", "db", "cat", "/data/f").stdout == "kept\n"
    run("down", "-v")
    run("up", "-d")
    assert run("exec", "db", "sh", "-c", "cat /data/f 2>/dev/null || echo gone").stdout == "gone\n"
    run("down", "-v")


def test_secrets_configs_ulimits_sysctls_and_shm_reach_the_container(
    stack: Callable[..., Any], tmp_path: Path
) -> None:
    (tmp_path / "project").mkdir(exist_ok=True)
    (tmp_path / "project" / "token.txt").write_text("s3cret\n")
    text = f"""
name: files
services:
  app:
    image: busybox
    command: {CMD}
    user: nobody
    secrets: [token]
    configs:
      - source: motd
        target: /etc/motd
        mode: 0440
        uid: "65534"
    ulimits:
      nofile: {{soft: 512, hard: 1024}}
    sysctls:
      net.ipv4.ip_unprivileged_port_start: "100"
    shm_size: 8m
    cpuset: "0"
secrets:
  token: {{file: ./token.txt}}
configs:
  motd: {{content: "hello from a config"}}
"""
    run = stack(text)
    run("up", "-d")
    script = (
        "cat /run/secrets/token /etc/motd; echo; stat -c '%a %u' /etc/motd; ulimit -n;"
        " cat /proc/sys/net/ipv4/ip_unprivileged_port_start; df -k /dev/shm | tail -1;"
        " echo x > /run/secrets/token || echo read-only"
    )
    out = run("exec", "app", "sh", "-c", script, check=False).stdout.split("\n")
    assert out[0] == "s3cret"
    assert out[1] == "hello from a config"
    assert out[2] == "440 65534"
    assert out[3] == "512"
    assert out[4] == "100"
    assert out[5].split()[1] == "8192"
    assert out[6] == "read-only"
