"""A bounded tar reader over a possibly compressed, hashed stream.

    src = Source(open(path, "rb"), limits)
    for entry in TarReader(src, limits):
        if entry.is_file:
            src.copy_to(fd, entry.size)   # or src.skip(entry.size)
    src.finish()                          # drains and checks what follows the archive
    src.raw_digest, src.digest            # sha256 of the bytes as given / as decompressed

This is our own parser (headers, pax and GNU long names), not ``tarfile``: every size is checked
against ``Limits`` before memory is allocated, decompression runs in fixed-size chunks, and what
follows the end-of-archive marker must be zero padding. Names are returned as raw bytes; checking
them is the extractor's business.
"""

from __future__ import annotations

import base64
import bz2
import hashlib
import lzma
import os
import urllib.parse
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from runtime.errors import Error


class InvalidArchive(Error):
    """An archive or layer is malformed, hostile or over a limit."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what one archive may cost; every one is checked as the stream is read."""

    max_entries: int = 1_000_000
    max_bytes: int = 64 << 30  # uncompressed bytes of one archive
    max_ratio: int = 1024  # uncompressed / compressed, once past ratio_grace
    ratio_grace: int = 256 << 20
    max_header: int = 1 << 20  # pax and GNU long-name data
    max_trailing: int = 16 << 20  # zero padding allowed after the end-of-archive marker
    max_name: int = 4096


