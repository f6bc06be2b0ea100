from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile

import pytest

from runtime.image.tarstream import InvalidArchive, Limits, Source, TarReader, parse_pax
from tests.image_fixtures import (
    Member,
    file,
    pad,
    pax_header,
    raw_header,
    raw_tar,
    sha256,
    tar_bytes,
)


def entries(data: bytes, limits: Limits = Limits()) -> list[tuple[bytes, bytes, bytes]]:  # noqa: B008
    src = Source(io.BytesIO(data), limits)
    out = []
    for entry in TarReader(src, limits):
        out.append((entry.name, entry.type, src.read(entry.size)))
    src.finish()
    return out


def test_reads_ustar_pax_and_gnu_long_names() -> None:
    long = "d/" + "x" * 200
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        name = "short" if fmt == tarfile.USTAR_FORMAT else long
        data = tar_bytes([file(name, b"hello")], fmt)
        assert entries(data) == [(name.encode(), b"0", b"hello")]


def test_pax_overrides_and_xattrs() -> None:
    data = tar_bytes([Member("f", data=b"x", pax={"SCHILY.xattr.user.k": "v", "uid": "123456789"})])
    src = Source(io.BytesIO(data))
    [entry] = list(TarReader(src))
    assert entry.xattrs == {b"user.k": b"v"}
    assert entry.uid == 123456789


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_compressed_streams_and_digests(compress: object) -> None:
    raw = tar_bytes([file("a", b"1" * 5000)])
    packed = compress(raw)  # type: ignore[operator]
    src = Source(io.BytesIO(packed))
    for entry in TarReader(src):
        src.skip(entry.size)
    src.finish()
    assert src.digest == sha256(raw)
    assert src.raw_digest == sha256(packed)


def test_multi_member_gzip_is_one_stream() -> None:
    raw = tar_bytes([file("a", b"1" * 5000)])
    packed = gzip.compress(raw[:1024]) + gzip.compress(raw[1024:])
    assert entries(packed) == [(b"a", b"0", b"1" * 5000)]


def test_junk_after_gzip_stream_is_refused() -> None:
    packed = gzip.compress(tar_bytes([file("a", b"1")])) + b"JUNKJUNK"
    with pytest.raises(InvalidArchive, match="junk"):
        entries(packed)


def test_junk_after_end_of_archive_is_refused() -> None:
    data = tar_bytes([file("a", b"1")]) + b"\0" * 512 + b"evil" + b"\0" * 508
    with pytest.raises(InvalidArchive, match="junk after the end of the archive"):
        entries(data)


def test_too_much_padding_is_refused() -> None:
    data = tar_bytes([file("a", b"1")]) + b"\0" * (2 << 20)
    with pytest.raises(InvalidArchive, match="padding"):
        entries(data, Limits(max_trailing=1 << 20))


def test_gzip_bomb_is_stopped_by_the_ratio() -> None:
    bomb = gzip.compress(tar_bytes([file("zeros", b"\0" * (8 << 20))]), 9)
    with pytest.raises(InvalidArchive, match="expands more than"):
        entries(bomb, Limits(max_ratio=100, ratio_grace=1 << 20))


def test_size_limit() -> None:
    with pytest.raises(InvalidArchive, match="larger than the archive limit"):
        entries(tar_bytes([file("big", b"x" * (3 << 20))]), Limits(max_bytes=1 << 20))


def test_entry_limit() -> None:
    data = tar_bytes([file(f"f{i}") for i in range(20)])
    with pytest.raises(InvalidArchive, match="more than 10 entries"):
        entries(data, Limits(max_entries=10))


def test_huge_pax_header_is_refused_before_reading_it() -> None:
    data = raw_header(b"././@PaxHeader", b"x", 1 << 40) + b"\0" * 512
    with pytest.raises(InvalidArchive, match="too large"):
        entries(data)


def test_bad_checksum_is_refused() -> None:
    block = bytearray(raw_header(b"a", size=0))
    block[0] = ord("b")
    with pytest.raises(InvalidArchive, match="checksum"):
        entries(raw_tar([bytes(block)]))


def test_truncated_entry_is_refused() -> None:
    data = raw_header(b"a", size=1000) + b"x" * 100
    with pytest.raises(InvalidArchive, match="ends in the middle"):
        entries(data)


def test_truncated_gzip_is_refused() -> None:
    packed = gzip.compress(tar_bytes([file("a", b"1" * 10000)]))
    with pytest.raises(InvalidArchive, match="truncated"):
        entries(packed[:-20])


def test_base256_size_field() -> None:
    field = b"\x80" + (5).to_bytes(11, "big")
    data = raw_tar([raw_header(b"a", size_field=field) + pad(b"hello")])
    assert entries(data) == [(b"a", b"0", b"hello")]


def test_negative_base256_is_refused() -> None:
    data = raw_tar([raw_header(b"a", size_field=b"\xff" * 12)])
    with pytest.raises(InvalidArchive, match="negative"):
        entries(data)


def test_sparse_entries_are_refused() -> None:
    data = raw_tar([pax_header({b"GNU.sparse.major": b"1"}), raw_header(b"a")])
    with pytest.raises(InvalidArchive, match="sparse"):
        entries(data)


@pytest.mark.parametrize(
    "body",
    [b"5 a=b", b"99 a=b\n", b"x a=b\n", b"6 ab\n\n", b"3 =\n"],
)
def test_malformed_pax_records(body: bytes) -> None:
    with pytest.raises(InvalidArchive):
        parse_pax(body)


def test_zstd_is_reported_clearly() -> None:
    with pytest.raises(InvalidArchive, match="zstd"):
        entries(b"\x28\xb5\x2f\xfd" + b"\0" * 100)


def test_size_limit_on_the_stream() -> None:
    data = tar_bytes([file(f"f{i}", b"x" * (400 << 10)) for i in range(4)])
    with pytest.raises(InvalidArchive, match="expands beyond"):
        entries(data, Limits(max_bytes=1 << 20))
