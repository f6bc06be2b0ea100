"""Several -f files merged as Compose merges them, and extends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator.errors import StackError
from orchestrator.stack import DependsOn, Mount, Port, ServiceNetwork
from orchestrator.stack.merge import merge_service

from .conftest import Load

Fails = Callable[..., StackError]

BASE = """
services:
  web:
    image: app:1
    command: [serve, --debug]
    environment: [A=1, B=2]
    labels: {tier: front}
    ports: ["80:80"]
    volumes: [data:/data, ./conf:/etc/app]
    depends_on: [db]
    networks: [front]
    healthcheck: {test: [CMD, "true"], interval: 10s}
    cap_add: [NET_ADMIN]
    secrets: [token]
  db: {image: postgres}
networks: {front: {}, back: {}}
volumes: {data: {}, other: {}}
secrets: {token: {file: ./token}}
"""

OVERRIDE = """
services:
  web:
    image: app:2
    command: [serve]
    environment: {B: "3", C: "4"}
    labels: [owner=me]
    ports: ["80:80", "443:443"]
    volumes: [other:/data]
    depends_on: {cache: {condition: service_started}}
    networks: {back: {aliases: [w]}}
    healthcheck: {retries: 5}
    cap_add: [SYS_TIME, NET_ADMIN]
    secrets: [{source: token, mode: 0400}]
  cache: {image: redis}
"""


def test_override_file_merges_like_compose(load: Load, project: Path) -> None:
    stack = load(BASE, extra={"override.yaml": OVERRIDE})
    web = stack.services["web"]
    assert web.image == "app:2"
    assert web.command == ("serve",)
    assert dict(web.environment) == {"A": "1", "B": "3", "C": "4"}
    assert dict(web.labels) == {"tier": "front", "owner": "me"}
    assert web.ports == (Port(80, 80, 80), Port(443, 443, 443))
    assert web.volumes == (
        Mount("volume", "/data", "other"),
        Mount("bind", "/etc/app", f"{project}/conf"),
    )
    assert web.depends_on == (DependsOn("cache"), DependsOn("db"))
    assert web.networks == (ServiceNetwork("back", ("w",)), ServiceNetwork("front"))
    assert (
        web.healthcheck is not None
        and web.healthcheck.retries == 5
        and web.healthcheck.interval_ns == 10**10
    )
    assert web.cap_add == ("NET_ADMIN", "SYS_TIME")
    assert len(web.secrets) == 1 and web.secrets[0].mode == 0o400
    assert list(stack.services) == ["web", "db", "cache"]
    assert len(stack.files) == 2


def test_error_in_override_names_the_override_file(load: Load) -> None:
    try:
        load(BASE, extra={"override.yaml": "services:\n  web:\n    bogus: 1\n"})
    except StackError as exc:
        assert exc.file is not None and exc.file.endswith("override.yaml") and exc.line == 3
    else:
        raise AssertionError("expected an error")


def test_merged_result_is_validated(load: Load) -> None:
    # Each file is fine alone; together the service has container_name and two replicas.
    try:
        load(
            "services: {a: {image: x, container_name: c}}",
            extra={"o.yaml": "services: {a: {scale: 2}}"},
        )
    except StackError as exc:
        assert "container_name" in exc.message
    else:
        raise AssertionError("expected an error")


def test_merge_service_does_not_modify_its_inputs() -> None:
    base = {"environment": {"A": "1"}, "ports": ["1:1"]}
    over = {"environment": {"B": "2"}, "ports": ["2:2"]}
    merged = merge_service(base, over)
    assert merged == {"environment": {"A": "1", "B": "2"}, "ports": ["1:1", "2:2"]}
    assert base == {"environment": {"A": "1"}, "ports": ["1:1"]}


def test_extends_in_the_same_file(load: Load) -> None:
    stack = load(
        """
        services:
          base:
            image: app
            environment: {A: "1"}
            restart: always
          web:
            extends: base
            environment: {B: "2"}
          worker:
            extends: {service: web}
            command: work
        """
    )
    assert dict(stack.services["web"].environment) == {"A": "1", "B": "2"}
    assert stack.services["worker"].restart.name == "always"
    assert stack.services["worker"].command == ("work",)
    assert dict(stack.services["worker"].environment) == {"A": "1", "B": "2"}


def test_extends_another_file_rebases_its_paths(load: Load, project: Path) -> None:
    (project / "common").mkdir()
    (project / "common" / "base.yaml").write_text(
        "services:\n  tmpl:\n    image: common\n    build: ./ctx\n    volumes: ['./data:/data']\n"
    )
    stack = load(
        "services:\n  web:\n    extends: {service: tmpl, file: common/base.yaml}\n    ports: ['80:80']\n"
    )
    web = stack.services["web"]
    assert web.image == "common"
    assert web.build is not None and web.build.context == f"{project}/common/ctx"
    assert web.volumes == (Mount("bind", "/data", f"{project}/common/data"),)
    assert web.ports == (Port(80, 80, 80),)


def test_extends_errors(fails: Fails) -> None:
    err = fails("services:\n  a:\n    image: x\n    extends: ghost\n")
    assert err.path == "services.a.extends" and "service 'ghost' not found" in err.message
    err = fails("services:\n  a: {image: x, extends: b}\n  b: {image: x, extends: a}\n")
    assert "extends cycle: a -> b -> a" in err.message
    err = fails("services:\n  a:\n    image: x\n    extends: {service: b, file: nowhere.yaml}\n")
    assert "not found" in err.message and err.path == "services.a.extends"
