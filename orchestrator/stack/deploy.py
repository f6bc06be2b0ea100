"""How many containers a service runs, when they restart and what they may use: ``scale`` and
``deploy.replicas``, ``restart`` and ``deploy.restart_policy``, resource limits (``mem_limit``,
``cpus``... and ``deploy.resources``, which must agree when both are set), and ``ulimits``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal, TypeVar

from orchestrator.stack.context import Context
from orchestrator.stack.model import Resources, RestartPolicy, Ulimit
from orchestrator.stack.units import (
    ULIMITS,
    parse_cpus,
    parse_duration,
    parse_int,
    parse_restart,
    parse_size,
)
from orchestrator.stack.yamlsafe import PathKey

T = TypeVar("T")


def convert_replicas(ctx: Context, p: PathKey, raw: dict[str, Any]) -> int:
    scale = raw.get("scale")
    deploy = raw.get("deploy") or {}
    replicas = deploy.get("replicas")
    if scale is not None and replicas is not None and scale != replicas:
        raise ctx.error((*p, "scale"), f"scale ({scale}) and deploy.replicas ({replicas}) differ")
    value = scale if scale is not None else replicas
    return 1 if value is None else int(value)


_DEPLOY_CONDITION: dict[str, Literal["no", "on-failure", "always"]] = {
    "none": "no",
    "on-failure": "on-failure",
    "any": "always",
}


# A service's backoff knobs (an extension: Compose has none), and what each sets.
BACKOFF_KEY = "x-restart-backoff"
UNHEALTHY_KEY = "x-restart-on-unhealthy"  # the supervisor reads it (Docker has no such thing)
_BACKOFF_KNOBS = {
    "delay": "backoff_delay_ns",
    "max_delay": "backoff_max_ns",
    "reset_after": "backoff_reset_ns",
}


def convert_restart(ctx: Context, p: PathKey, raw: dict[str, Any]) -> RestartPolicy:
    policy = convert_restart_policy(ctx, p, raw)
    if not isinstance(raw.get(UNHEALTHY_KEY, False), bool):
        raise ctx.error((*p, UNHEALTHY_KEY), "must be true or false")
    knobs = raw.get(BACKOFF_KEY)
    if knobs is None:
        return policy
    where = (*p, BACKOFF_KEY)
    if not isinstance(knobs, dict):
        raise ctx.error(where, "must be a mapping of delay, max_delay and reset_after")
    values: dict[str, Any] = {}
    for key, value in knobs.items():
        field = _BACKOFF_KNOBS.get(key)
        if field is None:
            known = ", ".join(_BACKOFF_KNOBS)
            raise ctx.error((*where, key), f"is not a backoff setting (known: {known})")
        values[field] = ctx.parse((*where, key), parse_duration, value, key)
    delay = values.get("backoff_delay_ns")
    cap = values.get("backoff_max_ns")
    if delay is not None and cap is not None and cap < delay:
        raise ctx.error((*where, "max_delay"), "is shorter than delay")
    return replace(policy, **values)


def convert_restart_policy(ctx: Context, p: PathKey, raw: dict[str, Any]) -> RestartPolicy:
    policy = raw.get("restart")
    deploy_policy = (raw.get("deploy") or {}).get("restart_policy")
    result = (
        ctx.parse((*p, "restart"), parse_restart, policy) if policy is not None else RestartPolicy()
    )
    if deploy_policy is None:
        return result
    where = (*p, "deploy", "restart_policy")
    name = _DEPLOY_CONDITION[deploy_policy.get("condition", "any")]
    attempts = deploy_policy.get("max_attempts")
    delay = (
        ctx.parse((*where, "delay"), parse_duration, deploy_policy["delay"], "delay")
        if "delay" in deploy_policy
        else None
    )
    window = (
        ctx.parse((*where, "window"), parse_duration, deploy_policy["window"], "window")
        if "window" in deploy_policy
        else None
    )
    if policy is not None and result.name != name:
        raise ctx.error(
            (*p, "restart"), f"restart ({result.name}) and deploy.restart_policy ({name}) disagree"
        )
    if attempts is not None and name != "on-failure":
        raise ctx.error((*where, "max_attempts"), "only applies to condition on-failure")
    return RestartPolicy(
        name, attempts if attempts is not None else result.max_attempts, delay, window
    )


def _agree(
    ctx: Context, path: PathKey, what: str, a: T | None, b: T | None, other: str
) -> T | None:
    if a is not None and b is not None and a != b:
        raise ctx.error(path, f"{what} and {other} must be the same when both are set")
    return a if a is not None else b


def convert_resources(ctx: Context, p: PathKey, raw: dict[str, Any]) -> Resources:
    res = (raw.get("deploy") or {}).get("resources") or {}
    limits = res.get("limits") or {}
    reserve = res.get("reservations") or {}
    dr = (*p, "deploy", "resources")

    def size(path: PathKey, value: Any, what: str) -> int | None:
        return None if value is None else ctx.parse(path, parse_size, value, what)

    def cpus(path: PathKey, value: Any, what: str) -> float | None:
        return None if value is None else ctx.parse(path, parse_cpus, value, what)

    memory = _agree(
        ctx,
        (*p, "mem_limit"),
        "mem_limit",
        size((*p, "mem_limit"), raw.get("mem_limit"), "mem_limit"),
        size((*dr, "limits", "memory"), limits.get("memory"), "memory"),
        "deploy.resources.limits.memory",
    )
    reservation = _agree(
        ctx,
        (*p, "mem_reservation"),
        "mem_reservation",
        size((*p, "mem_reservation"), raw.get("mem_reservation"), "mem_reservation"),
        size((*dr, "reservations", "memory"), reserve.get("memory"), "memory"),
        "deploy.resources.reservations.memory",
    )
    cpu_limit = _agree(
        ctx,
        (*p, "cpus"),
        "cpus",
        cpus((*p, "cpus"), raw.get("cpus"), "cpus"),
        cpus((*dr, "limits", "cpus"), limits.get("cpus"), "cpus"),
        "deploy.resources.limits.cpus",
    )
    pids_value = raw.get("pids_limit")
    pids = (
        None
        if pids_value is None
        else ctx.parse((*p, "pids_limit"), parse_int, pids_value, "pids_limit", -1)
    )
    pids = _agree(
        ctx,
        (*p, "pids_limit"),
        "pids_limit",
        pids,
        None
        if limits.get("pids") is None
        else ctx.parse((*dr, "limits", "pids"), parse_int, limits["pids"], "pids", -1),
        "deploy.resources.limits.pids",
    )
    swap_value = raw.get("memswap_limit")
    swap: int | None = None
    if swap_value in (-1, "-1"):
        swap = -1
    elif swap_value is not None:
        swap = ctx.parse((*p, "memswap_limit"), parse_size, swap_value, "memswap_limit")
        if memory is None:
            raise ctx.error((*p, "memswap_limit"), "needs a memory limit (mem_limit) too")
        if swap < memory:
            raise ctx.error(
                (*p, "memswap_limit"),
                "must be at least the memory limit (it counts memory plus swap)",
            )
    if memory is not None and reservation is not None and reservation > memory:
        raise ctx.error((*p, "mem_reservation"), "must not be more than the memory limit")

    def integer(key: str, lo: int, hi: int) -> int | None:
        value = raw.get(key)
        return None if value is None else ctx.parse((*p, key), parse_int, value, key, lo, hi)

    shares = integer("cpu_shares", 0, 262144)
    if shares == 1:
        raise ctx.error((*p, "cpu_shares"), "must be 0 (the default) or at least 2")
    quota = integer("cpu_quota", -1, 2**62)
    if quota is not None and 0 <= quota < 1000:
        raise ctx.error(
            (*p, "cpu_quota"), "must be at least 1000 (microseconds), or -1 for no limit"
        )
    shm = raw.get("shm_size")
    return Resources(
        memory_limit=memory,
        memory_reservation=reservation,
        memswap_limit=swap,
        cpus=cpu_limit,
        cpu_reservation=cpus((*dr, "reservations", "cpus"), reserve.get("cpus"), "cpus"),
        cpu_shares=shares,
        cpu_quota=quota,
        cpu_period=integer("cpu_period", 1000, 1_000_000),
        cpuset=raw.get("cpuset"),
        pids_limit=pids,
        shm_size=None if shm is None else ctx.parse((*p, "shm_size"), parse_size, shm, "shm_size"),
    )


def convert_ulimits(ctx: Context, path: PathKey, value: dict[str, Any]) -> tuple[Ulimit, ...]:
    out = []
    for name, spec in value.items():
        where = (*path, name)
        if name not in ULIMITS:
            raise ctx.error(where, f"unknown ulimit '{name}' (one of {', '.join(sorted(ULIMITS))})")
        soft, hard = (spec, spec) if isinstance(spec, int) else (spec["soft"], spec["hard"])
        for v in (soft, hard):
            if v < -1:
                raise ctx.error(where, "a ulimit must be -1 (unlimited) or more")
        if hard != -1 and (soft == -1 or soft > hard):
            raise ctx.error(where, f"soft limit {soft} is above the hard limit {hard}")
        out.append(Ulimit(name, soft, hard))
    return tuple(out)
