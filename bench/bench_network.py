"""Network benchmark: wiring a container to a bridge, networked start, published-port throughput.

    sudo .venv/bin/python bench/bench_network.py [--runs 30] [--gigabytes 1] [--transfers 3]

Driven from this warm process through the orchestrator's Python API (orchestrator.containers,
orchestrator.networks), as the supervisor drives it. Printed, medians:

- attach: ``Networks.attach`` of a created container (its init waiting to run ``true``) to a
  bridge: the records, a netlink socket made in its namespace, the veth pair, the address, the
  default route;
- start: ``Containers.start`` of a created container on a bridge network against one with
  ``--network none``, taken in turns in the same run (networked = create + attach + start);
- throughput: a transfer of ``--gigabytes`` from this host to a busybox ``nc`` in a container,
  through a port published on 127.0.0.1 (nftables DNAT) against straight to the container's
  address; the ratio of the two.

Traffic goes only over loopback and the benchmark's own bridge.
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SUBNET = "10.213.250.0/24"


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def prepare(root: Path) -> None:
    from tests.image_fixtures import busybox_rootfs

    tarball = busybox_rootfs(root.parent / "busybox.tar")
    subprocess.run(
        [sys.executable, "-m", "orchestrator", "--root", str(root), "image", "import",
         str(tarball), "busybox"],
        check=True, capture_output=True,
    )  # fmt: skip


def description(network: str, command: tuple[str, ...], **more: Any) -> Any:
    from orchestrator.description import ContainerDescription

    return ContainerDescription(image="busybox", command=command, network=network, **more)


def bench_attach(containers: Any, runs: int) -> list[float]:
    times = []
    runtime = containers.runtime
    for _ in range(runs):
        c = containers.create(description("bench", ("true",)))
        runtime.create(c.id, c.bundle)
        started = time.perf_counter()
        containers.networks.attach(c.id, c.options)
        times.append(time.perf_counter() - started)
        runtime.start(c.id)
        runtime.wait(c.id)
        containers.remove(c, force=True)
        time.sleep(0.05)
    return times


def bench_start(containers: Any, runs: int) -> tuple[list[float], list[float]]:
    networked: list[float] = []
    alone: list[float] = []
    for i in range(runs * 2):
        network = "bench" if i % 2 == 0 else "none"
        c = containers.create(description(network, ("true",)))
        started = time.perf_counter()
        containers.start(c)
        (networked if network == "bench" else alone).append(time.perf_counter() - started)
        containers.wait(c)
        containers.remove(c, force=True)
        time.sleep(0.05)
    return networked, alone


def send(address: tuple[str, int], total: int) -> float:
    """Seconds to send ``total`` bytes and see the receiver close."""
    chunk = memoryview(bytes(4 << 20))
    deadline = time.monotonic() + 10
    while True:
        try:
            sock = socket.create_connection(address, timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with sock:
        sock.settimeout(60)
        started = time.perf_counter()
        sent = 0
        while sent < total:
            sent += sock.send(chunk[: min(len(chunk), total - sent)])
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)  # the receiver's close
        return time.perf_counter() - started


def bench_throughput(containers: Any, gigabytes: float, transfers: int) -> tuple[float, float]:
    from orchestrator.netconfig import Publish

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = ("sh", "-c", "while true; do nc -l -p 5000 > /dev/null; done")
    c = containers.create(
        description("bench", sink, publish=(Publish(5000, "tcp", "127.0.0.1", port, port),))
    )
    containers.start(c)
    try:
        address = containers.networks.addresses(c.id)["bench"]
        total = int(gigabytes * (1 << 30))
        direct, published = [], []
        for _ in range(transfers):
            direct.append(total / send((address, 5000), total))
            published.append(total / send(("127.0.0.1", port), total))
        return statistics.median(direct), statistics.median(published)
    finally:
        containers.remove(c, force=True)


def remove_cgroup_parent(parent: str) -> None:
    """The benchmark's own cgroup parent, empty by now (tests would call it a leftover)."""
    for controller in Path("/sys/fs/cgroup").iterdir():
        path = controller / parent
        for child in sorted(path.glob("*/"), reverse=True) if path.is_dir() else []:
            if child.is_dir():
                try:
                    child.rmdir()
                except OSError:
                    pass
        try:
            path.rmdir()
        except OSError:
            pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--transfers", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    os.environ.setdefault("ORCHESTRATOR_CGROUP_PARENT", "orchestrator/bench-network")
    from orchestrator.containers import Containers

    with tempfile.TemporaryDirectory(prefix="orc-bench-net-") as tmp:
        root = Path(tmp) / "state"
        root.mkdir()
        prepare(root)
        containers = Containers(root)
        containers.networks.create("bench", subnet=SUBNET)
        try:
            for _ in range(3):  # warm up: imports, the fork server and its pool
                bench_attach(containers, 1)
            attach = bench_attach(containers, args.runs)
            networked, alone = bench_start(containers, args.runs)
            direct, published = bench_throughput(containers, args.gigabytes, args.transfers)
        finally:
            for c in containers.all():
                containers.remove(c, force=True)
            containers.networks.remove("bench")
            from runtime.forkserver import stop

            stop(root / "runtime")
            remove_cgroup_parent(os.environ["ORCHESTRATOR_CGROUP_PARENT"])
    print(f"attach to a bridge (veth, address, route), median of {len(attach)}: "
          f"{median_ms(attach):.2f} ms")  # fmt: skip
    print(f"start, networked: {median_ms(networked):.2f} ms; --network none: "
          f"{median_ms(alone):.2f} ms; difference {median_ms(networked) - median_ms(alone):.2f} ms "
          f"(medians of {len(networked)} each, in turns)")  # fmt: skip
    print(f"throughput, {args.gigabytes:g} GB x {args.transfers}: direct "
          f"{direct / 1e9:.2f} GB/s, published on 127.0.0.1 {published / 1e9:.2f} GB/s, "
          f"ratio {published / direct:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
