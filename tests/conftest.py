"""Shared fixtures: a private state root per test, and a session-wide leak check.

Every test that touches the kernel must leave nothing behind: no mount whose source or target
names orchestrator (or lies under a test's state root), no host interface named ``orc*``, no cgroup
under an ``orchestrator`` parent, no process of ours, no nftables rule of its state root. The
check runs around every test that uses ``state_root`` and fails the test that leaked.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CGROUP_ROOT = Path("/sys/fs/cgroup")


def is_root() -> bool:
    return os.geteuid() == 0


def cgroup_version() -> int:
    from runtime.cgroups import detect_version

    return detect_version(str(CGROUP_ROOT))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_root = pytest.mark.skip(reason="needs root and the real kernel")
    skip_v1 = pytest.mark.skip(
        reason="needs cgroup v1 hierarchies (v1 file names, or the pool of pre-made containers)"
    )
    on_v1 = cgroup_version() == 1
    for item in items:
        if "root" in item.keywords and not is_root():
            item.add_marker(skip_root)
        if "cgroup_v1" in item.keywords and not on_v1:
            item.add_marker(skip_v1)


def _mounts(marker: str) -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            target = fields[4]
            source = fields[fields.index("-") + 2] if "-" in fields else ""
            if (
                "orchestrator" in target
                or "orchestrator" in source
                or (marker and marker in target)
            ):
                found.append(target)
    return found


def _interfaces() -> list[str]:
    try:
        out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    names = [line.split(": ")[1].split("@")[0] for line in out.splitlines() if ": " in line]
    if os.environ.get("ORCHESTRATOR_TESTS_SHARED_HOST"):
        # interfaces are host-wide and their names do not say which state root made them:
        # with runs side by side, only CI's (unshared) check can judge them
        return []
    return [n for n in names if n.startswith("orc")]


_TEST_PARENT = re.compile(r"t\d+-\d+")
_test_parents = itertools.count()


def _cgroups(own_parent: str = "") -> list[str]:
    """Cgroups below every ``orchestrator`` parent, except other tests' parents: each test's
    containers live in ``orchestrator/t<pytest pid>-<n>`` ($ORCHESTRATOR_CGROUP_PARENT), so
    that test runs side by side do not see each other's. With $ORCHESTRATOR_TESTS_SHARED_HOST
    set (a developer's machine where benchmarks or manual runs use other parents at the same
    time), only the test's own parent is looked at, and host interfaces are not; CI checks
    everything."""
    found = []
    if not CGROUP_ROOT.is_dir():
        return found
    own = own_parent.removeprefix("orchestrator/")
    only_own = bool(os.environ.get("ORCHESTRATOR_TESTS_SHARED_HOST"))
    for controller in CGROUP_ROOT.iterdir():
        parent = controller / "orchestrator"
        try:
            for path in parent.rglob("*"):
                first = path.relative_to(parent).parts[0]
                if (_TEST_PARENT.fullmatch(first) or only_own) and first != own:
                    continue
                if path.is_dir() and path.relative_to(parent).parts != (own,):
                    found.append(str(path))
        except OSError:
            pass  # removed while we looked (another test's container ending)
    return found


def _processes(marker: str) -> list[str]:
    """Live processes of this test: started with its state root on their command line (the fork
    server, its monitors and pre-made containers), or monitors forked by this very process."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            if fields[0] == "Z":
                continue  # exited, holding nothing; its parent has yet to reap it
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ours = (marker and marker in cmdline) or (comm.startswith("orc-") and int(fields[1]) == me)
        if ours:
            found.append(f"{entry} {comm} {cmdline[:80]}")
    return found


def _nft_rules(marker: str) -> list[str]:
    """Rules of this state root in the table ``inet orchestrator`` (runtime.net.nft)."""
    if not marker:
        return []
    from runtime.net import nft

    try:
        with nft.Nft() as tables:
            return [str(r.get("comment")) for r in tables.tagged(f"orc {nft.root_tag(marker)} ")]
    except Exception:
        return []  # nftables not installed: nothing of ours can be there


def leftovers(marker: str = "", cgroup_parent: str = "") -> dict[str, list[str]]:
    found = {
        "mounts": _mounts(marker),
        "interfaces": _interfaces(),
        "cgroups": _cgroups(cgroup_parent),
        "processes": _processes(marker),
        "nft rules": _nft_rules(marker),
    }
    return {k: v for k, v in found.items() if v}


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox root filesystem tarball, made once per session by scripts/make-busybox-rootfs."""
    from tests.image_fixtures import busybox_rootfs

    return busybox_rootfs(tmp_path_factory.mktemp("busybox") / "busybox.tar")


@pytest.fixture
def orc(state_root: Path, busybox_tar: Path) -> Iterator[Any]:
    """The orchestrator CLI on this test's state root, with busybox imported."""
    from tests.cli import make_orc

    run = make_orc(state_root)
    run("image", "import", str(busybox_tar), "busybox")
    yield run
    # remove what the test left running, so the leak check judges the code, not the test
    listing = run("ps", "-a", "-q", check=False).stdout.split()
    if listing:
        run("rm", "-f", *listing, check=False)
    if (state_root / "networks").exists():
        run("network", "prune", check=False)


