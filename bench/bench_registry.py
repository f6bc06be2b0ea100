"""Push and pull times against a local docker-registry, next to skopeo doing the same copy.

    sudo .venv/bin/python bench/bench_registry.py [--size-mb 64]

Starts docker-registry on 127.0.0.1 (a free port, storage in a temporary directory), imports a
busybox rootfs and a random-content image of ``--size-mb`` into a temporary store, then for each:
our push, our pull into an empty store (download + verify + extract), our pull of blobs only
(what skopeo does: no extraction), and ``skopeo copy`` from the registry to an OCI layout.
Root is needed because the store extracts layers. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.image import ImageStore
from runtime.image.registry import RegistryClient
from runtime.image.transfer import pull, push
from tests.integration.registry.helpers import start_registry


def timed(fn: Callable[..., object], *args: object, **kw: object) -> float:
    start = time.perf_counter()
    fn(*args, **kw)
    return time.perf_counter() - start


def blobs_only(store: ImageStore, domain: str, repo: str, tag: str) -> None:
    """Download and verify every blob without registering (and so extracting) the image."""
    import json

    with RegistryClient(domain) as client:
        manifest = client.get_manifest(repo, tag)
        doc = json.loads(manifest.data)
        for desc in [doc["config"], *doc["layers"]]:
            reader = client.open_blob(repo, desc["digest"], desc["size"])
            try:
                store.ingest_blob(reader, desc["digest"], desc["size"])  # type: ignore[arg-type]
            finally:
                reader.close()


def best(xs: list[float]) -> str:
    return f"{min(xs):7.3f}s" if xs else "      -"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    registry = start_registry(work / "registry")
    try:
        store = ImageStore(work / "src")
        rootfs = work / "busybox.tar"
        subprocess.run(
            [str(Path(__file__).parent.parent / "scripts" / "make-busybox-rootfs"), str(rootfs)],
            check=True,
        )
        busybox = f"{registry.domain}/busybox:1"
        store.import_rootfs_tar(rootfs, busybox)
        big_tar = work / "random.tar"
        (work / "rnd").mkdir()
        with open(work / "rnd" / "data.bin", "wb") as f:
            for _ in range(args.size_mb):  # in pieces: keep this process small
                f.write(os.urandom(1 << 20))
        subprocess.run(["tar", "-C", str(work / "rnd"), "-cf", str(big_tar), "."], check=True)
        big = f"{registry.domain}/random:1"
        store.import_rootfs_tar(big_tar, big)
        has_skopeo = shutil.which("skopeo") is not None
        print(f"{'image':<10} {'size':>9} {'push':>8} {'pull':>8} {'blobs':>8} {'skopeo':>8}")
        for name, ref in (("busybox", busybox), (f"random{args.size_mb}M", big)):
            image = store.resolve(ref)
            size = sum(store.blob_path(d).stat().st_size for d in image.layer_blobs)
            repo, tag = ref.split("/", 1)[1].split(":")
            push_s, pull_s, blobs_s, skopeo_s = [], [], [], []
            for i in range(args.repeat):
                there = f"{registry.domain}/{repo}{i}:{tag}"
                push_s.append(timed(push, store, ref, there))
                pull_s.append(timed(pull, ImageStore(work / f"pull-{name}-{i}"), there))
                raw = ImageStore(work / f"blobs-{name}-{i}")
                blobs_s.append(timed(blobs_only, raw, registry.domain, f"{repo}{i}", tag))
                if has_skopeo:
                    out = work / f"skopeo-{name}-{i}"
                    cmd = [
                        "skopeo",
                        "--insecure-policy",
                        "copy",
                        "--quiet",
                        "--src-tls-verify=false",
                        f"docker://{there}",
                        f"oci:{out}:x",
                    ]
                    skopeo_s.append(timed(subprocess.run, cmd, check=True))
            print(
                f"{name:<10} {size / 1e6:7.1f}MB {best(push_s)} {best(pull_s)} {best(blobs_s)} {best(skopeo_s)}"
            )
        # Peak memory of a CLI pull of the big image (blobs stream to disk, never whole in memory).
        there = f"{registry.domain}/random0:1"
        cli = [
            sys.executable,
            "-m",
            "orchestrator",
            "--root",
            str(work / "cli"),
            "pull",
            "-q",
            there,
        ]
        proc = subprocess.Popen(cli, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 0, "orchestrator pull failed"
        print(f"peak RSS of `orchestrator pull` of {there}: {usage.ru_maxrss / 1024:.0f} MB")
        print("push: our push to a new repository (all blobs uploaded); pull: ours into an empty")
        print("store, layers extracted; blobs: ours, download+verify only; skopeo: copy to OCI dir")
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
