"""Plans as text: the desired stack against observed containers (no runtime, no root)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.stack import load_stack
from orchestrator.stack.model import Stack
from orchestrator.supervisor.plan import Observed, PlanOptions, make_plan

STACK = """
name: shop
services:
  db:
    image: busybox
  api:
    image: busybox
    depends_on:
      db: {condition: service_started, restart: true}
  web:
    image: busybox
    depends_on: [api]
    deploy: {replicas: 2}
"""


def _stack(tmp_path: Path, text: str = STACK) -> Stack:
    (tmp_path / "compose.yaml").write_text(text)
    return load_stack([tmp_path / "compose.yaml"])


def _running(stack: Stack, service: str, replica: int = 1, **changes: object) -> Observed:
    fields: dict[str, object] = {
        "id": f"{service}{replica}",
        "name": f"shop-{service}-{replica}",
        "service": service,
        "replica": replica,
        "config_hash": stack.services[service].config_hash if service in stack.services else "",
        "image_id": "sha256:a",
        "state": "running",
        "created": "2026-12-05T06:00:00Z",
    }
    fields.update(changes)
    return Observed(**fields)  # type: ignore[arg-type]


IMAGES = {"db": "sha256:a", "api": "sha256:a", "web": "sha256:a"}


def test_an_empty_project_is_created_in_dependency_order(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    plan = make_plan(stack, [], IMAGES)
    assert plan.text() == (
        "create db-1: no container\n"
        "create api-1: no container\n"
        "create web-1: no container\n"
        "create web-2: no container\n"
    )


def test_an_unchanged_project_needs_nothing(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    observed = [_running(stack, s) for s in ("db", "api")]
    observed += [_running(stack, "web", 1), _running(stack, "web", 2)]
    plan = make_plan(stack, observed, IMAGES)
    assert plan.empty and plan.text() == ""


def test_changes_recreate_only_what_changed_and_what_follows_it(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    observed = [
        _running(stack, "db", config_hash="old"),
        _running(stack, "api"),
        _running(stack, "web", 1, image_id="sha256:old"),
        _running(stack, "web", 2, state="exited", exit_code=1),
    ]
    plan = make_plan(stack, observed, IMAGES)
    assert plan.text() == (
        "recreate db-1: its configuration changed\n"
        "recreate web-1: its image changed\n"
        "start web-2: it is exited\n"
        "restart api-1: db is recreated (depends_on restart: true)\n"
    )
    kept = make_plan(stack, observed, IMAGES, PlanOptions(no_recreate=True))
    assert kept.text() == "start web-2: it is exited\n"


def test_scale_duplicates_and_orphans(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    observed = [
        _running(stack, "db"),
        _running(stack, "db", 1, id="db1-copy", name="shop-db-1", state="exited", created="2026"),
        _running(stack, "api"),
        _running(stack, "web", 1),
        _running(stack, "web", 2),
        _running(stack, "cache", 1, config_hash="x"),
    ]
    plan = make_plan(stack, observed, IMAGES, PlanOptions(scale={"web": 1}))
    assert plan.text() == (
        "remove db-1: a second container for this replica\n"
        "remove web-2: scaled to 1\n"
        "orphan shop-cache-1: service 'cache' is not in the stack\n"
    )
    assert [op.container for op in plan.operations] == ["db1-copy", "web2"]
    cleaned = make_plan(stack, observed, IMAGES, PlanOptions(scale={"web": 1}, remove_orphans=True))
    assert cleaned.text().endswith("remove cache-1: orphan: not in the stack\n")


def test_chosen_services_bring_their_dependencies(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    plan = make_plan(stack, [], IMAGES, PlanOptions(services=("api",)))
    assert plan.services == ("db", "api")
    alone = make_plan(stack, [], IMAGES, PlanOptions(services=("api",), no_deps=True))
    assert alone.text() == "create api-1: no container\n"


def test_force_recreate_and_a_creation_cut_short(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    observed = [_running(stack, "db", state="creating"), _running(stack, "api")]
    plan = make_plan(stack, observed, IMAGES, PlanOptions(services=("api",)))
    assert plan.text() == (
        "recreate db-1: its creation did not finish\n"
        "restart api-1: db is recreated (depends_on restart: true)\n"
    )
    forced = make_plan(
        stack, observed[1:], IMAGES, PlanOptions(services=("api",), force_recreate=True)
    )
    assert "recreate api-1: --force-recreate" in forced.text()
