"""Pull images from a registry into the store, push them from the store to a registry.

    creds = Credentials.load(state_root)
    result = pull(store, "localhost:5000/busybox:1", credentials=creds)
    result.image.id, result.digest
    push(store, "localhost:5000/busybox:1", credentials=creds)

A pull resolves an index (manifest list) to one platform's manifest, downloads the blobs the
store lacks, a few at a time, and registers the image. Blobs stream to disk through
``ImageStore.ingest_blob``, never whole in memory, and are checked against their descriptors.
A push uploads (or mounts from another repository) the blobs the registry lacks, then the
manifest. The first failed transfer stops the others.

A failed pull registers nothing in the store; blobs it had already downloaded stay (unreferenced)
so that the next attempt does not fetch them again, and ``image prune`` removes them.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import platform as _platform
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from runtime.errors import Error
from runtime.image.digest import (
    Reference,
    parse_reference,
    parse_tagged,
    short_id,
    validate_digest,
)
from runtime.image.model import INDEX_TYPES, LAYER_TYPES, MANIFEST_TYPES, Image
from runtime.image.registry import (
    DigestMismatch,
    Manifest,
    RegistryClient,
    UnsupportedMediaType,
    push_scope,
)
from runtime.image.transport import Cancelled, RegistryError

if TYPE_CHECKING:
    from runtime.image.auth import Credentials
    from runtime.image.store import ImageStore

__all__ = [
    "NullProgress",
    "Progress",
    "PullResult",
    "PushResult",
    "host_platform",
    "pull",
    "push",
    "select_platform",
]

MAX_WORKERS = 3


# -- progress ---------------------------------------------------------------------------------------


class Progress(Protocol):
    """Where pull and push report what they do; calls may come from several threads."""

    def start(self, key: str, action: str, total: int | None) -> None: ...

    def advance(self, key: str, n: int) -> None: ...

    def finish(self, key: str, status: str) -> None: ...


class NullProgress:
    def start(self, key: str, action: str, total: int | None) -> None:
        pass

    def advance(self, key: str, n: int) -> None:
        pass

    def finish(self, key: str, status: str) -> None:
        pass


# -- platforms --------------------------------------------------------------------------------------


def host_platform() -> tuple[str, str, str | None]:
    """(os, architecture, variant) of this machine in OCI terms, from ``platform.machine()``."""
    machine = _platform.machine().lower()
    arch, variant = {
        "x86_64": ("amd64", None),
        "amd64": ("amd64", None),
        "aarch64": ("arm64", "v8"),
        "arm64": ("arm64", "v8"),
        "armv7l": ("arm", "v7"),
        "armv6l": ("arm", "v6"),
        "i686": ("386", None),
        "i386": ("386", None),
        "ppc64le": ("ppc64le", None),
        "s390x": ("s390x", None),
        "riscv64": ("riscv64", None),
    }.get(machine, (machine, None))
    return "linux", arch, variant


def select_platform(index: dict[str, Any], want: tuple[str, str, str | None]) -> dict[str, Any]:
    """The descriptor of ``index`` for platform ``want``: an exact variant first, then one with no
    variant, then any variant (arm64 images often omit ``v8``)."""
    os_name, arch, variant = want
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise UnsupportedMediaType("image index has no manifests list")
    ranked: list[tuple[int, int, dict[str, Any]]] = []
    seen: list[str] = []
    for i, desc in enumerate(manifests):
        if not isinstance(desc, dict):
            continue
        plat = desc.get("platform")
        if not isinstance(plat, dict):
            continue
        seen.append(
            "/".join(
                str(p) for p in (plat.get("os"), plat.get("architecture"), plat.get("variant")) if p
            )
        )
        if plat.get("os") != os_name or plat.get("architecture") != arch:
            continue
        if desc.get("mediaType") not in (*MANIFEST_TYPES, *INDEX_TYPES):
            continue
        got = plat.get("variant")
        rank = 0 if got == variant else 1 if not got else 2
        ranked.append((rank, i, desc))
    if not ranked:
        wanted = "/".join(p for p in want if p)
        listed = ", ".join(sorted(set(seen))) or "none"
        raise UnsupportedMediaType(f"no image for {wanted} in the index (it has: {listed})")
    return min(ranked, key=lambda r: (r[0], r[1]))[2]


# -- pull and push ------------------------------------------------------------------------------


@dataclass
class PullResult:
    image: Image
    reference: Reference
    digest: str  # what the reference resolved to (an index digest for a multi-platform image)
    manifest_digest: str  # the manifest stored (this platform's)
    downloaded: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    bytes: int = 0


@dataclass
class PushResult:
    reference: Reference
    digest: str
    size: int
    uploaded: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)
    bytes: int = 0


def _descriptors(manifest: Manifest) -> list[dict[str, Any]]:
    """Config then layers, each digest and size checked; layer types we cannot use refused."""
    doc = manifest.json()
    config = doc.get("config")
    layers = doc.get("layers")
    if not isinstance(config, dict) or not isinstance(layers, list):
        raise UnsupportedMediaType(f"manifest {manifest.digest} has no config or no layers")
    out = []
    for desc in [config, *layers]:
        if not isinstance(desc, dict):
            raise RegistryError(f"manifest {manifest.digest} has an invalid descriptor")
        validate_digest(desc.get("digest"))  # type: ignore[arg-type]
        size = desc.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RegistryError(f"manifest {manifest.digest} has a descriptor with no valid size")
        if desc is not config and desc.get("mediaType") not in LAYER_TYPES:
            raise UnsupportedMediaType(f"unsupported layer media type {desc.get('mediaType')!r}")
        out.append(desc)
    return out


def _run_parallel(
    items: Iterable[dict[str, Any]],
    work: Callable[[dict[str, Any], threading.Event], None],
    max_workers: int,
) -> None:
    """Run ``work`` on each item in threads; on the first failure the others are told to stop,
    and that first failure is raised once all have ended."""
    cancelled = threading.Event()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers, "registry")
    first: BaseException | None = None
    try:
        futures = [pool.submit(work, item, cancelled) for item in items]
        for future in concurrent.futures.as_completed(futures):
            exc = future.exception()
            if exc is not None and first is None:
                first = exc
                cancelled.set()
    except BaseException:  # Ctrl-C: the workers stop at their next read or write
        cancelled.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if first is not None:
        raise first


def _in_context(exc: Error, prefix: str) -> RegistryError:
    kind = type(exc) if isinstance(exc, RegistryError) else RegistryError
    return kind(f"{prefix}: {exc}")


def pull(
    store: ImageStore,
    reference: str,
    *,
    credentials: Credentials | None = None,
    progress: Progress | None = None,
    platform: tuple[str, str, str | None] | None = None,
    client: RegistryClient | None = None,
    max_workers: int = MAX_WORKERS,
) -> PullResult:
    """Pull ``NAME[:TAG|@DIGEST]`` into ``store`` and tag it (a digest reference is not tagged).

    An index (manifest list) resolves to ``platform`` (default: this machine). Blobs already in
    the store are not downloaded. Errors name the reference.
    """
    ref = parse_reference(reference)
    own = client is None
    try:
        if client is None:
            client = RegistryClient.for_domain(ref.domain, credentials)
        return _pull(store, ref, client, progress or NullProgress(), platform, max_workers)
    except Error as exc:
        raise _in_context(exc, f"cannot pull {ref.familiar}") from None
    finally:
        if own and client is not None:
            client.close()


def _pull(
    store: ImageStore,
    ref: Reference,
    client: RegistryClient,
    progress: Progress,
    platform: tuple[str, str, str | None] | None,
    max_workers: int,
) -> PullResult:
    repo = ref.path
    manifest = client.get_manifest(repo, ref.digest or ref.tag or "latest")
    top = manifest.digest
    for _ in range(2):  # an index may point at an index, once
        if manifest.media_type not in INDEX_TYPES:
            break
        desc = select_platform(manifest.json(), platform or host_platform())
        child = validate_digest(desc.get("digest"))  # type: ignore[arg-type]
        manifest = client.get_manifest(repo, child)
        if isinstance(desc.get("size"), int) and desc["size"] != len(manifest.data):
            raise DigestMismatch(f"manifest {child} is not the size the index says")
    if manifest.media_type not in MANIFEST_TYPES:
        raise UnsupportedMediaType(f"manifest {manifest.digest} is {manifest.media_type!r}")
    descs = list({d["digest"]: d for d in _descriptors(manifest)}.values())
    downloaded: list[str] = []
    existing: list[str] = []
    total = [0]
    lock = threading.Lock()

    def fetch(desc: dict[str, Any], cancelled: threading.Event) -> None:
        digest, size = desc["digest"], desc["size"]
        key = short_id(digest)
        if store.active_lease is not None:
            store.active_lease.add(digest)  # held before the check, kept until recorded
        if store.has_blob(digest):
            progress.finish(key, "Already exists")
            with lock:
                existing.append(digest)
            return
        progress.start(key, "Downloading", size)
        reader = client.open_blob(
            repo, digest, size, on_read=lambda n: progress.advance(key, n), cancelled=cancelled
        )
        try:
            store.ingest_blob(cast(BinaryIO, reader), expected_digest=digest, expected_size=size)
        except RegistryError as exc:
            progress.finish(key, "Cancelled" if isinstance(exc, Cancelled) else "Failed")
            raise
        except Error as exc:  # the store's own verification
            progress.finish(key, "Failed")
            text = str(exc)
            raise DigestMismatch(text if digest in text else f"blob {digest}: {text}") from None
        finally:
            reader.close()
        progress.finish(key, "Download complete")
        with lock:
            downloaded.append(digest)
            total[0] += size

    tags = [str(ref)] if ref.digest is None and ref.tag else []
    with store.lease():
        _run_parallel(descs, fetch, max_workers)
        image = store.add_manifest(manifest.data, tags)
    return PullResult(image, ref, top, manifest.digest, downloaded, existing, total[0])


def push(
    store: ImageStore,
    source: str,
    dest: str | None = None,
    *,
    credentials: Credentials | None = None,
    progress: Progress | None = None,
    client: RegistryClient | None = None,
    chunk_size: int | None = None,
    max_workers: int = MAX_WORKERS,
) -> PushResult:
    """Push the stored image ``source`` to ``dest`` (default: ``source``'s own name).

    Blobs the registry has (HEAD) are skipped; a blob this image also has under another
    repository of the same registry is mounted from there when the registry allows it.
    """
    target = parse_tagged(dest or source)
    own = client is None
    try:
        image = store.resolve(source)
        if dest is None and str(target) not in image.repo_tags:
            raise RegistryError(
                f"{source!r} is not a name of image {image.short_id}: "
                "give the destination (push SOURCE DEST)"
            )
        if client is None:
            client = RegistryClient.for_domain(target.domain, credentials)
        return _push(
            store, image, target, client, progress or NullProgress(), chunk_size, max_workers
        )
    except Error as exc:
        raise _in_context(exc, f"cannot push {target.familiar}") from None
    finally:
        if own and client is not None:
            client.close()


def _push(
    store: ImageStore,
    image: Image,
    target: Reference,
    client: RegistryClient,
    progress: Progress,
    chunk_size: int | None,
    max_workers: int,
) -> PushResult:
    repo = target.path
    media_type, data = store.manifest_of(image)
    manifest = Manifest(media_type, data, "sha256:" + hashlib.sha256(data).hexdigest())
    descs = list({d["digest"]: d for d in _descriptors(manifest)}.values())
    mount_from = _mount_source(image, target)
    result = PushResult(reference=target, digest=manifest.digest, size=len(data))
    lock = threading.Lock()
    scope = push_scope(repo)

    def send(desc: dict[str, Any], cancelled: threading.Event) -> None:
        digest, size = desc["digest"], desc["size"]
        key = short_id(digest)
        if cancelled.is_set():
            return
        if client.blob_size(repo, digest, scope=scope) is not None:
            progress.finish(key, "Layer already exists")
            with lock:
                result.existing.append(digest)
            return
        with store.open_blob(digest) as f:
            on_disk = _fstat_size(f)
            if on_disk != size:
                raise RegistryError(f"blob {digest} in the store is {on_disk} bytes, not {size}")
            progress.start(key, "Pushing", size)
            try:
                how = client.upload_blob(
                    repo,
                    digest,
                    size,
                    f,
                    chunk_size=chunk_size,
                    mount_from=mount_from,
                    on_read=lambda n: progress.advance(key, n),
                    cancelled=cancelled,
                )
            except Error as exc:
                progress.finish(key, "Cancelled" if isinstance(exc, Cancelled) else "Failed")
                raise
        progress.finish(key, f"Mounted from {mount_from}" if how == "mounted" else "Pushed")
        with lock:
            if how == "mounted":
                result.mounted.append(digest)
            else:
                result.uploaded.append(digest)
                result.bytes += size

    _run_parallel(descs, send, max_workers)
    tag = target.tag or "latest"
    result.digest = client.put_manifest(repo, tag, media_type, data)
    return result


def _fstat_size(f: BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size


def _mount_source(image: Image, target: Reference) -> str | None:
    """Another repository of the same registry this image is known under."""
    for tagged in image.repo_tags:
        try:
            ref = parse_reference(tagged)
        except Error:
            continue
        if ref.domain == target.domain and ref.path != target.path:
            return ref.path
    return None
