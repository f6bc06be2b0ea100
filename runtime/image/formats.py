"""Image archives: detect, import and save.

    images = import_path(store, Path("app.tar"), "app:1")   # docker save, OCI dir/tar, rootfs tar
    save(store, ["app:1"], Path("out.tar"), "oci")           # or "docker"

Detection: a directory with ``oci-layout`` is an OCI layout; a file is read as a tar (gzip,
bzip2 and xz are undone first): with ``manifest.json`` at its top it is a ``docker save`` archive
(Docker 25's archives carry both, and ``manifest.json`` gives the tags), with ``oci-layout`` an
OCI layout, anything else a root filesystem.

An outer archive is never extracted: it is indexed (names checked like layer names, symlinks
and hard links between members resolved inside the archive) and members are read in place.
Every path comes from a validated digest or an indexed member name before it is joined; every
blob is checked against its digest and size, every layer against its diff id.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from runtime.image.digest import (
    InvalidReference,
    digest_hex,
    parse_reference,
    parse_tagged,
    sha256_digest,
    validate_digest,
)
from runtime.image.extract import split_name
from runtime.image.manifests import (
    MAX_JSON,
    canonical_json,
    check_depth,
    config_diff_ids,
    host_architecture,
    loads_json,
    parse_manifest,
)
from runtime.image.model import (
    CONTAINERD_NAME_ANNOTATION,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    REF_NAME_ANNOTATION,
    Image,
    InvalidImage,
)
from runtime.image.tarstream import (
    CHUNK,
    DIRTYPE,
    FILE_TYPES,
    LNKTYPE,
    SYMTYPE,
    InvalidArchive,
    Source,
    TarReader,
    detect_compression,
)

if TYPE_CHECKING:
    from runtime.image.store import ImageStore

MAX_MEMBERS = 100_000  # members of an outer archive (docker save / OCI tar)
MAX_LINK_DEPTH = 8


# -- reading an outer archive in place -------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    offset: int
    size: int
    kind: bytes
    link: str = ""


class _Slice(io.RawIOBase):
    """A read-only window on a file descriptor, read with pread (independent positions)."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self._fd = fd
        self._offset = offset
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        n = min(len(view), self._left)
        if n <= 0:
            return 0
        data = os.pread(self._fd, n, self._offset)
        if not data:
            raise InvalidImage("archive member is truncated")
        view[: len(data)] = data
        self._offset += len(data)
        self._left -= len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        n = self._left if size is None or size < 0 else min(size, self._left)
        if n <= 0:
            return b""
        data = os.pread(self._fd, n, self._offset)
        if not data:
            raise InvalidImage("archive member is truncated")
        self._offset += len(data)
        self._left -= len(data)
        return data


