"""What bind mounts add to a container's start: ours against crun, same bundles, same run.

    sudo .venv/bin/python bench/bench_volumes.py [--runs 24] [--blocks 4] [--gap 0.05]

A container (the bench_runtime one: busybox overlay root, mount, pid, uts, ipc, net and cgroup
namespaces, cgroup limits, `true`) starts with 0, 1, 10 and 50 bind mounts of host folders, as
volumes are mounted (``rbind,rprivate,rw,nosuid,nodev``, each at /mnt/vN, made in the writable
layer). Ours is driven through the Python API and the fork server (``run`` then wait), crun is
executed per run; the sizes and the runtimes are taken in turns, in blocks, so that a drift of
the machine's load weighs on all alike. Printed: the median start for each count, and the extra
over the same runtime's start without mounts, per mount count. Medians throughout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_runtime import fresh_layer, private_mount_namespace, write_spec

from runtime.linux import syscalls as sc
from runtime.spec import ANNOTATION_LOWERDIRS, ANNOTATION_UPPERDIR, ANNOTATION_WORKDIR
from tests.busybox import make_rootfs

COUNTS = (0, 1, 10, 50)


def add_mounts(bundle: Path, sources: list[Path]) -> None:
    config = json.loads((bundle / "config.json").read_text())
    config["mounts"] += [
        {
            "destination": f"/mnt/v{i}",
            "type": "bind",
            "source": str(source),
            "options": ["rbind", "rprivate", "rw", "nosuid", "nodev"],
        }
        for i, source in enumerate(sources)
    ]
    (bundle / "config.json").write_text(json.dumps(config))


class Ours:
    def __init__(self, work: Path) -> None:
        from runtime.api import Runtime

        self.rt = Runtime(work / "state", fork_server=True)
        self.count = 0

    def start(self, work: Path, lower: Path, sources: list[Path], gap: float) -> float:
        self.count += 1
        upper, wdir = fresh_layer(work, f"ours{self.count}")  # type: ignore[arg-type]
        bundle = work / "ours"
        write_spec(
            bundle,
            {
                ANNOTATION_LOWERDIRS: json.dumps([str(lower)]),
                ANNOTATION_UPPERDIR: str(upper),
                ANNOTATION_WORKDIR: str(wdir),
            },
        )
        add_mounts(bundle, sources)
        cid = f"v{self.count}"
        started = time.perf_counter()
        self.rt.run(cid, bundle)
        result = self.rt.wait(cid)
        elapsed = time.perf_counter() - started
        assert result and result["exit_code"] == 0, result
        self.rt.delete(cid)
        time.sleep(gap)
        return elapsed

    def close(self) -> None:
        from runtime.forkserver import stop

        stop(self.rt.root)


class Crun:
    def __init__(self, work: Path) -> None:
        self.count = 0
        self.state = work / "crun-state"

    def start(self, work: Path, lower: Path, sources: list[Path], gap: float) -> float:
        self.count += 1
        upper, wdir = fresh_layer(work, f"crun{self.count}")  # type: ignore[arg-type]
        bundle = work / "crun"
        write_spec(bundle)
        add_mounts(bundle, sources)
        rootfs = str(bundle / "rootfs")
        started = time.perf_counter()
        sc.mount(
            "overlay", rootfs, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={wdir}"
        )
        done = subprocess.run(
            ["crun", "--root", str(self.state), "run", "-b", str(bundle), f"c{self.count}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        sc.umount2(rootfs, sc.MNT_DETACH)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"crun failed: {done.stderr.decode().strip()}")
        time.sleep(gap)
        return elapsed

    def close(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=24, help="starts per runtime and count")
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between starts")
    args = parser.parse_args()
    if not shutil.which("crun"):
        sys.exit("bench_volumes: crun is not installed")
    private_mount_namespace()
    work = Path(tempfile.mkdtemp(prefix="orc-bench-volumes-"))
    runtimes: dict[str, Any] = {}
    try:
        lower = make_rootfs(work / "lower")
        sources = []
        for i in range(max(COUNTS)):
            (work / "volumes" / str(i)).mkdir(parents=True)
            sources.append(work / "volumes" / str(i))
        runtimes = {"ours": Ours(work), "crun": Crun(work)}
        for runtime in runtimes.values():  # warm-up: caches, the fork server and its pool
            for _ in range(3):
                runtime.start(work, lower, sources[:1], args.gap)
        samples: dict[tuple[str, int], list[float]] = {}
        per_block = max(1, args.runs // args.blocks)
        for _ in range(args.blocks):
            for count in COUNTS:
                for name, runtime in runtimes.items():
                    for _ in range(per_block):
                        elapsed = runtime.start(work, lower, sources[:count], args.gap)
                        samples.setdefault((name, count), []).append(elapsed)
        median = {key: statistics.median(values) * 1000 for key, values in samples.items()}
        print(
            f"container start with N bind mounts, median of {per_block * args.blocks} runs"
            f" in {args.blocks} blocks (run + wait for `true`), ms:"
        )
        print(f"  {'N':>3}  {'ours':>8} {'extra':>8}   {'crun':>8} {'extra':>8}   extra ours/crun")
        for count in COUNTS:
            ours, crun = median[("ours", count)], median[("crun", count)]
            extra_ours = ours - median[("ours", 0)]
            extra_crun = crun - median[("crun", 0)]
            ratio = f"{extra_ours / extra_crun:.2f}" if count and extra_crun > 0 else "-"
            print(
                f"  {count:>3}  {ours:8.2f} {extra_ours:8.2f}   {crun:8.2f} {extra_crun:8.2f}"
                f"   {ratio:>6}"
            )
        print(
            "  per mount (N=50): "
            + ", ".join(
                f"{name} {(median[(name, 50)] - median[(name, 0)]) / 50 * 1000:.0f} us"
                for name in runtimes
            )
        )
    finally:
        for runtime in runtimes.values():
            runtime.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
