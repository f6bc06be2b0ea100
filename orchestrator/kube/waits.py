"""``depends_on`` (and ``links``, which order starts too) as init containers that wait.

Kubernetes starts every pod at once; an init container holds a pod's own container back until
it exits successfully, and restarts with a back-off while it fails. Each dependency gets one:

- ``service_started`` and ``service_healthy``: a small busybox container that waits until the
  dependency's Service answers. A ClusterIP Service only forwards to *ready* pods, and a pod is
  ready once its readiness probe (the stack's healthcheck, :mod:`orchestrator.kube.probes`)
  succeeds, or once it has started when it has none; so ``nc -z NAME PORT`` succeeding means
  "at least one pod is ready and listening". A dependency without ports has a headless Service,
  whose name resolves only while a pod is ready: the wait looks the name up (fully qualified,
  with the first search domain of the pod's resolv.conf, which is NAMESPACE.svc.CLUSTER-DOMAIN).
  ``service_started`` thus waits a little longer than in Compose (until the dependency
  listens), never less.
- ``service_completed_successfully``: the dependency is a Job, and nothing on the network says
  that a Job is done; the wait asks the API server with ``kubectl wait --for=condition=complete``
  from the Kubernetes project's own kubectl image. It needs a ServiceAccount allowed to read
  Jobs (a Role and RoleBinding, written once per stack); its token is mounted into the waiting
  init container only, never into the service's own container.
"""

from __future__ import annotations

from typing import Any

from orchestrator.kube import names
from orchestrator.kube.base import BUSYBOX_IMAGE, KUBECTL_IMAGE, Context, PodParts, make
from orchestrator.kube.services import ContainerPort
from orchestrator.stack.model import Condition, Service

TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "runAsGroup": 65534,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
_SMALL = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}}


def waiter_account(stack: str) -> str:
    return names.derived(names.dns_label(stack), "job-waiter")


def dependencies(service: Service) -> list[tuple[str, Condition, str]]:
    """(dependency, condition, stack key) for depends_on, then links not already there."""
    out: list[tuple[str, Condition, str]] = [
        (d.service, d.condition, f"depends_on.{d.service}") for d in service.depends_on
    ]
    seen = {d.service for d in service.depends_on}
    for i, link in enumerate(service.links):
        if link.service not in seen:
            seen.add(link.service)
            out.append((link.service, "service_started", f"links[{i}]"))
    return out


def init_containers(
    ctx: Context,
    service: Service,
    jobs: set[str],
    ports: dict[str, list[ContainerPort]],
    pod: PodParts,
) -> tuple[list[dict[str, Any]], bool]:
    """The waiting init containers of ``service``, and whether one of them reads the API."""
    out: list[dict[str, Any]] = []
    uses_api = False
    for dep, condition, key in dependencies(service):
        spec = next((d for d in service.depends_on if d.service == dep), None)
        if spec is not None and spec.restart:
            ctx.notes.service(
                service.name,
                f"{key}.restart",
                "restarting this service when its dependency restarts has no equivalent",
            )
        if dep not in ctx.service_names:
            ctx.notes.service(
                service.name,
                key,
                f"{dep!r} is not exported (not an active service); nothing waits for it",
            )
            continue
        target = ctx.name_of(dep)
        dep_service = ctx.stack.services[dep]
        if dep in jobs:
            if condition != "service_completed_successfully":
                ctx.notes.service(
                    service.name,
                    key,
                    f"{dep!r} runs as a Job (another service waits for it to complete), which "
                    f"has no Service to answer: {condition} is not waited for",
                )
                continue
            out.append(_job_wait(target, pod))
            uses_api = True
            continue
        if condition == "service_healthy" and (
            dep_service.healthcheck is None or dep_service.healthcheck.disable
        ):
            ctx.notes.service(
                service.name,
                key,
                f"service_healthy, but {dep!r} has no healthcheck in the stack (Kubernetes "
                "does not run an image's HEALTHCHECK): waits until it accepts connections",
            )
        tcp = [p for p in ports.get(dep, []) if p.protocol == "TCP"]
        if tcp:
            out.append(_port_wait(target, tcp[0].port))
        elif ports.get(dep):
            ctx.notes.service(
                service.name,
                key,
                f"{dep!r} has no TCP port to connect to: waits only for its name",
            )
            out.append(_name_wait(target))
        else:
            out.append(_name_wait(target))
    return out, uses_api


def _shell(name: str, script: str) -> dict[str, Any]:
    return {
        "name": names.derived("wait-for", name),
        "image": BUSYBOX_IMAGE,
        # $ doubled: Kubernetes would expand $(...) in a command itself.
        "command": ["sh", "-c", script.replace("$", "$$")],
        "resources": _SMALL,
        "securityContext": _RESTRICTED,
    }


def _port_wait(target: str, port: int) -> dict[str, Any]:
    return _shell(
        target,
        f"until nc -z -w 2 {target} {port}; do echo 'waiting for {target}:{port}'; sleep 2; done",
    )


def _name_wait(target: str) -> dict[str, Any]:
    return _shell(
        target,
        "domain=$(sed -n 's/^search *\\([^ ]*\\).*/\\1/p' /etc/resolv.conf); "
        f'until nslookup "{target}${{domain:+.$domain}}" >/dev/null 2>&1; '
        f"do echo 'waiting for {target} to be ready'; sleep 2; done",
    )


def _job_wait(target: str, pod: PodParts) -> dict[str, Any]:
    volume = pod.volume(
        "job-waiter-token",
        {
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                    {
                        "configMap": {
                            "name": "kube-root-ca.crt",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": "namespace",
                                    "fieldRef": {"fieldPath": "metadata.namespace"},
                                }
                            ]
                        }
                    },
                ]
            }
        },
    )
    return {
        "name": names.derived("wait-for", target),
        "image": KUBECTL_IMAGE,
        "command": [
            "kubectl",
            "wait",
            "--for=condition=complete",
            "--timeout=-1s",
            f"job/{target}",
        ],
        "resources": _SMALL,
        "securityContext": _RESTRICTED,
        "volumeMounts": [{"name": volume, "mountPath": TOKEN_DIR, "readOnly": True}],
    }


def waiter_rbac(ctx: Context) -> None:
    """The ServiceAccount that job waits use, allowed to read Jobs and nothing else."""
    name = waiter_account(ctx.stack.name)
    labels = names.stack_labels(ctx.stack.name)
    owner = "the job waits"
    ctx.add(
        make(
            "v1",
            "ServiceAccount",
            ctx.require("ServiceAccount", name, owner),
            labels,
            ctx.namespace,
        )
    )
    ctx.add(
        make(
            "rbac.authorization.k8s.io/v1",
            "Role",
            ctx.require("Role", name, owner),
            labels,
            ctx.namespace,
            rules=[
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]}
            ],
        )
    )
    subject: dict[str, Any] = {"kind": "ServiceAccount", "name": name}
    if ctx.namespace:
        subject["namespace"] = ctx.namespace
    ctx.add(
        make(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            ctx.require("RoleBinding", name, owner),
            labels,
            ctx.namespace,
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            subjects=[subject],
        )
    )
