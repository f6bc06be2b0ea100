"""Layers: one read of a layer blob that copies, verifies and extracts it.

A layer is read once, as it arrives: the blob is copied aside (as given for uncompressed and gzip
layers; decompressed for bzip2 and xz ones, which OCI has no media type for), its tar is
extracted by ``extract`` (or only verified when the layer is already extracted), and its blob
digest, size and diff id are checked against what the manifest and config say. Placing the
results in the store is the store's job.
"""

from __future__ import annotations

import io
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from runtime.image.digest import digest_hex
from runtime.image.extract import LayerStats, extract, verify
from runtime.image.model import OCI_LAYER, OCI_LAYER_GZIP, InvalidImage
from runtime.image.tarstream import CHUNK, GZIP_MAGIC, InvalidArchive, Limits, Source

__all__ = ["LayerInfo", "dir_name", "media_type_of", "read_layer"]


@dataclass(frozen=True)
class LayerInfo:
    blob: str
    diff_id: str
    size: int  # bytes of the blob
    media_type: str


def read_layer(
    stream: BinaryIO,
    limits: Limits,
    *,
    blob_to: Path | None,
    extract_to: Path | None,
    expected_blob: str | None = None,
    expected_diff_id: str | None = None,
    expected_size: int | None = None,
    durable: bool = True,
) -> tuple[LayerInfo, LayerStats]:
    """Read the layer ``stream`` once: copy its blob to the new file ``blob_to``, extract it into
    the existing empty directory ``extract_to`` (without one, only verify it), check the size,
    blob digest and diff id when given. ``durable`` syncs the blob copy to disk."""
    tee = None
    try:
        if blob_to is not None:
            tee = open(blob_to, "xb")  # noqa: SIM115 - closed in finally
        try:
            if expected_size is not None:
                stream = cast(BinaryIO, _Bounded(stream, expected_size))
            src = Source(stream, limits, tee=tee, tee_mode="auto")
            stats = (
                extract(src, extract_to, limits) if extract_to is not None else verify(src, limits)
            )
        except InvalidArchive as exc:
            raise InvalidImage(f"layer {expected_blob or ''}: {exc}".replace(" : ", ": ")) from None
        if tee is not None:
            tee.flush()
            if durable:
                os.fsync(tee.fileno())
            tee.close()
    finally:
        if tee is not None and not tee.closed:
            tee.close()
    blob = stats.digest if src.tee_decompressed else stats.raw_digest
    size = stats.tar_size if src.tee_decompressed else src.raw_bytes
    if expected_size is not None and src.raw_bytes != expected_size:
        raise InvalidImage(
            f"layer {expected_blob or blob} is {src.raw_bytes} bytes, expected {expected_size}"
        )
    if expected_blob is not None and stats.raw_digest != expected_blob:
        raise InvalidImage(
            f"layer blob does not match its digest {expected_blob} (got {stats.raw_digest})"
        )
    if expected_diff_id is not None and stats.digest != expected_diff_id:
        raise InvalidImage(
            f"layer {expected_blob or blob} does not match its diff id {expected_diff_id} "
            f"(got {stats.digest})"
        )
    media_type = (
        OCI_LAYER_GZIP if src.compression == "gzip" and not src.tee_decompressed else OCI_LAYER
    )
    return LayerInfo(blob, stats.digest, size, media_type), stats


def media_type_of(head: bytes) -> str:
    """The media type of a stored layer blob from its first bytes (stored blobs are plain tars
    or gzip: see ``read_layer``)."""
    return OCI_LAYER_GZIP if head.startswith(GZIP_MAGIC) else OCI_LAYER


def dir_name(diff_id: str, used: set[str]) -> str:
    """A name for a layer's directory that no other layer has. Short, because overlay's mount
    options (every lower directory of a container) must fit in a page."""
    name = digest_hex(diff_id)[:12]
    while name in used:
        name = secrets.token_hex(6)
    return name


class _Bounded(io.RawIOBase):
    """Reads ``stream`` but refuses to go past ``limit`` bytes (a blob larger than declared)."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self._stream = stream
        self._left = limit

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = CHUNK if size is None or size < 0 else size
        data = self._stream.read(min(want, self._left + 1))
        if len(data) > self._left:
            raise InvalidImage("blob is larger than its descriptor says")
        self._left -= len(data)
        return data
