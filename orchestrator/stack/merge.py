"""Merging stack files (``-f a.yaml -f b.yaml``) and resolving ``extends``, as Compose does.

    merged = merge_stacks(base, override)

Later files override earlier ones key by key. Mappings merge recursively; for service keys Compose
has its own rules, followed here:

- ``command``, ``entrypoint``, ``healthcheck.test``: replaced;
- ``environment``, ``labels``, ``sysctls``, ``build.args``, ``ulimits``, ``depends_on``,
  ``networks``: merged as mappings (a list form becomes a mapping first);
- ``volumes`` by container path, ``secrets``/``configs`` by target, ``ports`` and other lists
  appended without repeats.

Inputs are the plain trees of already validated files, never modified in place.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.stack.fastcheck import canonical
from orchestrator.stack.yamlsafe import Locator

_REPLACE = {"command", "entrypoint"}
_AS_MAP = {"environment", "labels", "sysctls", "ulimits", "depends_on", "networks"}


def merge_stacks(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in override.items():
        if key == "services" and isinstance(value, dict) and isinstance(base.get(key), dict):
            services = dict(base[key])
            for name, svc in value.items():
                if name in services and isinstance(services[name], dict) and isinstance(svc, dict):
                    services[name] = merge_service(services[name], svc)
                else:
                    services[name] = copy.deepcopy(svc)
            result[key] = services
        else:
            result[key] = _merge_any(base.get(key), value)
    return result


def _merge_any(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = _merge_any(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(override)


def merge_service(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if key not in base or base[key] is None or value is None or key in _REPLACE:
            out[key] = copy.deepcopy(value)
        elif key in _AS_MAP:
            out[key] = _merge_any(_as_map(key, base[key]), _as_map(key, value))
        elif key == "build":
            out[key] = _merge_build(base[key], value)
        elif key == "healthcheck" and isinstance(base[key], dict) and isinstance(value, dict):
            out[key] = {**base[key], **copy.deepcopy(value)}
        elif key == "volumes":
            out[key] = _merge_keyed(base[key], value, _volume_target)
        elif key in ("secrets", "configs"):
            out[key] = _merge_keyed(base[key], value, _ref_target)
        elif isinstance(base[key], list) and isinstance(value, list):
            out[key] = _append_unique(base[key], value)
        else:
            out[key] = _merge_any(base[key], value)
    return out


def _as_map(key: str, value: Any) -> Any:
    if not isinstance(value, list):
        return value
    if key in ("depends_on",):
        return {name: {"condition": "service_started"} for name in value}
    if key == "networks":
        return {name: None for name in value}
    result: dict[str, Any] = {}
    for item in value:
        if isinstance(item, str) and "=" in item:
            k, v = item.split("=", 1)
            result[k] = v
        else:
            result[str(item)] = None
    return result


def _merge_build(base: Any, override: Any) -> Any:
    b = {"context": base} if isinstance(base, str) else base
    o = {"context": override} if isinstance(override, str) else override
    if not isinstance(b, dict) or not isinstance(o, dict):
        return copy.deepcopy(override)
    out = dict(b)
    for k, v in o.items():
        if k == "args" and k in b:
            out[k] = _merge_any(_as_map(k, b[k]), _as_map(k, v))
        else:
            out[k] = copy.deepcopy(v)
    return out


def _volume_target(item: Any) -> Any:
    if isinstance(item, dict):
        return item.get("target")
    if isinstance(item, str):
        parts = item.split(":")
        return parts[1] if len(parts) >= 2 else parts[0]
    return repr(item)


def _ref_target(item: Any) -> Any:
    if isinstance(item, dict):
        return item.get("target") or item.get("source")
    return item


def _merge_keyed(base: Any, override: Any, key: Callable[[Any], Any]) -> Any:
    if not isinstance(base, list) or not isinstance(override, list):
        return copy.deepcopy(override)
    merged: dict[Any, Any] = {}
    for item in [*base, *override]:
        merged[key(item)] = copy.deepcopy(item)
    return list(merged.values())


def _append_unique(base: list[Any], override: list[Any]) -> list[Any]:
    out = list(base)
    seen = {canonical(item) for item in base}
    for item in override:
        key = canonical(item)
        if key not in seen:
            seen.add(key)
            out.append(copy.deepcopy(item))
    return out


# -- extends ---------------------------------------------------------------------------------------

LoadServices = Callable[[Path], dict[str, Any]]


def resolve_extends(
    services: dict[str, Any],
    locator: Locator,
    load_services: LoadServices,
    project_dir: Path,
) -> dict[str, Any]:
    """Replace each service that ``extends`` another by the merge of the two.

    ``extends.file`` must already be absolute (the loader makes it so, relative to the file that
    names it). ``load_services`` reads another file's interpolated ``services`` mapping."""
    resolved: dict[tuple[str, str], dict[str, Any]] = {}

    def resolve(
        file: Path | None, name: str, table: dict[str, Any], chain: list[str]
    ) -> dict[str, Any]:
        ident = (str(file or ""), name)
        if ident in resolved:
            return resolved[ident]
        label = f"{file.name}:{name}" if file else name
        if label in chain:
            cycle = " -> ".join([*chain[chain.index(label) :], label])
            raise locator.error(
                ("services", chain[0].split(":")[-1], "extends"), f"extends cycle: {cycle}"
            )
        svc: dict[str, Any] = table[name]
        ext = svc.get("extends") if isinstance(svc, dict) else None
        if ext is None:
            resolved[ident] = svc
            return svc
        base_name = ext if isinstance(ext, str) else ext["service"]
        base_file = None if isinstance(ext, str) or "file" not in ext else Path(ext["file"])
        where = (
            ("services", name, "extends")
            if file is None
            else ("services", chain[0].split(":")[-1], "extends")
        )
        if base_file is not None and base_file != file:
            try:
                base_table = load_services(base_file)
            except FileNotFoundError:
                raise locator.error(where, f"extends: file {base_file} not found") from None
        else:
            base_table = table
            base_file = file
        if base_name not in base_table:
            in_file = f" in {base_file}" if base_file else ""
            raise locator.error(where, f"extends: service '{base_name}' not found{in_file}")
        base = resolve(base_file, base_name, base_table, [*chain, label])
        if base_file is not None and base_file.parent != project_dir:
            base = rebase_paths(base, base_file.parent)
        if base_file == file and file is None:
            locator.copy_subtree(("services", base_name), ("services", name))
        own = {k: v for k, v in svc.items() if k != "extends"}
        base = {k: v for k, v in base.items() if k != "extends"}
        merged = merge_service(base, own)
        resolved[ident] = merged
        return merged

    out = {}
    for name in services:
        out[name] = resolve(None, name, services, [])
    return out


