"""Go templates' control structures (orchestrator.gotemplate) through the real CLI: ``inspect -f``
and ``ps --format`` with ``range``, ``if``, ``with`` and variables, as Docker users write them."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from tests.cli import Orc

pytestmark = pytest.mark.root

POOL = "10.213.63.0/24"  # the default bridge's subnet here, apart from other tests' networks


def test_inspect_format_ranges_over_networks_and_tests_state(
    orc: Orc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_ADDRESS_POOLS", POOL)  # (orc passes its environment on)
    (tmp_path / "conf").mkdir()
    orc("run", "-d", "--name", "up", "--network", "bridge", "-l", "tier=front", "-l", "app=shop",
        "-v", f"{tmp_path / 'conf'}:/etc/app", "busybox", "sleep", "100")  # fmt: skip
    orc("run", "--name", "down", "--network", "bridge", "busybox", "true")
    template = (
        "{{.Name}} {{if .State.Running}}up{{else}}down{{end}}"
        "{{range $name, $net := .NetworkSettings.Networks}} {{$name}}={{$net.IPAddress}}{{end}}"
    )
    lines = orc("inspect", "-f", template, "up", "down").stdout.splitlines()
    assert len(lines) == 2, lines
    name, state, network = lines[0].split(" ")
    assert (name, state) == ("/up", "up")
    assert network.startswith("bridge=")
    assert ipaddress.ip_address(network.removeprefix("bridge=")) in ipaddress.ip_network(POOL)
    assert lines[1].startswith("/down down")
    # the other examples: just the addresses, labels in key order, mounts filtered by type
    address = orc("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "up")
    assert address.stdout.strip() == network.removeprefix("bridge=")
    labels = orc("inspect", "-f", "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}", "up")
    assert labels.stdout == "app=shop tier=front \n"
    mounts = orc(
        "inspect", "-f",
        '{{$n := .Name}}{{range .Mounts}}{{if eq .Type "bind"}}{{$n}}:{{.Destination}}{{end}}{{end}}',
        "up",
    )  # fmt: skip
    assert mounts.stdout == "/up:/etc/app\n"
    health = orc("inspect", "-f", "{{with .State.Health}}{{.Status}}{{else}}none{{end}}", "up")
    assert health.stdout == "none\n"
    table = orc(
        "ps", "-a", "--format",
        r'table {{.Names}}\t{{if eq .State "running"}}up{{else}}down{{end}}'
        r"\t{{range $k, $v := .Labels}}{{$k}};{{else}}-{{end}}",
    )  # fmt: skip
    assert table.stdout.splitlines() == [
        "NAMES     STATE     LABELS",
        "down      down      -",
        "up        up        app;tier;",
    ]
    # a template that does not close its blocks is one line naming the problem
    done = orc("inspect", "-f", "{{range .Mounts}}{{.Source}}", "up", check=False)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("unclosed {{range}}: missing {{end}}")
    assert len(done.stderr.strip().splitlines()) == 1