CHUNK = 1 << 20
BLOCK = 512

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def detect_compression(head: bytes) -> str:
    """``gzip``, ``bzip2``, ``xz``, ``zstd`` or ``none`` from the first bytes of a stream."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(BZIP2_MAGIC):
        return "bzip2"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


class _Decompressor(Protocol):
    def feed(self, data: bytes) -> bytes: ...
    def more(self) -> bytes: ...
    def done(self) -> bool: ...
    def leftover(self) -> bytes: ...


class _Gzip:
    def __init__(self) -> None:
        self._d = zlib.decompressobj(wbits=31)

    def feed(self, data: bytes) -> bytes:
        return self._d.decompress(data, CHUNK)

    def more(self) -> bytes:
        tail = self._d.unconsumed_tail
        return self._d.decompress(tail, CHUNK) if tail else b""

    def done(self) -> bool:
        return self._d.eof

    def leftover(self) -> bytes:
        return self._d.unused_data


class _Lz:
    """bzip2 and xz share one decompressor interface."""

    def __init__(self, kind: str) -> None:
        self._d: bz2.BZ2Decompressor | lzma.LZMADecompressor = (
            bz2.BZ2Decompressor() if kind == "bzip2" else lzma.LZMADecompressor()
        )

    def feed(self, data: bytes) -> bytes:
        return self._d.decompress(data, CHUNK)

    def more(self) -> bytes:
        if self._d.eof or self._d.needs_input:
            return b""
        return self._d.decompress(b"", CHUNK)

    def done(self) -> bool:
        return self._d.eof

    def leftover(self) -> bytes:
        return self._d.unused_data


def _decompressor(kind: str) -> _Decompressor:
    if kind == "gzip":
        return _Gzip()
    if kind in ("bzip2", "xz"):
        return _Lz(kind)
    raise InvalidArchive(f"{kind}-compressed layers are not supported")


class Source:
    """Bytes of an archive, decompressed on the fly and hashed on both sides.

    ``tee`` receives the raw bytes (or, with ``tee_decompressed``, the decompressed bytes) as they
    are read: that is how a blob is stored and extracted in one pass.
    """

    def __init__(
        self,
        raw: BinaryIO,
        limits: Limits = Limits(),
        *,
        tee: BinaryIO | None = None,
        tee_mode: str = "raw",
        hashing: bool = True,
    ) -> None:
        """``tee_mode``: ``raw`` (the bytes as read), ``decompressed``, or ``auto``: raw for
        uncompressed and gzip streams (what OCI layers may be), decompressed otherwise."""
        self._raw = raw
        self._limits = limits
        self._tee: BinaryIO | None = None
        self._hashing = hashing
        self._raw_hash = hashlib.sha256()
        self._hash = hashlib.sha256()
        self.raw_bytes = 0
        self.bytes = 0  # decompressed bytes handed out (and hashed) so far
        self._buf = b""
        self._off = 0
        self._raw_eof = False
        first = self._read_raw()
        self.compression = detect_compression(first)
        if tee_mode == "auto":
            tee_mode = "raw" if self.compression in ("none", "gzip") else "decompressed"
        self.tee_decompressed = tee_mode == "decompressed"
        self._tee = tee
        if tee is not None and not self.tee_decompressed:
            tee.write(first)
        self._d: _Decompressor | None = None
        self._pending = first
        if self.compression != "none":
            self._d = _decompressor(self.compression)
        self._seekable = self._d is None and not hashing and tee is None and _is_seekable(raw)

    # -- raw side ---------------------------------------------------------------------------

    def _read_raw(self) -> bytes:
        if self._raw_eof:
            return b""
        data = self._raw.read(CHUNK)
        if not data:
            self._raw_eof = True
            return b""
        self.raw_bytes += len(data)
        if self._hashing:
            self._raw_hash.update(data)
        if self._tee is not None and not self.tee_decompressed:
            self._tee.write(data)
        return data

    # -- decompressed side ------------------------------------------------------------------

    def _decompress_next(self) -> bytes:
        """The next non-empty decompressed chunk, or b"" at the end of the stream."""
        if self._d is None:
            if self._pending:
                data, self._pending = self._pending, b""
                return data
            return self._read_raw()
        while True:
            out = self._d.more()
            if out:
                return out
            if self._d.done():
                rest = self._d.leftover() + self._pending
                self._pending = b""
                while not rest and not self._raw_eof:
                    rest = self._read_raw()
                if not rest:
                    return b""
                if not rest.startswith(GZIP_MAGIC[: len(rest)]) or self.compression != "gzip":
                    raise InvalidArchive(f"junk after the end of the {self.compression} stream")
                self._d = _decompressor(self.compression)
                self._pending = rest
                continue
            data = self._pending or self._read_raw()
            self._pending = b""
            if not data:
                raise InvalidArchive(f"truncated {self.compression} stream")
            try:
                out = self._d.feed(data)
            except (zlib.error, OSError, lzma.LZMAError, EOFError) as exc:
                raise InvalidArchive(f"corrupt {self.compression} stream: {exc}") from None
            if out:
                return out

    def _next(self) -> bytes:
        data = self._decompress_next()
        if not data:
            return b""
        self.bytes += len(data)
        limits = self._limits
        if self.bytes > limits.max_bytes:
            raise InvalidArchive(f"archive expands beyond {limits.max_bytes} bytes")
        if (
            self._d is not None
            and self.bytes > limits.ratio_grace
            and self.bytes > limits.max_ratio * max(self.raw_bytes, 1)
        ):
            raise InvalidArchive(
                f"archive expands more than {limits.max_ratio} times (a decompression bomb?)"
            )
        if self._hashing:
            self._hash.update(data)
        if self._tee is not None and self.tee_decompressed:
            self._tee.write(data)
        return data

    def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or fewer only at the end of the stream."""
        avail = len(self._buf) - self._off
        if avail >= n:
            out = self._buf[self._off : self._off + n]
            self._off += n
            return out
        parts = [self._buf[self._off :]]
        need = n - avail
        self._buf, self._off = b"", 0
        while need > 0:
            chunk = self._next()
            if not chunk:
                break
            if len(chunk) > need:
                parts.append(chunk[:need])
                self._buf, self._off = chunk, need
                need = 0
            else:
                parts.append(chunk)
                need -= len(chunk)
        return b"".join(parts)

    def _chunks(self, n: int) -> Iterator[memoryview | bytes]:
        """``n`` bytes as successive pieces; raises if the stream ends first."""
        while n > 0:
            avail = len(self._buf) - self._off
            if avail == 0:
                chunk = self._next()
                if not chunk:
                    raise InvalidArchive("archive ends in the middle of an entry")
                self._buf, self._off = chunk, 0
                avail = len(chunk)
            take = min(avail, n)
            yield memoryview(self._buf)[self._off : self._off + take]
            self._off += take
            n -= take

    def copy_to(self, fd: int, n: int) -> None:
        for piece in self._chunks(n):
            view = memoryview(piece)
            while view:
                written = os.write(fd, view)
                view = view[written:]

    def skip(self, n: int) -> None:
        if self._seekable and not self._pending and n > len(self._buf) - self._off:
            # Indexing a plain archive: seek over member data instead of reading it.
            rest = n - (len(self._buf) - self._off)
            self._buf, self._off = b"", 0
            self._raw.seek(rest, os.SEEK_CUR)
            self.bytes += rest
            self.raw_bytes += rest
            return
        for _ in self._chunks(n):
            pass

    @property
    def position(self) -> int:
        """Offset in the decompressed stream of the next byte ``read`` returns."""
        return self.bytes - (len(self._buf) - self._off)

    def finish(self, trailing_limit: int | None = None) -> None:
        """Read to the end: only zero padding may follow the archive, then the raw stream ends."""
        limit = self._limits.max_trailing if trailing_limit is None else trailing_limit
        seen = 0
        rest = self._buf[self._off :]
        self._buf, self._off = b"", 0
        while True:
            if rest.strip(b"\0"):
                raise InvalidArchive("junk after the end of the archive")
            seen += len(rest)
            if seen > limit:
                raise InvalidArchive("too much padding after the end of the archive")
            rest = self._next()
            if not rest:
                break
        while self._read_raw():
            pass

    @property
    def raw_digest(self) -> str:
        return "sha256:" + self._raw_hash.hexdigest()

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def _is_seekable(raw: BinaryIO) -> bool:
    try:
        return raw.seekable()
    except (AttributeError, OSError):
        return False


