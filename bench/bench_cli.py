"""The command line's cost: ``orchestrator run --rm busybox true`` end to end, against a bare
Python start and ``runc run`` of a busybox bundle, measured in turns in one run.

    sudo .venv/bin/python bench/bench_cli.py [--runs 20]

Printed: the medians, ours less the bare Python start (what the CLI itself costs), that
against runc's (the aim: at most 1.5 x), and ours when the fork server starts cold (the first
command after it idled out). Ours is served by the warm copy of the CLI the fork server
keeps (runtime.zygote); also measured in the same turns: the console script
(``.venv/bin/orchestrator``) and the CLI run in-process (``ORCHESTRATOR_NO_WARM=1``, what a
command pays when no warm copy may serve it), with where that one's time goes before the
container is asked for: the imports and the parser (``python -X importtime``, a timed parse).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_runtime import fresh_layer, private_mount_namespace, write_spec  # noqa: E402
from runtime.linux import syscalls as sc  # noqa: E402
from tests.busybox import make_rootfs  # noqa: E402


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, cwd=REPO)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command[:4]}: {done.stderr.decode().strip()}")
    return elapsed


def runc_run(work: Path, lower: Path, i: int) -> float:
    bundle = work / "runc"
    rootfs = str(bundle / "rootfs")
    upper, wdir = fresh_layer(work, f"runc{i}")  # type: ignore[arg-type]
    started = time.perf_counter()
    sc.mount("overlay", rootfs, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={wdir}")
    try:
        done = subprocess.run(
            ["runc", "--root", str(work / "runc-state"), "run", "-b", str(bundle), f"r{i}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
    finally:
        sc.umount2(rootfs, sc.MNT_DETACH)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"runc: {done.stderr.decode().strip()}")
    return elapsed


def import_profile(env: dict[str, str]) -> tuple[float, float]:
    """(imports, parser) in ms for a `run`: the modules `run` imports, and its parse."""
    code = (
        "import time; t = time.perf_counter()\n"
        "from orchestrator import cli\n"
        "import orchestrator.commands.containers, orchestrator.containers, orchestrator.bundle\n"
        "import runtime.api, runtime.forkserver, runtime.image.store, orchestrator.networks\n"
        "t1 = time.perf_counter()\n"
        "cli.build_parser(only='run').parse_args(['run', '--rm', 'busybox', 'true'])\n"
        "t2 = time.perf_counter(); print((t1 - t) * 1000, (t2 - t1) * 1000)"
    )
    samples = [
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(7)
    ]
    return (
        statistics.median(float(s[0]) for s in samples),
        statistics.median(float(s[1]) for s in samples),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cold-runs", type=int, default=6)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_cli: needs root")
    private_mount_namespace()
    work = Path(tempfile.mkdtemp(prefix="orc-bench-cli-"))
    root = work / "root"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["ORCHESTRATOR_ROOT"] = str(root)
    orchestrator = [sys.executable, "-m", "orchestrator"]
    try:
        lower = make_rootfs(work / "lower")
        tar = work / "busybox.tar"
        subprocess.run([str(REPO / "scripts" / "make-busybox-rootfs"), str(tar)], check=True)
        subprocess.run([*orchestrator, "image", "import", str(tar), "busybox"], env=env, check=True)
        write_spec(work / "runc")
        (work / "runc" / "rootfs").mkdir(exist_ok=True)
        run = [*orchestrator, "run", "--rm", "busybox", "true"]
        script = Path(sys.executable).parent / "orchestrator"
        cold_env = dict(env, ORCHESTRATOR_NO_WARM="1")
        samples: dict[str, list[float]] = {
            "bare": [],
            "ours": [],
            "script": [],
            "in-process": [],
            "runc": [],
        }
        for i in range(args.runs + 2):  # in turns; the first two warm caches up
            results = {
                "bare": timed([sys.executable, "-c", "pass"], env),
                "ours": timed(run, env),
                "script": timed([str(script), *run[3:]], env) if script.exists() else 0.0,
                "in-process": timed(run, cold_env),
                "runc": runc_run(work, lower, i) if shutil.which("runc") else 0.0,
            }
            if i >= 2:
                for name, value in results.items():
                    samples[name].append(value)
        from runtime.forkserver import stop

        cold = []
        for _ in range(args.cold_runs):
            stop(root / "runtime")
            cold.append(timed(run, env))
        stop(root / "runtime")
        medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
        imports, parse = import_profile(env)
        print(f"CLI, medians of {args.runs} runs in turns:")
        print(f"  python -c pass                                  {medians['bare']:7.1f} ms")
        print(f"  orchestrator run --rm busybox true              {medians['ours']:7.1f} ms")
        if medians["script"]:
            print(f"  the same, the console script                    {medians['script']:7.1f} ms")
        print(f"  the same in-process (ORCHESTRATOR_NO_WARM=1)    {medians['in-process']:7.1f} ms")
        print(
            f"  the same, fork server cold (median of {args.cold_runs})        "
            f"{statistics.median(cold) * 1000:7.1f} ms"
        )
        if medians["runc"]:
            own = medians["ours"] - medians["bare"]
            print(f"  runc run (busybox bundle, overlay root)         {medians['runc']:7.1f} ms")
            print(
                f"  ours less bare Python: {own:.1f} ms = {own / medians['runc']:.2f} x runc run"
                " (aim: at most 1.5 x)"
            )
        print(f"  of the in-process one: imports {imports:.1f} ms, parser {parse:.1f} ms")
    finally:
        subprocess.run(["umount", "-R", "-l", str(work)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
