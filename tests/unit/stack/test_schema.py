"""Schema validation: one error, in plain words, at FILE:LINE:COL with the dotted path."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from orchestrator.errors import StackError
from orchestrator.stack import schema
from orchestrator.stack.fastcheck import compile_schema
from orchestrator.stack.yamlsafe import parse_yaml_text

CORPUS = Path(__file__).resolve().parents[2] / "data" / "compose-corpus"

Fails = Callable[..., StackError]


def test_schema_is_valid_2020_12() -> None:
    data = schema.schema()
    assert data["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(data)


def test_error_format_with_file_line_column(fails: Fails, project: Path) -> None:
    err = fails(
        """
        services:
          web:
            image: nginx
            ports:
              - "80:80"
              - [1, 2]
        """
    )
    assert (
        str(err)
        == f"{project}/compose.yaml:7:9: services.web.ports[1]: must be a string or an integer or a mapping, not a list"
    )


@pytest.mark.parametrize(
    ("text", "line", "path", "message"),
    [
        (
            "services:\n  web:\n    image: x\n    imag: y\n",
            4,
            "services.web.imag",
            "unknown key 'imag'",
        ),
        (
            "services:\n  web:\n    image: x\n    runtime: runc\n",
            4,
            "services.web.runtime",
            "'runtime' is not supported yet",
        ),
        (
            "services:\n  web:\n    image: x\n    logging: {driver: none}\n",
            4,
            "services.web.logging",
            "'logging' is not supported yet",
        ),
        (
            "services:\n  web:\n    image: x\n    deploy: {placement: {}}\n",
            4,
            "services.web.deploy.placement",
            "'placement' is not supported yet",
        ),
        (
            "services:\n  web:\n    image: x\n    build: {context: ., ssh: [default]}\n",
            4,
            "services.web.build.ssh",
            "'ssh' is not supported yet",
        ),
        (
            "include: [a.yaml]\nservices: {a: {image: x}}\n",
            1,
            "include",
            "'include' is not supported yet",
        ),
        ("bogus: 1\nservices: {a: {image: x}}\n", 1, "bogus", "unknown key 'bogus'"),
        ("services:\n  web:\n    image: 5\n", 3, "services.web.image", "must be a string, not 5"),
        (
            "services:\n  web:\n    image: x\n    tty: 'yes'\n",
            4,
            "services.web.tty",
            "must be true or false, not 'yes'",
        ),
        (
            "services:\n  web:\n    image: x\n    depends_on: {db: {condition: started}}\n",
            4,
            "services.web.depends_on.db.condition",
            "must be one of service_started, service_healthy, service_completed_successfully, not 'started'",
        ),
        (
            "services:\n  web:\n    image: x\n    depends_on: {db: {}}\n",
            4,
            "services.web.depends_on.db",
            "missing required key 'condition'",
        ),
        (
            "services:\n  web:\n    image: x\n    depends_on: {db: {condition: service_started, wat: 1}}\n",
            4,
            "services.web.depends_on.db.wat",
            "unknown key 'wat'",
        ),
        (
            "services:\n  web:\n    image: x\n    network_mode: container:abc\n",
            4,
            "services.web.network_mode",
            "must be none, host, bridge or service:NAME",
        ),
        (
            "services:\n  web:\n    image: x\n    working_dir: relative\n",
            4,
            "services.web.working_dir",
            "must be an absolute path",
        ),
        (
            "services:\n  'bad name':\n    image: x\n",
            2,
            "services.bad name",
            "is not a valid service name (letters, digits, '.', '_', '-')",
        ),
        (
            "services:\n  web:\n    image: x\n    volumes:\n      - {type: nfs, target: /x}\n",
            5,
            "services.web.volumes[0].type",
            "must be volume, bind or tmpfs",
        ),
        (
            "services:\n  web:\n    image: x\n    ports:\n      - {published: 80}\n",
            5,
            "services.web.ports[0]",
            "missing required key 'target'",
        ),
        (
            "services:\n  web:\n    image: x\n    cap_add: [A, A]\n",
            4,
            "services.web.cap_add",
            "contains the same entry twice",
        ),
        (
            "services:\n  web:\n    image: x\n    scale: -1\n",
            4,
            "services.web.scale",
            "must be at least 0",
        ),
        ("services: [a, b]\n", 1, "services", "must be a mapping, not a list"),
        (
            "services:\n  web:\n    image: x\nnetworks:\n  n: {driver: overlay}\n",
            5,
            "networks.n.driver",
            "only the bridge driver is supported",
        ),
        (
            "services:\n  web:\n    image: x\n    environment: {A: [1]}\n",
            4,
            "services.web.environment.A",
            "must be a string or a number or true or false, not a list",
        ),
    ],
)
def test_one_plain_error(fails: Fails, text: str, line: int, path: str, message: str) -> None:
    err = fails(text)
    assert (err.line, err.path, err.message) == (line, path, message), str(err)


def test_first_error_in_the_file_is_reported(fails: Fails) -> None:
    err = fails("services:\n  a:\n    image: x\n    foo: 1\n  b:\n    image: 2\n")
    assert err.path == "services.a.foo"


def test_version_is_ignored_with_a_notice(load: Any) -> None:
    stack = load("version: '3.8'\nservices: {a: {image: x}}\n")
    assert any("'version' key is obsolete" in w for w in stack.warnings)


def test_extension_keys_anywhere(load: Any) -> None:
    stack = load(
        """
        x-top: 1
        services:
          a:
            image: x
            x-svc: 2
            deploy: {x-d: 3, resources: {x-r: 4}}
            healthcheck: {test: x, x-h: 5}
        networks: {n: {x-n: 6}}
        volumes: {v: {x-v: 7}}
        """
    )
    assert stack.extensions["x-top"] == 1
    assert stack.services["a"].extensions["x-svc"] == 2


# -- the compiled fast path must agree with jsonschema -------------------------------------------


def _corpus_docs() -> list[Any]:
    directory = CORPUS / "awesome-compose"
    docs = [parse_yaml_text(p.read_text()).data for p in sorted(directory.glob("*.yaml"))]
    assert len(docs) >= 30, f"the compose corpus is missing from {directory}"
    docs.append(
        parse_yaml_text(
            (Path(__file__).parent / "test_convert.py")
            .read_text()
            .split('KITCHEN_SINK = f"""')[1]
            .split('"""')[0]
            .replace("{{", "{")
            .replace("}}", "}")
            .replace("{host_oci_platform()}", "linux/amd64")
        ).data
    )
    return docs


_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    "",
    "x",
    "80:80",
    [],
    ["a"],
    [1, 1],
    {},
    {"a": 1},
    {"x-a": 1},
    {"condition": "service_started"},
]


def _mutate(doc: Any, rng: random.Random) -> Any:
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        path: list[Any] = []
        node = doc
        while isinstance(node, (dict, list)) and node and rng.random() < 0.8:
            key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
            path.append(key)
            node = node[key]
        if not path:
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = rng.random()
        if action < 0.6:
            parent[path[-1]] = copy.deepcopy(rng.choice(_VALUES))
        elif action < 0.8 and isinstance(parent, dict):
            parent[
                rng.choice(["bogus", "x-ok", "image", "ports", "runtime", "target", "condition"])
            ] = copy.deepcopy(rng.choice(_VALUES))
        elif isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    return doc


def test_fast_check_agrees_with_jsonschema() -> None:
    check = compile_schema(schema.schema())
    reference = Draft202012Validator(schema.schema())
    docs = _corpus_docs()
    assert docs
    rng = random.Random(1234)
    disagreements = []
    count = 0
    per_doc = max(150, 1200 // len(docs))  # over a thousand even without the shared corpus
    for doc in docs:
        candidates = [doc] + [_mutate(doc, rng) for _ in range(per_doc)]
        for candidate in candidates:
            count += 1
            if check(candidate) != reference.is_valid(candidate):
                disagreements.append(json.dumps(candidate)[:300])
    assert not disagreements, disagreements[:3]
    assert count > 1000
