"""The dependency graph of a stack's services: start order, parallelism, stop order.

    graph = DependencyGraph.from_services(stack.services, locator)
    graph.layers()       # (("db", "redis"), ("api",), ("web",)): each layer may start in parallel
    graph.stop_layers()  # the same, reversed

Edges come from ``depends_on``, ``links``, ``volumes_from`` (services, not containers) and
``network_mode: service:X``. A missing service is an error that names it; a cycle is an error that
names the whole cycle (``a -> b -> c -> a``). Layers are computed with Kahn's algorithm, names
sorted inside a layer so the order is stable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.errors import StackError
from orchestrator.stack.model import Service
from orchestrator.stack.yamlsafe import Locator, PathKey


@dataclass(frozen=True, slots=True)
class Edge:
    """``service`` needs ``dependency`` first; ``kind`` says why (depends_on, links...)."""

    service: str
    dependency: str
    kind: str


class DependencyGraph:
    def __init__(self, nodes: list[str], edges: list[Edge]) -> None:
        self.nodes = sorted(nodes)
        self.edges = edges
        self.needs: dict[str, list[str]] = {n: [] for n in self.nodes}
        self.needed_by: dict[str, list[str]] = {n: [] for n in self.nodes}
        for e in edges:
            if e.dependency not in self.needs[e.service]:
                self.needs[e.service].append(e.dependency)
                self.needed_by[e.dependency].append(e.service)
        self._layers: tuple[tuple[str, ...], ...] | None = None

    @classmethod
    def from_services(
        cls,
        services: Mapping[str, Service],
        locator: Locator | None = None,
        disabled: Mapping[str, object] | None = None,
    ) -> DependencyGraph:
        """Build the graph; raise :class:`StackError` for a missing service or a cycle.

        ``disabled`` names services that exist but are not active (profiles): depending on one
        is an error unless the dependency is ``required: false``, which is then dropped."""
        loc = locator or Locator()
        edges: list[Edge] = []
        for name, svc in services.items():
            for dep in svc.depends_on:
                path: PathKey = ("services", name, "depends_on", dep.service)
                if _check(
                    loc, services, disabled, name, dep.service, path, "depends on", dep.required
                ):
                    edges.append(Edge(name, dep.service, "depends_on"))
            for i, link in enumerate(svc.links):
                path = ("services", name, "links", i)
                if _check(loc, services, disabled, name, link.service, path, "links to", True):
                    edges.append(Edge(name, link.service, "links"))
            for i, vf in enumerate(svc.volumes_from):
                if vf.kind != "service":
                    continue
                path = ("services", name, "volumes_from", i)
                if _check(
                    loc, services, disabled, name, vf.source, path, "takes volumes from", True
                ):
                    edges.append(Edge(name, vf.source, "volumes_from"))
            mode = svc.network_mode or ""
            if mode.startswith("service:"):
                target = mode.removeprefix("service:")
                path = ("services", name, "network_mode")
                if _check(loc, services, disabled, name, target, path, "uses the network of", True):
                    edges.append(Edge(name, target, "network_mode"))
        graph = cls(list(services), edges)
        cycle = graph.find_cycle()
        if cycle:
            first = cycle[0]
            raise loc.error(
                ("services", first), "dependency cycle: " + " -> ".join([*cycle, first])
            )
        return graph

    def find_cycle(self) -> list[str] | None:
        """One cycle as a list of names (``[a, b, c]`` for a -> b -> c -> a), or None.
        Iterative depth-first search, so a long chain cannot exhaust the Python stack."""
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        for root in self.nodes:
            if state.get(root):
                continue
            path: list[str] = [root]
            iters = [iter(self.needs[root])]
            state[root] = 1
            while iters:
                nxt = next(iters[-1], None)
                if nxt is None:
                    state[path.pop()] = 2
                    iters.pop()
                    continue
                s = state.get(nxt, 0)
                if s == 1:
                    return path[path.index(nxt) :]
                if s == 0:
                    state[nxt] = 1
                    path.append(nxt)
                    iters.append(iter(self.needs[nxt]))
        return None

    def layers(self) -> tuple[tuple[str, ...], ...]:
        """Start order: each layer needs only earlier layers, so its services may start together."""
        if self._layers is None:
            remaining = {n: len(self.needs[n]) for n in self.nodes}
            layer = sorted(n for n, count in remaining.items() if count == 0)
            out: list[tuple[str, ...]] = []
            while layer:
                out.append(tuple(layer))
                following: set[str] = set()
                for n in layer:
                    for dependent in self.needed_by[n]:
                        remaining[dependent] -= 1
                        if remaining[dependent] == 0:
                            following.add(dependent)
                layer = sorted(following)
            if sum(len(x) for x in out) != len(self.nodes):  # pragma: no cover - cycles raise first
                raise StackError("dependency cycle")
            self._layers = tuple(out)
        return self._layers

    def start_order(self) -> tuple[str, ...]:
        return tuple(n for layer in self.layers() for n in layer)

    def stop_layers(self) -> tuple[tuple[str, ...], ...]:
        """Stop order: dependents before what they depend on."""
        return tuple(reversed(self.layers()))

    def stop_order(self) -> tuple[str, ...]:
        return tuple(n for layer in self.stop_layers() for n in layer)

    def dependencies(self, name: str) -> tuple[str, ...]:
        return tuple(self.needs[name])

    def dependents(self, name: str) -> tuple[str, ...]:
        return tuple(self.needed_by[name])

    def closure(self, names: list[str]) -> tuple[str, ...]:
        """``names`` and everything they need, in start order (for ``up web``)."""
        want: set[str] = set()
        todo = list(names)
        while todo:
            n = todo.pop()
            if n not in want:
                want.add(n)
                todo += self.needs[n]
        return tuple(n for n in self.start_order() if n in want)


def _check(
    loc: Locator,
    services: Mapping[str, Service],
    disabled: Mapping[str, object] | None,
    name: str,
    target: str,
    path: PathKey,
    verb: str,
    required: bool,
) -> bool:
    if target in services:
        return True
    if not required:
        return False
    if disabled and target in disabled:
        raise loc.error(
            path,
            f"service '{name}' {verb} service '{target}', which is not enabled by the active profiles",
        )
    raise loc.error(path, f"service '{name}' {verb} undefined service '{target}'")
