"""A loaded stack to Kubernetes objects: the entry point that runs every translator in turn.

    result = export_stack(stack, ExportOptions(namespace="shop"), HostFiles())
    result.manifests   # in the order kubectl should create them
    result.notes       # what Kubernetes cannot keep, by stack key
    result.pushes      # images to push first (with --registry)

Pure: files are read through ``sources``; nothing is written here (:mod:`.output` writes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from orchestrator.errors import UserError
from orchestrator.kube import names
from orchestrator.kube.base import Context, ExportOptions, ExportResult, PodParts, Sources, make
from orchestrator.kube.container import main_container
from orchestrator.kube.data import file_objects, mount_file_refs
from orchestrator.kube.images import check_registry, cluster_image
from orchestrator.kube.networking import pod_network, stack_networks
from orchestrator.kube.policies import needed, pod_labels, service_networks, write_policies
from orchestrator.kube.services import (
    ContainerPort,
    container_ports,
    name_service,
    published_service,
    service_spec,
)
from orchestrator.kube.storage import mounts, persistent_volume_claims, volume_users
from orchestrator.kube.waits import init_containers, waiter_account, waiter_rbac
from orchestrator.kube.workloads import choose_kinds, pod_spec, restart_fields, workload
from orchestrator.stack.model import Service, Stack

# The order kubectl should create objects in (a pod waits for missing ConfigMaps and claims,
# but a namespace must exist before anything goes in it, and policies should hold before the
# pods they protect start).
KIND_ORDER = (
    "Namespace",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "NetworkPolicy",
    "Service",
    "StatefulSet",
    "Deployment",
    "Job",
)
_NAMESPACE_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def export_stack(stack: Stack, options: ExportOptions, sources: Sources) -> ExportResult:
    """Every object the stack becomes; raises UserError when names collide or an option is
    wrong."""
    namespace = options.namespace
    if namespace is not None and not (len(namespace) <= 63 and _NAMESPACE_RE.fullmatch(namespace)):
        raise UserError(
            f"--namespace {namespace!r} must be lowercase letters, digits and '-' (at most 63), "
            "starting and ending with a letter or digit"
        )
    registry = check_registry(options.registry) if options.registry is not None else None
    ctx = Context(stack, options, sources)
    if namespace:
        ctx.add(make("v1", "Namespace", namespace, names.stack_labels(stack.name), None))
    services = dict(stack.services)
    _name_services(ctx, services)
    for name in stack.disabled_services:
        ctx.notes.service(name, "profiles", "not an active profile: not exported (use --profile)")

    kinds = choose_kinds(services)
    jobs = {n for n, k in kinds.items() if k == "Job"}
    ports = {n: container_ports(s) for n, s in services.items()}
    persistent_volume_claims(ctx, volume_users(services.values()))
    secrets = file_objects(ctx, "secrets", {r.source for s in services.values() for r in s.secrets})
    configs = file_objects(ctx, "configs", {r.source for s in services.values() for r in s.configs})
    networks = service_networks(services)
    policies = needed(ctx, networks)
    stack_networks(ctx, policies)

    any_api = False
    for svc in services.values():
        name = ctx.name_of(svc.name)
        kind = kinds[svc.name]
        pod = PodParts()
        image = cluster_image(stack.name, svc, registry, ctx.notes, ctx.result.pushes)
        mount_file_refs(ctx, svc, "secrets", svc.secrets, secrets, pod)
        mount_file_refs(ctx, svc, "configs", svc.configs, configs, pod)
        mounts(ctx, svc, pod)
        init, uses_api = init_containers(ctx, svc, jobs, ports, pod)
        container = main_container(ctx, svc, name, image, ports[svc.name], pod)
        job_fields, restart = restart_fields(ctx, svc, kind)
        extra = {**pod_network(ctx, svc), **restart}
        if uses_api:
            any_api = True
            extra["serviceAccountName"] = waiter_account(stack.name)
        spec = pod_spec(ctx, svc, [container], init, pod, extra)
        labels = pod_labels(networks[svc.name]) if policies else {}
        workload(ctx, svc, name, kind, spec, job_fields, labels)
        selector = names.service_selector(stack.name, name)
        if kind == "Job":
            if ports[svc.name]:
                ctx.notes.service(
                    svc.name,
                    "ports" if svc.ports else "expose",
                    "a one-off service (a Job) gets no Service; its ports are not reachable "
                    "by name",
                )
            continue
        name_service(ctx, svc, name, service_spec(selector, ports[svc.name]))
        published_service(ctx, svc, name, selector)
    _aliases(ctx, services, kinds, ports)
    if any_api:
        waiter_rbac(ctx)
    if policies:
        write_policies(ctx, services, networks, ports, jobs)

    result = ctx.result
    result.manifests.sort(key=lambda m: (KIND_ORDER.index(m.kind), m.name))
    result.notes = ctx.notes.all()
    return result


def _name_services(ctx: Context, services: dict[str, Service]) -> None:
    for name in services:
        k8s = names.dns_label(name)
        ctx.require("Service", k8s, f"services.{name}")
        ctx.service_names[name] = k8s
        if k8s != name.lower():
            ctx.notes.service(
                name,
                "",
                f"becomes {k8s!r} in Kubernetes (a DNS label): other services must reach it "
                "by that name",
            )


def _aliases(
    ctx: Context,
    services: dict[str, Service],
    kinds: Mapping[str, str],
    ports: dict[str, list[ContainerPort]],
) -> None:
    """A Service for each other name a service is reached by: container_name, network
    aliases, and link aliases that other services give it."""
    wanted: list[tuple[str, str, str]] = []  # (alias, target service, stack key)
    for svc in services.values():
        if svc.container_name:
            wanted.append((svc.container_name, svc.name, f"services.{svc.name}.container_name"))
        for net in svc.networks:
            for alias in net.aliases:
                wanted.append((alias, svc.name, f"services.{svc.name}.networks.{net.name}.aliases"))
        for i, link in enumerate(svc.links):
            if link.alias != link.service and link.service in services:
                wanted.append((link.alias, link.service, f"services.{svc.name}.links[{i}]"))
    for alias, target, where in wanted:
        name = names.dns_label(alias)
        own = ctx.name_of(target)
        if name == own:
            continue
        if kinds[target] == "Job":
            ctx.notes.add(where, f"{alias!r} names a one-off service (a Job), which has no Service")
            continue
        if not ctx.claim("Service", name, f"services.{target}"):
            ctx.notes.add(
                where,
                f"the alias {alias!r} is already the name of {ctx.owner('Service', name)}; "
                "it is not kept",
            )
            continue
        if any(m.kind == "Service" and m.name == name for m in ctx.result.manifests):
            continue  # the same alias twice
        if name != alias.lower():
            ctx.notes.add(where, f"the alias {alias!r} becomes {name!r} (a DNS label)")
        selector = names.service_selector(ctx.stack.name, own)
        name_service(ctx, services[target], name, service_spec(selector, ports[target]))
