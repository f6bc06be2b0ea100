"""Build a small multi-step Dockerfile: the first build and a rebuild with nothing changed.

    sudo .venv/bin/python bench/bench_build.py [--rounds 5] [--files 200]

Each round uses a fresh state root with busybox imported (scripts/make-busybox-rootfs), then:
  first build      every step runs (two RUN containers, COPYs of --files small files, metadata)
  no-change        the same build again: every step CACHED, same image id
Both go through ``orchestrator build`` as a user runs it (a fresh Python process each time), and
in-process (``Builder.build``), which shows what the CLI's start-up costs. Prints medians.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DOCKERFILE = """\
FROM busybox AS builder
RUN mkdir -p /out && seq 1 1000 > /out/numbers
FROM busybox
ENV APP=/app MODE=bench
WORKDIR /app
COPY src/ ./src/
COPY --from=builder /out/numbers ./
RUN wc -l numbers > count.txt
USER nobody
CMD ["cat", "count.txt"]
"""


def make_context(path: Path, files: int) -> None:
    (path / "src").mkdir(parents=True)
    (path / "Dockerfile").write_text(DOCKERFILE)
    (path / ".dockerignore").write_text("**/*.tmp\n")
    for i in range(files):
        d = path / "src" / f"pkg{i % 10}"
        d.mkdir(exist_ok=True)
        (d / f"mod{i}.py").write_bytes(os.urandom(512))
        if i % 20 == 0:
            (d / f"junk{i}.tmp").write_bytes(b"x")


def cli(root: Path, *args: str) -> float:
    env = dict(os.environ, ORCHESTRATOR_ROOT=str(root))
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        check=True,
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def in_process(root: Path, context: Path) -> float:
    from orchestrator.imagebuild.builder import Builder, BuildOptions

    start = time.perf_counter()
    Builder(root, out=io.StringIO()).build(BuildOptions(context=context, tags=["bench"]))
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=200)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_build: needs root (RUN steps are containers)", file=sys.stderr)
        return 1
    from runtime.forkserver import stop

    times: dict[str, list[float]] = {
        k: [] for k in ("first", "nochange", "first-in", "nochange-in")
    }
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        base = Path(tmp)
        busybox = base / "busybox.tar"
        subprocess.run([str(REPO / "scripts" / "make-busybox-rootfs"), str(busybox)], check=True)
        context = base / "ctx"
        make_context(context, args.files)
        for i in range(args.rounds):
            for mode in ("cli", "in"):
                root = base / f"root-{mode}-{i}"
                cli(root, "image", "import", str(busybox), "busybox")
                try:
                    if mode == "cli":
                        times["first"].append(cli(root, "build", "-t", "bench", str(context)))
                        times["nochange"].append(cli(root, "build", "-t", "bench", str(context)))
                    else:
                        times["first-in"].append(in_process(root, context))
                        times["nochange-in"].append(in_process(root, context))
                finally:
                    stop(root / "runtime")
    print(
        f"build of a 10-instruction, 2-stage Dockerfile, {args.files} context files, "
        f"median of {args.rounds}:"
    )
    for label, key in (
        ("first build (CLI)", "first"),
        ("no-change rebuild (CLI)", "nochange"),
        ("first build (in-process)", "first-in"),
        ("no-change rebuild (in-process)", "nochange-in"),
    ):
        print(f"  {label:<32} {statistics.median(times[key]) * 1000:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
