"""Healthchecks, run by the supervisor inside the container (the runtime's enter job: a fresh
child of the fork server joins the container; nothing here forks).

Docker's rules: during ``start_period`` a failure does not count (checks every
``start_interval``); afterwards every ``interval``; a check that outlasts ``timeout`` fails;
``retries`` failures in a row make the container unhealthy, one success makes it healthy. The
service's ``healthcheck`` overrides the image's HEALTHCHECK field by field; ``disable`` (or a
test of ``NONE``) turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from orchestrator.stack.model import Healthcheck
from runtime.client import ExecRequest, RuntimeClient
from runtime.errors import Error

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"

# Docker's defaults (seconds).
INTERVAL, TIMEOUT, RETRIES, START_INTERVAL = 30.0, 30.0, 3, 5.0


@dataclass(frozen=True)
class Check:
    args: tuple[str, ...]  # what runs in the container
    interval: float = INTERVAL
    timeout: float = TIMEOUT
    retries: int = RETRIES
    start_period: float = 0.0
    start_interval: float = START_INTERVAL


def resolve(service: Healthcheck | None, image: Mapping[str, Any] | None) -> Check | None:
    """The check to run, from the service's healthcheck over the image's; None for none."""
    if service is not None and (service.disable or service.test[:1] == ("NONE",)):
        return None
    image = image or {}
    test = (
        tuple(service.test)
        if service is not None and service.test
        else tuple(image.get("Test") or ())
    )
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        args = test[1:]
    elif test[0] == "CMD-SHELL":
        args = ("/bin/sh", "-c", " ".join(test[1:]))
    else:  # a bare string in a stack file means a shell command
        args = ("/bin/sh", "-c", " ".join(test))
    if not args:
        return None

    def seconds(ns: int | None, key: str, default: float) -> float:
        if ns is not None:
            return ns / 1e9
        value = image.get(key)
        return value / 1e9 if isinstance(value, int) and value > 0 else default

    retries = service.retries if service is not None and service.retries is not None else None
    image_retries = image.get("Retries")
    return Check(
        args=args,
        interval=seconds(service.interval_ns if service else None, "Interval", INTERVAL),
        timeout=seconds(service.timeout_ns if service else None, "Timeout", TIMEOUT),
        retries=retries
        if retries is not None
        else (image_retries if isinstance(image_retries, int) and image_retries > 0 else RETRIES),
        start_period=seconds(service.start_period_ns if service else None, "StartPeriod", 0.0),
        start_interval=seconds(
            service.start_interval_ns if service else None, "StartInterval", START_INTERVAL
        ),
    )


async def run_check(
    client: RuntimeClient,
    container_id: str,
    check: Check,
    limiter: trio.CapacityLimiter | None = None,
) -> bool:
    """One check: True when the command exits 0 within the timeout. Its thread comes from
    ``limiter`` (one token per container: a check that hangs holds its thread until its command
    ends, and the next check of that container waits for it, failing at its own timeout, so
    that hung checks hold one thread per container and none of the supervisor's others)."""
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        with trio.move_on_after(check.timeout):
            try:
                request = ExecRequest(check.args)
                return (
                    await client.exec(container_id, request, (null, null, null), limiter=limiter)
                    == 0
                )
            except Error:
                return False
        return False  # timed out (the command goes on; its next check is another)
    finally:
        os.close(null)


async def monitor_health(
    client: RuntimeClient,
    container_id: str,
    check: Check,
    report: Callable[[str], Awaitable[None]],
) -> None:
    """Check forever (until cancelled), reporting each change of health."""
    started = trio.current_time()
    limiter = trio.CapacityLimiter(1)  # this container's checks, one at a time (run_check)
    status = STARTING
    await report(status)
    failures = 0
    while True:
        in_start_period = trio.current_time() - started < check.start_period
        await trio.sleep(
            check.start_interval if in_start_period and status == STARTING else check.interval
        )
        ok = await run_check(client, container_id, check, limiter)
        in_start_period = trio.current_time() - started < check.start_period
        if ok:
            failures = 0
            new = HEALTHY
        elif in_start_period and status == STARTING:
            continue  # failures in the start period do not count
        else:
            failures += 1
            new = UNHEALTHY if failures >= check.retries else status
        if new != status:
            status = new
            await report(status)