# -- tar headers ----------------------------------------------------------------------------

REGTYPE = b"0"
AREGTYPE = b"\0"
LNKTYPE = b"1"
SYMTYPE = b"2"
CHRTYPE = b"3"
BLKTYPE = b"4"
DIRTYPE = b"5"
FIFOTYPE = b"6"
CONTTYPE = b"7"
PAX_LOCAL = b"x"
PAX_GLOBAL = b"g"
GNU_LONGNAME = b"L"
GNU_LONGLINK = b"K"

FILE_TYPES = (REGTYPE, AREGTYPE, CONTTYPE)
HEADER_ONLY_TYPES = (LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE)


@dataclass
class Entry:
    name: bytes
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime: float
    linkname: bytes = b""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[bytes, bytes] = field(default_factory=dict)

    @property
    def is_file(self) -> bool:
        return self.type in FILE_TYPES

    @property
    def is_dir(self) -> bool:
        return self.type == DIRTYPE


def _number(field_: bytes, what: str) -> int:
    if field_ and field_[0] & 0x80:
        if field_[0] == 0xFF:
            raise InvalidArchive(f"negative {what} in tar header")
        value = field_[0] & 0x7F
        for byte in field_[1:]:
            value = (value << 8) | byte
        return value
    text = field_.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        if text.strip(b"01234567"):
            raise ValueError
        return int(text, 8)
    except ValueError:
        raise InvalidArchive(f"bad {what} field in tar header: {text[:20]!r}") from None


def _cstr(field_: bytes) -> bytes:
    return field_.split(b"\0", 1)[0]


def _checksum_ok(block: bytes) -> bool:
    stored = _number(block[148:156], "checksum")
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    if stored == unsigned:
        return True
    signed = sum((b - 256 if b > 127 else b) for b in block[:148] + block[156:]) + 8 * 32
    return stored == signed


def parse_pax(data: bytes) -> dict[bytes, bytes]:
    """``"%d key=value\\n"`` records, each length checked against the data before use."""
    records: dict[bytes, bytes] = {}
    pos = 0
    end = len(data)
    while pos < end:
        if data[pos] == 0:  # some writers pad with NULs
            if data[pos:].strip(b"\0"):
                raise InvalidArchive("malformed pax header")
            break
        space = data.find(b" ", pos, min(end, pos + 20))
        if space < 0 or not data[pos:space].isdigit():
            raise InvalidArchive("malformed pax header record")
        length = int(data[pos:space])
        if length <= space - pos + 1 or pos + length > end or data[pos + length - 1] != 0x0A:
            raise InvalidArchive("malformed pax header record length")
        record = data[space + 1 : pos + length - 1]
        key, eq, value = record.partition(b"=")
        if not eq or not key:
            raise InvalidArchive("malformed pax header record")
        records[key] = value
        pos += length
    return records


def _pax_int(value: bytes, what: str) -> int:
    if not value.isdigit() or len(value) > 20:
        raise InvalidArchive(f"bad pax {what}: {value[:20]!r}")
    return int(value)


def _pax_time(value: bytes) -> float:
    try:
        text = value.decode("ascii")
        value_ = float(text)
        if len(text) > 40 or value_ != value_:
            raise ValueError
        return min(max(value_, 0.0), float(2**40))
    except (UnicodeDecodeError, ValueError):
        raise InvalidArchive(f"bad pax mtime: {value[:20]!r}") from None


