"""``image bootstrap``'s pieces that need neither root nor a network: apt's sources, the mirror
chosen from them, the cache key and folder, option checks, progress lines."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from orchestrator.errors import UserError
from orchestrator.imagebuild import bootstrap as bs


def _etc_apt(tmp_path: Path, files: dict[str, str]) -> Path:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (etc / name).write_text(text)
    return etc


DEB822 = """\
Types: deb deb-src
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: trixie
Components: main
"""


def test_apt_sources_reads_one_line_and_deb822_files_in_apt_order(tmp_path: Path) -> None:
    etc = _etc_apt(
        tmp_path,
        {
            "sources.list": "# a comment\ndeb-src http://src.example/debian bookworm main\n"
            "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main contrib\n",
            "sources.list.d/debian.sources": DEB822,
            "sources.list.d/backports.list": "deb http://bp.example/debian bookworm-backports main",
            "sources.list.d/other.list.disabled": "deb http://off.example/debian bookworm main",
        },
    )
    found = bs.apt_sources(etc)
    assert [(s.uri, s.suites) for s in found] == [
        ("http://one.example/debian", ("bookworm",)),
        ("http://bp.example/debian", ("bookworm-backports",)),
        ("http://mirror.example/debian", ("bookworm", "bookworm-updates")),
        ("http://security.example/debian-security", ("bookworm-security",)),
    ]
    assert found[0].components == ("main", "contrib")


def test_the_mirror_is_the_one_apt_uses_for_the_suite(tmp_path: Path) -> None:
    etc = _etc_apt(
        tmp_path,
        {
            "sources.list.d/backports.list": "deb http://bp.example/debian bookworm-backports main",
            "sources.list.d/debian.sources": DEB822,
        },
    )
    sources = bs.apt_sources(etc)
    assert bs.mirror_from_apt("bookworm", sources) == "http://mirror.example/debian"
    # another suite: the first archive that is not a security one
    assert bs.mirror_from_apt("trixie", sources) == "http://bp.example/debian"
    security_only = [bs.AptSource("http://s.example/debian-security", ("x-security",), ())]
    assert bs.mirror_from_apt("trixie", security_only) == bs.DEFAULT_MIRROR
    assert bs.mirror_from_apt("bookworm", []) == bs.DEFAULT_MIRROR
    cdrom = [bs.AptSource("cdrom:[Debian]/", ("bookworm",), ("main",))]
    assert bs.mirror_from_apt("bookworm", cdrom) == bs.DEFAULT_MIRROR


def test_the_cache_key_ignores_order_and_repeats_but_not_content() -> None:
    one = bs.BootstrapOptions(suite="bookworm", packages=("python3", "nginx-light"))
    same = bs.BootstrapOptions(
        suite="bookworm", packages=("nginx-light", "python3", "python3"), mirror="http://x/"
    )
    other = bs.BootstrapOptions(suite="bookworm", packages=("python3",))
    assert bs.cache_key(one, "amd64") == bs.cache_key(same, "amd64")
    assert bs.cache_key(one, "amd64") != bs.cache_key(other, "amd64")
    assert bs.cache_key(one, "amd64") != bs.cache_key(one, "arm64")
    assert bs.cache_key(one, "amd64").startswith("debian-bookworm-amd64-minbase-")


def test_the_cache_folder_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert bs.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ORCHESTRATOR_CACHE_DIR")
    assert bs.cache_dir() == tmp_path / "xdg" / "orchestrator"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert bs.cache_dir() in (Path("/var/cache/orchestrator"), Path.home() / ".cache/orchestrator")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (bs.BootstrapOptions(suite="bookworm", distribution="ubuntu"), "only debian"),
        (bs.BootstrapOptions(suite="../etc"), "not a suite name"),
        (bs.BootstrapOptions(suite="bookworm", variant="fakechroot"), "--variant"),
        (bs.BootstrapOptions(suite="bookworm", packages=("nginx;rm",)), "not a Debian package"),
        (bs.BootstrapOptions(suite="bookworm", components=()), "at least one"),
    ],
)
def test_bad_options_are_one_line(options: bs.BootstrapOptions, message: str) -> None:
    with pytest.raises(UserError, match=message) as caught:
        options.check()
    assert "\n" not in str(caught.value)


def test_the_suite_defaults_to_the_hosts(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\nVERSION_CODENAME=bookworm\n')
    assert bs.host_suite(release) == "bookworm"
    release.write_text("ID=ubuntu\nVERSION_CODENAME=noble\n")
    assert bs.host_suite(release) == "stable"
    assert bs.host_suite(tmp_path / "missing") == "stable"


def test_a_missing_debootstrap_is_said_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bs.shutil, "which", lambda *a, **k: None)
    with pytest.raises(UserError, match="debootstrap is not installed"):
        bs.find_debootstrap()


def test_an_unreachable_or_wrong_mirror_is_said_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UserError, match="cannot reach the Debian mirror http://127"):
        bs.check_mirror(f"http://127.0.0.1:{port}/debian", "bookworm", timeout=5)
    (tmp_path / "dists" / "bookworm").mkdir(parents=True)
    (tmp_path / "dists" / "bookworm" / "Release").write_text("Suite: stable\n")
    bs.check_mirror(f"file://{tmp_path}", "bookworm")
    with pytest.raises(UserError, match="has no suite 'trixie'"):
        bs.check_mirror(f"file://{tmp_path}", "trixie")
    with pytest.raises(UserError, match="expected an http"):
        bs.check_mirror("ftp://x/debian", "bookworm")


def test_progress_in_a_log_keeps_the_phases_and_drops_most_package_lines() -> None:
    out = io.StringIO()
    progress = bs._Progress(out)
    for line in [
        "I: Retrieving InRelease ",
        "I: Retrieving adduser 3.134",
        "I: Validating adduser 3.134",
        "I: Retrieving apt 2.6.1",
        "I: Installing core packages...",
        "W: something odd",
        "I: Configuring apt...",
        "I: Base system installed successfully.",
    ]:
        progress.line(line)
    progress.done()
    assert out.getvalue().splitlines() == [
        "I: Retrieving InRelease ",
        "I: Installing core packages...",
        "W: something odd",
        "I: Base system installed successfully.",
    ]
