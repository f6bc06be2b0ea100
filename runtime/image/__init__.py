"""Images: the content-addressed store, the safe layer extractor and the archive formats.

Layout:
  digest.py      digests and references (``NAME[:TAG][@DIGEST]``, Docker's normalisation)
  tarstream.py   a bounded tar reader over a decompressed, hashed stream
  extract.py     the safe extractor: one layer into one directory, overlayfs whiteouts
  model.py       ``Image`` and media types
  store.py       ``ImageStore``: blobs, manifests, shared extracted layers, tags
  formats.py     docker-archive, OCI layout (directory or tar) and rootfs tar: detect, import, save
"""

from runtime.image.digest import InvalidReference, Reference, parse_reference, validate_digest
from runtime.image.extract import UnsafeArchive
from runtime.image.model import Image, ImageInUse, InvalidImage
from runtime.image.store import MAX_LAYERS, ImageStore, LayerInfo
from runtime.image.tarstream import InvalidArchive, Limits

__all__ = [
    "MAX_LAYERS",
    "Image",
    "ImageInUse",
    "ImageStore",
    "InvalidArchive",
    "InvalidImage",
    "InvalidReference",
    "LayerInfo",
    "Limits",
    "Reference",
    "UnsafeArchive",
    "parse_reference",
    "validate_digest",
]
