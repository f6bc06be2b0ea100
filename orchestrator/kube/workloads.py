"""Which workload runs a service, and its pod.

- a **Job** for a one-off service: one that another service waits for with
  ``service_completed_successfully`` (the stack's only sure sign that it is meant to finish);
- a **StatefulSet** for a service with one replica that mounts named volumes: it never runs two
  pods at once, so a ReadWriteOnce claim is never wanted by two pods during an update;
- a **Deployment** for every other service.

Restart policies: a Deployment's or StatefulSet's containers always restart, so ``no`` and
``on-failure`` there are warnings; a Job retries on failure (``on-failure``), or not at all
(``no``).
"""

from __future__ import annotations

from typing import Any, Literal

from orchestrator.kube import names
from orchestrator.kube.base import Context, PodParts, make, split_labels
from orchestrator.kube.quantity import seconds
from orchestrator.kube.security import pod_sysctls
from orchestrator.stack.model import Service

Kind = Literal["Deployment", "StatefulSet", "Job"]
DEFAULT_JOB_RETRIES = 6  # Kubernetes' own backoffLimit


def choose_kinds(services: dict[str, Service]) -> dict[str, Kind]:
    jobs = {
        d.service
        for s in services.values()
        for d in s.depends_on
        if d.condition == "service_completed_successfully"
    }
    kinds: dict[str, Kind] = {}
    for name, svc in services.items():
        if name in jobs:
            kinds[name] = "Job"
        elif svc.replicas == 1 and any(m.type == "volume" and m.source for m in svc.volumes):
            kinds[name] = "StatefulSet"
        else:
            kinds[name] = "Deployment"
    return kinds


def restart_fields(
    ctx: Context, service: Service, kind: Kind
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(fields of the Job spec, fields of the pod spec) for the restart policy."""
    r = service.restart
    note = ctx.notes.service
    if r.delay_ns is not None or r.window_ns is not None:
        note(
            service.name,
            "deploy.restart_policy",
            "delay and window have no equivalent: Kubernetes restarts with its own back-off",
        )
    if (r.backoff_delay_ns, r.backoff_max_ns, r.backoff_reset_ns) != (None, None, None):
        note(
            service.name,
            "x-restart-backoff",
            "has no equivalent: Kubernetes restarts with its own back-off (10 s doubling to 5 min)",
        )
    if kind != "Job":
        if r.name == "no":
            note(
                service.name,
                "restart",
                "'no' (the default): Kubernetes restarts the containers of a long-running "
                f"service whenever they exit, and the {kind} will",
            )
        elif r.name == "on-failure":
            note(
                service.name,
                "restart",
                "on-failure: Kubernetes restarts a long-running service's containers after "
                "any exit, also a successful one, and without a limit",
            )
        return {}, {}
    if r.name == "no":
        return {"backoffLimit": 0}, {"restartPolicy": "Never"}
    if r.name == "on-failure":
        limit = r.max_attempts
        if limit is None:
            limit = DEFAULT_JOB_RETRIES
            note(
                service.name,
                "restart",
                f"on-failure without a limit: the Job gives up after {limit} retries",
            )
        return {"backoffLimit": limit}, {"restartPolicy": "OnFailure"}
    note(
        service.name,
        "restart",
        f"{r.name}: a Job's container is not restarted once it succeeds (the Job is done); "
        f"it is retried on failure up to {DEFAULT_JOB_RETRIES} times",
    )
    return {"backoffLimit": DEFAULT_JOB_RETRIES}, {"restartPolicy": "OnFailure"}


def pod_spec(
    ctx: Context,
    service: Service,
    containers: list[dict[str, Any]],
    init: list[dict[str, Any]],
    pod: PodParts,
    extra: dict[str, Any],
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if init:
        spec["initContainers"] = init
    spec["containers"] = containers
    spec.update(extra)
    # Compose containers get no API token, and no variables for every other service.
    spec["enableServiceLinks"] = False
    spec.setdefault("automountServiceAccountToken", False)
    if service.init:
        # The pause container is PID 1 of a shared PID namespace and reaps orphans, as init does.
        spec["shareProcessNamespace"] = True
    if service.stop_grace_period_ns is not None:
        spec["terminationGracePeriodSeconds"] = seconds(service.stop_grace_period_ns, 0)
    sysctls = pod_sysctls(ctx, service)
    if sysctls:
        spec["securityContext"] = {"sysctls": sysctls}
    if service.stop_signal is not None and any("lifecycle" in c for c in containers):
        spec["os"] = {"name": "linux"}  # Kubernetes takes a stop signal only with it
    if service.platform is not None:
        os_name, _, rest = service.platform.lower().partition("/")
        arch = rest.partition("/")[0]
        selector = {"kubernetes.io/os": os_name}
        if arch:
            selector["kubernetes.io/arch"] = arch
        spec["nodeSelector"] = selector
        if rest.count("/"):
            ctx.notes.service(
                service.name,
                "platform",
                f"the variant in {service.platform!r} has no node label; only OS and "
                "architecture select nodes",
            )
    if pod.volumes:
        spec["volumes"] = pod.volumes
    return spec


def workload(
    ctx: Context,
    service: Service,
    name: str,
    kind: Kind,
    pod: dict[str, Any],
    job_fields: dict[str, Any],
    pod_labels: dict[str, str],
) -> None:
    selector = names.service_selector(ctx.stack.name, name)
    ours = names.service_labels(ctx.stack.name, name)
    user_labels, annotations, rejected = split_labels(dict(service.labels), ours)
    for key in rejected:
        ctx.notes.service(
            service.name, "labels", f"{key!r} is neither a label nor an annotation key; left out"
        )
    labels = {**user_labels, **ours}
    template: dict[str, Any] = {"metadata": {"labels": {**labels, **pod_labels}}}
    if annotations:
        template["metadata"]["annotations"] = annotations
    template["spec"] = pod
    if kind == "Job":
        spec: dict[str, Any] = {}
        if service.replicas != 1:
            spec["completions"] = service.replicas
            spec["parallelism"] = service.replicas
        spec.update(job_fields)
        spec["template"] = template
    else:
        spec = {"replicas": service.replicas}
        if kind == "StatefulSet":
            spec["serviceName"] = name
        spec["selector"] = {"matchLabels": selector}
        spec["template"] = template
    api = "batch/v1" if kind == "Job" else "apps/v1"
    ctx.add(make(api, kind, name, labels, ctx.namespace, annotations=annotations, spec=spec))
