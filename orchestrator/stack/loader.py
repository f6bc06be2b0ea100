"""From stack files on disk to a :class:`~orchestrator.stack.model.Stack`.

    stack = load_stack(["compose.yaml"], project_name=None, environ=os.environ)

Steps, each reporting the one error that matters as ``FILE:LINE:COL: path: message``:

1. find the files (``-f``, else ``stack.yaml``, ``compose.yaml``, ``compose.yml``,
   ``docker-compose.yml`` in the current directory, plus its ``.override`` file as Compose does);
2. read each safely (:mod:`.yamlsafe`), interpolate it (:mod:`.interpolate`, with ``.env`` beside
   the first file; the environment wins over ``.env``) and validate it against the schema;
3. merge the files in order and resolve ``extends`` (:mod:`.merge`), validating the result again;
4. convert it into the model (:mod:`.convert`), keep the services of the active profiles, check the dependency
   graph (:mod:`.graph`) and fingerprint each service (:func:`.normalize.config_hash`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import StackError
from orchestrator.stack import schema
from orchestrator.stack.convert import (
    Context,
    convert_file_objects,
    convert_networks,
    convert_service,
    convert_volumes,
)
from orchestrator.stack.graph import DependencyGraph
from orchestrator.stack.interpolate import DotenvError, Interpolator, chain, read_dotenv
from orchestrator.stack.merge import merge_stacks, resolve_extends
from orchestrator.stack.model import FrozenMap, Network, Service, Stack
from orchestrator.stack.normalize import config_hash
from orchestrator.stack.units import (
    UnitError,
    check_project_name,
    check_service_name,
    project_name_from_directory,
)
from orchestrator.stack.yamlsafe import Locator, PathKey, read_yaml_file

DEFAULT_FILES = (
    "stack.yaml",
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
)


def find_stack_files(directory: Path) -> list[Path]:
    """The default stack file of ``directory`` and, if present, its override file."""
    for name in DEFAULT_FILES:
        path = directory / name
        if path.is_file():
            stem, dot, ext = name.rpartition(".")
            override = directory / f"{stem}.override{dot}{ext}"
            return [path, override] if override.is_file() else [path]
    raise StackError(
        f"no stack file in {directory} (looked for {', '.join(DEFAULT_FILES)}); use -f FILE"
    )


def load_stack(
    files: Iterable[str | os.PathLike[str]] | None = None,
    project_name: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    profiles: Iterable[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Stack:
    """Load, merge, validate and model a stack; raise :class:`StackError` on any problem."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    base = Path(cwd) if cwd is not None else Path.cwd()
    paths = [base / Path(f) for f in files or []] or find_stack_files(base)
    displays = [str(f) for f in files or []] or [str(p.relative_to(base)) for p in paths]
    project_dir = Path(os.path.abspath(paths[0])).parent

    dotenv: dict[str, str] = {}
    dotenv_path = project_dir / ".env"
    if dotenv_path.is_file():
        try:
            dotenv = read_dotenv(dotenv_path, env.get)
        except DotenvError as exc:
            raise StackError(exc.message, file=str(dotenv_path), line=exc.line) from None
    lookup = chain(env, dotenv)
    warnings: list[str] = []
    unset: list[str] = []
    locator = Locator(default_file=displays[0])

    def read(path: Path, display: str) -> tuple[dict[str, Any], Locator]:
        doc = read_yaml_file(path, display)
        if doc.data is None:
            raise StackError("the file is empty", file=display)
        if not isinstance(doc.data, dict):
            raise StackError(
                "a stack file must be a mapping of keys such as 'services'",
                file=display,
                line=1,
                column=1,
            )
        own = Locator(display)
        own.add(doc)
        interpolator = Interpolator(lookup, unset)
        data = interpolator.tree(doc.data, (), own.error)
        schema.validate(data, own)
        if "version" in data:
            warnings.append(f"{display}: the top-level 'version' key is obsolete and ignored")
            del data["version"]
        for _name, svc in (data.get("services") or {}).items():
            ext = svc.get("extends")
            if isinstance(ext, dict) and "file" in ext:
                svc["extends"] = {
                    **ext,
                    "file": os.path.normpath(path.parent.absolute() / ext["file"]),
                }
        locator.positions.update(own.positions)
        return data, own

    trees = [read(p, d)[0] for p, d in zip(paths, displays, strict=True)]
    merged = trees[0]
    for tree in trees[1:]:
        merged = merge_stacks(merged, tree)
    raw_services: dict[str, Any] = merged.get("services") or {}
    if any(isinstance(s, dict) and "extends" in s for s in raw_services.values()):
        cache: dict[Path, dict[str, Any]] = {}

        def load_services(path: Path) -> dict[str, Any]:
            if path not in cache:
                if not path.is_file():
                    raise FileNotFoundError(path)
                data, _ = read(path, str(path))
                cache[path] = data.get("services") or {}
            return cache[path]

        merged["services"] = raw_services = resolve_extends(
            raw_services, locator, load_services, project_dir
        )
        schema.validate(merged, locator)
    elif len(trees) > 1:
        schema.validate(merged, locator)
    for name in unset:
        warnings.append(f"the {name} variable is not set; using an empty string")

    name = _project_name(project_name, env, merged, project_dir, locator)
    ctx = Context(
        locator=locator, project=name, project_dir=project_dir, lookup=lookup, warnings=warnings
    )
    raw_networks = merged.get("networks") or {}
    raw_volumes = merged.get("volumes") or {}
    raw_secrets = merged.get("secrets") or {}
    raw_configs = merged.get("configs") or {}
    ctx.declared_networks = set(raw_networks)
    ctx.declared_volumes = set(raw_volumes)
    ctx.declared_secrets = set(raw_secrets)
    ctx.declared_configs = set(raw_configs)
    networks = convert_networks(ctx, raw_networks)
    volumes = convert_volumes(ctx, raw_volumes)
    secrets = convert_file_objects(ctx, "secrets", raw_secrets)
    configs = convert_file_objects(ctx, "configs", raw_configs)

    active = (
        set(profiles)
        if profiles is not None
        else set(filter(None, env.get("COMPOSE_PROFILES", "").split(",")))
    )
    services: dict[str, Service] = {}
    disabled: dict[str, Service] = {}
    for svc_name, raw in raw_services.items():
        try:
            check_service_name(svc_name)
        except UnitError as exc:
            raise locator.error(("services", svc_name), exc.message) from None
        svc = convert_service(ctx, svc_name, raw)
        if svc.profiles and not (active & set(svc.profiles)) and "*" not in active:
            disabled[svc_name] = svc
        else:
            services[svc_name] = svc
    if not raw_services:
        raise locator.error(
            ("services",) if "services" in merged else (), "the stack defines no services"
        )

    DependencyGraph.from_services(services, locator, disabled)
    _check_unique_container_names(services, locator)

    if "default" not in networks and any(
        n.name == "default" for s in services.values() for n in s.networks
    ):
        networks = {"default": Network("default", f"{name}_default"), **networks}
    services = {n: dataclasses.replace(s, config_hash=config_hash(s)) for n, s in services.items()}
    return Stack(
        name=name,
        project_dir=str(project_dir),
        files=tuple(str(Path(os.path.abspath(p))) for p in paths),
        services=FrozenMap(services),
        networks=FrozenMap(networks),
        volumes=FrozenMap(volumes),
        secrets=FrozenMap(secrets),
        configs=FrozenMap(configs),
        extensions=FrozenMap({k: v for k, v in merged.items() if k.startswith("x-")}),
        disabled_services=tuple(disabled),
        warnings=tuple(warnings),
    )


def _project_name(
    explicit: str | None,
    env: Mapping[str, str],
    merged: dict[str, Any],
    project_dir: Path,
    locator: Locator,
) -> str:
    """``-p``, then ``COMPOSE_PROJECT_NAME``, then the top-level ``name``, then the directory."""
    where: PathKey = ()
    try:
        if explicit:
            return check_project_name(explicit)
        if env.get("COMPOSE_PROJECT_NAME"):
            return check_project_name(env["COMPOSE_PROJECT_NAME"])
        if merged.get("name"):
            where = ("name",)
            return check_project_name(merged["name"])
        return project_name_from_directory(project_dir.name)
    except UnitError as exc:
        if where:
            raise locator.error(where, exc.message) from None
        raise StackError(exc.message) from None


def _check_unique_container_names(services: Mapping[str, Service], locator: Locator) -> None:
    seen: dict[str, str] = {}
    for name, svc in services.items():
        if svc.container_name is None:
            continue
        if svc.container_name in seen:
            raise locator.error(
                ("services", name, "container_name"),
                f"container name '{svc.container_name}' is also used by service '{seen[svc.container_name]}'",
            )
        seen[svc.container_name] = name