class _Archive:
    """The members of an uncompressed tar file, indexed by normalised name."""

    def __init__(self, path: Path, store: ImageStore) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.members: dict[str, _Member] = {}
        try:
            size = os.fstat(self._fd).st_size
            with open(self._fd, "rb", closefd=False) as raw:
                src = Source(raw, store.limits, hashing=False)
                reader = TarReader(src, store.limits)
                for entry in reader:
                    if reader.entries > MAX_MEMBERS:
                        raise InvalidImage(f"archive has more than {MAX_MEMBERS} members")
                    name = _member_name(entry.name)
                    offset = src.position
                    if entry.is_file:
                        if offset + entry.size > size:
                            raise InvalidImage("archive is truncated")
                        self.members[name] = _Member(offset, entry.size, b"0")
                    elif entry.type in (SYMTYPE, LNKTYPE):
                        self.members[name] = _Member(
                            0, 0, entry.type, entry.linkname.decode("utf-8", "replace")
                        )
                    elif entry.type == DIRTYPE:
                        self.members[name] = _Member(0, 0, DIRTYPE)
                    src.skip(entry.size)
        except InvalidArchive as exc:
            os.close(self._fd)
            raise InvalidImage(f"{path}: {exc}") from None
        except BaseException:
            os.close(self._fd)
            raise

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> _Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, name: str) -> bool:
        return name in self.members

    def _resolve(self, name: str) -> _Member:
        seen = 0
        current = name
        while True:
            member = self.members.get(current)
            if member is None:
                raise InvalidImage(f"archive has no member {name!r}")
            if member.kind in FILE_TYPES:
                return member
            if member.kind == DIRTYPE:
                raise InvalidImage(f"archive member {name!r} is a directory")
            seen += 1
            if seen > MAX_LINK_DEPTH:
                raise InvalidImage(f"archive member {name!r}: too many links")
            if member.kind == SYMTYPE:
                base = current.rsplit("/", 1)[0] if "/" in current else ""
                target = member.link if member.link.startswith("/") else f"{base}/{member.link}"
                current = _member_name(os.path.normpath("/" + target).encode(), what="link target")
            else:
                current = _member_name(member.link.encode(), what="link target")

    def open(self, name: str) -> BinaryIO:
        member = self._resolve(name)
        return io.BufferedReader(_Slice(self._fd, member.offset, member.size), CHUNK)

    def size(self, name: str) -> int:
        return self._resolve(name).size

    def read(self, name: str, what: str) -> bytes:
        member = self._resolve(name)
        if member.size > MAX_JSON:
            raise InvalidImage(f"{what} ({name}) is larger than {MAX_JSON} bytes")
        return os.pread(self._fd, member.size, member.offset)


def _member_name(raw: bytes, what: str = "archive member") -> str:
    try:
        parts = split_name(raw, what)
    except InvalidArchive as exc:
        raise InvalidImage(str(exc)) from None
    return b"/".join(parts).decode("utf-8", "surrogateescape")


def _archive_path(name: object, what: str) -> str:
    """A member path named by a manifest: a string, checked before it is looked up."""
    if not isinstance(name, str) or not name:
        raise InvalidImage(f"{what} path is missing or not a string")
    return _member_name(name.encode("utf-8", "surrogateescape"), what)


# -- detection and dispatch ---------------------------------------------------------------------


def detect(path: Path, store: ImageStore) -> str:
    """``oci-dir``, ``oci-tar``, ``docker-archive`` or ``rootfs`` (a tar, maybe compressed)."""
    if path.is_dir():
        if (path / "oci-layout").is_file():
            return "oci-dir"
        raise InvalidImage(f"{path} is a directory but not an OCI image layout (no oci-layout)")
    with open(path, "rb") as f:
        head = f.read(512)
    if detect_compression(head) != "none":
        return "compressed"
    with _Archive(path, store) as archive:
        return _archive_kind(archive)


def _archive_kind(archive: _Archive) -> str:
    if archive.has("manifest.json"):
        return "docker-archive"
    if archive.has("oci-layout") and archive.has("index.json"):
        return "oci-tar"
    return "rootfs"


def import_path(store: ImageStore, path: Path, ref: str | None) -> list[Image]:
    """Import whatever ``path`` holds; ``ref`` names the image (an archive with several images
    cannot be given one name)."""
    parsed = str(parse_tagged(ref)) if ref else None
    if not path.exists():
        raise InvalidImage(f"{path}: no such file or directory")
    kind = detect(path, store)
    if kind == "oci-dir":
        with store.transaction():
            return _import_oci(store, _DirLayout(path), parsed)
    if kind == "rootfs":
        return [store.import_rootfs_tar(path, parsed)]
    if kind == "compressed":
        return _import_compressed(store, path, parsed)
    with _Archive(path, store) as archive, store.transaction():
        return _import_archive(store, archive, kind, parsed)


def _import_archive(
    store: ImageStore, archive: _Archive, kind: str, ref: str | None
) -> list[Image]:
    if kind == "docker-archive":
        return _import_docker(store, archive, ref)
    return _import_oci(store, _TarLayout(archive), ref)


