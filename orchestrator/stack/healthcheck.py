"""A service's ``healthcheck`` to the model: the test, checked as Compose checks it, and its
durations, parsed with the grammar Dockerfile ``HEALTHCHECK`` flags use too
(:mod:`orchestrator.durations`).
"""

from __future__ import annotations

from typing import Any

from orchestrator.stack.context import Context
from orchestrator.stack.model import Healthcheck
from orchestrator.stack.units import parse_duration
from orchestrator.stack.yamlsafe import PathKey


def convert_healthcheck(ctx: Context, path: PathKey, value: Any) -> Healthcheck | None:
    if value is None:
        return None
    test = value.get("test")
    disable = bool(value.get("disable", False))
    if disable:
        if test is not None and test != ["NONE"]:
            raise ctx.error((*path, "test"), "cannot be set together with disable: true")
        return Healthcheck(test=("NONE",), disable=True)
    words: tuple[str, ...] = ()
    if isinstance(test, str):
        words = ("CMD-SHELL", test)
    elif isinstance(test, list):
        if not test:
            raise ctx.error((*path, "test"), "is empty")
        if test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise ctx.error(
                (*path, "test"), f"must start with CMD, CMD-SHELL or NONE, not {test[0]!r}"
            )
        if test[0] == "CMD-SHELL" and len(test) != 2:
            raise ctx.error((*path, "test"), "CMD-SHELL takes exactly one command line")
        if test[0] == "CMD" and len(test) < 2:
            raise ctx.error((*path, "test"), "CMD needs a command")
        words = tuple(test)
    if words[:1] == ("NONE",):
        return Healthcheck(test=("NONE",), disable=True)

    def duration(key: str) -> int | None:
        if key not in value:
            return None
        return ctx.parse((*path, key), parse_duration, value[key], key)

    return Healthcheck(
        test=words,
        interval_ns=duration("interval"),
        timeout_ns=duration("timeout"),
        retries=value.get("retries"),
        start_period_ns=duration("start_period"),
        start_interval_ns=duration("start_interval"),
    )
