"""What an image is to the rest of the code: ``Image``, and the media types we accept.

``Image`` is a frozen snapshot read from the store; its convenience properties read the OCI
image config (``config["config"]``), which is what a container is made from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runtime.errors import Error

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
LAYER_TYPES = (
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_LAYER_ND,
    OCI_LAYER_ND_GZIP,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_FOREIGN_LAYER,
)

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
CONTAINERD_NAME_ANNOTATION = "io.containerd.image.name"


class InvalidImage(Error):
    """An image, archive or layout is malformed, over a limit or refused."""


class ImageInUse(Error):
    """The image is used by a container (or has several names) and removal was not forced."""


@dataclass(frozen=True)
class Image:
    """An image in the store.

    ``id`` is the config digest (``sha256:...``), ``layers`` the diff ids lowest first (what
    ``ImageStore.layer_dirs`` maps to directories), ``layer_blobs`` the manifest's layer
    digests, ``repo_tags`` canonical names (``docker.io/library/busybox:latest``).
    """

    id: str
    manifest_digest: str
    config: dict[str, Any] = field(compare=False, hash=False, repr=False)
    repo_tags: tuple[str, ...] = ()
    created: str | None = None
    size: int = 0
    layers: tuple[str, ...] = ()
    layer_blobs: tuple[str, ...] = ()
    manifest_media_type: str = OCI_MANIFEST

    @property
    def short_id(self) -> str:
        return self.id.partition(":")[2][:12]

    @property
    def run_config(self) -> dict[str, Any]:
        """The ``config`` object of the image config (Env, Cmd, ...), ``{}`` when absent."""
        value = self.config.get("config")
        return value if isinstance(value, dict) else {}

    @property
    def env(self) -> list[str]:
        return _str_list(self.run_config.get("Env"))

    @property
    def cmd(self) -> list[str] | None:
        value = self.run_config.get("Cmd")
        return _str_list(value) if value is not None else None

    @property
    def entrypoint(self) -> list[str] | None:
        value = self.run_config.get("Entrypoint")
        return _str_list(value) if value is not None else None

    @property
    def working_dir(self) -> str:
        return _str(self.run_config.get("WorkingDir"))

    @property
    def user(self) -> str:
        return _str(self.run_config.get("User"))

    @property
    def exposed_ports(self) -> list[str]:
        """``["80/tcp", "53/udp"]``."""
        value = self.run_config.get("ExposedPorts")
        return sorted(str(k) for k in value) if isinstance(value, dict) else []

    @property
    def volumes(self) -> list[str]:
        value = self.run_config.get("Volumes")
        return sorted(str(k) for k in value) if isinstance(value, dict) else []

    @property
    def stop_signal(self) -> str | None:
        value = self.run_config.get("StopSignal")
        return value if isinstance(value, str) and value else None

    @property
    def labels(self) -> dict[str, str]:
        value = self.run_config.get("Labels")
        if not isinstance(value, dict):
            return {}
        return {str(k): str(v) for k, v in value.items()}

    @property
    def healthcheck(self) -> dict[str, Any] | None:
        """Docker's ``Healthcheck`` object (Test, Interval, Timeout, StartPeriod, Retries)."""
        value = self.run_config.get("Healthcheck")
        return value if isinstance(value, dict) else None

    @property
    def architecture(self) -> str:
        return _str(self.config.get("architecture"))

    @property
    def os(self) -> str:
        return _str(self.config.get("os"))

    @property
    def history(self) -> list[dict[str, Any]]:
        value = self.config.get("history")
        return [h for h in value if isinstance(h, dict)] if isinstance(value, list) else []


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _str_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []
