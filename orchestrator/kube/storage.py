"""Storage: named volumes become PersistentVolumeClaims; anonymous volumes, tmpfs and
``shm_size`` become emptyDir volumes; bind mounts, which name this machine's files, become a
copy in a ConfigMap (small files of the project), the node's path (paths outside the project),
or an empty directory, each with a warning; ``volumes_from`` repeats another service's mounts.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from typing import Any

from orchestrator.kube import names
from orchestrator.kube.base import (
    DEFAULT_VOLUME_SIZE,
    MAX_OBJECT_BYTES,
    Context,
    PodParts,
    make,
    split_labels,
)
from orchestrator.kube.data import basename, config_map_data
from orchestrator.kube.quantity import memory_quantity
from orchestrator.stack.model import Mount, Service


def volume_users(services: Iterable[Service]) -> dict[str, list[Service]]:
    """Which services mount each named volume (directly or through ``volumes_from``)."""
    by_name = {s.name: s for s in services}
    users: dict[str, list[Service]] = {}
    for svc in by_name.values():
        for m in _own_and_inherited(svc, by_name):
            if m.type == "volume" and m.source is not None:
                users.setdefault(m.source, [])
                if svc not in users[m.source]:
                    users[m.source].append(svc)
    return users


def _own_and_inherited(svc: Service, by_name: dict[str, Service]) -> list[Mount]:
    mounts = list(svc.volumes)
    for v in svc.volumes_from:
        if v.kind == "service" and v.source in by_name:
            mounts += by_name[v.source].volumes
    return mounts


def claim_name(ctx: Context, key: str) -> str:
    volume = ctx.stack.volumes[key]
    return names.dns_label(volume.name if volume.external else key)


def persistent_volume_claims(ctx: Context, users: dict[str, list[Service]]) -> None:
    """One claim per named volume that an exported service mounts; ReadWriteMany when several
    pods share it."""
    for key, volume in ctx.stack.volumes.items():
        if key not in users:
            continue
        where = f"volumes.{key}"
        name = claim_name(ctx, key)
        ctx.require("PersistentVolumeClaim", name, where)
        pods = sum(max(s.replicas, 1) for s in users[key])
        if volume.external:
            ctx.notes.add(
                f"{where}.external",
                f"the PersistentVolumeClaim {name!r} is not written: it must exist in the "
                "namespace",
            )
            continue
        if volume.driver_opts:
            ctx.notes.add(
                f"{where}.driver_opts",
                "driver options have no equivalent (a claim gets its storage from a storage "
                "class); they are not kept",
            )
        mode = "ReadWriteOnce"
        if pods > 1:
            mode = "ReadWriteMany"
            shared = ", ".join(s.name for s in users[key])
            ctx.notes.add(
                where,
                f"shared by {pods} pods (services {shared}): the claim asks for ReadWriteMany, "
                "which needs a storage class that offers it",
            )
        labels, annotations, rejected = split_labels(dict(volume.labels), {})
        for label in rejected:
            ctx.notes.add(f"{where}.labels", f"{label!r} is neither a label nor an annotation key")
        ctx.add(
            make(
                "v1",
                "PersistentVolumeClaim",
                name,
                {**labels, **names.stack_labels(ctx.stack.name)},
                ctx.namespace,
                annotations=annotations,
                spec={
                    "accessModes": [mode],
                    "resources": {"requests": {"storage": DEFAULT_VOLUME_SIZE}},
                },
            )
        )


def mounts(ctx: Context, service: Service, pod: PodParts) -> None:
    """The service's volumes, tmpfs, shm_size and volumes_from, into ``pod``."""
    for i, m in enumerate(service.volumes):
        _mount(ctx, service, f"volumes[{i}]", m, pod)
    for i, m in enumerate(service.tmpfs):
        _tmpfs(ctx, service, f"tmpfs[{i}]", m, pod)
    shm = service.resources.shm_size
    if shm is not None:
        volume = pod.volume(
            "shm",
            {"emptyDir": {"medium": "Memory", "sizeLimit": memory_quantity(shm)}},
            share=False,
        )
        pod.mount(volume, "/dev/shm")
    by_name = dict(ctx.stack.services)
    for i, v in enumerate(service.volumes_from):
        key = f"volumes_from[{i}]"
        if v.kind == "container" or v.source not in by_name:
            ctx.notes.service(
                service.name,
                key,
                f"the mounts of {'container' if v.kind == 'container' else 'service'} "
                f"{v.source!r} are not known to the export; nothing is mounted",
            )
            continue
        source = by_name[v.source]
        for j, m in enumerate(source.volumes):
            if m.type == "tmpfs" or (m.type == "volume" and m.source is None):
                ctx.notes.service(
                    service.name,
                    key,
                    f"{v.source}'s volumes[{j}] ({m.target}) lives in another pod and "
                    "cannot be shared; it is not mounted here",
                )
                continue
            _mount(
                ctx, service, key, dataclasses.replace(m, read_only=m.read_only or v.read_only), pod
            )


