"""A healthcheck becomes a readiness probe.

Compose marks a container healthy or unhealthy and never restarts it for being unhealthy; what
depends on health is who may use it (``depends_on: service_healthy``). Readiness is that in
Kubernetes: a pod that is not ready gets no traffic through its Service, and the dependents'
init containers wait for it (:mod:`orchestrator.kube.waits`). A liveness probe would restart the
container, which Compose does not do, so none is written. Docker's defaults (30 s interval and
timeout, 3 retries) are written out: Kubernetes' own (10 s, 1 s, 3) would differ. During
``start_period`` failures do not count in Docker; a pod is not ready until its first success in
Kubernetes either, so the period needs no equivalent.
"""

from __future__ import annotations

from typing import Any

from orchestrator.kube.base import Context
from orchestrator.kube.quantity import seconds
from orchestrator.stack.model import HEALTHCHECK_DEFAULTS, Service


def readiness_probe(ctx: Context, service: Service) -> dict[str, Any] | None:
    check = service.healthcheck
    if check is None or check.disable or not check.test or check.test[0] == "NONE":
        return None
    if check.test[0] == "CMD-SHELL":
        command = ["/bin/sh", "-c", check.test[1]]
    else:
        command = list(check.test[1:])
    interval = check.interval_ns if check.interval_ns else HEALTHCHECK_DEFAULTS["interval_ns"]
    timeout = check.timeout_ns if check.timeout_ns else HEALTHCHECK_DEFAULTS["timeout_ns"]
    retries = check.retries if check.retries else HEALTHCHECK_DEFAULTS["retries"]
    if check.start_interval_ns is not None:
        ctx.notes.service(
            service.name,
            "healthcheck.start_interval",
            "has no equivalent: the probe runs every interval from the start",
        )
    return {
        "exec": {"command": command},
        "periodSeconds": seconds(interval),
        "timeoutSeconds": seconds(timeout),
        "failureThreshold": max(1, retries),
    }