class TarReader:
    """Iterates the entries of a tar stream; the caller consumes each entry's data."""

    def __init__(self, source: Source, limits: Limits = Limits()) -> None:
        self._src = source
        self._limits = limits
        self.entries = 0

    def __iter__(self) -> Iterator[Entry]:
        pax: dict[bytes, bytes] = {}
        longname: bytes | None = None
        longlink: bytes | None = None
        while True:
            block = self._src.read(BLOCK)
            if not block:
                return  # ended at a header boundary without the marker: accepted as Go does
            if len(block) < BLOCK:
                raise InvalidArchive("archive ends in the middle of a header")
            if not block.strip(b"\0"):
                if pax or longname is not None or longlink is not None:
                    raise InvalidArchive("extended header without an entry")
                return  # end-of-archive marker; Source.finish checks what follows
            if not _checksum_ok(block):
                raise InvalidArchive("tar header checksum mismatch (not a tar archive?)")
            self.entries += 1
            if self.entries > self._limits.max_entries:
                raise InvalidArchive(f"archive has more than {self._limits.max_entries} entries")
            kind = block[156:157]
            size = _number(block[124:136], "size")
            if kind in (PAX_LOCAL, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK):
                if size > self._limits.max_header:
                    raise InvalidArchive(f"extended tar header of {size} bytes is too large")
                data = self._src.read(size)
                if len(data) < size:
                    raise InvalidArchive("archive ends in the middle of an extended header")
                self._src.skip(-size % BLOCK)
                if kind == PAX_LOCAL:
                    pax.update(parse_pax(data))
                elif kind == PAX_GLOBAL:
                    parse_pax(data)  # checked, then ignored as Docker and containerd do
                elif kind == GNU_LONGNAME:
                    longname = _cstr(data)
                else:
                    longlink = _cstr(data)
                continue
            entry = self._entry(block, kind, size, pax, longname, longlink)
            pax, longname, longlink = {}, None, None
            yield entry
            # The consumer read (or skipped) entry data; now skip the block padding.
            self._src.skip(-entry.size % BLOCK)

    def _entry(
        self,
        block: bytes,
        kind: bytes,
        size: int,
        pax: dict[bytes, bytes],
        longname: bytes | None,
        longlink: bytes | None,
    ) -> Entry:
        name = _cstr(block[0:100])
        if block[257:263] == b"ustar\x00":
            prefix = _cstr(block[345:500])
            if prefix:
                name = prefix + b"/" + name
        if longname is not None:
            name = longname
        linkname = longlink if longlink is not None else _cstr(block[157:257])
        entry = Entry(
            name=name,
            type=kind,
            mode=_number(block[100:108], "mode") & 0o7777,
            uid=_number(block[108:116], "uid"),
            gid=_number(block[116:124], "gid"),
            size=size,
            mtime=float(min(_number(block[136:148], "mtime"), 2**40)),
            linkname=linkname,
        )
        if kind in (CHRTYPE, BLKTYPE):
            entry.devmajor = _number(block[329:337], "devmajor")
            entry.devminor = _number(block[337:345], "devminor")
        for key, value in pax.items():
            if key == b"path":
                entry.name = value
            elif key == b"linkpath":
                entry.linkname = value
            elif key == b"size":
                entry.size = _pax_int(value, "size")
            elif key == b"uid":
                entry.uid = _pax_int(value, "uid")
            elif key == b"gid":
                entry.gid = _pax_int(value, "gid")
            elif key == b"mtime":
                entry.mtime = _pax_time(value)
            elif key.startswith(b"SCHILY.xattr."):
                entry.xattrs[key[len(b"SCHILY.xattr.") :]] = value
            elif key.startswith(b"LIBARCHIVE.xattr."):
                xname = urllib.parse.unquote_to_bytes(key[len(b"LIBARCHIVE.xattr.") :])
                try:
                    entry.xattrs[xname] = base64.b64decode(value, validate=False)
                except ValueError:
                    raise InvalidArchive("bad LIBARCHIVE.xattr value") from None
            elif key.startswith(b"GNU.sparse."):
                raise InvalidArchive("sparse tar entries are not supported")
        if len(entry.name) > self._limits.max_name or len(entry.linkname) > self._limits.max_name:
            raise InvalidArchive("tar entry name too long")
        if entry.type in HEADER_ONLY_TYPES:
            entry.size = 0  # any data blocks are read as headers, as Go's archive/tar does
        if entry.size > self._limits.max_bytes:
            raise InvalidArchive("tar entry larger than the archive limit")
        return entry
