"""Images: the content-addressed store, the safe layer extractor and the archive formats.

Layout:
  digest.py      digests and references (``NAME[:TAG][@DIGEST]``, Docker's normalisation)
  tarstream.py   a bounded tar reader over a decompressed, hashed stream
  extract.py     the safe extractor: one layer into one directory, overlayfs whiteouts
  model.py       ``Image`` and media types
  store.py       ``ImageStore``: the OCI layout on disk, its lock, state and transactions
  layers.py      one read of a layer blob that copies, verifies and extracts it
  manifests.py   manifests and configs: checked on the way in, written for new images
  leases.py      what work in progress relies on, kept from ``rmi`` and ``prune``
  difftar.py     an overlay upper directory as a layer tar (commit, build)
  formats.py     docker-archive, OCI layout (directory or tar) and rootfs tar: detect, import, save
  transport.py   HTTP for registries: keep-alive connections, retries, redirects
  registry.py    the OCI distribution API of one registry, with its authentication
  transfer.py    pull and push: images between a registry and the store
  auth.py        registry credentials
"""

from runtime.image.digest import InvalidReference, Reference, parse_reference, validate_digest
from runtime.image.extract import UnsafeArchive
from runtime.image.layers import LayerInfo
from runtime.image.manifests import MAX_LAYERS
from runtime.image.model import Image, ImageInUse, InvalidImage
from runtime.image.store import ImageStore
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