def _mount(ctx: Context, service: Service, key: str, m: Mount, pod: PodParts) -> None:
    if m.type == "tmpfs":
        _tmpfs(ctx, service, key, m, pod)
        return
    if m.type == "bind":
        _bind(ctx, service, key, m, pod)
        return
    if m.source is None:
        volume = pod.volume(f"anon-{basename(m.target)}", {"emptyDir": {}}, share=False)
        pod.mount(volume, m.target, read_only=m.read_only)
        return
    claim = claim_name(ctx, m.source)
    volume = pod.volume(f"data-{claim}", {"persistentVolumeClaim": {"claimName": claim}})
    pod.mount(volume, m.target, read_only=m.read_only, sub_path=m.subpath)


def _tmpfs(ctx: Context, service: Service, key: str, m: Mount, pod: PodParts) -> None:
    spec: dict[str, Any] = {"medium": "Memory"}
    if m.tmpfs_size is not None:
        spec["sizeLimit"] = memory_quantity(m.tmpfs_size)
    if m.tmpfs_mode is not None:
        ctx.notes.service(
            service.name,
            key,
            f"tmpfs mode {m.tmpfs_mode:04o} has no equivalent (an emptyDir is 0777)",
        )
    volume = pod.volume(f"tmpfs-{basename(m.target)}", {"emptyDir": spec}, share=False)
    pod.mount(volume, m.target, read_only=m.read_only)


def _bind(ctx: Context, service: Service, key: str, m: Mount, pod: PodParts) -> None:
    assert m.source is not None
    source = m.source
    project = ctx.stack.project_dir
    shown = os.path.relpath(source, project) if _inside(source, project) else source
    if _inside(source, project):
        if _copy_into_config_map(ctx, service, key, m, pod, shown):
            return
        volume = pod.volume(f"bind-{basename(m.target)}", {"emptyDir": {}}, share=False)
        pod.mount(volume, m.target, read_only=m.read_only)
        return
    extra = []
    if m.propagation:
        extra.append(f"propagation {m.propagation} is not kept")
    if m.selinux:
        extra.append(f"SELinux relabelling ({m.selinux}) is not kept")
    ctx.notes.service(
        service.name,
        key,
        f"bind mount of {source}: mounted from the node's own {source} (hostPath), not this "
        "machine's; a hostPath needs a privileged pod security level"
        + ("; " + "; ".join(extra) if extra else ""),
    )
    volume = pod.volume(f"host-{basename(source)}", {"hostPath": {"path": source}})
    pod.mount(volume, m.target, read_only=m.read_only)


def _inside(path: str, directory: str) -> bool:
    try:
        return os.path.commonpath([path, directory]) == directory
    except ValueError:
        return False


def _copy_into_config_map(
    ctx: Context, service: Service, key: str, m: Mount, pod: PodParts, shown: str
) -> bool:
    """A project file, or a read-only directory of files, copied into a ConfigMap and mounted
    read-only. False (with a warning) when it cannot be: the caller mounts an empty directory.
    A writable directory is a working directory (data, or code being edited), not
    configuration: it is not copied."""
    assert m.source is not None
    sources = ctx.sources
    why = ""
    files: dict[str, bytes] = {}
    modes: dict[str, int] = {}
    single = False
    try:
        entries = sources.listdir(m.source)
        if entries is None:
            single = True
            k = names.data_key(basename(m.source))
            files[k] = sources.read(m.source)
            modes[k] = 0o755 if sources.executable(m.source) else 0o644
        elif not m.read_only:
            why = "a writable directory cannot be a ConfigMap (only one mounted :ro is copied)"
        else:
            for entry in sorted(entries):
                path = os.path.join(m.source, entry)
                if not names.is_data_key(entry):
                    why = f"{entry!r} is not a name a ConfigMap can hold"
                    break
                if sources.listdir(path) is not None:
                    why = f"it holds a directory ({entry})"
                    break
                files[entry] = sources.read(path)
                modes[entry] = 0o755 if sources.executable(path) else 0o644
    except OSError as exc:
        why = f"it cannot be read here ({exc.strerror or type(exc).__name__})"
    size = sum(len(c) for c in files.values())
    if not why and size > MAX_OBJECT_BYTES:
        why = "it holds more than a ConfigMap holds (1 MiB)"
    if why:
        ctx.notes.service(
            service.name,
            key,
            f"bind mount of {shown}: {why}; an empty directory is mounted at {m.target} "
            "instead: put the files in the image, or in a named volume",
        )
        return False
    owner = f"services.{service.name}.{key}"
    cm = ctx.unique(
        "ConfigMap", names.derived(ctx.name_of(service.name), basename(m.source)), owner
    )
    ctx.add(
        make(
            "v1",
            "ConfigMap",
            cm,
            names.service_labels(ctx.stack.name, ctx.name_of(service.name)),
            ctx.namespace,
            **config_map_data(files),
        )
    )
    items = [{"key": k, "path": k, "mode": modes[k]} for k in files]
    volume = pod.volume(f"files-{cm}", {"configMap": {"name": cm, "items": items}})
    if single:
        pod.mount(volume, m.target, read_only=True, sub_path=next(iter(files)))
    else:
        pod.mount(volume, m.target, read_only=True)
    writable = "" if m.read_only else "; read-only in the cluster"
    ctx.notes.service(
        service.name,
        key,
        f"bind mount of {shown}: copied into the ConfigMap {cm!r} as it is now (changes made "
        f"here later are not seen{writable})",
    )
    return True
