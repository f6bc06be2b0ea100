"""What every part of the Kubernetes export shares: the options, the objects it makes, the
warnings it reports, and how it reads the files a stack names (injected, so that the translation
itself does no I/O and can be tested on made-up files)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.errors import UserError
from orchestrator.kube import names
from orchestrator.stack.model import Stack

# Images of the helper containers that wait for dependencies (see orchestrator/kube/waits.py).
BUSYBOX_IMAGE = "busybox:1.37"
KUBECTL_IMAGE = "registry.k8s.io/kubectl:v1.36.0"
# The largest ConfigMap or Secret the API server stores (its data, roughly).
MAX_OBJECT_BYTES = 1024 * 1024
# What a PersistentVolumeClaim asks for: Compose volumes have no size.
DEFAULT_VOLUME_SIZE = "1Gi"


@dataclass(frozen=True)
class ExportOptions:
    namespace: str | None = None
    registry: str | None = None


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object: ``body`` is what ``kubectl apply`` reads."""

    kind: str
    name: str
    body: dict[str, Any]
    sensitive: bool = False  # holds secret data: written with mode 0600


@dataclass(frozen=True)
class Note:
    """A stack setting that Kubernetes cannot keep as it is: ``path`` is the stack key
    (``services.web.network_mode``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Push:
    """A locally built image and the name the cluster pulls it by."""

    service: str
    local: str
    remote: str

    @property
    def command(self) -> str:
        return f"orchestrator push {self.local} {self.remote}"


@dataclass
class ExportResult:
    manifests: list[Manifest] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    pushes: list[Push] = field(default_factory=list)


class Sources(Protocol):
    """Reads the host files a stack names (secrets, configs, bind mount sources)."""

    def read(self, path: str) -> bytes:
        """The file's bytes; raises OSError (IsADirectoryError for a directory)."""
        ...

    def listdir(self, path: str) -> list[str] | None:
        """The names in a directory, or None when ``path`` is not a directory."""
        ...

    def executable(self, path: str) -> bool:
        """Whether the file may be executed by its owner."""
        ...


class Notes:
    """Collects warnings, each once, in the order they were found."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Note] = {}

    def add(self, path: str, message: str) -> None:
        self._items.setdefault((path, message), Note(path, message))

    def service(self, service: str, key: str, message: str) -> None:
        self.add(f"services.{service}.{key}" if key else f"services.{service}", message)

    def all(self) -> list[Note]:
        return list(self._items.values())


def metadata(
    name: str,
    labels: dict[str, str],
    namespace: str | None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def make(
    api_version: str,
    kind: str,
    name: str,
    labels: dict[str, str],
    namespace: str | None,
    *,
    annotations: dict[str, str] | None = None,
    sensitive: bool = False,
    **fields: Any,
) -> Manifest:
    """A manifest: ``apiVersion``, ``kind``, ``metadata``, then ``fields`` in order."""
    body: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata(name, labels, namespace, annotations),
    }
    body.update(fields)
    return Manifest(kind, name, body, sensitive)


def split_labels(
    user: dict[str, str], reserved: dict[str, str]
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """A stack's labels as Kubernetes labels where valid (and not ours), else annotations; the
    keys that cannot be either come last."""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    rejected: list[str] = []
    for key, value in user.items():
        if key not in reserved and names.is_label(key, value):
            labels[key] = value
        elif names.is_annotation_key(key):
            annotations[key] = value
        else:
            rejected.append(key)
    return labels, annotations, rejected


@dataclass
class Context:
    """One export's inputs and what it has made so far."""

    stack: Stack
    options: ExportOptions
    sources: Sources
    notes: Notes = field(default_factory=Notes)
    result: ExportResult = field(default_factory=ExportResult)
    # compose service name -> Kubernetes name
    service_names: dict[str, str] = field(default_factory=dict)
    _taken: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def namespace(self) -> str | None:
        return self.options.namespace

    def name_of(self, service: str) -> str:
        return self.service_names[service]

    def claim(self, kind: str, name: str, owner: str) -> bool:
        """Reserve ``name`` among objects of ``kind``; False when ``owner`` is not its owner."""
        return self._taken.setdefault((kind, name), owner) == owner

    def owner(self, kind: str, name: str) -> str | None:
        return self._taken.get((kind, name))

    def require(self, kind: str, name: str, owner: str) -> str:
        """Reserve ``name`` or fail, naming both owners."""
        if not self.claim(kind, name, owner):
            raise UserError(
                f"{owner} and {self._taken[(kind, name)]} both become the {kind} {name!r} "
                "in Kubernetes: rename one of them"
            )
        return name

    def unique(self, kind: str, base: str, owner: str) -> str:
        """``base``, or ``base-2``, ``base-3``... whichever is free first."""
        name, n = base, 1
        while not self.claim(kind, name, owner):
            n += 1
            name = names.derived(base, str(n))
        return name

    def add(self, manifest: Manifest) -> None:
        self.result.manifests.append(manifest)


@dataclass
class PodParts:
    """The volumes of a pod and the mounts of its container, gathered from several keys."""

    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)

    def volume(self, base: str, spec: dict[str, Any], *, share: bool = True) -> str:
        """Add a volume and return its name; with ``share``, one volume per distinct ``spec``
        (an emptyDir is never shared: each mount gets its own)."""
        for v in self.volumes if share else ():
            if {k: x for k, x in v.items() if k != "name"} == spec:
                return str(v["name"])
        taken = {v["name"] for v in self.volumes}
        name, n = names.dns_label(base), 1
        while name in taken:
            n += 1
            name = names.derived(names.dns_label(base), str(n))
        self.volumes.append({"name": name, **spec})
        return name

    def mount(
        self, volume: str, target: str, *, read_only: bool = False, sub_path: str | None = None
    ) -> None:
        m: dict[str, Any] = {"name": volume, "mountPath": target}
        if sub_path:
            m["subPath"] = sub_path
        if read_only:
            m["readOnly"] = True
        self.mounts.append(m)
