"""Stack files: the Compose Specification, loaded safely into a typed model.

Layout, in the order data flows:

- ``yamlsafe``     capped, duplicate-rejecting YAML reading that keeps line numbers
- ``interpolate``  ``${VAR}`` substitution and ``.env`` files
- ``schema``       validation against ``schemas/stack.schema.json``, one error in plain words
- ``merge``        several ``-f`` files, and ``extends``
- ``units``        strict parsers: sizes, durations, ports, restart policies, names
- ``convert``      validated tree -> frozen model (``model``), split by group of keys into
                   ``networking``, ``mounts``, ``fileobjects``, ``deploy``, ``healthcheck``,
                   which share ``context``
- ``graph``        dependency graph: start layers, stop order, cycles
- ``normalize``    model -> the normalised dict ``orchestrator config`` prints; config hashes
- ``loader``       ``load_stack``, which runs all of the above

    stack = load_stack(["compose.yaml"])
    graph = DependencyGraph.from_services(stack.services)
    for layer in graph.layers(): ...
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names as mypy sees them; at run time __getattr__ imports them
    from orchestrator.stack.graph import DependencyGraph, Edge
    from orchestrator.stack.loader import DEFAULT_FILES, find_stack_files, load_stack
    from orchestrator.stack.model import (
        Build,
        DependsOn,
        ExtraHost,
        FileObject,
        FileRef,
        FrozenMap,
        Healthcheck,
        IpamConfig,
        Link,
        Mount,
        Network,
        Port,
        Resources,
        RestartPolicy,
        Service,
        ServiceNetwork,
        Stack,
        Ulimit,
        Volume,
        VolumesFrom,
    )
    from orchestrator.stack.normalize import config_hash, stack_dict

# Imported on first use (PEP 562): `orchestrator.stack.units` alone must not pull in the
# loader, jsonschema and the schema, which commands such as `run` do not need.
_LAZY = {
    "DependencyGraph": "orchestrator.stack.graph",
    "Edge": "orchestrator.stack.graph",
    "DEFAULT_FILES": "orchestrator.stack.loader",
    "find_stack_files": "orchestrator.stack.loader",
    "load_stack": "orchestrator.stack.loader",
    "Build": "orchestrator.stack.model",
    "DependsOn": "orchestrator.stack.model",
    "ExtraHost": "orchestrator.stack.model",
    "FileObject": "orchestrator.stack.model",
    "FileRef": "orchestrator.stack.model",
    "FrozenMap": "orchestrator.stack.model",
    "Healthcheck": "orchestrator.stack.model",
    "IpamConfig": "orchestrator.stack.model",
    "Link": "orchestrator.stack.model",
    "Mount": "orchestrator.stack.model",
    "Network": "orchestrator.stack.model",
    "Port": "orchestrator.stack.model",
    "Resources": "orchestrator.stack.model",
    "RestartPolicy": "orchestrator.stack.model",
    "Service": "orchestrator.stack.model",
    "ServiceNetwork": "orchestrator.stack.model",
    "Stack": "orchestrator.stack.model",
    "Ulimit": "orchestrator.stack.model",
    "Volume": "orchestrator.stack.model",
    "VolumesFrom": "orchestrator.stack.model",
    "config_hash": "orchestrator.stack.normalize",
    "stack_dict": "orchestrator.stack.normalize",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_FILES",
    "Build",
    "DependencyGraph",
    "DependsOn",
    "Edge",
    "ExtraHost",
    "FileObject",
    "FileRef",
    "FrozenMap",
    "Healthcheck",
    "IpamConfig",
    "Link",
    "Mount",
    "Network",
    "Port",
    "Resources",
    "RestartPolicy",
    "Service",
    "ServiceNetwork",
    "Stack",
    "Ulimit",
    "Volume",
    "VolumesFrom",
    "config_hash",
    "find_stack_files",
    "load_stack",
    "stack_dict",
]
