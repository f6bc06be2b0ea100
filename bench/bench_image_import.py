"""Import a large layer, against umoci unpack and skopeo copy of the same content, same run.

    sudo .venv/bin/python bench/bench_image_import.py [--mb 200] [--workdir /var/tmp]

Makes a root filesystem of about --mb megabytes (large random files plus thousands of small
ones), tars it, and times:
  ours/rootfs     ImageStore.import_rootfs_tar of the tar (blob stored + layer extracted)
  ours/oci        ImageStore.import_path of an OCI layout holding that tar as its layer
  umoci unpack    of the same OCI layout (extraction only, into a bundle)
  skopeo copy     of the same OCI layout into another OCI layout (copy + verify, no extraction)
and prints each time and the ratio peer / ours (above 1: we are faster).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.image import ImageStore


def make_rootfs(root: Path, megabytes: int) -> None:
    big = max(1, megabytes * 9 // 10)  # 90% in 256 kB files, the rest in 2 kB files
    for i in range(big * 4):
        d = root / "usr" / "lib" / f"pkg{i % 50}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"lib{i}.so").write_bytes(os.urandom(256 << 10))
    small = (megabytes - big) * 512
    for i in range(small):
        d = root / "usr" / "share" / f"doc{i % 200}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.txt").write_bytes(os.urandom(1024) * 2)
        if i % 10 == 0:
            (d / f"l{i}").symlink_to(f"f{i}.txt")


def timed(label: str, func: object) -> float:
    start = time.perf_counter()
    func()  # type: ignore[operator]
    elapsed = time.perf_counter() - start
    print(f"  {label:<14} {elapsed:7.2f} s", flush=True)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (ownership, whiteouts)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-image-", dir=args.workdir))
    try:
        rootfs = work / "rootfs"
        rootfs.mkdir()
        make_rootfs(rootfs, args.mb)
        tar = work / "rootfs.tar"
        with tarfile.open(tar, "w", format=tarfile.PAX_FORMAT) as t:
            t.add(rootfs, arcname=".")
        shutil.rmtree(rootfs)
        size = tar.stat().st_size
        with tarfile.open(tar) as t:
            n = sum(1 for _ in t)
        print(f"layer: {size / 1e6:.0f} MB, {n} entries")

        # The OCI layout all tools read: made by our own save, unpacked to a directory.
        seed = ImageStore(work / "seed", durable=False)
        seed.import_rootfs_tar(tar, "bench:1")
        seed.save(["bench:1"], work / "oci.tar", "oci")
        layout = work / "oci"
        layout.mkdir()
        subprocess.run(["tar", "-C", str(layout), "-xf", str(work / "oci.tar")], check=True)
        shutil.rmtree(work / "seed")
        os.unlink(work / "oci.tar")
        subprocess.run(["cat", str(tar)], stdout=subprocess.DEVNULL, check=True)  # warm the cache
        subprocess.run(["sync"], check=True)

        results: dict[str, float] = {}
        results["ours/rootfs"] = timed(
            "ours/rootfs", lambda: ImageStore(work / "s1").import_rootfs_tar(tar, "bench:1")
        )
        subprocess.run(["sync"], check=True)
        results["ours/oci"] = timed(
            "ours/oci", lambda: ImageStore(work / "s2").import_path(layout, "bench:1")
        )
        subprocess.run(["sync"], check=True)
        if shutil.which("umoci"):
            results["umoci unpack"] = timed(
                "umoci unpack",
                lambda: subprocess.run(
                    ["umoci", "unpack", "--image", f"{layout}:1", str(work / "bundle")],
                    check=True,
                    capture_output=True,
                ),
            )
            subprocess.run(["sync"], check=True)
        if shutil.which("skopeo"):
            results["skopeo copy"] = timed(
                "skopeo copy",
                lambda: subprocess.run(
                    ["skopeo", "copy", "-q", f"oci:{layout}:1", f"oci:{work / 'copy'}:x"],
                    check=True,
                ),
            )
        ours = results["ours/oci"]
        for peer in ("umoci unpack", "skopeo copy"):
            if peer in results:
                print(
                    f"ratio {peer} / ours/oci: {results[peer] / ours:.2f}  (above 1: ours is faster)"
                )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