def rebase_paths(service: dict[str, Any], directory: Path) -> dict[str, Any]:
    """Make the relative host paths of a service read from another file absolute."""
    svc = dict(service)

    def fix(path: str) -> str:
        return path if path.startswith(("/", "~")) else str((directory / path).resolve())

    build = svc.get("build")
    if isinstance(build, str):
        svc["build"] = fix(build)
    elif isinstance(build, dict) and isinstance(build.get("context"), str):
        svc["build"] = {**build, "context": fix(build["context"])}
    env_file = svc.get("env_file")
    if isinstance(env_file, str):
        svc["env_file"] = fix(env_file)
    elif isinstance(env_file, list):
        svc["env_file"] = [
            fix(e) if isinstance(e, str) else {**e, "path": fix(e["path"])} for e in env_file
        ]
    volumes = svc.get("volumes")
    if isinstance(volumes, list):
        fixed: list[Any] = []
        for v in volumes:
            if isinstance(v, str) and v.startswith("."):
                src, _, rest = v.partition(":")
                fixed.append(f"{fix(src)}:{rest}" if rest else v)
            elif (
                isinstance(v, dict) and v.get("type") == "bind" and isinstance(v.get("source"), str)
            ):
                fixed.append({**v, "source": fix(v["source"])})
            else:
                fixed.append(v)
        svc["volumes"] = fixed
    return svc
