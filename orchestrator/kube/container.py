"""A service's own container: image, command, environment, ports, resources, readiness,
security, mounts, terminal, stop signal."""

from __future__ import annotations

from typing import Any

from orchestrator.kube.base import Context, PodParts
from orchestrator.kube.data import environment
from orchestrator.kube.probes import readiness_probe
from orchestrator.kube.resources import container_resources
from orchestrator.kube.security import container_security
from orchestrator.kube.services import ContainerPort
from orchestrator.stack.model import DEFAULT_STOP_SIGNAL, Service


def escape(words: tuple[str, ...]) -> list[str]:
    """Words as Kubernetes must be given them to run them unchanged: it expands ``$(VAR)`` in
    a command and its arguments, and ``$$`` is how a ``$`` is written."""
    return [w.replace("$", "$$") for w in words]


def main_container(
    ctx: Context,
    service: Service,
    name: str,
    image: str,
    ports: list[ContainerPort],
    pod: PodParts,
) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": image}
    # Compose's entrypoint is Kubernetes' command, Compose's command its args; either one set
    # replaces the image's CMD, in both. An empty list means "unset" to Kubernetes.
    entrypoint, command = service.entrypoint, service.command
    if entrypoint == ():
        # Cleared: the command runs as the program, which Kubernetes says with `command`. With
        # no command, the image's CMD would run alone, and only the image knows it.
        if not command:
            ctx.notes.service(
                service.name,
                "entrypoint",
                "an empty entrypoint with no command cannot clear the image's ENTRYPOINT in "
                "Kubernetes (write the image's CMD as the command)",
            )
        entrypoint, command = command, None
    if command == ():
        ctx.notes.service(
            service.name, "command", "an empty command cannot clear the image's CMD in Kubernetes"
        )
    if entrypoint:
        c["command"] = escape(entrypoint)
    if command:
        c["args"] = escape(command)
    if service.working_dir:
        c["workingDir"] = service.working_dir
    env_from, env = environment(ctx, service, name)
    if env_from:
        c["envFrom"] = env_from
    if env:
        c["env"] = env
    if ports:
        c["ports"] = [
            {"name": p.name, "containerPort": p.port, "protocol": p.protocol} for p in ports
        ]
    resources = container_resources(ctx, service)
    if resources:
        c["resources"] = resources
    probe = readiness_probe(ctx, service)
    if probe:
        c["readinessProbe"] = probe
    security = container_security(ctx, service)
    if security:
        c["securityContext"] = security
    if pod.mounts:
        c["volumeMounts"] = pod.mounts
    if service.tty:
        c["tty"] = True
    if service.stdin_open:
        c["stdin"] = True
    if service.stop_signal is not None and service.stop_signal != DEFAULT_STOP_SIGNAL:
        c["lifecycle"] = {"stopSignal": service.stop_signal}
        ctx.notes.service(
            service.name,
            "stop_signal",
            f"{service.stop_signal} is sent only where the ContainerStopSignals feature is "
            "on (Kubernetes 1.33 and later); elsewhere the image's STOPSIGNAL or SIGTERM",
        )
    return c
