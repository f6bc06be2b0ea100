"""Real-world compose files (tests/data/compose-corpus, CC0): every one loads and normalises, or is
refused by the name of a key we do not support; and where docker-compose is installed, our
normalised output agrees with ``docker-compose config`` on the keys both support."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.errors import StackError
from orchestrator.stack import DependencyGraph, load_stack, stack_dict
from orchestrator.stack.yamlsafe import parse_yaml_text

CORPUS = Path(__file__).resolve().parents[2] / "data" / "compose-corpus" / "awesome-compose"
FILES = sorted(CORPUS.glob("*.yaml"))
# plex.compose.yaml mounts ${PLEX_MEDIA_PATH}; without it the volume has no source at all.
ENV = {"PLEX_MEDIA_PATH": "/srv/media"}
UNSUPPORTED = re.compile(r"'([a-z_]+)' is not supported yet")

needs_docker_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (apt install docker-compose)",
)


def ids(files: list[Path]) -> list[str]:
    return [f.name.removesuffix(".compose.yaml") for f in files]


def test_corpus_is_present() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=ids(FILES))
def test_corpus_file_loads_or_is_refused_by_key(path: Path) -> None:
    try:
        stack = load_stack([path], environ=ENV)
    except StackError as exc:
        match = UNSUPPORTED.search(exc.message)
        assert match, f"refused without naming an unsupported key: {exc}"
        assert exc.path and exc.path.endswith(match.group(1)) and exc.line
        return
    graph = DependencyGraph.from_services(stack.services)
    assert sorted(graph.start_order()) == sorted(stack.services)
    # The printed YAML reads back (with our own reader) as exactly the normalised data.
    normalised = stack_dict(stack)
    assert parse_yaml_text(yaml.safe_dump(normalised)).data == json.loads(json.dumps(normalised))


def test_corpus_refusals_are_the_expected_ones() -> None:
    refused = {}
    for path in FILES:
        try:
            load_stack([path], environ=ENV)
        except StackError as exc:
            refused[path.name] = exc.message
    assert refused == {
        "wasmedge-kafka-mysql.compose.yaml": "'runtime' is not supported yet",
        "wasmedge-mysql-nginx.compose.yaml": "'runtime' is not supported yet",
    }


def test_corpus_normalised_output_round_trips(tmp_path: Path) -> None:
    for path in FILES:
        try:
            stack = load_stack([path], environ=ENV)
        except StackError:
            continue
        copy = tmp_path / path.name
        copy.write_text(yaml.safe_dump(stack_dict(stack)))
        again = load_stack([copy], environ=ENV)
        assert {n: s.config_hash for n, s in again.services.items()} == {
            n: s.config_hash for n, s in stack.services.items()
        }, path.name


# -- comparison with docker-compose 1.29 -----------------------------------------------------------


def _words(command: Any) -> Any:
    return shlex.split(command) if isinstance(command, str) else command


def _their_volume(v: Any) -> tuple[str, str | None, str, bool]:
    if isinstance(v, dict):
        return (v["type"], v.get("source"), v["target"], bool(v.get("read_only", False)))
    parts = v.split(":")
    if len(parts) == 1:
        return ("volume", None, parts[0], False)
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) > 2 else "rw"
    return (
        "bind" if source.startswith(("/", ".")) else "volume",
        source,
        target,
        "ro" in mode.split(","),
    )


def project(data: dict[str, Any], ours: bool) -> dict[str, Any]:
    """The keys both tools support, each in one comparable shape."""
    out: dict[str, Any] = {}
    for name, svc in data.get("services", {}).items():
        s: dict[str, Any] = {}
        for key in (
            "image",
            "container_name",
            "hostname",
            "user",
            "working_dir",
            "restart",
            "stop_signal",
            "platform",
        ):
            if key in svc:
                s[key] = svc[key]
        if s.get("restart") == "no":  # the default; we do not print it
            del s["restart"]
        if "build" in svc:
            s["build"] = {
                k: v for k, v in svc["build"].items() if k in ("context", "target", "dockerfile")
            }
        for key in ("command", "entrypoint"):
            if key in svc:
                s[key] = _words(svc[key])
        s["environment"] = {
            k: (None if v is None else str(v)) for k, v in (svc.get("environment") or {}).items()
        }
        s["ports"] = sorted(
            (
                int(p["target"]),
                str(p.get("published", "")),
                p.get("protocol", "tcp"),
                p.get("host_ip", ""),
            )
            for p in svc.get("ports", [])
        )
        s["expose"] = sorted(str(e) for e in svc.get("expose", []))
        s["volumes"] = sorted(
            (v["type"], v.get("source"), v["target"], bool(v.get("read_only", False)))
            if ours
            else _their_volume(v)
            for v in svc.get("volumes", [])
        )
        s["depends_on"] = {k: v["condition"] for k, v in (svc.get("depends_on") or {}).items()}
        nets = svc.get("networks")
        nets = list(nets) if nets is not None else []
        s["networks"] = sorted(
            n for n in nets if not (ours and n == "default" and "networks" not in svc)
        )
        s["cap_add"] = sorted(svc.get("cap_add", []))
        s["secrets"] = sorted(
            x["source"] if isinstance(x, dict) else x for x in svc.get("secrets", [])
        )
        s["labels"] = dict(svc.get("labels") or {})
        s["sysctls"] = {k: str(v) for k, v in (svc.get("sysctls") or {}).items()}
        if "healthcheck" in svc:
            h = svc["healthcheck"]
            s["healthcheck"] = {
                k: h[k]
                for k in ("test", "interval", "timeout", "retries", "start_period")
                if k in h
            }
        if "stdin_open" in svc:
            s["stdin_open"] = svc["stdin_open"]
        mem = (((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}).get("memory")
        if mem is not None:
            s["memory"] = str(mem)
        out[name] = s
    return {
        "services": out,
        "volumes": sorted(data.get("volumes") or {}),
        "networks": sorted(n for n in (data.get("networks") or {}) if n != "default"),
        "secrets": {k: v.get("file") for k, v in (data.get("secrets") or {}).items()},
    }


def _fix_ours_for_compose_1(ours: dict[str, Any]) -> dict[str, Any]:
    """Spellings where docker-compose 1.29 differs from the Compose Specification and from us."""
    for svc in ours["services"].values():
        # We keep unquoted networks of default-network services out; both omit them then.
        svc["networks"] = [n for n in svc["networks"] if n != "default"]
        # docker-compose 1.29 writes sizes as written ("2G"); we write bytes.
        svc.pop("memory", None)
    return ours


def _fix_theirs(theirs: dict[str, Any]) -> dict[str, Any]:
    for svc in theirs["services"].values():
        svc.pop("memory", None)
        svc["networks"] = [n for n in svc["networks"] if n != "default"]
    return theirs


@needs_docker_compose
@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=ids(FILES))
def test_matches_docker_compose_config(path: Path, tmp_path: Path) -> None:
    work = tmp_path / "awesome-compose"
    work.mkdir()
    target = work / "compose.yaml"
    # docker-compose 1.29 predates the top-level 'name' key: drop that line from its copy.
    target.write_text(
        "".join(line for line in path.read_text().splitlines(True) if not line.startswith("name:"))
    )
    try:
        stack = load_stack([target], environ=ENV)
    except StackError:
        pytest.skip("refused by us (unsupported key)")
    for svc in stack.services.values():  # docker-compose insists that build contexts exist
        if svc.build is not None:
            Path(svc.build.context).mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.path.expanduser("~"), **ENV}
    result = subprocess.run(
        ["docker-compose", "-f", str(target), "config"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        pytest.fail(f"docker-compose refused the file: {result.stderr.strip()}")
    theirs = _fix_theirs(project(yaml.safe_load(result.stdout), ours=False))
    # docker-compose 1.29 writes $$ for a literal $ as we do: compare the printed forms.
    ours = _fix_ours_for_compose_1(
        project(yaml.safe_load(yaml.safe_dump(stack_dict(stack))), ours=True)
    )
    for svc in theirs["services"].values():
        if "healthcheck" in svc and isinstance(svc["healthcheck"].get("test"), str):
            svc["healthcheck"]["test"] = ["CMD-SHELL", svc["healthcheck"]["test"]]
    assert ours == theirs
