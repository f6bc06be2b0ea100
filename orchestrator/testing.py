"""Aids for testing your own stacks' reconciliation, without root or containers.

    from orchestrator.testing import plan_text, running

    # What would `up` do against a project where only db runs, with an old config?
    text = plan_text("compose.yaml", [running("db", config_hash="old")])
    assert text == "recreate db-1: its configuration changed\\ncreate web-1: no container\\n"

``plan_text`` loads a stack file as ``up`` does and plans it against containers you describe
(``running``/``exited``); the plan is the same pure function the supervisor uses. For the
runtime side, ``FakeRuntime`` (runtime.testing) implements the supervisor's runtime client in
memory, with exits you script on trio's clock (``trio.testing.MockClock``), and
``orchestrator.backoff.RestartLoop`` runs restart policies against it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.backoff import Backoff, RestartLoop, decide
from orchestrator.stack import load_stack
from orchestrator.supervisor.plan import Observed, Plan, PlanOptions, make_plan
from runtime.testing import FakeRuntime

__all__ = [
    "Backoff",
    "FakeRuntime",
    "Observed",
    "Plan",
    "PlanOptions",
    "RestartLoop",
    "decide",
    "exited",
    "plan",
    "plan_text",
    "running",
]

_IMAGE = "sha256:test"


def running(service: str, replica: int = 1, *, config_hash: str = "", **fields: Any) -> Observed:
    """An existing, running container of ``service`` (its config hash: the stack's own unless
    given; set by ``plan``)."""
    values: dict[str, Any] = {
        "id": f"{service}-{replica}",
        "name": f"{service}-{replica}",
        "service": service,
        "replica": replica,
        "config_hash": config_hash,
        "image_id": _IMAGE,
        "state": "running",
    }
    values.update(fields)
    return Observed(**values)


def exited(service: str, replica: int = 1, exit_code: int = 0, **fields: Any) -> Observed:
    return running(service, replica, state="exited", exit_code=exit_code, **fields)


def plan(
    files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    observed: Iterable[Observed] = (),
    *,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> Plan:
    """The plan ``up`` would follow (``options``: PlanOptions' fields)."""
    paths = [files] if isinstance(files, (str, os.PathLike)) else list(files)
    stack = load_stack(paths, environ=environ or {})
    current = [
        o
        if o.config_hash or o.service not in stack.services
        else Observed(**{**o.__dict__, "config_hash": stack.services[o.service].config_hash})
        for o in observed
    ]
    return make_plan(stack, current, dict.fromkeys(stack.services, _IMAGE), PlanOptions(**options))


def plan_text(
    files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    observed: Iterable[Observed] = (),
    **options: Any,
) -> str:
    return plan(files, observed, **options).text()