@pytest.fixture
def state_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ORCHESTRATOR_ROOT; the test fails if it leaves anything on the host."""
    root = tmp_path / "state"
    root.mkdir()
    cgroup_parent = f"orchestrator/t{os.getpid()}-{next(_test_parents)}"
    monkeypatch.setenv("ORCHESTRATOR_ROOT", str(root))
    monkeypatch.setenv("ORCHESTRATOR_CGROUP_PARENT", cgroup_parent)
    before = leftovers(str(root), cgroup_parent)
    yield root
    _stop_supervisor(root)
    _stop_fork_servers(root)
    after = leftovers(str(root), cgroup_parent)
    leaked = {k: sorted(set(v) - set(before.get(k, []))) for k, v in after.items()}
    leaked = {k: v for k, v in leaked.items() if v}
    if "interfaces" in leaked:
        leaked = _settle_interfaces(leaked)
    if leaked:
        _cleanup(root, cgroup_parent)
    _remove_parent(cgroup_parent)
    if leaked:
        pytest.fail(f"test left things on the host: {leaked}")


def _settle_interfaces(leaked: dict[str, list[str]]) -> dict[str, list[str]]:
    """The kernel tears a dead network namespace down in the background, and its veths with
    it: give it a moment before calling an interface leaked."""
    import time

    deadline = time.monotonic() + 2
    while leaked.get("interfaces") and time.monotonic() < deadline:
        time.sleep(0.05)
        still = set(_interfaces())
        leaked["interfaces"] = [name for name in leaked["interfaces"] if name in still]
    return {k: v for k, v in leaked.items() if v}


def current_cgroup_parent() -> str:
    """This test's cgroup parent (set by ``state_root``)."""
    from runtime.cgroups import default_parent

    return default_parent()


def _remove_parent(parent: str) -> None:
    for controller in CGROUP_ROOT.iterdir():
        path = controller / parent
        try:
            path.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            pass  # not empty: the leak check has said so


def _stop_supervisor(root: Path) -> None:
    """A supervisor a test's command started (a kept container's, say) ends with the test, as
    the fork servers do; what it keeps running was removed by the test or its fixtures."""
    if not (root / "supervisor.sock").exists():
        return
    import time

    from orchestrator.supervisor import httpclient as http
    from runtime.filelock import open_lock, try_lock

    try:
        pid = int((root / "supervisor.lock").read_text().strip() or 0)
        http.call(root / "supervisor.sock", "POST", "/v1/shutdown", timeout=10)
    except (http.Unreachable, OSError, ValueError):
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # its lock freed, then the process gone
        fd = open_lock(root / "supervisor.lock")
        try:
            free = try_lock(fd)
        finally:
            os.close(fd)
        if free and not (pid and process_alive(pid)):
            return
        time.sleep(0.02)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` lives (a zombie has ended: only its parent's reaping is missing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _stop_fork_servers(root: Path) -> None:
    from runtime.forkserver import SOCKET_NAME, stop

    for sock in root.glob(f"**/{SOCKET_NAME}"):
        stop(sock.parent)


def _cleanup(root: Path, cgroup_parent: str) -> None:
    """Best effort, so one leaking test does not fail every later one: kill the monitors and
    containers recorded under this test's root (never another test's), remove their cgroups."""
    import json
    import signal

    for state_file in root.glob("**/state.json"):
        try:
            record = json.loads(state_file.read_text())
        except (OSError, ValueError):
            continue
        for key in ("pid", "monitor_pid"):
            pid = record.get(key)
            if isinstance(pid, int) and pid > 1:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        name = record.get("cgroup") or record.get("id")
        if name:
            for controller in CGROUP_ROOT.iterdir():
                path = controller / cgroup_parent / str(name)
                if path.is_dir():
                    try:
                        path.rmdir()
                    except OSError:
                        pass
    with open("/proc/self/mountinfo") as f:
        mountinfo = f.read().splitlines()
    for line in reversed(mountinfo):
        target = line.split()[4]
        if target.startswith(str(root)):
            subprocess.run(["umount", "-l", target], capture_output=True)