def _import_compressed(store: ImageStore, path: Path, ref: str | None) -> list[Image]:
    """A compressed file: a compressed rootfs is one layer as it is; a compressed docker or OCI
    archive is decompressed into the store's temp directory first (bounded), then read."""
    tmp = store._tmp_path("a")
    try:
        with open(path, "rb") as f, open(tmp, "xb") as out:
            src = Source(f, store.limits, hashing=False)
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
        with _Archive(tmp, store) as archive:
            kind = _archive_kind(archive)
            if kind != "rootfs":
                with store.transaction():
                    return _import_archive(store, archive, kind, ref)
    except InvalidArchive as exc:
        raise InvalidImage(f"{path}: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return [store.import_rootfs_tar(path, ref)]


# -- docker save ----------------------------------------------------------------------------------


def _import_docker(store: ImageStore, archive: _Archive, ref: str | None) -> list[Image]:
    manifest = loads_json(archive.read("manifest.json", "manifest.json"), "manifest.json")
    if not isinstance(manifest, list) or not manifest:
        raise InvalidImage("manifest.json lists no images")
    if ref is not None and len(manifest) > 1:
        raise InvalidImage(f"the archive holds {len(manifest)} images: import it without a name")
    images = []
    for item in manifest:
        if not isinstance(item, dict):
            raise InvalidImage("manifest.json entry is not an object")
        config_bytes = archive.read(_archive_path(item.get("Config"), "Config"), "image config")
        layer_paths = item.get("Layers")
        if not isinstance(layer_paths, list):
            raise InvalidImage("manifest.json entry has no Layers list")
        check_depth(len(layer_paths))
        names = [_archive_path(p, "layer") for p in layer_paths]
        tags = item.get("RepoTags") or []
        if not isinstance(tags, list):
            raise InvalidImage("manifest.json RepoTags is not a list")
        refs = [str(parse_tagged(t)) for t in tags if isinstance(t, str)]
        if ref is not None:
            refs.append(ref)
        config = loads_json(config_bytes, "image config")
        if not isinstance(config, dict):
            raise InvalidImage("image config is not a JSON object")
        diff_ids = config_diff_ids(config)
        if len(diff_ids) != len(names):
            raise InvalidImage(
                f"manifest.json lists {len(names)} layers but the config {len(diff_ids)}"
            )
        layers = []
        for name, diff_id in zip(names, diff_ids, strict=True):
            known = store.layer_info_for(diff_id)
            if known is not None:
                layers.append(known)
                continue
            with archive.open(name) as f:
                layers.append(store.ingest_layer(f, expected_diff_id=diff_id))
        images.append(store.record_layers(config_bytes, layers, refs))
    return images


# -- OCI image layout -----------------------------------------------------------------------------


class _DirLayout:
    """An OCI layout directory; blobs opened through fds without following symlinks."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _open(self, parts: list[str]) -> BinaryIO:
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts[:-1]:
                new = os.open(
                    part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                )
                os.close(fd)
                fd = new
            leaf = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError as exc:
            raise InvalidImage(
                f"{self.path}: cannot open {'/'.join(parts)}: {exc.strerror}"
            ) from None
        finally:
            os.close(fd)
        return open(leaf, "rb")

    def read(self, name: str, what: str) -> bytes:
        with self._open(name.split("/")) as f:
            data = f.read(MAX_JSON + 1)
        if len(data) > MAX_JSON:
            raise InvalidImage(f"{what} is larger than {MAX_JSON} bytes")
        return data

    def open_blob(self, digest: str) -> BinaryIO:
        return self._open(["blobs", "sha256", digest_hex(digest)])


class _TarLayout:
    def __init__(self, archive: _Archive) -> None:
        self._archive = archive

    def read(self, name: str, what: str) -> bytes:
        return self._archive.read(name, what)

    def open_blob(self, digest: str) -> BinaryIO:
        return self._archive.open(f"blobs/sha256/{digest_hex(digest)}")


_Layout = _DirLayout | _TarLayout


def _read_blob(layout: _Layout, desc: dict[str, Any], what: str) -> bytes:
    digest = validate_digest(desc.get("digest"))  # type: ignore[arg-type]
    size = desc.get("size")
    if not isinstance(size, int) or size < 0 or size > MAX_JSON:
        raise InvalidImage(f"{what} {digest} has an invalid size")
    with layout.open_blob(digest) as f:
        data = f.read(size + 1)
    if len(data) != size or sha256_digest(data) != digest:
        raise InvalidImage(f"{what} {digest} does not match its digest or size")
    return data


def _import_oci(store: ImageStore, layout: _Layout, ref: str | None) -> list[Image]:
    marker = loads_json(layout.read("oci-layout", "oci-layout"), "oci-layout")
    if not isinstance(marker, dict) or marker.get("imageLayoutVersion") != "1.0.0":
        raise InvalidImage("unsupported OCI layout version")
    index = loads_json(layout.read("index.json", "index.json"), "index.json")
    found = list(_manifests(layout, index, depth=0))
    if not found:
        raise InvalidImage("the OCI layout has no image for linux/" + host_architecture())
    if ref is not None and len(found) > 1:
        raise InvalidImage(f"the layout holds {len(found)} images: import it without a name")
    images = []
    for desc, notes in found:
        manifest = _read_blob(layout, desc, "manifest")
        media_type, config_desc, layer_descs = parse_manifest(manifest)
        config_bytes = _read_blob(layout, config_desc, "image config")
        config = loads_json(config_bytes, "image config")
        if not isinstance(config, dict):
            raise InvalidImage("image config is not a JSON object")
        diff_ids = config_diff_ids(config)
        if len(diff_ids) != len(layer_descs):
            raise InvalidImage(
                f"manifest has {len(layer_descs)} layers but the config {len(diff_ids)}"
            )
        store.put_bytes(config_bytes)
        for ldesc, diff_id in zip(layer_descs, diff_ids, strict=True):
            if store.layer_known(ldesc["digest"], diff_id):
                continue
            with layout.open_blob(ldesc["digest"]) as f:
                store.ingest_layer(
                    f,
                    expected_blob=ldesc["digest"],
                    expected_diff_id=diff_id,
                    expected_size=ldesc["size"],
                )
        refs = [ref] if ref is not None else _annotation_refs(notes)
        images.append(store.record_image(manifest, media_type, refs))
    return images


def _manifests(
    layout: _Layout, index: object, depth: int
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidImage("index.json has no manifests list")
    arch = host_architecture()
    for desc in index["manifests"]:
        if not isinstance(desc, dict):
            raise InvalidImage("index entry is not an object")
        media_type = desc.get("mediaType")
        annotations = desc.get("annotations") if isinstance(desc.get("annotations"), dict) else {}
        platform = desc.get("platform")
        if isinstance(platform, dict) and (
            platform.get("os") not in (None, "linux")
            or platform.get("architecture") not in (None, arch)
        ):
            continue
        if media_type in INDEX_TYPES:
            if depth >= 2:
                raise InvalidImage("image indexes nested too deeply")
            nested = loads_json(_read_blob(layout, desc, "image index"), "image index")
            for inner, inner_ann in _manifests(layout, nested, depth + 1):
                yield inner, {**annotations, **inner_ann}  # type: ignore[dict-item]
        elif media_type in MANIFEST_TYPES or media_type is None:
            yield desc, annotations  # type: ignore[misc]
        else:
            raise InvalidImage(f"unsupported index entry media type {media_type!r}")


def _annotation_refs(annotations: dict[str, Any]) -> list[str]:
    for key in (CONTAINERD_NAME_ANNOTATION, REF_NAME_ANNOTATION):
        value = annotations.get(key)
        if isinstance(value, str) and ("/" in value or ":" in value):
            try:
                return [str(parse_tagged(value))]
            except InvalidReference:
                continue
    return []  # a bare tag ("latest") names no repository: the image stays untagged


# -- save -----------------------------------------------------------------------------------------


def save(store: ImageStore, refs: Sequence[str], out: Path, format: str) -> None:
    if format not in ("oci", "docker"):
        raise InvalidImage(f"unknown format {format!r}: use oci or docker")
    if not refs:
        raise InvalidImage("nothing to save: name at least one image")
    chosen: list[tuple[Image, str | None]] = []
    for text in refs:
        image = store.resolve(text)
        try:
            ref = parse_reference(text)
            tag = (
                str(ref)
                if ref.tag is not None and ref.digest is None and str(ref) in image.repo_tags
                else None
            )
        except InvalidReference:
            tag = None
        chosen.append((image, tag))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with (
            open(tmp, "xb") as f,
            tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            if format == "oci":
                _write_oci(store, tar, chosen)
            else:
                _write_docker(store, tar, chosen)
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    _add_stream(tar, name, io.BytesIO(data), len(data))


def _add_stream(
    tar: tarfile.TarFile, name: str, stream: BinaryIO | io.RawIOBase, size: int
) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    tar.addfile(info, stream)


def _write_oci(
    store: ImageStore, tar: tarfile.TarFile, chosen: list[tuple[Image, str | None]]
) -> None:
    _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    written: set[str] = set()
    manifests = []
    for image, tag in chosen:
        media_type, manifest = store.manifest_of(image)
        blobs = [image.manifest_digest, image.id, *image.layer_blobs]
        for digest in blobs:
            if digest in written:
                continue
            written.add(digest)
            with store.open_blob(digest) as f:
                _add_stream(
                    tar, f"blobs/sha256/{digest_hex(digest)}", f, os.fstat(f.fileno()).st_size
                )
        desc: dict[str, Any] = {
            "mediaType": media_type,
            "digest": image.manifest_digest,
            "size": len(manifest),
        }
        if tag is not None:
            ref = parse_reference(tag)
            desc["annotations"] = {
                CONTAINERD_NAME_ANNOTATION: str(ref),
                REF_NAME_ANNOTATION: ref.tag,
            }
        manifests.append(desc)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    _add_bytes(tar, "index.json", canonical_json(index))


def _write_docker(
    store: ImageStore, tar: tarfile.TarFile, chosen: list[tuple[Image, str | None]]
) -> None:
    """skopeo's docker-archive shape: <config hex>.json, <diff hex>.tar (uncompressed),
    manifest.json and repositories."""
    written: set[str] = set()
    entries: dict[str, dict[str, Any]] = {}
    repositories: dict[str, dict[str, str]] = {}
    for image, tag in chosen:
        config_name = f"{digest_hex(image.id)}.json"
        if config_name not in written:
            written.add(config_name)
            _add_bytes(tar, config_name, store.read_blob(image.id, "image config"))
        layer_names = []
        for blob, diff_id in zip(image.layer_blobs, image.layers, strict=True):
            name = f"{digest_hex(diff_id)}.tar"
            layer_names.append(name)
            if name in written:
                continue
            written.add(name)
            with store.open_blob(blob) as f:
                src = Source(f, store.limits, hashing=False)
                _add_stream(tar, name, _SourceReader(src), store.layer_tar_size(diff_id))
        entry = entries.setdefault(
            image.id, {"Config": config_name, "RepoTags": [], "Layers": layer_names}
        )
        if tag is not None:
            ref = parse_reference(tag)
            entry["RepoTags"].append(ref.familiar)
            if image.layers:
                repositories.setdefault(ref.familiar_name, {})[ref.tag or "latest"] = digest_hex(
                    image.layers[-1]
                )
    _add_bytes(tar, "manifest.json", json.dumps(list(entries.values())).encode())
    if repositories:
        _add_bytes(tar, "repositories", json.dumps(repositories).encode())


class _SourceReader(io.RawIOBase):
    """A decompressing ``Source`` as a file object for ``tarfile.addfile``."""

    def __init__(self, src: Source) -> None:
        self._src = src

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._src.read(CHUNK if size is None or size < 0 else size)

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        memoryview(buf).cast("B")[: len(data)] = data
        return len(data)
