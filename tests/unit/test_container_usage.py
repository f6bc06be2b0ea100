"""The pure parts of top, stats and one-off containers: /proc and cgroup files laid out in a
temp dir, sizes as Docker prints them, a one-off's description from a stack."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator import processes, stats
from orchestrator.commands.stackverbs import split_reference
from orchestrator.errors import UserError
from runtime.cgroups import open_manager
from runtime.cgroups.stats import Usage, read_usage


def test_v2_usage_from_a_laid_out_tree(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    (root / "cgroup.procs").write_text("")
    manager = open_manager("c1", root=str(root), parent="orchestrator", version=2)
    directory = root / "orchestrator" / "c1"
    directory.mkdir(parents=True)
    files = {
        "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
        "memory.current": "10485760\n",
        "memory.max": "67108864\n",
        "memory.stat": "anon 4096\nfile 8192\ninactive_file 2097152\nactive_file 0\n",
        "pids.current": "3\n",
        "pids.max": "max\n",
        "io.stat": "8:0 rbytes=4096 wbytes=512 rios=1 wios=1 dbytes=0 dios=0\n"
        "8:16 rbytes=100 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
    }
    for name, text in files.items():
        (directory / name).write_text(text)
    usage = read_usage(manager)
    assert usage == Usage(
        cpu_ns=1_500_000,
        memory=10 << 20,
        memory_cache=2 << 20,
        memory_limit=64 << 20,
        pids=3,
        pids_limit=None,
        block_read=4196,
        block_write=512,
    )
    assert usage.memory_used == 8 << 20
    (directory / "memory.max").write_text("max\n")
    (directory / "io.stat").unlink()
    usage = read_usage(manager)
    assert usage.memory_limit is None and usage.block_read is None


def test_v1_usage_from_a_laid_out_tree(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    for sub in ("memory", "cpuacct", "pids", "blkio"):
        (root / sub / "orchestrator" / "c1").mkdir(parents=True)
        (root / sub / "cgroup.procs").write_text("")
    cg = "orchestrator/c1"
    (root / "memory" / cg / "memory.usage_in_bytes").write_text("5000\n")
    (root / "memory" / cg / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (root / "memory" / cg / "memory.stat").write_text("cache 9\ntotal_inactive_file 1000\n")
    (root / "cpuacct" / cg / "cpuacct.usage").write_text("123456\n")
    (root / "pids" / cg / "pids.current").write_text("2\n")
    (root / "pids" / cg / "pids.max").write_text("100\n")
    (root / "blkio" / cg / "blkio.throttle.io_service_bytes_recursive").write_text(
        "8:0 Read 300\n8:0 Write 20\n8:0 Sync 0\n8:0 Total 320\n"
        "8:16 Read 1\n8:16 Write 2\nTotal 323\n"
    )
    usage = read_usage(open_manager("c1", root=str(root), parent="orchestrator", version=1))
    assert usage == Usage(
        cpu_ns=123456,
        memory=5000,
        memory_cache=1000,
        memory_limit=None,  # v1's "no limit" is the largest counter
        pids=2,
        pids_limit=100,
        block_read=301,
        block_write=22,
    )
    assert usage.memory_used == 4000


def test_a_row_between_two_samples() -> None:
    before = stats.Sample("a" * 64, "web", 10.0, Usage(cpu_ns=1_000_000_000))
    after = stats.Sample(
        "a" * 64,
        "web",
        10.5,
        Usage(cpu_ns=1_250_000_000, memory=3 << 20, memory_cache=1 << 20, pids=4),
        net_rx=1234,
        net_tx=0,
    )
    row = stats.row(before, after, memory_total=8 << 30)
    assert row["cpu_percent"] == 50.0 and row["CPUPerc"] == "50.00%"
    assert row["memory_usage"] == 2 << 20 and row["memory_limit"] == 8 << 30
    assert row["MemUsage"] == "2MiB / 8GiB" and row["MemPerc"] == "0.02%"
    assert row["NetIO"] == "1.23kB / 0B" and row["BlockIO"] == "0B / 0B"
    assert row["PIDs"] == "4" and row["ID"] == "a" * 12
    stopped = stats.row(before, stats.Sample("b" * 64, "old", 11.0, None), 8 << 30)
    assert stopped["running"] is False and stopped["cpu_percent"] == 0.0
    text = stats.render([row, stopped])
    assert text.splitlines()[0].split()[:3] == ["CONTAINER", "ID", "NAME"]
    assert text.splitlines()[2].split()[2:4] == ["--", "--"]


@pytest.mark.parametrize(
    ("n", "binary", "decimal"),
    [
        (0, "0B", "0B"),
        (999, "999B", "999B"),
        (1536, "1.5KiB", "1.54kB"),
        (64 << 20, "64MiB", "67.1MB"),
        (1_536_000_000, "1.431GiB", "1.54GB"),
    ],
)
def test_sizes_as_docker_prints_them(n: int, binary: str, decimal: str) -> None:
    assert stats.binary_size(n) == binary
    assert stats.decimal_size(n) == decimal


def test_net_io_leaves_loopback_out(tmp_path: Path) -> None:
    (tmp_path / "42" / "net").mkdir(parents=True)
    (tmp_path / "42" / "net" / "dev").write_text(
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets\n"
        "    lo:  900  9 0 0 0 0 0 0  900  9 0 0 0 0 0 0\n"
        "  eth0: 1000 10 0 0 0 0 0 0  200  2 0 0 0 0 0 0\n"
        "  eth1:   24  1 0 0 0 0 0 0    6  1 0 0 0 0 0 0\n"
    )
    assert stats.net_io(42, str(tmp_path)) == (1024, 206)
    assert stats.net_io(43, str(tmp_path)) == (0, 0)  # gone


def test_a_process_row_from_a_laid_out_proc(tmp_path: Path) -> None:
    (tmp_path / "uptime").write_text("1000.00 1500.00\n")
    proc = tmp_path / "77"
    proc.mkdir()
    hz = os.sysconf("SC_CLK_TCK")
    # started 900 s after boot (100 s ago), 50 s of CPU: C = 50%
    fields = ["S", "1", "77", "77", str(136 << 8 | 3), "-1", "0"] + ["0"] * 4
    fields += [str(30 * hz), str(20 * hz), "0", "0", "20", "0", "1", "0", str(900 * hz)]
    (proc / "stat").write_text(f"77 (my (odd) cmd) {' '.join(fields)} 0 0\n")
    (proc / "status").write_text("Name:\tx\nUid:\t1000\t0\t0\t0\n")
    (proc / "cmdline").write_bytes(b"sh\0-c\0sleep 1\0")
    header, rows = processes.table([77, 78], str(tmp_path))  # (78 is gone)
    assert header == list(processes.HEADER)
    [row] = rows
    assert row[0] == "root"  # the effective uid
    assert row[1:4] == ["77", "1", "50"] or row[1:4] == ["77", "1", "49"]
    assert row[5:] == ["pts/3", "00:00:50", "sh -c sleep 1"]
    (proc / "cmdline").write_bytes(b"")
    assert processes.table([77], str(tmp_path))[1][0][7] == "[my (odd) cmd]"


@pytest.mark.parametrize(
    ("tty_nr", "name"),
    [(0, "?"), (136 << 8 | 5, "pts/5"), (137 << 8 | 2, "pts/258"), (4 << 8 | 1, "tty1")],
)
def test_tty_names(tty_nr: int, name: str) -> None:
    assert processes.tty_name(tty_nr) == name


def test_ps_output_is_filtered_by_pid() -> None:
    text = "  PID COMMAND         ARGS\n    1 init   /sbin/init splash\n   42 sh   sh -c a b\n"
    header, rows = processes.filter_ps_output(text, {42})
    assert header == ["PID", "COMMAND", "ARGS"]
    assert rows == [["42", "sh", "sh -c a b"]]
    with pytest.raises(UserError, match="PID column"):
        processes.filter_ps_output("COMMAND\nsh\n", {42})
    assert processes.render(header, rows) == "PID   COMMAND   ARGS\n42    sh        sh -c a b\n"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("busybox", ("busybox", "latest")),
        ("busybox:1.36", ("busybox", "1.36")),
        ("127.0.0.1:5000/team/app", ("127.0.0.1:5000/team/app", "latest")),
        ("127.0.0.1:5000/app:2", ("127.0.0.1:5000/app", "2")),
        ("app@sha256:abcd", ("app", "<none>")),
    ],
)
def test_image_references_split_into_repository_and_tag(
    reference: str, expected: tuple[str, str]
) -> None:
    assert split_reference(reference) == expected


def test_a_one_off_description_from_a_service(tmp_path: Path) -> None:
    from orchestrator.description import ANNOTATION_ONEOFF
    from orchestrator.mountspec import parse_volume
    from orchestrator.oneoff import Overrides, describe, oneoff_name
    from orchestrator.stack import load_stack

    (tmp_path / "compose.yaml").write_text(
        """
