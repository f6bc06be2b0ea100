"""Supervisor benchmark: stacks of busybox services under our supervisor.

    sudo .venv/bin/python bench/bench_supervisor.py [--sizes 10 50] [--idle-containers 200]

Prints medians of:
- ``up -d`` of stacks of 10 and 50 services (the supervisor already running), and ``down``;
- the time from a container's death (SIGKILL of its process) to its restart (``restart:
  always``), seen as the new process running;
- the supervisor's memory (RSS, PSS) and CPU while ``--idle-containers`` containers run idle;
- the CLI's own cost for ``ps``, ``logs`` and ``stop`` against a bare ``python -c pass``.

Docker Compose (``docker-compose``) runs the same stack files side by side, each of its runs
right after ours, where a Docker engine answers or Debian's ``docker.io`` is installed (then
bench/dockerpeer.py starts one for the run: ``apt-get install --no-install-recommends docker.io
docker-compose``); elsewhere its figures are printed as missing. The stacks' network is
internal (no route out of it, for either). Run with bytecode caches allowed (unset
PYTHONDONTWRITEBYTECODE), as users have them.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import dockerpeer  # noqa: E402
from dockerpeer import Engine  # noqa: E402

STOPS_ON_TERM = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]


def orc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--root", str(root), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"orchestrator {' '.join(args)}: {done.stderr}")
    return done


def write_stack(path: Path, name: str, services: int, named: bool = True) -> Path:
    """``named``: with a top-level ``name`` (docker-compose 1.x refuses the key: it is given
    ``-p`` instead)."""
    lines = [f"name: {name}"] if named else []
    lines += ["networks:", "  default:", "    internal: true", "services:"]
    for i in range(services):
        lines += [
            f"  s{i}:",
            "    image: busybox",
            f"    command: {json.dumps(STOPS_ON_TERM)}",
            "    restart: always",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000


def bench_up_down(
    root: Path, work: Path, size: int, runs: int, docker: Engine | None
) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """Medians of (up, down) for us, and for docker-compose (None: no engine) run in turn."""
    name = f"bench{size}"
    stack = write_stack(work / f"stack{size}.yaml", name, size)
    plain = write_stack(work / f"compose{size}.yaml", name, size, named=False)
    compose = ["docker-compose", "--no-ansi", "-p", name, "-f", str(plain)]
    ups, downs, their_ups, their_downs = [], [], [], []
    for _ in range(runs):
        ups.append(timed(lambda: orc(root, "-f", str(stack), "up", "-d")))
        downs.append(timed(lambda: orc(root, "-f", str(stack), "down", "-t", "5")))
        if docker is not None:
            their_ups.append(timed(lambda: docker.run(*compose, "up", "-d")))
            their_downs.append(timed(lambda: docker.run(*compose, "down", "-t", "5")))
    ours = (statistics.median(ups), statistics.median(downs))
    if docker is None:
        return ours, None
    return ours, (statistics.median(their_ups), statistics.median(their_downs))


def bench_restart(root: Path, work: Path, runs: int) -> float:
    stack = write_stack(work / "restart.yaml", "restart", 1)
    orc(root, "-f", str(stack), "up", "-d")
    state = root / "runtime"
    samples = []
    try:
        for _ in range(runs):
            row = json.loads(orc(root, "-f", str(stack), "ps", "--format", "json").stdout)[0]
            old = row["pid"]
            record = state / row["id"] / "state.json"
            start = time.perf_counter()
            os.kill(old, 9)
            while True:
                try:
                    pid = json.loads(record.read_text())["pid"]
                except (OSError, ValueError, KeyError):
                    pid = old
                if pid != old and Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.0005)
            samples.append((time.perf_counter() - start) * 1000)
            time.sleep(11)  # past the backoff's reset, so each kill is a first restart
    finally:
        orc(root, "-f", str(stack), "down", "-t", "5")
    return statistics.median(samples)


def pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_idle(root: Path, work: Path, count: int, seconds: float) -> tuple[int, int, float]:
    stack = work / "idle.yaml"
    stack.write_text(
        "name: idle\nservices:\n  s:\n    image: busybox\n"
        f"    command: {json.dumps(STOPS_ON_TERM)}\n    restart: always\n"
        f"    deploy: {{replicas: {count}}}\n"
    )
    orc(root, "-f", str(stack), "up", "-d")
    try:
        supervisor = int((root / "supervisor.lock").read_text())
        time.sleep(2)
        before = cpu_seconds(supervisor)
        time.sleep(seconds)
        cpu = (cpu_seconds(supervisor) - before) / seconds * 100
        return rss_kib(supervisor), pss_kib(supervisor), cpu
    finally:
        orc(root, "-f", str(stack), "down", "-t", "5")


def bench_cli(root: Path, work: Path, runs: int) -> dict[str, float]:
    stack = write_stack(work / "cli.yaml", "cli", 2)
    orc(root, "-f", str(stack), "up", "-d")
    result = {}
    try:
        bare = [
            timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
            for _ in range(runs)
        ]
        result["python -c pass"] = statistics.median(bare)
        for name, args in (
            ("ps", ("-f", str(stack), "ps")),
            ("logs", ("-f", str(stack), "logs")),
            ("stop + start", ("-f", str(stack), "stop", "-t", "5", "s0")),
        ):
            samples = []
            for _ in range(runs):
                samples.append(timed(lambda a=args: orc(root, *a)))  # type: ignore[misc]
                if name.startswith("stop"):
                    orc(root, "-f", str(stack), "start", "s0")
            result[name] = statistics.median(samples)
    finally:
        orc(root, "-f", str(stack), "down", "-t", "5")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 50])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--idle-containers", type=int, default=200)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument(
        "--tmpfs",
        action="store_true",
        help="our state root and Docker's data on a tmpfs (the file system out of the figures)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_supervisor: needs root")
    work = Path(tempfile.mkdtemp(prefix="orc-bench-sup-"))
    disk = work / "fs"
    disk.mkdir()
    if args.tmpfs:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8g", "orc-bench", str(disk)], check=True
        )
    root = disk / "state"
    env_parent = os.environ.setdefault("ORCHESTRATOR_CGROUP_PARENT", "orchestrator/bench")
    try:
        subprocess.run(
            [str(REPO / "scripts" / "make-busybox-rootfs"), str(work / "bb.tar")],
            check=True,
            capture_output=True,
        )
        orc(root, "image", "import", str(work / "bb.tar"), "busybox")
        where = "a tmpfs" if args.tmpfs else _file_system(disk)
        print(f"supervisor benchmark (medians; the supervisor running already; state on {where})")
        with dockerpeer.engine(disk) as docker:
            if docker is not None and not shutil.which("docker-compose"):
                print("  docker-compose is not installed: no ratio")
                docker = None
            if docker is not None:
                docker.run("docker", "import", str(work / "bb.tar"), "busybox:latest")
            for size in args.sizes:
                (up, down), theirs = bench_up_down(root, work, size, args.runs, docker)
                print(f"  up -d, {size:3d} services   {up:9.1f} ms   down {down:9.1f} ms")
                if theirs is not None:
                    print(
                        f"    docker-compose           {theirs[0]:9.1f} ms   down"
                        f" {theirs[1]:9.1f} ms   (ours: {up / theirs[0]:.3f} x, "
                        f"{down / theirs[1]:.3f} x)"
                    )
        if docker is None:
            print("  docker-compose: no Docker engine here; no ratio")
        restart = bench_restart(root, work, args.restarts)
        print(f"  death to restart (first restart)   {restart:7.1f} ms")
        rss, pss, cpu = bench_idle(root, work, args.idle_containers, args.idle_seconds)
        print(
            f"  supervisor with {args.idle_containers} containers: RSS {rss / 1024:.1f} MiB,"
            f" PSS {pss / 1024:.1f} MiB, idle CPU {cpu:.2f} %"
        )
        cli = bench_cli(root, work, max(5, args.runs * 2))
        bare = cli.pop("python -c pass")
        print(f"  python -c pass                     {bare:7.1f} ms")
        for name, value in cli.items():
            print(f"  CLI {name:30s} {value:7.1f} ms  (+{value - bare:.1f} ms)")
    finally:
        try:
            from orchestrator.supervisor import httpclient as http

            http.call(root / "supervisor.sock", "POST", "/v1/shutdown")
        except Exception:
            pass
        time.sleep(0.5)
        from runtime.forkserver import stop

        stop(root / "runtime")
        for controller in Path("/sys/fs/cgroup").iterdir():
            parent = controller / env_parent
            if parent.is_dir():
                try:
                    parent.rmdir()
                except OSError:
                    pass
        if args.tmpfs:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def _file_system(path: Path) -> str:
    """The type and options of the file system ``path`` is on (the figures depend on it: on
    ext4 without a journal, inode allocation skips recently deleted inodes one by one)."""
    best = ("", "", "?")
    with open("/proc/self/mounts") as f:
        for line in f:
            device, point, kind, *_ = line.split()
            if str(path).startswith(point) and len(point) >= len(best[1]):
                best = (device, point, kind)
    journal = ""
    if best[2] == "ext4":
        name = os.path.basename(os.path.realpath(best[0]))
        task = Path(f"/sys/fs/ext4/{name}/journal_task")
        if task.exists():
            journal = ", no journal" if task.read_text().strip() == "<none>" else ", journal"
    return f"{best[2]} ({best[1]}{journal})"


if __name__ == "__main__":
    main()
