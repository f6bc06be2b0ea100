"""Storage keys to the model: top-level ``volumes``, and a service's ``volumes`` (short and long
syntax), ``tmpfs`` and ``volumes_from``.
"""

from __future__ import annotations

from typing import Any, Literal

from orchestrator.mountspec import normalize, refused_target
from orchestrator.stack.context import Context, absolute_path, list_or_dict, scalar_text
from orchestrator.stack.model import FrozenMap, Mount, Volume, VolumesFrom
from orchestrator.stack.units import parse_mode, parse_size
from orchestrator.stack.yamlsafe import PathKey


def convert_volumes(ctx: Context, raw: dict[str, Any]) -> dict[str, Volume]:
    out: dict[str, Volume] = {}
    for key, spec in raw.items():
        path: PathKey = ("volumes", key)
        spec = spec or {}
        external = bool(spec.get("external", False))
        if external:
            extra = [k for k in spec if k not in ("external", "name") and not k.startswith("x-")]
            if extra:
                raise ctx.error(
                    (*path, extra[0]),
                    "conflicts with 'external': an external volume is not configured here",
                )
        out[key] = Volume(
            key=key,
            name=spec.get("name") or (key if external else f"{ctx.project}_{key}"),
            driver=spec.get("driver"),
            driver_opts=FrozenMap(
                {k: scalar_text(v) for k, v in (spec.get("driver_opts") or {}).items()}
            ),
            labels=FrozenMap(
                {
                    k: v or ""
                    for k, v in list_or_dict(
                        ctx, (*path, "labels"), spec.get("labels"), keep_none=False
                    ).items()
                }
            ),
            external=external,
        )
    return out


_PROPAGATION = {"shared", "rshared", "slave", "rslave", "private", "rprivate"}


def convert_mount(ctx: Context, path: PathKey, value: Any) -> Mount:
    if isinstance(value, str):
        return _short_volume(ctx, path, value)
    kind = value["type"]
    target = _target(ctx, (*path, "target"), value["target"], "target")
    source = value.get("source")
    read_only = bool(value.get("read_only", False))
    if kind == "bind":
        if not source:
            raise ctx.error(path, "a bind mount needs a 'source'")
        opts = value.get("bind") or {}
        return Mount(
            "bind",
            target,
            ctx.host_path(source),
            read_only,
            create_host_path=bool(opts.get("create_host_path", True)),
            propagation=opts.get("propagation"),
            selinux=opts.get("selinux"),
        )
    if kind == "volume":
        if source:
            _check_volume(ctx, (*path, "source"), source)
        opts = value.get("volume") or {}
        return Mount(
            "volume",
            target,
            source or None,
            read_only,
            nocopy=bool(opts.get("nocopy", False)),
            subpath=opts.get("subpath"),
        )
    if source:
        raise ctx.error((*path, "source"), "a tmpfs mount has no source")
    opts = value.get("tmpfs") or {}
    size = (
        ctx.parse((*path, "tmpfs", "size"), parse_size, opts["size"], "tmpfs size")
        if "size" in opts
        else None
    )
    mode = (
        ctx.parse((*path, "tmpfs", "mode"), parse_mode, opts["mode"], "tmpfs mode")
        if "mode" in opts
        else None
    )
    return Mount("tmpfs", target, None, read_only, tmpfs_size=size, tmpfs_mode=mode)


def _short_volume(ctx: Context, path: PathKey, text: str) -> Mount:
    parts = text.split(":")
    if len(parts) > 3:
        raise ctx.error(path, f"volume {text!r} must be [SOURCE:]TARGET[:MODE]")
    if len(parts) == 1:
        return Mount("volume", _target(ctx, path, parts[0], "volume target"))
    source, target = parts[0], parts[1]
    target = _target(ctx, path, target, "volume target")
    read_only = False
    propagation = selinux = None
    nocopy = False
    if len(parts) == 3:
        for opt in parts[2].split(","):
            if opt in ("ro", "rw"):
                read_only = opt == "ro"
            elif opt in ("z", "Z"):
                selinux = opt
            elif opt in _PROPAGATION:
                propagation = opt
            elif opt == "nocopy":
                nocopy = True
            else:
                raise ctx.error(
                    path,
                    f"unknown volume option {opt!r} (ro, rw, z, Z, nocopy or a propagation mode)",
                )
    if not source:
        raise ctx.error(path, f"volume {text!r} has an empty source (is a variable unset?)")
    if source.startswith(("/", ".", "~")):
        return Mount(
            "bind",
            target,
            ctx.host_path(source),
            read_only,
            propagation=propagation,
            selinux=selinux,
        )
    _check_volume(ctx, path, source)
    return Mount("volume", target, source, read_only, nocopy=nocopy)


def _target(ctx: Context, path: PathKey, value: str, what: str) -> str:
    """An absolute target, refused where the runtime owns the place (/, /proc, /sys, /dev...),
    here at config time rather than when the container starts."""
    target = absolute_path(ctx, path, value, what)
    reason = refused_target(target)
    if reason:
        raise ctx.error(path, reason)
    return normalize(target)


def _check_volume(ctx: Context, path: PathKey, name: str) -> None:
    if name not in ctx.declared_volumes:
        raise ctx.error(
            path, f"refers to undefined volume '{name}' (declare it under the top-level 'volumes')"
        )


def convert_volumes_from(ctx: Context, path: PathKey, text: str) -> VolumesFrom:
    kind: Literal["service", "container"] = "service"
    if text.startswith("container:"):
        kind = "container"
        text = text.removeprefix("container:")
    source, _, mode = text.partition(":")
    if mode not in ("", "ro", "rw") or not source:
        raise ctx.error(
            path, f"volumes_from {text!r} must be SERVICE[:ro|rw] or container:NAME[:ro|rw]"
        )
    return VolumesFrom(source, kind, mode == "ro")


_TMPFS_FLAGS = {"rw", "ro", "noexec", "exec", "nosuid", "suid", "nodev", "dev"}


def convert_tmpfs(ctx: Context, path: PathKey, value: Any) -> tuple[Mount, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    out = []
    for i, item in enumerate(items):
        where = path if isinstance(value, str) else (*path, i)
        target, _, opts = item.partition(":")
        target = _target(ctx, where, target, "tmpfs target")
        size = mode = None
        read_only = False
        for opt in filter(None, opts.split(",")):
            key, _, val = opt.partition("=")
            if key == "size":
                size = ctx.parse(where, parse_size, val, "tmpfs size")
            elif key == "mode":
                mode = ctx.parse(where, parse_mode, val, "tmpfs mode")
            elif key in _TMPFS_FLAGS and not val:
                read_only = read_only or key == "ro"
            else:
                raise ctx.error(where, f"unknown tmpfs option {opt!r}")
        out.append(Mount("tmpfs", target, None, read_only, tmpfs_size=size, tmpfs_mode=mode))
    return tuple(out)
