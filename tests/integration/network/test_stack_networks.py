"""The pieces the supervisor calls for stacks, through the Python API: a stack's networks
(``Networks.ensure``), its containers (``from_service`` then ``Containers``), service names that
resolve to every replica, links to a service, ``network_mode: service:X``, isolation between
stacks, and a stack's networks gone with its last container (``Networks.prune(labels)``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.containers import Container, Containers
from orchestrator.description import from_service
from orchestrator.stack import load_stack
from tests.cli import REPO, Orc

pytestmark = pytest.mark.root

STACK = """
name: {name}
services:
  web:
    image: busybox
    command: ["httpd", "-f", "-p", "80", "-h", "/etc"]
    deploy:
      replicas: 2
    networks: [front]
  client:
    image: busybox
    command: ["sleep", "60"]
    links: ["web:site"]
    networks: [front]
  sidecar:
    image: busybox
    command: ["sleep", "60"]
    network_mode: "service:web"
networks:
  front:
    ipam:
      config:
        - subnet: {subnet}
"""


def up(root: Path, tmp: Path, name: str, subnet: str) -> dict[str, Container]:
    """What the supervisor does for a stack, in order (web, client, sidecar)."""
    (tmp / f"{name}.yaml").write_text(STACK.format(name=name, subnet=subnet))
    stack = load_stack([tmp / f"{name}.yaml"])
    containers = Containers(root)
    for network in stack.networks.values():
        containers.networks.ensure(
            network.name,
            subnet=network.ipam[0].subnet if network.ipam else None,
            internal=network.internal,
            labels={"project": stack.name},
        )
    names = {key: n.name for key, n in stack.networks.items()}
    made = {}
    for service_name in ("web", "client", "sidecar"):
        service = stack.services[service_name]
        for replica in range(1, service.replicas + 1):
            cname = f"{name}-{service_name}-{replica}"
            description = from_service(name, service, replica, cname, network_names=names)
            made[cname] = containers.create(description)
            containers.start(made[cname])
    return made


def output(containers: Containers, container: Container, *args: str) -> str:
    """A command's output in the container (through the CLI's exec, which prints it)."""

    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "exec", container.name, *args],
        capture_output=True, text=True, cwd=REPO, timeout=30,
        env={**os.environ, "ORCHESTRATOR_ROOT": str(containers.root)},
    )  # fmt: skip
    return done.stdout if done.returncode == 0 else f"exit {done.returncode}: {done.stderr}"


def test_two_stacks(orc: Orc, state_root: Path, tmp_path: Path) -> None:
    alpha = up(state_root, tmp_path, "alpha", "10.213.40.0/24")
    beta = up(state_root, tmp_path, "beta", "10.213.41.0/24")
    containers = Containers(state_root)
    client = alpha["alpha-client-1"]
    hosts = output(containers, client, "cat", "/etc/hosts")
    addresses = containers.networks.addresses
    web1 = addresses(alpha["alpha-web-1"].id)["alpha_front"]
    web2 = addresses(alpha["alpha-web-2"].id)["alpha_front"]
    # the service name resolves to every replica, the link alias to the linked one
    assert f"{web1}\talpha-web-1 web" in hosts and f"{web2}\talpha-web-2 web" in hosts
    assert f"{web1}\tsite alpha-web-1" in hosts
    env = output(containers, client, "env")
    assert "SITE_NAME=/alpha-client-1/site" in env.splitlines()
    fetched = output(containers, client, "wget", "-qO-", "http://site/hostname")
    assert fetched.strip() == output(containers, alpha["alpha-web-1"], "hostname").strip()
    # service:web shares web-1's network namespace
    sidecar = output(
        containers, alpha["alpha-sidecar-1"], "wget", "-qO-", "http://127.0.0.1/hostname"
    )
    assert sidecar == fetched
    # stacks are cut off from each other
    beta_web = addresses(beta["beta-web-1"].id)["beta_front"]
    crossed = output(
        containers, client, "timeout", "1", "wget", "-qO-", f"http://{beta_web}/hostname"
    )
    assert crossed.startswith("exit ")
    # down: alpha's containers, then its networks; beta's are untouched
    for container in alpha.values():
        containers.remove(container, force=True)
    assert containers.networks.prune(labels={"project": "alpha"}) == ["alpha_front"]
    assert [n["name"] for n in containers.networks.all()] == ["beta_front"]
    for container in beta.values():
        containers.remove(container, force=True)
    assert containers.networks.prune(labels={"project": "beta"}) == ["beta_front"]