name: shop
services:
  web:
    image: busybox
    command: ["httpd", "-f"]
    environment: {A: "1", B: "2"}
    ports: ["8080:80"]
    volumes: ["/srv:/data"]
"""
    )
    stack = load_stack([tmp_path / "compose.yaml"])
    name = oneoff_name("shop", "web")
    assert name.startswith("shop-web-run-") and len(name) == len("shop-web-run-") + 12
    plain = describe(stack, "web", Overrides(), name, {})
    assert plain.identity.oneoff and plain.identity.service == "web"
    assert plain.annotations()[ANNOTATION_ONEOFF] == "true"
    assert plain.command == ("httpd", "-f") and plain.publish == ()  # no service ports
    assert plain.networks[0].network == "shop_default"
    changed = describe(
        stack,
        "web",
        Overrides(
            command=("sh",),
            env=("B=3", "C=4"),
            mounts=(parse_volume("/tmp:/data"),),
            service_ports=True,
            auto_remove=True,
        ),
        name,
        {"default": "custom"},
    )
    assert changed.command == ("sh",) and changed.auto_remove
    assert changed.env == ("A=1", "B=3", "C=4")
    assert [(m.source, m.target) for m in changed.mounts] == [("/tmp", "/data")]
    assert [p.port for p in changed.publish] == [80]
    assert changed.networks[0].network == "custom"
    # a new entrypoint drops the service's command, as Compose does
    entry = describe(stack, "web", Overrides(entrypoint=("env",)), name, {})
    assert entry.entrypoint == ("env",) and entry.command is None
