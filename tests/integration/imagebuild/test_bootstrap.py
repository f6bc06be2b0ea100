"""``orchestrator image bootstrap`` with a stand-in debootstrap (no network): the tree tidied,
packed, imported and cached; the cache used, verified and refreshed; a failure said in one line
with nothing left behind (the leak check covers the mount a failing debootstrap leaves).

tests/integration/examples/test_debian_app.py runs the real debootstrap."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import REPO

pytestmark = pytest.mark.root

FAKE_DEBOOTSTRAP = r"""#!/bin/bash
# Stands in for debootstrap: OPTIONS... SUITE TARGET MIRROR
set -eu
. "$(dirname "$0")/fake.env"   # the command runs debootstrap with an environment of its own
echo "$@" >> "$FAKE_CALLS"
args=("$@"); n=${#args[@]}
suite=${args[n-3]}; target=${args[n-2]}
echo "I: Retrieving InRelease"
echo "I: Retrieving base-files 12.4"
mkdir -p "$target"/{etc,usr/sbin,usr/bin,dev/pts,proc,var/cache/apt/archives,var/lib/apt/lists/partial}
echo "VERSION_CODENAME=$suite" > "$target/etc/os-release"
echo "$FAKE_CONTENT" > "$target/usr/bin/content"
cp /etc/resolv.conf "$target/etc/resolv.conf" 2>/dev/null || echo "nameserver 192.0.2.1" > "$target/etc/resolv.conf"
hostname > "$target/etc/hostname"
mknod "$target/dev/null" c 1 3
touch "$target/var/cache/apt/archives/base-files_12.4_amd64.deb" "$target/var/cache/apt/pkgcache.bin"
echo "Package: base-files" > "$target/var/lib/apt/lists/x_dists_${suite}_main_binary-amd64_Packages"
if [ -n "${FAKE_FAIL:-}" ]; then
    mount -t tmpfs fake "$target/proc"   # as a killed debootstrap leaves its chroot's /proc
    echo "E: Couldn't find these debs: $FAKE_FAIL"
    exit 1
fi
echo "I: Base system installed successfully."
"""


class Boot:
    """``boot(*args, root=..., **fake)``: the CLI's ``image bootstrap`` with the stand-in on
    PATH (``fake``: its FAKE_* settings), a private cache and a file:// mirror that has the
    suite ``bookworm``."""

    def __init__(self, state_root: Path, tmp_path: Path) -> None:
        self.state_root = state_root
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        fake = self.bin / "debootstrap"
        fake.write_text(FAKE_DEBOOTSTRAP)
        fake.chmod(0o755)
        mirror = tmp_path / "mirror"
        (mirror / "dists" / "bookworm").mkdir(parents=True)
        (mirror / "dists" / "bookworm" / "Release").write_text("Suite: stable\n")
        self.mirror = f"file://{mirror}"
        self.calls_file = tmp_path / "calls"
        self.calls_file.touch()
        self.cache = tmp_path / "cache" / "bootstrap"

    def __call__(
        self, *args: str, root: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        fake = {"FAKE_CALLS": str(self.calls_file), "FAKE_CONTENT": "one", "FAKE_FAIL": ""}
        fake.update(env)
        (self.bin / "fake.env").write_text(
            "".join(f"{k}={shlex.quote(v)}\n" for k, v in fake.items())
        )
        environment = dict(
            os.environ,
            PATH=f"{self.bin}:{os.environ['PATH']}",
            ORCHESTRATOR_ROOT=str(root or self.state_root),
            ORCHESTRATOR_CACHE_DIR=str(self.cache.parent),
        )
        return subprocess.run(
            [sys.executable, "-m", "orchestrator", "image", "bootstrap", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
            stdin=subprocess.DEVNULL,
            env=environment,
        )

    def calls(self) -> list[str]:
        return self.calls_file.read_text().splitlines()


@pytest.fixture
def boot(state_root: Path, tmp_path: Path) -> Boot:
    return Boot(state_root, tmp_path)


def _layer(root: Path, name: str) -> Path:
    from orchestrator.paths import images_dir
    from runtime.image.store import ImageStore

    store = ImageStore(images_dir(root))
    (layer,) = store.layer_dirs(store.resolve(name))
    return layer


def test_bootstrap_tidies_packs_imports_and_caches(
    boot: Boot, state_root: Path, tmp_path: Path
) -> None:
    run = boot
    args = ("debian", "--suite", "bookworm", "--include", "nginx-light,python3")
    done = run(*args, "--include", "redis-server", "--mirror", run.mirror, "base")
    assert done.returncode == 0, done.stderr
    image_id = done.stdout.split()[0]
    assert done.stdout.split()[1] == "base:latest"
    assert "with debootstrap" in done.stderr and "I: Retrieving InRelease" in done.stderr
    (call,) = run.calls()
    assert call.startswith(
        "--force-check-gpg --variant=minbase --include=nginx-light,python3,redis-server "
        "--components=main bookworm "
    )
    assert call.endswith(run.mirror)

    layer = _layer(state_root, "base")
    assert (layer / "usr/bin/content").read_text() == "one\n"
    assert os.listdir(layer / "dev") == []
    assert os.listdir(layer / "var/cache/apt/archives") == []
    assert os.listdir(layer / "var/lib/apt/lists") == ["partial"]
    assert not (layer / "var/cache/apt/pkgcache.bin").exists()
    assert (layer / "etc/resolv.conf").read_text() == ""
    assert (layer / "etc/hostname").read_text() == ""
    policy = layer / "usr/sbin/policy-rc.d"
    assert "exit 101" in policy.read_text() and policy.stat().st_mode & stat.S_IXUSR
    assert not list((state_root / "tmp").iterdir())  # the scratch is gone

    (meta_file,) = run.cache.glob("*.json")
    meta = json.loads(meta_file.read_text())
    assert meta["packages"] == ["nginx-light", "python3", "redis-server"]
    assert meta["mirror"] == run.mirror
    assert meta_file.with_suffix(".tar").is_file()

    # again, the packages in another order, FAKE_CONTENT changed: the cache answers, same id
    again = run(
        "debian",
        "--suite",
        "bookworm",
        "--include",
        "redis-server python3,nginx-light",
        "base2",
        FAKE_CONTENT="two",
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.split()[0] == image_id
    assert "from the cached tree" in again.stderr
    assert len(run.calls()) == 1

    # another state root: imported from the cache, same id
    other = tmp_path / "other-root"
    third = run(*args, "--include", "redis-server", "base", root=other)
    assert third.returncode == 0, third.stderr
    assert third.stdout.split()[0] == image_id
    assert (_layer(other, "base") / "usr/bin/content").read_text() == "one\n"

    # --no-cache bootstraps again and replaces the entry
    fresh = run(
        *args,
        "--include",
        "redis-server",
        "--mirror",
        run.mirror,
        "--no-cache",
        "base",
        FAKE_CONTENT="three",
    )
    assert fresh.returncode == 0, fresh.stderr
    assert len(run.calls()) == 2
    assert (_layer(state_root, "base") / "usr/bin/content").read_text() == "three\n"

    # a damaged cache entry is noticed (its diff id) and made again
    tar = meta_file.with_suffix(".tar")
    data = bytearray(tar.read_bytes())
    index = data.index(b"three\n")
    data[index : index + 5] = b"THREE"
    tar.write_bytes(bytes(data))
    fixed = run(
        *args, "--include", "redis-server", "--mirror", run.mirror, "base", root=tmp_path / "r3"
    )
    assert fixed.returncode == 0, fixed.stderr
    assert "damaged" in fixed.stderr
    assert len(run.calls()) == 3


def test_failures_are_one_line_and_leave_nothing(
    boot: Boot, state_root: Path, tmp_path: Path
) -> None:
    run = boot
    done = run("debian", "--suite", "bookworm", "--mirror", run.mirror, "x", FAKE_FAIL="nope")
    assert done.returncode == 1
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("orchestrator:")]
    assert line.startswith("orchestrator: debootstrap failed: Couldn't find these debs: nope")
    log = Path(line.split("(log: ")[1].rstrip(")"))
    assert "E: Couldn't find these debs" in log.read_text()
    assert not list((state_root / "tmp").iterdir())  # unmounted (the leak check) and removed
    assert not list(run.cache.glob("*.tar"))

    missing = run("debian", "--suite", "trixie", "--mirror", run.mirror, "x")
    assert missing.returncode == 1
    assert (
        missing.stderr.strip().splitlines()[-1].startswith("orchestrator: the mirror file://")
        and "has no suite 'trixie'" in missing.stderr
    )

    bad = run("debian", "--include", "a;b", "x")
    assert bad.returncode == 1 and "not a Debian package name" in bad.stderr
