"""Benchmark: load, validate and plan a generated stack of 1000 services.

    .venv/bin/python bench/bench_stack.py [--services 1000] [--runs 7]

Each run reads the file from disk, interpolates, validates against the JSON Schema, builds the
model (with config hashes) and computes the dependency layers. Prints the median and the spread,
and the time of the stages of one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.stack import DependencyGraph, load_stack


def generate(n: int) -> str:
    """A stack of ``n`` services in layers of 50: each depends on two of the layer before, and
    each uses most of the common keys (ports, volumes, env, healthcheck, limits...)."""
    lines = [
        "name: bench",
        "x-common: &common",
        "  restart: unless-stopped",
        "  init: true",
        "services:",
    ]
    for i in range(n):
        lines += [
            f"  svc{i}:",
            "    <<: *common",
            f"    image: registry.example/app{i % 7}:${{TAG:-1.{i % 10}}}",
            f'    command: ["serve", "--port", "{8000 + i % 1000}"]',
            "    environment:",
            f'      INDEX: "{i}"',
            "      MODE: production",
            f"      PEER: svc{max(i - 1, 0)}",
            "    ports:",
            f'      - "{10000 + i}:8080"',
            "    volumes:",
            f"      - data{i % 20}:/var/lib/app",
            "      - ./conf:/etc/app:ro",
            "    mem_limit: 256m",
            "    cpus: 0.5",
            "    healthcheck:",
            '      test: ["CMD", "true"]',
            "      interval: 10s",
            "      timeout: 2s",
            "      retries: 3",
            "    networks: [front, back]",
        ]
        if i >= 50:
            base = (i // 50 - 1) * 50
            lines += [
                "    depends_on:",
                f"      - svc{base + i % 50}",
                f"      - svc{base + (i + 7) % 50}",
            ]
    lines += ["networks:", "  front: {}", "  back: {}", "volumes:"]
    lines += [f"  data{j}: {{}}" for j in range(20)]
    return "\n".join(lines) + "\n"


def run_once(path: Path) -> tuple[float, int, int]:
    start = time.perf_counter()
    stack = load_stack([path], environ={})
    graph = DependencyGraph.from_services(stack.services)
    layers = graph.layers()
    graph.stop_layers()
    return time.perf_counter() - start, len(stack.services), len(layers)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "compose.yaml"
        path.write_text(generate(args.services))
        size = path.stat().st_size
        run_once(path)  # warm: imports, schema compilation
        times = []
        for _ in range(args.runs):
            elapsed, services, layers = run_once(path)
            times.append(elapsed)
    print(f"stack: {services} services, {layers} layers, {size / 1024:.0f} KiB of YAML")
    print(
        f"load+validate+plan: median {statistics.median(times) * 1000:.0f} ms, "
        f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over {args.runs} runs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
