"""Networks end to end through the CLI: real bridges, veths, nftables, busybox containers.

Traffic goes only to loopback and to addresses of the bridges and namespaces these tests make.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.cli import REPO, Orc

pytestmark = pytest.mark.root

HTTPD = ("httpd", "-f", "-p", "80", "-h", "/etc")
# busybox's timeout kills the program it runs from a child: never run it as a container's PID 1
# (which ignores signals from inside), so sh -c "...; exit $?" keeps sh in that place.


def _members(orc: Orc, network: str) -> dict[str, Any]:
    info = json.loads(orc("network", "inspect", network).stdout)[0]
    return {m["name"]: m for m in info["containers"].values()}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as response:
        return str(response.read().decode())


def _our_interfaces() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [line.split(": ")[1].split("@")[0] for line in out.splitlines() if ": orc" in line]


def test_containers_reach_each_other_by_name_and_alias(orc: Orc) -> None:
    orc("network", "create", "--subnet", "10.213.7.0/24", "--label", "team=a", "shop")
    orc("run", "-d", "--name", "web", "--network", "shop", "--network-alias", "www", "busybox",
        *HTTPD)  # fmt: skip
    orc("run", "-d", "--name", "echo", "--network", "shop", "busybox", "sh", "-c",
        "while true; do echo pong | nc -l -p 7000; done")  # fmt: skip
    script = (
        "wget -qO- http://web/hostname && wget -qO- http://www/hostname && "
        "echo ping | nc echo 7000 && ip route && cat /etc/hosts /etc/resolv.conf"
    )
    done = orc("run", "--rm", "--name", "client", "--network", "shop", "--hostname", "me",
               "busybox", "sh", "-c", script)  # fmt: skip
    web = _members(orc, "shop")["web"]
    assert web["ip"].startswith("10.213.7.") and web["interface"] == "eth0"
    lines = done.stdout.splitlines()
    assert lines[0] == lines[1]  # the same container under its name and its alias
    assert "pong" in lines
    assert "default via 10.213.7.1 dev eth0" in done.stdout
    assert f"{web['ip']}\tweb www" in done.stdout
    assert "\tme\n" in done.stdout  # its own address under its hostname
    assert "nameserver 127." not in done.stdout
    listing = json.loads(orc("network", "ls", "--format", "json").stdout)
    assert [(n["name"], n["labels"]) for n in listing] == [("shop", {"team": "a"})]


def test_published_ports_answer_from_the_host(orc: Orc) -> None:
    orc("network", "create", "--subnet", "10.213.8.0/24", "pub")
    local, anywhere = _free_port(), _free_port()
    orc("run", "-d", "--name", "web", "--network", "pub", "-p", f"127.0.0.1:{local}:80",
        "-p", f"{anywhere}:80", "-p", "80", "busybox", *HTTPD)  # fmt: skip
    ports = orc("port", "web").stdout.splitlines()
    assert ports[:2] == [f"80/tcp -> 127.0.0.1:{local}", f"80/tcp -> 0.0.0.0:{anywhere}"]
    picked = int(ports[2].rsplit(":", 1)[1])
    assert orc("port", "web", "80/tcp").stdout.splitlines()[0] == f"127.0.0.1:{local}"
    hostname = _get(f"http://127.0.0.1:{local}/hostname")
    assert _get(f"http://127.0.0.1:{anywhere}/hostname") == hostname
    assert _get(f"http://127.0.0.1:{picked}/hostname") == hostname
    gateway = json.loads(orc("network", "inspect", "pub").stdout)[0]["gateway"]
    assert _get(f"http://{gateway}:{anywhere}/hostname") == hostname
    with pytest.raises(urllib.error.URLError):  # published on 127.0.0.1 only
        _get(f"http://{gateway}:{local}/hostname")
    # a host port already taken: one clear error, and no container is left
    taken = orc("run", "-d", "--name", "second", "--network", "pub", "-p", f"{anywhere}:80",
                "busybox", "true", check=False)  # fmt: skip
    assert taken.returncode != 0
    assert taken.stderr.strip().endswith(f"host port {anywhere} is already in use")
    assert len(taken.stderr.strip().splitlines()) == 1
    with socket.socket() as sock:  # taken by someone else than us
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        taken = orc("run", "-d", "--network", "pub", "-p", f"127.0.0.1:{busy}:80",
                    "busybox", "true", check=False)  # fmt: skip
    assert taken.returncode != 0 and "already in use" in taken.stderr
    assert [r["name"] for r in json.loads(orc("ps", "-a", "--format", "json").stdout)] == ["web"]


def test_links_give_variables_and_hosts_entries(orc: Orc) -> None:
    orc("network", "create", "--subnet", "10.213.9.0/24", "legacy")
    orc("run", "-d", "--name", "db", "--network", "legacy", "-e", "POSTGRES_DB=app",
        "--expose", "5432", "busybox", "sleep", "60")  # fmt: skip
    db = _members(orc, "legacy")["db"]["ip"]
    done = orc("run", "--rm", "--name", "app", "--network", "legacy", "--link", "db:database",
               "--add-host", "gw:host-gateway", "busybox", "sh", "-c",
               "env; cat /etc/hosts")  # fmt: skip
    out = done.stdout
    for line in (
        "DATABASE_NAME=/app/database",
        f"DATABASE_PORT=tcp://{db}:5432",
        f"DATABASE_PORT_5432_TCP=tcp://{db}:5432",
        f"DATABASE_PORT_5432_TCP_ADDR={db}",
        "DATABASE_PORT_5432_TCP_PORT=5432",
        "DATABASE_PORT_5432_TCP_PROTO=tcp",
        "DATABASE_ENV_POSTGRES_DB=app",
        f"{db}\tdatabase db",
        "10.213.9.1\tgw",
    ):
        assert line in out.splitlines()


def test_networks_are_isolated_and_internal_has_no_route_out(orc: Orc) -> None:
    orc("network", "create", "--subnet", "10.213.10.0/24", "left")
    orc("network", "create", "--subnet", "10.213.11.0/24", "--internal", "right")
    orc("run", "-d", "--name", "web", "--network", "left", "busybox", *HTTPD)
    web = _members(orc, "left")["web"]["ip"]
    same = orc("run", "--rm", "--network", "left", "busybox", "sh", "-c",
               f"timeout 2 wget -qO- http://{web}/hostname; exit $?", check=False)  # fmt: skip
    assert same.returncode == 0
    other = orc("run", "--rm", "--network", "right", "busybox", "sh", "-c",
                f"ip route; timeout 1 wget -qO- http://{web}/hostname", check=False)  # fmt: skip
    assert other.returncode != 0
    assert "default" not in other.stdout  # internal: no route out
    orc("network", "create", "--subnet", "10.213.12.0/24", "third")
    routed = orc("run", "--rm", "--network", "third", "busybox", "sh", "-c",
                 f"timeout 1 wget -qO- http://{web}/hostname; exit $?", check=False)  # fmt: skip
    assert routed.returncode != 0  # a route to it, but our forward rules drop it


def test_recreated_peer_resolves_to_its_new_address(orc: Orc) -> None:
    orc("network", "create", "--subnet", "10.213.13.0/24", "svc")
    orc("run", "-d", "--name", "client", "--network", "svc", "busybox", "sleep", "60")
    orc("run", "-d", "--name", "web", "--network", "svc", "busybox", *HTTPD)
    first = _members(orc, "svc")["web"]["ip"]
    assert f"{first}\tweb" in orc("exec", "client", "cat", "/etc/hosts").stdout
    orc("rm", "-f", "web")
    assert "\tweb" not in orc("exec", "client", "cat", "/etc/hosts").stdout
    orc("run", "-d", "--name", "web", "--network", "svc", "busybox", *HTTPD)
    second = _members(orc, "svc")["web"]["ip"]
    assert second != first
    hosts = orc("exec", "client", "cat", "/etc/hosts").stdout
    assert f"{second}\tweb" in hosts and first not in hosts
    fetched = orc("exec", "client", "timeout", "2", "wget", "-qO-", "http://web/hostname").stdout
    assert fetched.strip() == orc("exec", "web", "hostname").stdout.strip()


def test_connect_and_disconnect_a_running_container(orc: Orc) -> None:
    orc("network", "create", "--subnet", "10.213.14.0/24", "front")
    orc("network", "create", "--subnet", "10.213.15.0/24", "back")
    orc("run", "-d", "--name", "api", "--network", "front", "busybox", "sleep", "60")
    orc("run", "-d", "--name", "db", "--network", "back", "busybox", *HTTPD)
    orc("network", "connect", "--alias", "service", "--ip", "10.213.15.50", "back", "api")
    addresses = orc("exec", "api", "ip", "-o", "-4", "addr").stdout
    assert "eth1" in addresses and "10.213.15.50/24" in addresses
    assert orc("exec", "api", "timeout", "2", "wget", "-qO-", "http://db/hostname").returncode == 0
    assert "10.213.15.50\tapi service" in orc("exec", "db", "cat", "/etc/hosts").stdout
    again = orc("network", "connect", "back", "api", check=False)
    assert again.returncode != 0 and "already on back" in again.stderr
    orc("network", "disconnect", "back", "api")
    assert "eth1" not in orc("exec", "api", "ip", "-o", "addr").stdout
    assert "api" not in orc("exec", "db", "cat", "/etc/hosts").stdout
    # a restart wires every network it is on again, connected ones included
    orc("network", "connect", "back", "api")
    orc("restart", "-t", "1", "api")
    addresses = orc("exec", "api", "ip", "-o", "-4", "addr").stdout
    inspected = json.loads(orc("inspect", "api").stdout)[0]["networks"]
    assert set(inspected) == {"front", "back"}
    assert f"{inspected['front']}/24" in addresses and f"{inspected['back']}/24" in addresses
    busy = orc("network", "rm", "back", check=False)
    assert busy.returncode != 0 and "in use by: api, db" in busy.stderr


def test_joining_another_containers_network_namespace(orc: Orc) -> None:
    orc("network", "create", "--subnet", "10.213.16.0/24", "shared")
    orc("run", "-d", "--name", "web", "--network", "shared", "busybox", *HTTPD)
    done = orc("run", "--rm", "--network", "container:web", "busybox", "sh", "-c",
               "timeout 2 wget -qO- http://127.0.0.1/hostname; cat /etc/hostname")  # fmt: skip
    first, second = done.stdout.split()
    assert first == second  # its hostname file is web's, and web answered on our loopback


def _crashing(state_root: Path, step: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ORCHESTRATOR_ROOT=str(state_root), ORCHESTRATOR_NETWORK_CRASH_AT=step)
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize(
    "step",
    ["create:recorded", "create:bridge", "attach:veth", "attach:wired", "attach:published",
     "remove:rules"],
)  # fmt: skip
def test_a_crash_at_any_step_is_cleaned_up_by_the_next_command(
    orc: Orc, state_root: Path, step: str
) -> None:
    if step.startswith("create"):
        done = _crashing(state_root, step, "network", "create", "--subnet", "10.213.17.0/24", "n")
        assert done.returncode == -9
        assert orc("network", "ls", "-q").stdout == ""  # collected: creator dead
        orc("network", "create", "--subnet", "10.213.17.0/24", "n")  # the subnet is free again
        return
    orc("network", "create", "--subnet", "10.213.17.0/24", "n")
    if step == "remove:rules":
        bridge = json.loads(orc("network", "inspect", "n").stdout)[0]["bridge"]
        assert _crashing(state_root, step, "network", "rm", "n").returncode == -9
        assert bridge in _our_interfaces()
        assert orc("network", "ls", "-q").stdout == ""
        assert bridge not in _our_interfaces()
        return
    done = _crashing(state_root, step, "run", "-d", "--name", "xx", "--network", "n",
                     "-p", f"127.0.0.1:{_free_port()}:80", "busybox", *HTTPD)  # fmt: skip
    assert done.returncode == -9
    crashed = _members(orc, "n")["xx"]["ip"]
    # The crashed container keeps its lease: a new one gets another address
    orc("run", "-d", "--name", "yy", "--network", "n", "busybox", "sleep", "30")
    assert _members(orc, "n")["yy"]["ip"] != crashed
    orc("rm", "-f", "xx", "yy")
    orc("network", "rm", "n")


def test_concurrent_runs_get_distinct_addresses(orc: Orc, state_root: Path) -> None:
    orc("network", "create", "--subnet", "10.213.18.0/24", "busy")
    env = dict(os.environ, ORCHESTRATOR_ROOT=str(state_root))
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator",
                "run",
                "-d",
                "--network",
                "busy",
                "busybox",
                "sleep",
                "30",
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    for run in runs:
        assert run.wait(timeout=60) == 0, run.stderr.read() if run.stderr else ""
        for stream in (run.stdout, run.stderr):
            if stream:
                stream.close()
    addresses = [m["ip"] for m in _members(orc, "busy").values()]
    assert len(addresses) == 3 and len(set(addresses)) == 3


BAD_INPUT = [
    (("network", "create", "--subnet", "10.213.300.0/24", "x"), "invalid subnet"),
    (("network", "create", "--subnet", "10.213.20.0/24", "--gateway", "10.1.1.1", "x"),
     "is not a host address of subnet"),
    (("network", "create", "--subnet", "10.213.19.128/25", "x"),
     "overlaps network 10.213.19.0/24 of ours"),
    (("network", "create", "taken"), "network taken already exists"),
    (("network", "create", "bad/name"), "invalid network name"),
    (("network", "rm", "nope"), "no such network: nope"),
    (("run", "--network", "nope", "busybox", "true"), "--network nope: no such network"),
    (("run", "--network", "taken", "--ip", "10.213.20.5", "busybox", "true"),
     "outside subnet 10.213.19.0/24"),
    (("run", "--network", "taken", "--ip", "10.213.19.1", "busybox", "true"),
     "already in use"),
    (("run", "--network", "taken", "-p", "1:2:3:4", "busybox", "true"), "-p 1:2:3:4:"),
    (("network", "connect", "nope", "c"), "no such container: c"),
    (("run", "--network", "taken", "--network-alias", "a\n1.2.3.4 evil", "busybox", "true"),
     "--network-alias 'a\\n1.2.3.4 evil': a host name is"),
    ]  # fmt: skip


def test_bad_input_is_one_clear_error_and_nothing_half_made(orc: Orc) -> None:
    orc("network", "create", "--subnet", "10.213.19.0/24", "taken")
    before = set(_our_interfaces())
    for args, message in BAD_INPUT:
        done = orc(*args, check=False)
        assert done.returncode != 0, args
        assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr
        assert orc("network", "ls", "-q").stdout.split() == ["taken"]
        assert orc("ps", "-a", "-q").stdout == ""
        assert set(_our_interfaces()) == before
