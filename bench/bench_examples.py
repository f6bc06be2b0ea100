"""Example 1 (examples/webstack) from nothing to a served page.

    sudo .venv/bin/python bench/bench_examples.py [--runs 3]

Prints, for a fresh state root with the busybox image imported: the first ``up -d --wait``
(its three images built from their Dockerfiles), then, with the images present, the time from
``up -d`` to every service healthy and to the first page served through the published port;
``down`` too. Medians. The healthchecks run every second, so "healthy" waits for one check.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
STACK = REPO / "examples" / "webstack" / "compose.yaml"


def orc(root: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--root", str(root), "-f", str(STACK), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def first_page(port: int, deadline: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/cgi-bin/index", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_examples: needs root")
    work = Path(tempfile.mkdtemp(prefix="orc-bench-ex-"))
    root = work / "state"
    os.environ.setdefault("ORCHESTRATOR_CGROUP_PARENT", "orchestrator/bench-examples")
    port = free_port()
    os.environ["WEB_PORT"] = str(port)
    try:
        subprocess.run(
            [str(REPO / "scripts" / "make-busybox-rootfs"), str(work / "bb.tar")],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestrator",
                "--root",
                str(root),
                "image",
                "import",
                str(work / "bb.tar"),
                "busybox",
            ],
            check=True,
            capture_output=True,
            cwd=REPO,
        )
        start = time.perf_counter()
        orc(root, "up", "-d", "--wait")
        built = time.perf_counter() - start
        orc(root, "down")
        healthy, page, down = [], [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            orc(root, "up", "-d")
            first_page(port, time.monotonic() + 30)
            page.append(time.perf_counter() - start)
            orc(root, "down")
            start = time.perf_counter()
            orc(root, "up", "-d", "--wait")
            healthy.append(time.perf_counter() - start)
            start = time.perf_counter()
            orc(root, "down")
            down.append(time.perf_counter() - start)
        print("examples/webstack (3 services, healthchecks every 1 s), medians:")
        print(f"  first up -d --wait, images built from Dockerfiles  {built * 1000:8.0f} ms")
        print(
            f"  up -d to the first page served on 127.0.0.1        {statistics.median(page) * 1000:8.0f} ms"
        )
        print(
            f"  up -d --wait (every service healthy)                {statistics.median(healthy) * 1000:8.0f} ms"
        )
        print(
            f"  down                                                {statistics.median(down) * 1000:8.0f} ms"
        )
    finally:
        try:
            from orchestrator.supervisor import httpclient

            httpclient.call(root / "supervisor.sock", "POST", "/v1/shutdown")
        except Exception:
            pass
        time.sleep(0.5)
        from runtime.forkserver import stop

        stop(root / "runtime")
        subprocess.run(["rm", "-rf", str(work)], check=False)
        for controller in Path("/sys/fs/cgroup").iterdir():
            parent = controller / os.environ["ORCHESTRATOR_CGROUP_PARENT"]
            if parent.is_dir():
                try:
                    parent.rmdir()
                except OSError:
                    pass


if __name__ == "__main__":
    main()
