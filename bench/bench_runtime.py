"""Container start benchmark: our runtime's Python API against crun and runc, same bundle.

    sudo .venv/bin/python bench/bench_runtime.py [--runs 40] [--gap 0.05] [--blocks 4]

Each run creates, starts and waits for ``true`` in a fresh container with its own mount, pid,
uts, ipc, net and cgroup namespaces, an overlay root filesystem (busybox) and cgroup limits
(memory, pids, cpu shares). Ours is driven from this warm process, as the supervisor drives it;
crun and runc are executed per run, each on an overlay mounted for it in the timed region.
crun refuses this machine's hybrid cgroup layout, so the whole benchmark runs in a private mount
namespace where /sys/fs/cgroup/unified is unmounted (our runtime does not need that).
Runs are spaced ``--gap`` seconds apart for every runtime alike: 0.05 s measures each start on
a quiet machine (with the fork server, that also gives its pool time to make the next
container); ``--gap 0`` measures starts back to back, where each runtime's cleanup and our
pool's refill compete with the next start for the 2 CPUs. The runs are split in blocks taken in
turns, so that a drift in the machine's load weighs on every runtime alike.
Also printed: ``orchestrator run --rm IMAGE true`` end to end, and the memory each running
container costs on the host (its monitor's PSS, containers launched ``--monitor-spacing`` apart
so that pre-made containers serve them all). Medians throughout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.linux import syscalls as sc
from runtime.spec import ANNOTATION_LOWERDIRS, ANNOTATION_UPPERDIR, ANNOTATION_WORKDIR
from runtime.specgen import default_spec
from tests.busybox import make_rootfs

GAP = 0.05
LIMITS = True  # (off for the cgroup version comparison: a hybrid host's v2 has no controllers)
RESOURCES = {"memory": {"limit": 256 * 1024 * 1024}, "pids": {"limit": 256}, "cpu": {"shares": 512}}


def private_mount_namespace(keep_unified: bool = False) -> None:
    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    if os.path.ismount("/sys/fs/cgroup/unified") and not keep_unified:
        sc.umount2("/sys/fs/cgroup/unified", sc.MNT_DETACH)


def write_spec(
    bundle: Path, annotations: dict[str, str] | None = None, seccomp: bool = False
) -> None:
    spec = default_spec(["true"], hostname="bench")
    if LIMITS:
        spec["linux"]["resources"].update(RESOURCES)
    if seccomp:  # Docker's default profile, as `orchestrator run` gives every container
        from orchestrator.seccompprofile import oci_section

        spec["linux"]["seccomp"] = oci_section(None, spec["process"]["capabilities"]["bounding"])
    if annotations:
        spec["annotations"].update(annotations)
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "rootfs").mkdir(exist_ok=True)
    (bundle / "config.json").write_text(json.dumps(spec))


def fresh_layer(base: Path, i: int) -> tuple[Path, Path]:
    upper, work = base / f"upper{i}", base / f"work{i}"
    upper.mkdir()
    work.mkdir()
    return upper, work


def bench_ours(
    work: Path,
    lower: Path,
    runs: int,
    two_step: bool,
    fork_server: bool,
    block: int = 0,
    seccomp: bool | None = False,
    cgroup_root: str = "/sys/fs/cgroup",
) -> list[float]:
    """Start times of ``runs`` containers; ``seccomp`` None: every other one with Docker's
    seccomp profile (the times of those come after the others'). ``cgroup_root``: the
    hierarchy their cgroups are made on."""
    from runtime.api import Runtime

    rt = Runtime(
        work / ("state-fs" if fork_server else "state"),
        fork_server=fork_server,
        cgroup_root=cgroup_root,
    )
    bundle = work / "ours"
    times: list[float] = []
    filtered: list[float] = []
    for i in range(runs + 3):
        with_filter = bool(i % 2) if seccomp is None else seccomp
        variant = f"{Path(cgroup_root).name}{os.environ.get('ORCHESTRATOR_NO_CLONE3', '')}"
        layer = f"{block}-{int(two_step)}{int(fork_server)}{seccomp}{variant}-{i}"
        upper, wdir = fresh_layer(work, layer)  # type: ignore[arg-type]
        write_spec(
            bundle,
            {
                ANNOTATION_LOWERDIRS: json.dumps([str(lower)]),
                ANNOTATION_UPPERDIR: str(upper),
                ANNOTATION_WORKDIR: str(wdir),
            },
            with_filter,
        )
        cid = f"b{i}"
        started = time.perf_counter()
        if two_step:
            rt.create(cid, bundle)
            rt.start(cid)
        else:
            rt.run(cid, bundle)
        result = rt.wait(cid)
        elapsed = time.perf_counter() - started
        assert result and result["exit_code"] == 0, result
        rt.delete(cid)
        if i >= 3:  # the first runs warm caches (and start the fork server)
            (filtered if seccomp is None and with_filter else times).append(elapsed)
        time.sleep(GAP)
    times += filtered
    if fork_server:
        from runtime.forkserver import stop

        stop(rt.root)
    return times


def bench_peer(
    work: Path, lower: Path, runs: int, tool: str, block: int = 0, seccomp: bool = False
) -> list[float]:
    bundle = work / f"{tool}{'-seccomp' if seccomp else ''}"
    write_spec(bundle, seccomp=seccomp)
    rootfs = str(bundle / "rootfs")
    times: list[float] = []
    for i in range(runs + 3):
        upper, wdir = fresh_layer(work, f"{block}-{tool}{int(seccomp)}{i}")  # type: ignore[arg-type]
        started = time.perf_counter()
        sc.mount(
            "overlay", rootfs, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={wdir}"
        )
        done = subprocess.run(
            [tool, "--root", str(work / f"{tool}-state"), "run", "-b", str(bundle), f"{tool}{i}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        sc.umount2(rootfs, sc.MNT_DETACH)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stderr.decode().strip()}")
        if i >= 3:
            times.append(elapsed)
        time.sleep(GAP)
    return times


def bench_cli(work: Path, runs: int) -> list[float] | None:
    tar = work / "busybox.tar"
    root = work / "cli-root"
    env = dict(os.environ, ORCHESTRATOR_ROOT=str(root))
    repo = Path(__file__).resolve().parents[1]
    subprocess.run(
        [str(repo / "scripts" / "make-busybox-rootfs"), str(tar)], check=True, capture_output=True
    )
    orchestrator = [sys.executable, "-m", "orchestrator"]
    subprocess.run(
        [*orchestrator, "image", "import", str(tar), "busybox"],
        check=True,
        env=env,
        capture_output=True,
        cwd=repo,
    )
    times: list[float] = []
    try:
        for _ in range(runs):
            started = time.perf_counter()
            done = subprocess.run(
                [*orchestrator, "run", "--rm", "busybox", "true"],
                env=env,
                capture_output=True,
                cwd=repo,
            )
            times.append(time.perf_counter() - started)
            if done.returncode != 0:
                raise RuntimeError(done.stderr.decode())
    finally:
        from runtime.forkserver import stop

        stop(root / "runtime")
    return times


def v2_root() -> str | None:
    """A cgroup2 hierarchy beside the default v1 one (a hybrid host's ``unified``), if any."""
    from runtime.cgroups.detect import detect_version, mount_type

    if detect_version("/sys/fs/cgroup") == 2:
        return None  # pure v2: the ordinary figures are v2's
    return "/sys/fs/cgroup/unified" if mount_type("/sys/fs/cgroup/unified") == "cgroup2" else None


def report_cgroups(work: Path, lower: Path, runs: int, blocks: int) -> None:
    """Start times on cgroup v1 (moves wait for an RCU grace period; the fork server's
    pre-made containers pay it ahead) against cgroup v2 with the init born in its cgroup
    (clone3 with CLONE_INTO_CGROUP; through the fork server, by a pre-made holder:
    runtime.pool2) and v2 with a move, in turns, in one run."""
    global LIMITS
    unified = v2_root()
    if unified is None:
        print("cgroups: no cgroup2 hierarchy beside a v1 one here: nothing to compare")
        return
    LIMITS = False
    per_block = max(1, runs // blocks)
    cases: dict[str, tuple[bool, str, bool]] = {
        "v1, direct fork (moved into its cgroup)": (False, "/sys/fs/cgroup", False),
        "v2, direct fork, born in its cgroup (clone3)": (False, unified, False),
        "v2, direct fork, moved into its cgroup": (False, unified, True),
        "v1, fork server (pre-made containers)": (True, "/sys/fs/cgroup", False),
        "v2, fork server (pre-made holders clone the init in)": (True, unified, False),
    }
    samples: dict[str, list[float]] = {}
    for block in range(blocks):
        for name, (server, root, move) in cases.items():
            if move:
                os.environ["ORCHESTRATOR_NO_CLONE3"] = "1"
            try:
                samples.setdefault(name, []).extend(
                    bench_ours(work, lower, per_block, False, server, block, cgroup_root=root)
                )
            finally:
                os.environ.pop("ORCHESTRATOR_NO_CLONE3", None)
    print(
        f"container start by cgroup version, run+wait without limits (v2 here has no"
        f" controllers), median of {per_block * blocks} runs:"
    )
    for name, values in samples.items():
        print(f"  {name:54s} {median_ms(values):8.2f} ms")


def pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def bench_monitor_memory(work: Path, lower: Path, count: int, spacing: float) -> list[int]:
    """PSS of each monitor while ``count`` containers run, launched as the supervisor will,
    ``spacing`` seconds apart (enough for the fork server to have a pre-made container ready
    each time: its monitors are the larger kind)."""
    from runtime.api import Runtime
    from runtime.forkserver import stop

    rt = Runtime(work / "mem-state", fork_server=True)
    bundle = work / "mem"
    pss = []
    try:
        for i in range(count):
            upper, wdir = fresh_layer(work, f"mem{i}")  # type: ignore[arg-type]
            write_spec(
                bundle,
                {
                    ANNOTATION_LOWERDIRS: json.dumps([str(lower)]),
                    ANNOTATION_UPPERDIR: str(upper),
                    ANNOTATION_WORKDIR: str(wdir),
                },
            )
            spec = json.loads((bundle / "config.json").read_text())
            spec["process"]["args"] = ["sleep", "600"]
            (bundle / "config.json").write_text(json.dumps(spec))
            rt.run(f"m{i}", bundle)
            time.sleep(spacing)
        time.sleep(0.5)
        for state in rt.list():
            pss.append(pss_kib(int(state.record["monitor_pid"])))
    finally:
        for state in rt.list():
            rt.delete(state.id, force=True)
        stop(rt.root)
    return pss


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def report_memory(work: Path, lower: Path, monitors: int, spacing: float) -> None:
    pss = bench_monitor_memory(work, lower, monitors, spacing)
    median = statistics.median(pss)
    print(
        f"monitor memory, {len(pss)} running containers: median PSS {median / 1024:.2f} MiB"
        f" = {median * 1024 / 1e6:.2f} MB (max {max(pss) / 1024:.2f} MiB)"
    )


def main() -> None:
    global GAP
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument(
        "--blocks",
        type=int,
        default=4,
        help="the runs of each runtime are split in this many blocks, taken in turns, so that"
        " a drift of the machine's load weighs on every runtime alike",
    )
    parser.add_argument("--monitors", type=int, default=20)
    parser.add_argument(
        "--gap", type=float, default=0.05, help="seconds between runs (all runtimes)"
    )
    parser.add_argument(
        "--monitor-spacing", type=float, default=0.15, help="seconds between the memory launches"
    )
    parser.add_argument(
        "--memory-only", action="store_true", help="measure only the monitors' memory"
    )
    parser.add_argument(
        "--cgroups",
        action="store_true",
        help="only compare start times on cgroup v1 and v2 (where a host has both)",
    )
    args = parser.parse_args()
    GAP = args.gap
    if os.geteuid() != 0:
        sys.exit("bench_runtime: needs root")
    private_mount_namespace(keep_unified=args.cgroups)
    work = Path(tempfile.mkdtemp(prefix="orc-bench-"))
    try:
        lower = make_rootfs(work / "lower")
        if args.memory_only:
            report_memory(work, lower, args.monitors, args.monitor_spacing)
            return
        if args.cgroups:
            report_cgroups(work, lower, args.runs, args.blocks)
            return
        samples: dict[str, list[float]] = {}
        per_block = max(1, args.runs // args.blocks)
        peers = [tool for tool in ("crun", "runc") if shutil.which(tool)]
        for block in range(args.blocks):
            for server in (True, False):
                how = "fork server" if server else "direct fork"
                for two_step, what in ((True, "create+start+wait"), (False, "run+wait")):
                    samples.setdefault(f"ours ({how}) {what}", []).extend(
                        bench_ours(work, lower, per_block, two_step, server, block)
                    )
                # with and without Docker's seccomp profile in turns: what the filter costs
                pairs = bench_ours(work, lower, 2 * per_block, False, server, block, None)
                half = len(pairs) // 2
                samples.setdefault(f"ours ({how}) run+wait, no seccomp (in turns)", []).extend(
                    pairs[:half]
                )
                samples.setdefault(f"ours ({how}) run+wait, seccomp (in turns)", []).extend(
                    pairs[half:]
                )
            for tool in list(peers):
                try:
                    samples.setdefault(f"{tool} run", []).extend(
                        bench_peer(work, lower, per_block, tool, block)
                    )
                    if tool == "crun":
                        samples.setdefault("crun run, seccomp", []).extend(
                            bench_peer(work, lower, per_block, tool, block, seccomp=True)
                        )
                except RuntimeError as exc:
                    print(f"{tool}: skipped: {exc}")
                    peers.remove(tool)
                    samples.pop(f"{tool} run", None)
                    samples.pop(f"{tool} run, seccomp", None)
        results = {name: median_ms(values) for name, values in samples.items()}
        cli = bench_cli(work, max(5, args.runs // 4))
        if cli:
            results["orchestrator run --rm busybox true (CLI, end to end)"] = median_ms(cli)
        print(
            f"container start, median of {per_block * args.blocks} runs in {args.blocks} blocks"
            " (create, start, wait for `true`):"
        )
        for name, value in results.items():
            print(f"  {name:58s} {value:8.2f} ms")
        for how in ("fork server", "direct fork"):
            plain, filtered = (
                f"ours ({how}) run+wait, {s} (in turns)" for s in ("no seccomp", "seccomp")
            )
            print(
                f"  seccomp filter (Docker's profile), extra start cost, {how}:"
                f" {results[filtered] - results[plain]:+.2f} ms"
            )
        if "crun run, seccomp" in results:
            print(
                "  seccomp filter, extra start cost, crun (libseccomp):"
                f" {results['crun run, seccomp'] - results['crun run']:+.2f} ms"
            )
        for tool in ("crun", "runc"):
            if f"{tool} run" in results:
                peer = results[f"{tool} run"]
                ratios = ", ".join(
                    f"{name.removeprefix('ours ')} {value / peer:.2f}"
                    for name, value in results.items()
                    if name.startswith("ours")
                )
                print(f"  ours / {tool}: {ratios}")
        report_memory(work, lower, args.monitors, args.monitor_spacing)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
