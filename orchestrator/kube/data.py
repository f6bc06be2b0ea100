"""ConfigMaps and Secrets: the stack's configs and secrets, each service's environment (its
``environment`` and ``env_file`` entries, which the model has already merged as Compose does),
and where a service mounts them."""

from __future__ import annotations

import base64
import posixpath
from dataclasses import dataclass
from typing import Any

from orchestrator.kube import names
from orchestrator.kube.base import MAX_OBJECT_BYTES, Context, PodParts, make
from orchestrator.stack.model import FileObject, FileRef, Service


@dataclass(frozen=True)
class Stored:
    """Where a stack's config or secret lives in the cluster."""

    kind: str  # ConfigMap or Secret
    name: str
    key: str


def config_map_data(files: dict[str, bytes]) -> dict[str, Any]:
    """``data`` for text, ``binaryData`` (base64) for the rest."""
    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    for key, content in files.items():
        try:
            data[key] = content.decode("utf-8")
        except UnicodeDecodeError:
            binary[key] = base64.b64encode(content).decode("ascii")
    out: dict[str, Any] = {}
    if data:
        out["data"] = data
    if binary:
        out["binaryData"] = binary
    return out


def file_objects(ctx: Context, section: str, used: set[str]) -> dict[str, Stored]:
    """Write the configs or secrets that exported services use; where each one lives."""
    secret = section == "secrets"
    kind = "Secret" if secret else "ConfigMap"
    objects = ctx.stack.secrets if secret else ctx.stack.configs
    out: dict[str, Stored] = {}
    for key, obj in objects.items():
        if key not in used:
            continue
        name = names.dns_label(obj.name if obj.external else key)
        if not names.is_subdomain(obj.name) and obj.external:
            ctx.notes.add(
                f"{section}.{key}.name",
                f"{obj.name!r} is not a valid Kubernetes name; the {kind} is looked up as {name!r}",
            )
        ctx.require(kind, name, f"{section}.{key}")
        stored = Stored(kind, name, names.data_key(key))
        out[key] = stored
        content = _content(ctx, section, obj, stored)
        if content is None:
            continue
        labels = names.stack_labels(ctx.stack.name)
        if secret:
            ctx.add(
                make(
                    "v1",
                    "Secret",
                    name,
                    labels,
                    ctx.namespace,
                    sensitive=True,
                    type="Opaque",
                    data={stored.key: base64.b64encode(content).decode("ascii")},
                )
            )
        else:
            ctx.add(
                make(
                    "v1",
                    "ConfigMap",
                    name,
                    labels,
                    ctx.namespace,
                    **config_map_data({stored.key: content}),
                )
            )
    return out


def _content(ctx: Context, section: str, obj: FileObject, stored: Stored) -> bytes | None:
    """The object's bytes, or None (with a warning) when the cluster must get them elsewhere."""
    kind = "secret generic" if stored.kind == "Secret" else "configmap"
    create = f"kubectl create {kind} {stored.name} --from-file={stored.key}=FILE"
    if obj.external:
        ctx.notes.add(
            f"{section}.{obj.key}.external",
            f"the {stored.kind} {stored.name!r} is not written: create it in the namespace "
            f"first ({create})",
        )
        return None
    if obj.content is not None:
        content = obj.content.encode("utf-8")
    elif obj.file is not None:
        try:
            content = ctx.sources.read(obj.file)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            ctx.notes.add(
                f"{section}.{obj.key}.file",
                f"cannot read {obj.file} ({reason}); the {stored.kind} {stored.name!r} is not "
                f"written: create it ({create})",
            )
            return None
    else:
        content = b""
    if len(content) > MAX_OBJECT_BYTES:
        ctx.notes.add(
            f"{section}.{obj.key}",
            f"more than a {stored.kind} holds (1 MiB); it is not written: provide it another "
            f"way under the name {stored.name!r}",
        )
        return None
    return content


def mount_file_refs(
    ctx: Context,
    service: Service,
    section: str,
    refs: tuple[FileRef, ...],
    stored: dict[str, Stored],
    pod: PodParts,
) -> None:
    """Mount each config or secret as one read-only file at its target."""
    for i, ref in enumerate(refs):
        where = stored[ref.source]
        item = {"key": where.key, "path": where.key, "mode": ref.mode}
        if where.kind == "Secret":
            spec: dict[str, Any] = {"secret": {"secretName": where.name, "items": [item]}}
        else:
            spec = {"configMap": {"name": where.name, "items": [item]}}
        volume = pod.volume(f"{section[:-1]}-{where.name}", spec)
        pod.mount(volume, ref.target, read_only=True, sub_path=where.key)
        if ref.uid is not None or ref.gid is not None:
            ctx.notes.service(
                service.name,
                f"{section}[{i}]",
                "uid and gid of a mounted file have no equivalent (files of a volume belong to "
                "the pod's fsGroup); the file keeps the container's default owner",
            )


def environment(ctx: Context, service: Service, name: str) -> tuple[list[Any], list[Any]]:
    """``envFrom`` and ``env`` of a service's container: its environment in a ConfigMap
    ``NAME-env``; variables whose names a ConfigMap cannot hold go inline (``$`` escaped, so
    that Kubernetes does not expand ``$(VAR)``). Variables left unset are left out, as in
    Compose."""
    values = {k: v for k, v in service.environment.items() if v is not None}
    if not values:
        return [], []
    held = {k: v for k, v in values.items() if names.is_data_key(k)}
    inline = [
        {"name": k, "value": v.replace("$", "$$")} for k, v in values.items() if k not in held
    ]
    env_from: list[Any] = []
    if held:
        cm = ctx.require("ConfigMap", names.derived(name, "env"), f"services.{service.name}")
        ctx.add(
            make(
                "v1",
                "ConfigMap",
                cm,
                names.service_labels(ctx.stack.name, name),
                ctx.namespace,
                data=held,
            )
        )
        env_from.append({"configMapRef": {"name": cm}})
    return env_from, inline


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/")) or "root"
