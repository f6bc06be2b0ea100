"""Secrets and configs to the model: the top-level ``secrets`` and ``configs`` (file, environment,
content or external), and a service's references to them.
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.stack.context import Context, absolute_path
from orchestrator.stack.model import FileObject, FileRef
from orchestrator.stack.units import parse_mode
from orchestrator.stack.yamlsafe import PathKey


def convert_file_objects(ctx: Context, section: str, raw: dict[str, Any]) -> dict[str, FileObject]:
    out: dict[str, FileObject] = {}
    for key, spec in raw.items():
        path: PathKey = (section, key)
        sources = [
            k
            for k in ("file", "environment", "content", "external")
            if spec.get(k) not in (None, False)
        ]
        if len(sources) != 1:
            allowed = "file, environment or external" + (
                " or content" if section == "configs" else ""
            )
            if not sources:
                raise ctx.error(path, f"needs one of {allowed}")
            raise ctx.error((*path, sources[1]), f"set only one of {allowed}")
        content = spec.get("content")
        env = spec.get("environment")
        if env is not None:
            content = ctx.lookup(env)
            if content is None:
                raise ctx.error((*path, "environment"), f"environment variable {env} is not set")
        file = spec.get("file")
        external = bool(spec.get("external", False))
        out[key] = FileObject(
            key=key,
            name=spec.get("name") or (key if external else f"{ctx.project}_{key}"),
            file=ctx.host_path(file) if file else None,
            environment=env,
            content=content,
            external=external,
        )
    return out


def convert_file_refs(
    ctx: Context, path: PathKey, value: list[Any], section: str
) -> tuple[FileRef, ...]:
    declared = ctx.declared_secrets if section == "secrets" else ctx.declared_configs
    out = []
    for i, item in enumerate(value):
        where = (*path, i)
        spec = {"source": item} if isinstance(item, str) else item
        source = spec["source"]
        if source not in declared:
            kind = section[:-1]
            raise ctx.error(
                where,
                f"refers to undefined {kind} '{source}' (declare it under the top-level '{section}')",
            )
        target = spec.get("target") or source
        if not target.startswith("/"):
            target = f"/run/secrets/{target}" if section == "secrets" else f"/{target}"
        target = absolute_path(ctx, (*where, "target"), target, "target")
        uid = spec.get("uid")
        gid = spec.get("gid")
        for key, v in (("uid", uid), ("gid", gid)):
            if v is not None and not re.fullmatch(r"[0-9]{1,10}", str(v)):
                raise ctx.error((*where, key), f"{key} must be a number, not {v!r}")
        mode = (
            ctx.parse((*where, "mode"), parse_mode, spec["mode"], "mode")
            if "mode" in spec
            else 0o444
        )
        out.append(
            FileRef(
                source,
                target,
                None if uid is None else str(uid),
                None if gid is None else str(gid),
                mode,
            )
        )
    return tuple(out)
