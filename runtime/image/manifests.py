"""Image manifests and configs: read and check them, and write new ones.

An image may have at most ``MAX_LAYERS`` (125, Docker's figure) layers so that a container's
overlay (the lower layers plus its own upper layer) always mounts; a deeper image is refused
with a message that says so, never discovered as a mount error later.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

from runtime.image.digest import validate_digest
from runtime.image.layers import LayerInfo
from runtime.image.model import (
    CONFIG_TYPES,
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    LAYER_TYPES,
    OCI_CONFIG,
    OCI_MANIFEST,
    InvalidImage,
)

__all__ = [
    "DEFAULT_PATH_ENV",
    "MAX_JSON",
    "MAX_LAYERS",
    "canonical_json",
    "check_depth",
    "config_diff_ids",
    "derived_config",
    "host_architecture",
    "loads_json",
    "oci_manifest",
    "parse_manifest",
    "timestamp",
    "with_rootfs",
]

MAX_LAYERS = 125
MAX_JSON = 8 << 20  # manifests, configs, index.json, manifest.json
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def canonical_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def loads_json(data: bytes, what: str) -> Any:
    if len(data) > MAX_JSON:
        raise InvalidImage(f"{what} is larger than {MAX_JSON} bytes")
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidImage(f"{what} is not valid JSON") from None


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def host_architecture() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )


# -- manifest and config checks -------------------------------------------------------------------


def parse_manifest(data: bytes) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """(media type, config descriptor, layer descriptors) of an image manifest, every digest,
    size and media type checked."""
    manifest = loads_json(data, "manifest")
    if not isinstance(manifest, dict) or manifest.get("schemaVersion") != 2:
        raise InvalidImage("not an image manifest (schemaVersion 2 expected)")
    config = manifest.get("config")
    layers = manifest.get("layers")
    if not isinstance(config, dict) or not isinstance(layers, list):
        raise InvalidImage("manifest has no config or no layers")
    media_type = manifest.get("mediaType")
    if media_type is None:
        media_type = DOCKER_MANIFEST if config.get("mediaType") == DOCKER_CONFIG else OCI_MANIFEST
    if media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise InvalidImage(f"unsupported manifest media type {media_type!r}")
    _descriptor(config, CONFIG_TYPES, "config")
    for layer in layers:
        _descriptor(layer, LAYER_TYPES, "layer")
    check_depth(len(layers))
    return str(media_type), config, layers


def _descriptor(desc: object, types: tuple[str, ...], what: str) -> None:
    if not isinstance(desc, dict):
        raise InvalidImage(f"manifest {what} descriptor is not an object")
    validate_digest(desc.get("digest"))  # type: ignore[arg-type]
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidImage(f"manifest {what} descriptor has an invalid size")
    media = desc.get("mediaType")
    if media not in types:
        raise InvalidImage(f"unsupported {what} media type {media!r}")


def config_diff_ids(config: dict[str, Any]) -> list[str]:
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidImage("image config has no rootfs of type 'layers'")
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list):
        raise InvalidImage("image config has no rootfs.diff_ids")
    for d in diff_ids:
        validate_digest(d)
    os_name = config.get("os")
    if os_name not in (None, "", "linux"):
        raise InvalidImage(f"image is for {os_name!r}, not linux")
    return list(diff_ids)


def check_depth(n: int) -> None:
    if n > MAX_LAYERS:
        raise InvalidImage(
            f"image has {n} layers; at most {MAX_LAYERS} can be stacked (overlayfs lower "
            "directory limits): squash it into fewer layers first"
        )


# -- writing --------------------------------------------------------------------------------------


def oci_manifest(config_digest: str, config_size: int, layers: Sequence[LayerInfo]) -> bytes:
    """The OCI manifest, as canonical JSON, of a config blob and ``layers`` (lowest first)."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [
            {"mediaType": layer.media_type, "digest": layer.blob, "size": layer.size}
            for layer in layers
        ],
    }
    return canonical_json(manifest)


def with_rootfs(config: dict[str, Any], layers: Sequence[LayerInfo]) -> dict[str, Any]:
    """A copy of ``config`` whose ``rootfs`` lists the diff ids of ``layers`` (lowest first)."""
    check_depth(len(layers))
    config = dict(config)
    config["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}
    return config


def derived_config(
    layers: Sequence[LayerInfo],
    history: list[dict[str, Any]],
    run_config: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A new image's config: ``base``'s (if any) with ``layers``, more ``history``, created now.

    ``run_config`` (``Env``, ``Cmd``...) replaces the base's; with neither, a default ``PATH``.
    """
    config: dict[str, Any] = dict(base or {})
    config.update(
        {
            "created": timestamp(),
            "architecture": config.get("architecture") or host_architecture(),
            "os": "linux",
            "config": run_config
            if run_config is not None
            else config.get("config") or {"Env": [DEFAULT_PATH_ENV]},
            "history": list(config.get("history") or []) + history,
        }
    )
    return with_rootfs(config, layers)
