"""The dependency graph: edges, missing services, cycles, layers, start and stop order."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import StackError
from orchestrator.stack import DependencyGraph, DependsOn, FrozenMap, Link, Service, VolumesFrom

from .conftest import Load

Fails = Callable[..., StackError]


def test_layers_from_every_kind_of_edge(load: Load) -> None:
    stack = load(
        """
        services:
          db: {image: x}
          cache: {image: x}
          api: {image: x, depends_on: [db], links: ["cache:redis"]}
          data: {image: x}
          worker: {image: x, volumes_from: [data], depends_on: {api: {condition: service_healthy}}}
          sidecar: {image: x, network_mode: "service:api"}
          web: {image: x, depends_on: [api, worker]}
        """
    )
    graph = DependencyGraph.from_services(stack.services)
    assert graph.layers() == (("cache", "data", "db"), ("api",), ("sidecar", "worker"), ("web",))
    assert graph.start_order() == ("cache", "data", "db", "api", "sidecar", "worker", "web")
    assert graph.stop_layers() == (
        ("web",),
        ("sidecar", "worker"),
        ("api",),
        ("cache", "data", "db"),
    )
    assert graph.stop_order()[0] == "web" and graph.stop_order()[-1] == "db"
    assert {(e.service, e.dependency, e.kind) for e in graph.edges} == {
        ("api", "db", "depends_on"),
        ("api", "cache", "links"),
        ("worker", "data", "volumes_from"),
        ("worker", "api", "depends_on"),
        ("sidecar", "api", "network_mode"),
        ("web", "api", "depends_on"),
        ("web", "worker", "depends_on"),
    }
    assert graph.dependencies("worker") == ("api", "data")
    assert set(graph.dependents("api")) == {"worker", "sidecar", "web"}
    assert graph.closure(["worker"]) == ("cache", "data", "db", "api", "worker")
    assert graph.closure(["sidecar"]) == ("cache", "db", "api", "sidecar")


@pytest.mark.parametrize(
    ("key", "path", "verb"),
    [
        ("depends_on: [ghost]", "services.a.depends_on.ghost", "depends on"),
        ("links: [ghost]", "services.a.links[0]", "links to"),
        ("volumes_from: [ghost]", "services.a.volumes_from[0]", "takes volumes from"),
        ("network_mode: 'service:ghost'", "services.a.network_mode", "uses the network of"),
    ],
)
def test_missing_service_is_named(fails: Fails, key: str, path: str, verb: str) -> None:
    err = fails(f"services:\n  a:\n    image: x\n    {key}\n")
    assert err.path == path
    assert err.message == f"service 'a' {verb} undefined service 'ghost'"
    assert err.line == 4


def test_volumes_from_a_container_is_not_an_edge(load: Load) -> None:
    stack = load("services: {a: {image: x, volumes_from: ['container:ext']}}")
    assert DependencyGraph.from_services(stack.services).edges == []


def test_cycle_names_the_whole_cycle(fails: Fails) -> None:
    err = fails(
        """
        services:
          a: {image: x, depends_on: [b]}
          b: {image: x, links: [c]}
          c: {image: x, volumes_from: [a]}
          d: {image: x, depends_on: [a]}
        """
    )
    assert err.message == "dependency cycle: a -> b -> c -> a"
    assert err.path == "services.a" and err.line == 3


def test_self_dependency_is_a_cycle(fails: Fails) -> None:
    assert fails("services: {a: {image: x, depends_on: [a]}}").message == "dependency cycle: a -> a"


def test_optional_dependency_on_a_missing_service_is_dropped(load: Load) -> None:
    stack = load(
        "services: {a: {image: x, depends_on: {ghost: {condition: service_started, required: false}}}}"
    )
    assert DependencyGraph.from_services(stack.services).layers() == (("a",),)


def test_dependency_on_a_disabled_service(fails: Fails, load: Load) -> None:
    text = "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, profiles: [extra]}\n"
    err = fails(text)
    assert "not enabled by the active profiles" in err.message
    assert list(load(text, profiles=["extra"]).services) == ["a", "b"]


def _svc(name: str, deps: list[str]) -> Service:
    return Service(name, image="x", depends_on=tuple(DependsOn(d) for d in deps))


def test_long_chain_needs_no_recursion() -> None:
    n = 20_000
    services = FrozenMap({f"s{i}": _svc(f"s{i}", [f"s{i - 1}"] if i else []) for i in range(n)})
    start = time.perf_counter()
    graph = DependencyGraph.from_services(services)
    assert len(graph.layers()) == n
    assert time.perf_counter() - start < 2.0


def test_long_cycle_is_found() -> None:
    n = 5000
    services = FrozenMap({f"s{i}": _svc(f"s{i}", [f"s{(i + 1) % n}"]) for i in range(n)})
    with pytest.raises(StackError) as info:
        DependencyGraph.from_services(services)
    assert info.value.message.count("->") == n


def test_other_edges_directly() -> None:
    services = FrozenMap(
        {
            "a": Service("a", image="x"),
            "b": Service(
                "b", image="x", links=(Link("a", "alias"),), volumes_from=(VolumesFrom("a"),)
            ),
        }
    )
    graph = DependencyGraph.from_services(services)
    assert graph.layers() == (("a",), ("b",))
    assert graph.dependencies("b") == ("a",)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 11), max_size=4), min_size=1, max_size=12))
def test_layers_respect_every_edge(adjacency: list[list[int]]) -> None:
    n = len(adjacency)
    services = FrozenMap(
        {
            f"s{i}": _svc(f"s{i}", sorted({f"s{j % n}" for j in deps}))
            for i, deps in enumerate(adjacency)
        }
    )
    try:
        graph = DependencyGraph.from_services(services)
    except StackError as exc:
        # A reported cycle must be a real cycle of the graph.
        names = exc.message.removeprefix("dependency cycle: ").split(" -> ")
        assert names[0] == names[-1]
        for a, b in itertools.pairwise(names):
            assert b in {d.service for d in services[a].depends_on}
        return
    position = {name: i for i, layer in enumerate(graph.layers()) for name in layer}
    assert set(position) == set(services)
    for name, svc in services.items():
        for dep in svc.depends_on:
            assert position[dep.service] < position[name]
    # Each service sits in the earliest layer its dependencies allow.
    for name, svc in services.items():
        expected = max((position[d.service] + 1 for d in svc.depends_on), default=0)
        assert position[name] == expected
