"""A Docker engine for the benchmarks to compare with, when one can be had.

An engine that already answers (``docker info``) is used as it is. Otherwise, where Debian's
``docker.io`` is installed (``apt-get install --no-install-recommends docker.io
docker-compose``), one is started for the run alone: its data, sockets and containerd under a
temporary folder, no docker0 bridge, no iptables rules, no IP forwarding, ``--dns 127.0.0.1``;
it is stopped, and what it mounted is unmounted, when the benchmark ends. Images come from the
same busybox rootfs tarball ours use (``docker import``): nothing is pulled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


class Engine:
    def __init__(self, env: dict[str, str], started: subprocess.Popen[bytes] | None) -> None:
        self.env = env
        self.started = started

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(list(args), capture_output=True, text=True, env=self.env)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
        return done


def _answers(env: dict[str, str]) -> bool:
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, env=env, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@contextlib.contextmanager
def engine(work: Path) -> Iterator[Engine | None]:
    """A Docker engine (None: none to be had here)."""
    if not shutil.which("docker"):
        yield None
        return
    env = dict(os.environ)
    if _answers(env):
        yield Engine(env, None)
        return
    if not shutil.which("dockerd"):
        yield None
        return
    place = work / "docker"
    place.mkdir()
    sock = place / "docker.sock"
    env["DOCKER_HOST"] = f"unix://{sock}"
    command = [
        "dockerd",
        "--host",
        f"unix://{sock}",
        "--data-root",
        str(place / "data"),
        "--exec-root",
        str(place / "exec"),
        "--pidfile",
        str(place / "dockerd.pid"),
        "--bridge=none",
        "--iptables=false",
        "--ip-masq=false",
        "--ip-forward=false",
        "--dns",
        "127.0.0.1",
        "--storage-driver",
        "overlay2",
    ]
    with open(place / "dockerd.log", "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 60
            while not _answers(env):
                if process.poll() is not None or time.monotonic() > deadline:
                    yield None
                    return
                time.sleep(0.3)
            yield Engine(env, process)
        finally:
            _stop(process, place)


def _stop(process: subprocess.Popen[bytes], place: Path) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # its containerd, if it outlived it
    # What it mounted under its folders (overlays, netns, the containerd state), deepest first.
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(str(place))), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    shutil.rmtree(place, ignore_errors=True)
