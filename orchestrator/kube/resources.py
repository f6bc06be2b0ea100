"""Resource limits and reservations: ``limits`` and ``requests`` of the container where
Kubernetes has them, a warning for each that it has not (swap, CPU shares and sets, pids,
ulimits). ``shm_size`` is a memory-backed volume at /dev/shm (:mod:`orchestrator.kube.storage`).
"""

from __future__ import annotations

from typing import Any

from orchestrator.kube.base import Context
from orchestrator.kube.quantity import cpu_quantity, memory_quantity
from orchestrator.stack.model import Service


def container_resources(ctx: Context, service: Service) -> dict[str, Any]:
    r = service.resources
    note = ctx.notes.service
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    cpus = r.cpus
    if cpus is None and r.cpu_quota is not None and r.cpu_quota > 0:
        cpus = r.cpu_quota / (r.cpu_period or 100_000)
    elif r.cpu_period is not None and r.cpu_quota is None:
        note(service.name, "cpu_period", "has no equivalent without cpu_quota; not kept")
    if cpus is not None:
        limits["cpu"] = cpu_quantity(cpus)
    if r.memory_limit is not None:
        limits["memory"] = memory_quantity(r.memory_limit)
    if r.cpu_reservation is not None:
        reserved = r.cpu_reservation
        if cpus is not None and reserved > cpus:
            note(
                service.name,
                "deploy.resources.reservations.cpus",
                "is more than the CPU limit, which Kubernetes refuses; the limit is requested",
            )
            reserved = cpus
        requests["cpu"] = cpu_quantity(reserved)
    if r.memory_reservation is not None:
        requests["memory"] = memory_quantity(r.memory_reservation)
    if r.memswap_limit is not None and r.memswap_limit != r.memory_limit:
        note(
            service.name,
            "memswap_limit",
            "swap has no per-container equivalent (the node's swap behaviour applies)",
        )
    if r.cpu_shares is not None:
        note(
            service.name,
            "cpu_shares",
            "relative CPU weights have no equivalent; use deploy.resources.reservations.cpus "
            "(a CPU request)",
        )
    if r.cpuset is not None:
        note(
            service.name,
            "cpuset",
            "pinning to CPUs has no equivalent (only the kubelet's static CPU manager pins)",
        )
    if r.pids_limit is not None and r.pids_limit > 0:
        note(
            service.name,
            "pids_limit",
            "has no per-container equivalent (the kubelet's podPidsLimit is per node)",
        )
    for u in service.ulimits:
        note(service.name, f"ulimits.{u.name}", "ulimits have no equivalent; not kept")
    out: dict[str, Any] = {}
    if limits:
        out["limits"] = limits
    if requests:
        out["requests"] = requests
    return out
