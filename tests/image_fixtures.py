"""Helpers for image tests: tarballs made in the test, hand-made hostile headers, canaries.

data = tar_bytes([file("etc/hosts", b"x"), symlink("bin/sh", "/bin/busybox")])
raw = raw_tar([raw_header(b"../evil", b"0", size=1) + pad(b"x")])
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAKE_BUSYBOX = REPO / "scripts" / "make-busybox-rootfs"


@dataclass
class Member:
    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    linkname: str = ""
    mtime: int = 1_600_000_000
    devmajor: int = 0
    devminor: int = 0
    pax: dict[str, str] = field(default_factory=dict)


def file(name: str, data: bytes = b"", mode: int = 0o644, **kw: object) -> Member:
    return Member(name, tarfile.REGTYPE, data, mode, **kw)  # type: ignore[arg-type]


def directory(name: str, mode: int = 0o755, **kw: object) -> Member:
    return Member(name, tarfile.DIRTYPE, b"", mode, **kw)  # type: ignore[arg-type]


def symlink(name: str, target: str, **kw: object) -> Member:
    return Member(name, tarfile.SYMTYPE, b"", 0o777, linkname=target, **kw)  # type: ignore[arg-type]


def hardlink(name: str, target: str, mode: int = 0o644, **kw: object) -> Member:
    return Member(name, tarfile.LNKTYPE, b"", mode, linkname=target, **kw)  # type: ignore[arg-type]


def chardev(name: str, major: int = 1, minor: int = 3) -> Member:
    return Member(name, tarfile.CHRTYPE, b"", 0o666, devmajor=major, devminor=minor)


def fifo(name: str) -> Member:
    return Member(name, tarfile.FIFOTYPE, b"", 0o644)


def tar_bytes(members: list[Member], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = m.type
            info.size = len(m.data)
            info.mode = m.mode
            info.uid, info.gid = m.uid, m.gid
            info.linkname = m.linkname
            info.mtime = m.mtime
            info.devmajor, info.devminor = m.devmajor, m.devminor
            info.pax_headers = dict(m.pax)
            tar.addfile(info, io.BytesIO(m.data) if m.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def write_tar(path: Path, members: list[Member], *, compress: bool = False) -> Path:
    data = tar_bytes(members)
    path.write_bytes(gzip.compress(data, 1) if compress else data)
    return path


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- hand-made headers, for what tarfile will not write -------------------------------------------


def raw_header(
    name: bytes,
    kind: bytes = b"0",
    size: int = 0,
    *,
    linkname: bytes = b"",
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    size_field: bytes | None = None,
) -> bytes:
    block = bytearray(512)
    block[0 : len(name[:100])] = name[:100]
    block[100:108] = b"%07o\0" % mode
    block[108:116] = b"%07o\0" % uid
    block[116:124] = b"%07o\0" % gid
    block[124:136] = size_field if size_field is not None else b"%011o\0" % size
    block[136:148] = b"%011o\0" % 1_600_000_000
    block[156:157] = kind
    block[157 : 157 + len(linkname[:100])] = linkname[:100]
    block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def pax_header(records: dict[bytes, bytes]) -> bytes:
    body = b""
    for key, value in records.items():
        rec = b" " + key + b"=" + value + b"\n"
        length = len(rec) + 1
        while len(str(length)) + len(rec) != length:
            length += 1
        body += str(length).encode() + rec
    return raw_header(b"././@PaxHeader", b"x", len(body)) + pad(body)


def raw_tar(blocks: list[bytes], *, end: bool = True) -> bytes:
    return b"".join(blocks) + (b"\0" * 1024 if end else b"")


# -- OCI and docker archives made by hand -------------------------------------------------------


def image_config(diff_ids: list[str], **config: object) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"layer {i}"} for i in range(len(diff_ids))],
        }
    ).encode()


def docker_archive(path: Path, layers: list[bytes], repo_tags: list[str], **config: object) -> Path:
    """The classic ``docker save`` layout: <id>/layer.tar, <config hex>.json, manifest.json."""
    diff_ids = [sha256(layer) for layer in layers]
    cfg = image_config(diff_ids, **config)
    cfg_hex = hashlib.sha256(cfg).hexdigest()
    members = [file(f"{cfg_hex}.json", cfg)]
    names = []
    for i, layer in enumerate(layers):
        layer_id = hashlib.sha256(b"%d" % i + layer).hexdigest()
        members += [
            directory(layer_id),
            file(f"{layer_id}/VERSION", b"1.0"),
            file(f"{layer_id}/layer.tar", layer),
        ]
        names.append(f"{layer_id}/layer.tar")
    manifest = [{"Config": f"{cfg_hex}.json", "RepoTags": repo_tags, "Layers": names}]
    members.append(file("manifest.json", json.dumps(manifest).encode()))
    path.write_bytes(tar_bytes(members))
    return path


def oci_layout(
    path: Path, layers: list[bytes], ref_name: str | None = "latest", **config: object
) -> Path:
    """An OCI image layout directory with gzip layers."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    diff_ids = [sha256(layer) for layer in layers]
    descs = []
    for layer in layers:
        gz = gzip.compress(layer, 1)
        (blobs / sha256(gz)[7:]).write_bytes(gz)
        descs.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": sha256(gz),
                "size": len(gz),
            }
        )
    cfg = image_config(diff_ids, **config)
    (blobs / sha256(cfg)[7:]).write_bytes(cfg)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(cfg),
                "size": len(cfg),
            },
            "layers": descs,
        }
    ).encode()
    (blobs / sha256(manifest)[7:]).write_bytes(manifest)
    desc: dict[str, object] = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sha256(manifest),
        "size": len(manifest),
    }
    if ref_name:
        desc["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return path


# -- busybox and canaries -----------------------------------------------------------------------


def busybox_rootfs(path: Path) -> Path:
    subprocess.run([str(MAKE_BUSYBOX), str(path)], check=True)
    return path


@dataclass
class Canary:
    """Files outside the store that a hostile archive must not touch."""

    root: Path
    snapshot: dict[str, tuple[int, int, int, int, bytes]] = field(default_factory=dict)

    @classmethod
    def make(cls, root: Path) -> Canary:
        root.mkdir(parents=True)
        (root / "secret").write_bytes(b"canary secret\n")
        os.chmod(root / "secret", 0o600)
        (root / "dir").mkdir()
        (root / "dir" / "inner").write_bytes(b"inner\n")
        canary = cls(root)
        canary.snapshot = canary._state()
        return canary

    def _state(self) -> dict[str, tuple[int, int, int, int, bytes]]:
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                st = p.lstat()
                data = p.read_bytes() if stat.S_ISREG(st.st_mode) else b""
                out[str(p.relative_to(self.root))] = (
                    st.st_mode,
                    st.st_uid,
                    st.st_gid,
                    st.st_nlink,
                    data,
                )
        st = self.root.lstat()
        out["."] = (st.st_mode, st.st_uid, st.st_gid, 0, b"")
        return out

    def check(self) -> None:
        assert self._state() == self.snapshot, "a file outside the store was touched"
