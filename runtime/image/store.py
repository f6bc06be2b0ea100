"""The content-addressed image store.

    store = ImageStore(images_dir(root))
    image = store.import_path(Path("busybox.tar"), "busybox:1.36")
    lowers = store.layer_dirs(image)            # lowest first, for overlay's lowerdir
    store.save(["busybox:1.36"], Path("out.tar"), "oci")

On disk (``root`` is ``<state root>/images``)::

    oci-layout, index.json   an OCI image layout (index.json is derived, for other tools)
    blobs/sha256/<hex>       manifests, configs and layer blobs, each verified on the way in
    l/<12 chars>/            one extracted layer, shared by every image that has its diff id;
                             the names are short because overlay's mount options fit in a page
    state.json               images, tags and layers; replaced atomically (temp, fsync, rename)
    tmp/                     blobs and layers being written; renamed into place when complete
    lock                     flock: one writer at a time

Every change (an import, a tag, a removal) is a transaction: it holds the lock, works on a copy
of the state and writes it once at the end. If anything fails, the blobs and layer directories
it created are removed and the state file is untouched, so a failed import leaves nothing behind.

What it is made of: ``layers`` reads a layer blob once (copy, verify, extract), ``manifests``
checks and writes manifests and configs, ``leases`` keeps work in progress from ``rmi`` and
``prune``, ``files`` writes durably, ``difftar`` turns an overlay upper directory into a layer
tar, ``formats`` imports and saves archives.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from runtime.errors import NotFound
from runtime.filelock import exclusive
from runtime.image.digest import (
    InvalidReference,
    digest_hex,
    is_full_id,
    parse_reference,
    parse_tagged,
    validate_digest,
)
from runtime.image.extract import LayerStats
from runtime.image.files import atomic_write, copy_hashed, syncfs
from runtime.image.layers import LayerInfo, dir_name, media_type_of, read_layer
from runtime.image.leases import Lease, held_digests
from runtime.image.manifests import (
    MAX_JSON,
    MAX_LAYERS,
    canonical_json,
    check_depth,
    config_diff_ids,
    derived_config,
    loads_json,
    oci_manifest,
    parse_manifest,
    timestamp,
    with_rootfs,
)
from runtime.image.model import (
    CONTAINERD_NAME_ANNOTATION,
    OCI_INDEX,
    OCI_MANIFEST,
    REF_NAME_ANNOTATION,
    Image,
    ImageInUse,
    InvalidImage,
)
from runtime.image.tarstream import Limits

STATE_VERSION = 1
_SHORT_HEX_RE = re.compile(r"(?:sha256:)?([a-f0-9]{1,64})")
# Small blobs (manifests, configs) read and checked in this process, by file: a blob's content
# is its digest's, so an entry is never stale while its file is there (checked by its
# identity). Callers open a store per call (the supervisor resolves an image several times
# per container it makes); this keeps the reads and the hashing to once per blob.
_VERIFIED: dict[tuple[str, str], tuple[tuple[int, int], bytes]] = {}
_VERIFIED_MOST = 512


@dataclass
class _Txn:
    state: dict[str, Any]
    new_blobs: list[Path] = field(default_factory=list)
    new_layers: list[Path] = field(default_factory=list)
    removed_layers: list[Path] = field(default_factory=list)
    removed_blobs: list[Path] = field(default_factory=list)
    synced: bool = True


def _empty_state() -> dict[str, Any]:
    return {"version": STATE_VERSION, "images": {}, "refs": {}, "layers": {}, "blobs": {}}


class ImageStore:
    """Images as OCI blobs plus extracted, shared layers. See the module docstring."""

    MAX_LAYERS = MAX_LAYERS

    def __init__(
        self,
        root: Path,
        *,
        limits: Limits = Limits(),  # noqa: B008 - frozen
        in_use: Callable[[], set[str]] | None = None,
        durable: bool = True,
    ) -> None:
        """``in_use`` returns the ids of images that containers use (``rmi`` refuses those);
        ``durable`` syncs new layers to disk before an import is recorded."""
        self.root = Path(root)
        self.limits = limits
        self._in_use = in_use or set
        self._durable = durable
        self._local = threading.local()
        self._json_cache: dict[str, Any] = {}
        self.active_lease: Lease | None = None

    # -- leases ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lease(self) -> Iterator[Lease]:
        """Protect what work in progress makes or relies on (a build's step layers, a pull's
        blobs) from ``rmi`` and ``prune`` in other processes until it is recorded in an image.

        While the lease is active, every layer and blob this store object places is added to it
        before it appears; callers add what they rely on with ``lease.add``."""
        self._ensure()
        lease = Lease.create(self.root / "leases")
        previous, self.active_lease = self.active_lease, lease
        try:
            yield lease
        finally:
            self.active_lease = previous
            lease.release()

    def _note(self, *digests: str) -> None:
        if self.active_lease is not None:
            self.active_lease.add(*digests)

    # -- layout ---------------------------------------------------------------------------------

    @property
    def layers_root(self) -> Path:
        """The directory holding the extracted layers (chdir here and use the short names)."""
        return self.root / "l"

    @property
    def blobs_root(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def tmp_root(self) -> Path:
        return self.root / "tmp"

    def _ensure(self) -> None:
        if (self.root / "oci-layout").exists():
            return
        self.root.mkdir(mode=0o711, parents=True, exist_ok=True)
        for d, mode in (
            (self.blobs_root, 0o711),
            (self.layers_root, 0o711),
            (self.tmp_root, 0o700),
        ):
            d.mkdir(mode=mode, parents=True, exist_ok=True)
        atomic_write(self.root / "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')

    # -- locking and state -----------------------------------------------------------------------

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        self._ensure()
        return exclusive(self.root / "lock")

    def _txn(self) -> _Txn | None:
        txn: _Txn | None = getattr(self._local, "txn", None)
        return txn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_Txn]:
        """Hold the store lock; the state is written once at the end, or everything new undone."""
        outer = self._txn()
        if outer is not None:
            yield outer
            return
        with self._lock():
            before = self._read_state()
            txn = _Txn(json.loads(json.dumps(before)))
            self._local.txn = txn
            try:
                yield txn
                if txn.state != before:
                    if not txn.synced and self._durable:
                        syncfs(self.root)
                    self._write_state(txn.state)
                    for path in txn.removed_layers:
                        shutil.rmtree(path, ignore_errors=True)
                    for path in txn.removed_blobs:
                        with contextlib.suppress(FileNotFoundError):
                            path.unlink()
            except BaseException:
                for path in txn.new_layers:
                    shutil.rmtree(path, ignore_errors=True)
                for path in txn.new_blobs:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                raise
            finally:
                self._local.txn = None

    def _read_state(self) -> dict[str, Any]:
        try:
            data = (self.root / "state.json").read_bytes()
        except FileNotFoundError:
            return _empty_state()
        state = json.loads(data)
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise InvalidImage(f"{self.root / 'state.json'}: unknown state format")
        return state

    def _state(self) -> dict[str, Any]:
        txn = self._txn()
        return txn.state if txn is not None else self._read_state()

    def _write_state(self, state: dict[str, Any]) -> None:
        atomic_write(self.root / "state.json", json.dumps(state, indent=1, sort_keys=True).encode())
        atomic_write(self.root / "index.json", canonical_json(self._oci_index(state)))

    def _oci_index(self, state: dict[str, Any]) -> dict[str, Any]:
        manifests = []
        tagged: set[str] = set()
        for ref, image_id in sorted(state["refs"].items()):
            rec = state["images"].get(image_id)
            if rec is None:
                continue
            tagged.add(image_id)
            manifests.append(
                {
                    "mediaType": rec["media_type"],
                    "digest": rec["manifest"],
                    "size": rec["manifest_size"],
                    "annotations": {CONTAINERD_NAME_ANNOTATION: ref, REF_NAME_ANNOTATION: ref},
                }
            )
        for image_id, rec in sorted(state["images"].items()):
            if image_id not in tagged:
                manifests.append(
                    {
                        "mediaType": rec["media_type"],
                        "digest": rec["manifest"],
                        "size": rec["manifest_size"],
                    }
                )
        return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}

    # -- blobs ----------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs_root / digest_hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store") from None

    def read_blob(self, digest: str, what: str = "blob") -> bytes:
        """A small blob (manifest, config), its digest checked again as it is read (or as this
        process last read that very file)."""
        with self.open_blob(digest) as f:
            info = os.fstat(f.fileno())
            identity = (info.st_ino, info.st_mtime_ns)
            key = (str(self.blobs_root), digest)
            known = _VERIFIED.get(key)
            if known is not None and known[0] == identity:
                return known[1]
            data = f.read(MAX_JSON + 1)
        if len(data) > MAX_JSON:
            raise InvalidImage(f"{what} {digest} is larger than {MAX_JSON} bytes")
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise InvalidImage(f"{what} {digest} in the store does not match its digest")
        if len(_VERIFIED) >= _VERIFIED_MOST:
            _VERIFIED.clear()
        _VERIFIED[key] = (identity, data)
        return data

    def _json_blob(self, digest: str, what: str) -> Any:
        cached = self._json_cache.get(digest)
        if cached is None:
            cached = loads_json(self.read_blob(digest, what), what)
            self._json_cache[digest] = cached
        return cached

    def _tmp_path(self, prefix: str) -> Path:
        self._ensure()
        if not getattr(self, "_swept", False):
            self._swept = True
            collect_dead_owners(self.tmp_root)  # what killed imports left (issue 9)
        return self.tmp_root / f"{prefix}-{owner_tag()}-{secrets.token_hex(8)}"

    def ingest_blob(
        self,
        stream: BinaryIO,
        expected_digest: str | None = None,
        expected_size: int | None = None,
    ) -> str:
        """Copy ``stream`` into the store, hashing as it goes; verify, then rename into place.

        Returns the digest. If ``expected_digest`` is already stored nothing is read.
        """
        if expected_digest is not None:
            validate_digest(expected_digest)
            if self.has_blob(expected_digest):
                return expected_digest
        tmp = self._tmp_path("b")
        try:
            digest, size = copy_hashed(stream, tmp, expected_size, self.limits.max_bytes)
            if expected_size is not None and size != expected_size:
                raise InvalidImage(
                    f"blob {expected_digest or digest} is {size} bytes, expected {expected_size}"
                )
            if expected_digest is not None and digest != expected_digest:
                raise InvalidImage(
                    f"blob content does not match its digest {expected_digest} (got {digest})"
                )
            self._place_blob(tmp, digest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return digest

    def put_bytes(self, data: bytes) -> str:
        """Store a small blob (manifest, config) given as bytes."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.has_blob(digest):
            return digest
        tmp = self._tmp_path("b")
        try:
            atomic_write(tmp, data, rename=False)
            self._place_blob(tmp, digest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return digest

    def _place_blob(self, tmp: Path, digest: str) -> None:
        target = self.blob_path(digest)
        self._note(digest)  # leased before it exists: no prune can take it in between
        existed = target.exists()
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        txn = self._txn()
        if txn is not None and not existed:
            txn.new_blobs.append(target)

    # -- layers ---------------------------------------------------------------------------------

    def ingest_layer(
        self,
        stream: BinaryIO,
        *,
        expected_blob: str | None = None,
        expected_diff_id: str | None = None,
        expected_size: int | None = None,
        store_blob: bool = True,
    ) -> LayerInfo:
        """Read a layer once: store its blob and extract it (unless already extracted).

        Inside a transaction; verifies the blob digest, the size and the diff id when given.
        Uncompressed and gzip layers are stored as given; bzip2 and xz ones are stored
        decompressed (OCI has no media type for them).
        """
        txn = self._txn()
        if txn is None:
            with self.transaction():
                return self.ingest_layer(
                    stream,
                    expected_blob=expected_blob,
                    expected_diff_id=expected_diff_id,
                    expected_size=expected_size,
                    store_blob=store_blob,
                )
        state = txn.state
        if expected_blob is not None:
            validate_digest(expected_blob)
        if expected_diff_id is not None:
            validate_digest(expected_diff_id)
        need_extract = expected_diff_id is None or expected_diff_id not in state["layers"]
        blob_tmp = self._tmp_path("b") if store_blob else None
        layer_tmp = self._tmp_path("x") if need_extract else None
        try:
            if layer_tmp is not None:
                layer_tmp.mkdir(mode=0o755)
            layer, stats = read_layer(
                stream,
                self.limits,
                blob_to=blob_tmp,
                extract_to=layer_tmp,
                expected_blob=expected_blob,
                expected_diff_id=expected_diff_id,
                expected_size=expected_size,
                durable=self._durable,
            )
            if blob_tmp is not None:
                self._place_blob(blob_tmp, layer.blob)
            if layer_tmp is not None and layer.diff_id not in state["layers"]:
                self._place_layer(txn, layer_tmp, layer.diff_id, stats)
            state["blobs"][layer.blob] = layer.diff_id
            return layer
        finally:
            if blob_tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    blob_tmp.unlink()
            if layer_tmp is not None and layer_tmp.exists():
                shutil.rmtree(layer_tmp, ignore_errors=True)

    def _place_layer(self, txn: _Txn, tmp: Path, diff_id: str, stats: LayerStats) -> None:
        self._note(diff_id)
        state = txn.state
        name = dir_name(diff_id, {rec["dir"] for rec in state["layers"].values()})
        target = self.layers_root / name
        if target.exists() or target.is_symlink():
            # Left by a crash between the rename and the state write: not in the state, so ours.
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.chmod(tmp, os.stat(tmp).st_mode & 0o7777)
        os.rename(tmp, target)
        txn.new_layers.append(target)
        txn.synced = False
        state["layers"][diff_id] = {
            "dir": name,
            "size": stats.size,
            "tar_size": stats.tar_size,
            "entries": stats.entries,
        }

    def layer_dirs(self, image: Image) -> builtins.list[Path]:
        """The extracted layer directories of ``image``, LOWEST FIRST (overlay lowerdir order is
        the reverse: topmost first). Their names under ``layers_root`` are 12 characters."""
        layers = self._state()["layers"]
        dirs = []
        for diff_id in image.layers:
            rec = layers.get(diff_id)
            if rec is None:
                raise NotFound(
                    f"layer {diff_id} of image {image.short_id} is missing from the store"
                )
            dirs.append(self.layers_root / rec["dir"])
        return dirs

    def layer_known(self, blob: str, diff_id: str) -> bool:
        """Whether ``blob`` is stored, verified to hold ``diff_id``, and that layer extracted."""
        state = self._state()
        return (
            diff_id in state["layers"]
            and state["blobs"].get(blob) == diff_id
            and self.has_blob(blob)
        )

    def layer_info_for(self, diff_id: str) -> LayerInfo | None:
        """A stored, verified blob of an extracted layer, if there is one."""
        state = self._state()
        if diff_id not in state["layers"]:
            return None
        for blob, known in sorted(state["blobs"].items()):
            if known == diff_id and self.has_blob(blob):
                with self.open_blob(blob) as f:
                    head = f.read(4)
                    size = os.fstat(f.fileno()).st_size
                return LayerInfo(blob, diff_id, size, media_type_of(head))
        return None

    def layer_size(self, diff_id: str) -> int:
        """Bytes of file content in the extracted layer (0 if unknown)."""
        rec = self._state()["layers"].get(diff_id)
        return int(rec["size"]) if rec else 0

    def layer_tar_size(self, diff_id: str) -> int:
        return int(self._state()["layers"][diff_id]["tar_size"])

    # -- manifests and images -------------------------------------------------------------------

    def add_manifest(self, manifest: bytes, refs: Sequence[str] = ()) -> Image:
        """Register an OCI or Docker schema 2 manifest whose blobs are already ingested.

        Verifies the config and every layer, extracts the layers not yet extracted, records the
        image and tags it with ``refs``.
        """
        media_type, config_desc, layer_descs = parse_manifest(manifest)
        parsed_refs = [parse_tagged(r) for r in refs]
        with self.transaction() as txn:
            config = self._load_config(config_desc["digest"], config_desc.get("size"))
            diff_ids = config_diff_ids(config)
            if len(diff_ids) != len(layer_descs):
                raise InvalidImage(
                    f"manifest has {len(layer_descs)} layers but the config lists {len(diff_ids)}"
                )
            check_depth(len(diff_ids))
            for desc, diff_id in zip(layer_descs, diff_ids, strict=True):
                if (
                    diff_id in txn.state["layers"]
                    and txn.state["blobs"].get(desc["digest"]) == diff_id
                ):
                    continue
                if not self.has_blob(desc["digest"]):
                    raise InvalidImage(f"layer blob {desc['digest']} has not been ingested")
                with self.open_blob(desc["digest"]) as f:
                    self.ingest_layer(
                        f,
                        expected_blob=desc["digest"],
                        expected_diff_id=diff_id,
                        expected_size=desc["size"],
                        store_blob=False,
                    )
            return self.record_image(manifest, media_type, [str(r) for r in parsed_refs])

    def _load_config(self, digest: str, size: int | None = None) -> dict[str, Any]:
        if not self.has_blob(digest):
            raise InvalidImage(f"image config {digest} has not been ingested")
        if size is not None and self.blob_path(digest).stat().st_size != size:
            raise InvalidImage(f"image config {digest} does not have the size its manifest says")
        config = self._json_blob(digest, "image config")
        if not isinstance(config, dict):
            raise InvalidImage("image config is not a JSON object")
        return config

    def record_image(self, manifest: bytes, media_type: str, refs: Sequence[str]) -> Image:
        """Store ``manifest`` and point ``refs`` (canonical, already parsed) at its image."""
        txn = self._txn()
        assert txn is not None, "record_image runs inside a transaction"
        _, config_desc, _ = parse_manifest(manifest)
        image_id = config_desc["digest"]
        manifest_digest = self.put_bytes(manifest)
        txn.state["images"][image_id] = {
            "manifest": manifest_digest,
            "media_type": media_type,
            "manifest_size": len(manifest),
            "added": timestamp(),
        }
        for ref in refs:
            txn.state["refs"][ref] = image_id
        return self._image(txn.state, image_id)

    def manifest_of(self, image: Image) -> tuple[str, bytes]:
        """(media type, bytes) of the image's manifest, as a registry push needs them."""
        return image.manifest_media_type, self.read_blob(image.manifest_digest, "manifest")

    def _image(self, state: dict[str, Any], image_id: str) -> Image:
        rec = state["images"][image_id]
        manifest = self._json_blob(rec["manifest"], "manifest")
        config = self._json_blob(image_id, "image config")
        diff_ids = tuple(config_diff_ids(config))
        layers = state["layers"]
        size = sum(int(layers[d]["size"]) for d in diff_ids if d in layers)
        tags = tuple(sorted(ref for ref, target in state["refs"].items() if target == image_id))
        created = config.get("created")
        return Image(
            id=image_id,
            manifest_digest=rec["manifest"],
            config=config,
            repo_tags=tags,
            created=created if isinstance(created, str) else None,
            size=size,
            layers=diff_ids,
            layer_blobs=tuple(d["digest"] for d in manifest.get("layers", [])),
            manifest_media_type=rec["media_type"],
        )

    def list(self) -> builtins.list[Image]:
        state = self._state()
        images = [self._image(state, image_id) for image_id in state["images"]]
        return sorted(images, key=lambda i: (i.created or "", i.id), reverse=True)

    def resolve(self, ref_or_id: str) -> Image:
        """An image by ``name[:tag]``, ``name@digest``, full id or unambiguous id prefix.
        Under a lease, what it is made of is held too (a build's base, say)."""
        state = self._state()
        image = self._image(state, self._resolve_id(state, ref_or_id)[0])
        self._note(image.id, image.manifest_digest, *image.layers, *image.layer_blobs)
        return image

    def _resolve_id(self, state: dict[str, Any], text: str) -> tuple[str, str | None]:
        """(image id, the canonical ref if ``text`` named a tag)."""
        text = text.strip()
        images = state["images"]
        if is_full_id(text):
            image_id = text if text.startswith("sha256:") else "sha256:" + text
            if image_id in images:
                return image_id, None
            raise NotFound(f"no such image: {text}")
        try:
            ref = parse_reference(text)
        except InvalidReference:
            ref = None
        if ref is not None:
            if ref.digest is not None:
                for image_id, rec in images.items():
                    if rec["manifest"] == ref.digest:
                        return image_id, None
            elif str(ref) in state["refs"]:
                return state["refs"][str(ref)], str(ref)
        match = _SHORT_HEX_RE.fullmatch(text)
        if match:
            found = [i for i in images if i[7:].startswith(match.group(1))]
            if len(found) == 1:
                return found[0], None
            if len(found) > 1:
                raise InvalidReference(f"image id prefix {text!r} is ambiguous")
        if ref is None:
            parse_reference(text)  # raises the reference's own error
        raise NotFound(f"no such image: {text}")

    def tag(self, image: Image, ref: str) -> None:
        canonical = str(parse_tagged(ref))
        with self.transaction() as txn:
            if image.id not in txn.state["images"]:
                raise NotFound(f"no such image: {image.id}")
            txn.state["refs"][canonical] = image.id

    def remove(self, ref_or_id: str, *, force: bool = False) -> builtins.list[str]:
        """Untag, and delete the image when no name is left (``docker rmi`` semantics).

        Refuses (``ImageInUse``) an image with several names when given its id, and an image a
        container uses, unless ``force``. A forced removal of an image in use only removes its
        names: its layers stay until no container uses it. Returns ``Untagged: ...`` and
        ``Deleted: ...`` lines.
        """
        in_use = self._in_use()
        with self.transaction() as txn:
            state = txn.state
            image_id, ref = self._resolve_id(state, ref_or_id)
            tags = sorted(r for r, target in state["refs"].items() if target == image_id)
            if ref is not None and len(tags) > 1:
                del state["refs"][ref]
                return [f"Untagged: {_familiar(ref)}"]
            short = image_id[7:19]
            if ref is None and len(tags) > 1 and not force:
                raise ImageInUse(
                    f"image {short} has several names ({', '.join(map(_familiar, tags))}): "
                    "remove them one by one or use -f"
                )
            if image_id in in_use and not force:
                raise ImageInUse(
                    f"image {ref_or_id} ({short}) is used by a container: use -f to remove it anyway"
                )
            out = []
            for tag in tags:
                del state["refs"][tag]
                out.append(f"Untagged: {_familiar(tag)}")
            if image_id not in in_use:
                del state["images"][image_id]
                out.append(f"Deleted: {image_id}")
                self._collect(txn, in_use)
            return out

    def prune(self, *, all_unused: bool = False) -> builtins.list[str]:
        """Delete untagged images (``all_unused``: every image) no container uses, then every
        blob and layer nothing references, and leftovers of interrupted imports."""
        in_use = self._in_use()
        out: builtins.list[str] = []
        with self.transaction() as txn:
            state = txn.state
            tagged = set(state["refs"].values())
            for image_id in sorted(state["images"]):
                if image_id in in_use or (image_id in tagged and not all_unused):
                    continue
                for ref in [r for r, t in state["refs"].items() if t == image_id]:
                    del state["refs"][ref]
                    out.append(f"Untagged: {_familiar(ref)}")
                del state["images"][image_id]
                out.append(f"Deleted: {image_id}")
            out += self._collect(txn, in_use, sweep=True)
        return out

    def _collect(self, txn: _Txn, in_use: set[str], *, sweep: bool = False) -> builtins.list[str]:
        """Schedule unreferenced blobs and layers for deletion once the state is written."""
        state = txn.state
        # Work in progress elsewhere: a build's layers, a pull's blobs.
        leased = held_digests(self.root / "leases")
        keep_blobs: set[str] = set(leased)
        keep_layers: set[str] = set(leased)
        for image_id, rec in state["images"].items():
            keep_blobs |= {image_id, rec["manifest"]}
            manifest = self._json_blob(rec["manifest"], "manifest")
            keep_blobs |= {d["digest"] for d in manifest.get("layers", [])}
            keep_layers |= set(config_diff_ids(self._json_blob(image_id, "image config")))
        out = []
        for diff_id in list(state["layers"]):
            if diff_id not in keep_layers:
                rec = state["layers"].pop(diff_id)
                txn.removed_layers.append(self.layers_root / rec["dir"])
                out.append(f"Deleted layer: {diff_id}")
        for blob in list(state["blobs"]):
            if blob not in keep_blobs:
                del state["blobs"][blob]
        if sweep:
            self._ensure()
            for path in self.blobs_root.iterdir():
                if "sha256:" + path.name not in keep_blobs:
                    txn.removed_blobs.append(path)
                    out.append(f"Deleted blob: sha256:{path.name}")
            dirs = {rec["dir"] for rec in state["layers"].values()}
            for path in self.layers_root.iterdir():
                if path.name not in dirs and path not in txn.removed_layers:
                    txn.removed_layers.append(path)
            for path in self.tmp_root.iterdir():
                if not _owner_alive(path.name):
                    txn.removed_layers.append(path)
            # The state may not change (nothing to forget) while files still go: force a write.
            state["pruned"] = timestamp()
        else:
            txn.removed_blobs += self._unreferenced_blobs(state, keep_blobs)
        return out

    def _unreferenced_blobs(self, state: dict[str, Any], keep: set[str]) -> builtins.list[Path]:
        """Blobs that belonged to images just deleted (known from the previous state)."""
        before = self._read_state()
        candidates: set[str] = set()
        for image_id, rec in before["images"].items():
            if image_id in state["images"]:
                continue
            candidates |= {image_id, rec["manifest"]}
            manifest = self._json_blob(rec["manifest"], "manifest")
            candidates |= {d["digest"] for d in manifest.get("layers", [])}
        return [self.blob_path(d) for d in sorted(candidates - keep)]

    # -- archives and new images ------------------------------------------------------------------

    def import_path(self, path: Path, ref: str | None = None) -> Image:
        """Import a ``docker save`` archive, an OCI layout (directory or tar) or a rootfs tar."""
        from runtime.image import formats

        images = formats.import_path(self, Path(path), ref)
        return images[0]

    def import_rootfs_tar(self, path: Path, ref: str | None = None) -> Image:
        """A plain root filesystem tarball (optionally gzip, bzip2 or xz) as a one-layer image."""
        parsed = str(parse_tagged(ref)) if ref else None
        with _open_input(path) as f, self.transaction():
            layer = self.ingest_layer(f)
            return self.image_from_layers(
                [layer],
                history=[{"created": timestamp(), "created_by": f"import {Path(path).name}"}],
                refs=[parsed] if parsed else [],
            )

    def image_from_layers(
        self,
        layers: Sequence[LayerInfo],
        *,
        history: builtins.list[dict[str, Any]],
        refs: Sequence[str],
        run_config: dict[str, Any] | None = None,
        base: dict[str, Any] | None = None,
    ) -> Image:
        """Write a config and an OCI manifest for ``layers`` (on top of ``base``'s config)."""
        config = derived_config(layers, history, run_config, base)
        return self.record_layers(canonical_json(config), layers, refs)

    def record_layers(
        self, config: bytes, layers: Sequence[LayerInfo], refs: Sequence[str]
    ) -> Image:
        """Store the image config ``config`` and an OCI manifest of it and ``layers``; record
        the image under ``refs`` (canonical, already parsed). Inside a transaction."""
        config_digest = self.put_bytes(config)
        manifest = oci_manifest(config_digest, len(config), layers)
        return self.record_image(manifest, OCI_MANIFEST, refs)

    def save(self, refs: Sequence[str], out: Path, format: str = "oci") -> None:
        """Write images as an OCI layout tar (``oci``) or a ``docker save`` tar (``docker``)."""
        from runtime.image import formats

        formats.save(self, refs, Path(out), format)

    def statistics(self) -> dict[str, int]:
        state = self._state()
        return {
            "images": len(state["images"]),
            "tags": len(state["refs"]),
            "layers": len(state["layers"]),
            "blobs": len(state["blobs"]),
        }

    # -- commit: an overlay upper directory as a new layer (issue 4; build and commit) -----------

    def commit_diff(self, diff_dir: Path, exclude: Collection[str] = ()) -> LayerInfo | None:
        """Store the overlay upper directory ``diff_dir`` as a layer; None when it is empty.

        Whiteouts (0:0 character devices) become ``.wh.NAME`` entries and opaque directories
        ``.wh..wh..opq``; entries are sorted, so the same content gives the same diff id.
        ``exclude``: relative paths left out (mount points the runtime made, for example).
        """
        from runtime.image.difftar import write_diff_tar  # tarfile: only for commits

        tmp = self._tmp_path("c")
        try:
            with open(tmp, "xb") as out:
                entries = write_diff_tar(Path(diff_dir), out, exclude)
            if entries == 0:
                return None
            with open(tmp, "rb") as f:
                return self.ingest_layer(f)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def commit_layer(
        self,
        diff_dir: Path,
        parent: Image | None,
        config: dict[str, Any] | None = None,
        ref: str | None = None,
        *,
        history: dict[str, Any] | None = None,
        exclude: Collection[str] = (),
    ) -> Image:
        """A new image: ``parent``'s layers plus ``diff_dir`` as one more (``docker commit``).

        ``config`` is the new run config (``Env``, ``Cmd``...; the parent's when None); the
        history entry is marked ``empty_layer`` when the directory holds no change.
        """
        parsed = [str(parse_tagged(ref))] if ref else []
        with self.transaction():
            layers = self.image_layers(parent) if parent is not None else []
            layer = self.commit_diff(diff_dir, exclude)
            entry = dict(history or {"created_by": "commit"})
            entry.setdefault("created", timestamp())
            if layer is None:
                entry["empty_layer"] = True
            else:
                layers.append(layer)
            return self.image_from_layers(
                layers,
                history=[entry],
                refs=parsed,
                run_config=config,
                base=dict(parent.config) if parent is not None else None,
            )

    def image_layers(self, image: Image) -> builtins.list[LayerInfo]:
        """The layer descriptors of ``image`` (blob, diff id, size, media type), lowest first."""
        _, data = self.manifest_of(image)
        _, _, descs = parse_manifest(data)
        return [
            LayerInfo(d["digest"], diff_id, int(d["size"]), str(d["mediaType"]))
            for d, diff_id in zip(descs, image.layers, strict=True)
        ]

    def record_config(
        self, config: dict[str, Any], layers: Sequence[LayerInfo], refs: Sequence[str] = ()
    ) -> Image:
        """Record an image whose config is given whole (nothing added: no fresh timestamps), so
        the same config and layers always give the same image id."""
        config_bytes = canonical_json(with_rootfs(config, layers))
        parsed = [str(parse_tagged(r)) for r in refs]
        with self.transaction():
            return self.record_layers(config_bytes, layers, parsed)


# -- small helpers ------------------------------------------------------------------------------


def _familiar(ref: str) -> str:
    try:
        return parse_reference(ref).familiar
    except InvalidReference:
        return ref


def _open_input(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InvalidImage(f"cannot read {path}: {exc.strerror}") from None


def owner_tag() -> str:
    """``<pid>-<start time>`` of this process, for the names of work in progress: a name
    whose process is gone (the pid's start time differs) is left over, and collected."""
    from runtime.state import process_start_time

    return f"{os.getpid()}-{process_start_time(os.getpid())}"


def collect_dead_owners(directory: Path) -> None:
    """Remove the entries of ``directory`` (named ``<prefix>-<owner_tag>-...``) whose writer
    is gone."""
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return
    for path in entries:
        if not _owner_alive(path.name):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _owner_alive(name: str) -> bool:
    """Temp names carry the writer's pid and start time (``b-<pid>-<start>-<rand>``; older
    ones ``b-<pid>-<rand>``, by pid alone)."""
    parts = name.split("-")
    if len(parts) < 3 or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return True
    if len(parts) >= 4 and parts[2].isdigit():
        from runtime.state import process_start_time

        return process_start_time(pid) == int(parts[2])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
