"""Stack files: the Compose Specification, loaded safely into a typed model.

Layout, in the order data flows:

- ``yamlsafe``     capped, duplicate-rejecting YAML reading that keeps line numbers
- ``interpolate``  ``${VAR}`` substitution and ``.env`` files
- ``schema``       validation against ``schemas/stack.schema.json``, one error in plain words
- ``merge``        several ``-f`` files, and ``extends``
- ``units``        strict parsers: sizes, durations, ports, restart policies, names
- ``build``        validated tree -> frozen model (``model``)
- ``graph``        dependency graph: start layers, stop order, cycles
- ``normalize``    model -> the normalised dict ``orchestrator config`` prints; config hashes
- ``loader``       ``load_stack``, which runs all of the above

    stack = load_stack(["compose.yaml"])
    graph = DependencyGraph.from_services(stack.services)
    for layer in graph.layers(): ...
"""

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
