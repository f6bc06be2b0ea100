"""load_stack end to end: file discovery, project names, hashes, and the `config` command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.errors import StackError
from orchestrator.stack import load_stack, stack_dict

from .conftest import Load

SIMPLE = """
services:
  web:
    image: nginx
    depends_on: [db]
    ports: ["8080:80"]
    environment: {PRICE: "$$5"}
  db:
    image: postgres
    volumes: [data:/var/lib/postgresql/data]
volumes:
  data: {}
"""


@pytest.mark.parametrize(
    "name", ["stack.yaml", "compose.yaml", "compose.yml", "docker-compose.yml"]
)
def test_default_file_names(project: Path, name: str) -> None:
    (project / name).write_text("services: {a: {image: x}}\n")
    stack = load_stack(cwd=project, environ={})
    assert stack.files == (str(project / name),)


def test_default_file_preference_and_override(project: Path) -> None:
    (project / "compose.yaml").write_text("services: {a: {image: x}}\n")
    (project / "stack.yaml").write_text("services: {b: {image: x}}\n")
    assert list(load_stack(cwd=project, environ={}).services) == ["b"]
    (project / "stack.override.yaml").write_text("services: {b: {image: y}}\n")
    assert load_stack(cwd=project, environ={}).services["b"].image == "y"


def test_no_stack_file(project: Path) -> None:
    with pytest.raises(StackError, match="no stack file"):
        load_stack(cwd=project, environ={})


def test_missing_file(project: Path) -> None:
    with pytest.raises(StackError) as info:
        load_stack(["nope.yaml"], cwd=project, environ={})
    assert str(info.value) == "nope.yaml: file not found"


def test_project_name_precedence(load: Load, project: Path) -> None:
    assert load("services: {a: {image: x}}").name == "myproj"
    assert load("name: named\nservices: {a: {image: x}}").name == "named"
    assert (
        load("name: named\nservices: {a: {image: x}}", env={"COMPOSE_PROJECT_NAME": "fromenv"}).name
        == "fromenv"
    )
    assert (
        load("name: named\nservices: {a: {image: x}}", project_name="explicit").name == "explicit"
    )
    with pytest.raises(StackError, match="project name 'Bad Name'"):
        load("services: {a: {image: x}}", project_name="Bad Name")
    with pytest.raises(StackError) as info:
        load("name: 'Bad'\nservices: {a: {image: x}}")
    assert info.value.path == "name" and info.value.line == 1


def test_config_hash_is_stable_and_sensitive(load: Load) -> None:
    first = load(SIMPLE).services["web"].config_hash
    assert first == load(SIMPLE).services["web"].config_hash
    changed = load(SIMPLE.replace("8080:80", "8081:80")).services["web"].config_hash
    assert changed != first
    # Keys that do not change the container leave the hash alone.
    same = load(
        SIMPLE.replace(
            "    depends_on: [db]\n", "    depends_on: [db]\n    scale: 3\n    profiles: [p]\n"
        ),
        profiles=["p"],
    )
    assert same.services["web"].config_hash == first
    # Spelling does not matter: the same settings written differently hash the same.
    respelled = load(SIMPLE.replace('ports: ["8080:80"]', "ports: [{target: 80, published: 8080}]"))
    assert respelled.services["web"].config_hash == first


def test_normalised_output_loads_back_to_the_same_stack(load: Load, project: Path) -> None:
    from .test_convert import KITCHEN_SINK

    (project / "web.env").write_text("FROM_FILE=yes\n")
    env = {"TOKEN": "t", "FLAG": "x"}
    stack = load(KITCHEN_SINK, env=env, profiles=["frontend"])
    text = yaml.safe_dump(stack_dict(stack))
    again = load(text, env=env, name="normalised.yaml", profiles=["frontend"])
    assert {n: s.config_hash for n, s in again.services.items()} == {
        n: s.config_hash for n, s in stack.services.items()
    }
    assert again.services == stack.services
    assert stack_dict(again) == stack_dict(stack)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_config_command_yaml(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "compose.yaml").write_text(SIMPLE)
    code, out, _ = run_cli(capsys, "-f", str(project / "compose.yaml"), "config")
    assert code == 0
    data = yaml.safe_load(out)
    assert data["name"] == "myproj"
    assert data["services"]["web"]["ports"] == [
        {"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"}
    ]
    assert data["services"]["web"]["environment"] == {"PRICE": "$$5"}
    assert data["services"]["web"]["depends_on"] == {
        "db": {"condition": "service_started", "required": True}
    }
    assert data["volumes"] == {"data": {"name": "myproj_data"}}
    assert data["networks"] == {"default": {"name": "myproj_default"}}


def test_config_command_json_services_hash(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "compose.yaml").write_text(SIMPLE)
    monkeypatch.chdir(project)
    code, out, _ = run_cli(capsys, "-p", "demo", "config", "--format", "json")
    assert code == 0 and json.loads(out)["name"] == "demo"
    code, out, _ = run_cli(capsys, "config", "--services")
    assert (code, out) == (0, "db\nweb\n")
    code, out, _ = run_cli(capsys, "config", "--hash")
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["db", "web"]
    assert all(len(line.split()[1]) == 64 for line in lines)
    code, out, _ = run_cli(capsys, "config", "-q")
    assert (code, out) == (0, "")


def test_config_command_errors_exit_non_zero(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project / "compose.yaml"
    path.write_text('services:\n  web:\n    image: x\n    ports: ["80:80", "99999:1"]\n')
    code, out, err = run_cli(capsys, "-f", str(path), "config")
    assert code == 1 and out == ""
    assert (
        err
        == f"orchestrator: {path}:4:22: services.web.ports[1]: host port 99999 is out of range (1-65535)\n"
    )


def test_config_command_prints_warnings(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project / "compose.yaml"
    path.write_text("version: '3'\nservices: {a: {image: 'x:${TAG}'}}\n")
    env = dict(os.environ)
    env.pop("TAG", None)
    code, _, err = run_cli(capsys, "-f", str(path), "config")
    assert code == 0
    assert "'version' key is obsolete" in err and "TAG variable is not set" in err
