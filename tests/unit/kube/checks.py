"""Checks of exported manifests: the Kubernetes JSON schemas (offline, kubernetes-validate's
strict schemas: no unknown field), and the rules the API server applies that a schema cannot
say (names, labels, selectors, references between objects)."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate

from orchestrator.kube import names
from orchestrator.kube.base import ExportResult

K8S_VERSION = "1.37"
_PORT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def schema_errors(body: dict[str, Any]) -> str | None:
    try:
        kubernetes_validate.validate(body, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return f"{body['kind']}/{body['metadata']['name']}: {path}: {exc.message}"
    return None


def _labels_ok(labels: dict[str, str]) -> bool:
    return all(names.is_label(k, v) for k, v in labels.items())


def _pod_template(body: dict[str, Any]) -> dict[str, Any] | None:
    if body["kind"] in ("Deployment", "StatefulSet", "Job"):
        template: dict[str, Any] = body["spec"]["template"]
        return template
    return None


def problems(result: ExportResult) -> list[str]:
    """Everything wrong with the manifests; empty when all is well."""
    out: list[str] = []
    bodies = [m.body for m in result.manifests]
    by_kind: dict[str, set[str]] = {}
    for body in bodies:
        kind, meta = body["kind"], body["metadata"]
        name = meta["name"]
        where = f"{kind}/{name}"
        error = schema_errors(body)
        if error:
            out.append(error)
        if name in by_kind.setdefault(kind, set()):
            out.append(f"{where}: twice")
        by_kind[kind].add(name)
        if kind in ("Service", "Namespace") and not names.is_dns_label(name):
            out.append(f"{where}: not a DNS label")
        if not names.is_subdomain(name):
            out.append(f"{where}: not a DNS subdomain")
        if not _labels_ok(meta.get("labels", {})):
            out.append(f"{where}: invalid labels {meta.get('labels')}")
        if names.PART_OF not in meta.get("labels", {}):
            out.append(f"{where}: no stack label")
        if (
            kind == "PersistentVolumeClaim"
            and "storage" not in body["spec"]["resources"]["requests"]
        ):
            out.append(f"{where}: no storage request")
        if kind == "Service":
            spec = body["spec"]
            ports = spec.get("ports", [])
            if spec.get("clusterIP") != "None" and not ports:
                out.append(f"{where}: no ports")
            port_names = [p.get("name") for p in ports]
            if len(ports) > 1 and (None in port_names or len(set(port_names)) != len(ports)):
                out.append(f"{where}: ports need unique names")
        template = _pod_template(body)
        if template is None:
            continue
        if not _labels_ok(template["metadata"]["labels"]):
            out.append(f"{where}: invalid pod labels")
        if kind != "Job":
            selector = body["spec"]["selector"]["matchLabels"]
            if not selector.items() <= template["metadata"]["labels"].items():
                out.append(f"{where}: the selector does not select the pods")
        pod = template["spec"]
        if kind == "Job" and pod.get("restartPolicy") not in ("Never", "OnFailure"):
            out.append(f"{where}: a Job's pods must not restart always")
        volumes = [v["name"] for v in pod.get("volumes", [])]
        if len(set(volumes)) != len(volumes) or not all(map(names.is_dns_label, volumes)):
            out.append(f"{where}: volume names {volumes}")
        containers = pod.get("initContainers", []) + pod["containers"]
        if len({c["name"] for c in containers}) != len(containers):
            out.append(f"{where}: container names repeat")
        for c in containers:
            for mount in c.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    out.append(f"{where}: {c['name']} mounts unknown volume {mount['name']}")
            for p in c.get("ports", []):
                if not (len(p["name"]) <= 15 and _PORT_NAME.fullmatch(p["name"])):
                    out.append(f"{where}: port name {p['name']!r}")
    # Services and policies select pods that some workload makes.
    templates = [t["metadata"]["labels"] for b in bodies if (t := _pod_template(b)) is not None]
    for body in bodies:
        if body["kind"] == "Service":
            selector = body["spec"]["selector"]
        elif body["kind"] == "NetworkPolicy":
            selector = body["spec"]["podSelector"]["matchLabels"]
        else:
            continue
        if not any(selector.items() <= labels.items() for labels in templates):
            out.append(f"{body['kind']}/{body['metadata']['name']}: selects no pod")
    return out
