"""Volumes, bind mounts and tmpfs through the CLI, on real containers: run's -v, --mount,
--tmpfs, --read-only and --volumes-from, the volume commands, attach and detach."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.cli import Orc

pytestmark = pytest.mark.root


def _host_mounts(under: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(under))]


def _volumes(orc: Orc) -> list[str]:
    return orc("volume", "ls", "-q").stdout.split()


def _run(orc: Orc, *args: str) -> str:
    return orc("run", "--rm", *args).stdout


@pytest.fixture
def seeded(orc: Orc, tmp_path: Path) -> str:
    """An image with content owned by 1234:5678 at /seeded, a VOLUME there, and a file at
    /etc/motd (a file where a folder would be needed)."""
    context = tmp_path / "ctx"
    (context / "seed" / "sub").mkdir(parents=True)
    (context / "seed" / "file").write_text("seeded\n")
    os.chmod(context / "seed" / "file", 0o640)
    (context / "seed" / "sub" / "x").write_text("x")
    (context / "motd").write_text("hi\n")
    (context / "Dockerfile").write_text(
        "FROM busybox\nCOPY --chown=1234:5678 seed/ /seeded/\nCOPY motd /etc/motd\nVOLUME /seeded\n"
    )
    orc("build", "-t", "seeded", str(context))
    return "seeded"


def test_named_volume_data_outlives_containers_and_is_in_use_while_named(orc: Orc) -> None:
    out = _run(
        orc,
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f; grep /data /proc/mounts",
    )
    assert "nosuid" in out and "nodev" in out  # volumes are nosuid,nodev unless asked otherwise
    assert _volumes(orc) == ["data"]  # made on first use, kept after --rm
    orc("create", "--name", "user1", "-v", "data:/data:ro", "busybox", "cat", "/data/f")
    assert orc("start", "-a", "user1").stdout == "kept\n"
    done = orc("volume", "rm", "data", check=False)
    assert done.returncode == 1 and "in use by user1" in done.stderr
    orc("rm", "user1")  # recreated: the data is still there
    orc("create", "--name", "user2", "-v", "data:/data", "busybox", "cat", "/data/f")
    assert orc("start", "-a", "user2").stdout == "kept\n"
    orc("volume", "rm", "-f", "data")  # forced: user2 now says what is missing
    done = orc("start", "user2", check=False)
    assert done.returncode == 1 and "volume data" in done.stderr and "removed" in done.stderr
    orc("rm", "user2")
    assert _volumes(orc) == []


def test_first_use_copies_the_image_content_with_owners_and_modes(orc: Orc, seeded: str) -> None:
    script = "stat -c '%u:%g %a %n' /seeded /seeded/file /seeded/sub/x; cat /seeded/file"
    out = _run(orc, "-v", "seedvol:/seeded", seeded, "sh", "-c", script)
    assert out.splitlines() == [
        "1234:5678 755 /seeded",
        "1234:5678 640 /seeded/file",
        "1234:5678 644 /seeded/sub/x",
        "seeded",
    ]
    data = orc("volume", "inspect", "seedvol").stdout
    mountpoint = Path(json.loads(data)[0]["Mountpoint"])
    assert (mountpoint.stat().st_uid, mountpoint.stat().st_gid) == (1234, 5678)
    # a volume is filled once: what a container changed stays
    _run(orc, "-v", "seedvol:/seeded", seeded, "rm", "/seeded/file")
    assert _run(orc, "-v", "seedvol:/seeded", seeded, "ls", "/seeded") == "sub\n"
    # volume-nocopy: an empty volume stays empty
    out = _run(
        orc, "--mount", "source=bare,target=/seeded,volume-nocopy", seeded, "ls", "-A", "/seeded"
    )
    assert out == ""


def test_anonymous_volumes_go_with_rm_v_and_run_rm(orc: Orc, seeded: str) -> None:
    # the image's VOLUME and -v /path: two anonymous volumes, the first one filled
    orc(
        "run",
        "--name",
        "anon",
        "-v",
        "/scratch",
        seeded,
        "sh",
        "-c",
        "cat /seeded/file; touch /scratch/x",
    )
    anonymous = _volumes(orc)
    assert len(anonymous) == 2 and all(len(n) == 64 for n in anonymous)
    orc("rm", "anon")  # without -v they stay, dangling; prune removes them
    assert sorted(orc("volume", "ls", "-q", "--filter", "dangling=true").stdout.split()) == sorted(
        anonymous
    )
    orc("volume", "create", "named")
    assert sorted(orc("volume", "prune").stdout.split()) == sorted(anonymous)
    assert _volumes(orc) == ["named"]
    orc("run", "--name", "anon2", "-v", "/scratch", "busybox", "true")
    assert len(_volumes(orc)) == 2
    orc("rm", "-v", "anon2")
    assert _volumes(orc) == ["named"]
    _run(orc, "-v", "/scratch", seeded, "true")  # --rm: its anonymous volumes go with it
    assert _volumes(orc) == ["named"]
    assert orc("volume", "prune", "-a").stdout.split() == ["named"]


def test_bind_mounts(orc: Orc, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "in").write_text("from the host\n")
    single = tmp_path / "single.conf"
    single.write_text("one file\n")
    script = (
        "cat /h/in /etc/single.conf; echo out > /h/out; touch /ro/x 2>/dev/null || echo ro-refused; "
        "grep ' /h ' /proc/mounts"
    )
    out = _run(
        orc,
        "-v",
        f"{host}:/h:rw,z",
        "-v",
        f"{single}:/etc/single.conf:ro",
        "--mount",
        f"type=bind,src={host},dst=/ro,readonly,bind-propagation=rslave",
        "busybox",
        "sh",
        "-c",
        script,
    )
    lines = out.splitlines()
    assert lines[:3] == ["from the host", "one file", "ro-refused"]
    assert "nosuid" in lines[3] and "nodev" in lines[3]
    assert (host / "out").read_text() == "out\n"
    # relative to the current folder, created on request
    made = tmp_path / "made" / "deep"
    _run(
        orc,
        "--mount",
        f"type=bind,src={made},dst=/m,bind-create-host-path",
        "busybox",
        "touch",
        "/m/f",
    )
    assert (made / "f").exists()
    assert _host_mounts(tmp_path) == []


def test_tmpfs_and_read_only_root(orc: Orc) -> None:
    script = (
        "touch /root/x 2>/dev/null || echo root-ro; echo v > /vol/f && echo vol-rw; "
        "echo t > /fast/f && echo tmpfs-rw; echo t > /big/f && echo mount-tmpfs-rw; "
        "grep -E ' /(fast|big) ' /proc/mounts | cut -d' ' -f2,4"
    )
    out = _run(
        orc,
        "--read-only",
        "-v",
        "rwvol:/vol",
        "--tmpfs",
        "/fast:size=1m,mode=700",
        "--mount",
        "type=tmpfs,dst=/big,tmpfs-size=2m,tmpfs-mode=1770",
        "busybox",
        "sh",
        "-c",
        script,
    )
    lines = out.splitlines()
    assert lines[:4] == ["root-ro", "vol-rw", "tmpfs-rw", "mount-tmpfs-rw"]
    options = dict(line.split(" ", 1) for line in lines[4:])
    assert "size=1024k" in options["/fast"] and "mode=700" in options["/fast"]
    assert "noexec" in options["/fast"] and "nosuid" in options["/fast"]
    assert "size=2048k" in options["/big"] and "mode=1770" in options["/big"]


def test_volumes_from(orc: Orc, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    orc(
        "create",
        "--name",
        "store",
        "-v",
        "shared:/shared",
        "-v",
        f"{host}:/h",
        "--tmpfs",
        "/t",
        "busybox",
        "true",
    )
    out = _run(
        orc,
        "--volumes-from",
        "store",
        "busybox",
        "sh",
        "-c",
        "echo w > /shared/f && echo w > /h/f && echo wrote; test -d /t || echo no-tmpfs",
    )
    assert out == "wrote\nno-tmpfs\n"  # its volumes and binds, not its tmpfs
    out = _run(
        orc,
        "--volumes-from",
        "store:ro",
        "busybox",
        "sh",
        "-c",
        "cat /shared/f; touch /shared/g || true",
    )
    assert out == "w\n"
    assert (host / "f").read_text() == "w\n"
    done = orc("run", "--rm", "--volumes-from", "nobody-here", "busybox", "true", check=False)
    assert done.returncode == 125 and "--volumes-from nobody-here: no such container" in done.stderr


def test_attach_and_detach_on_a_running_container(
    orc: Orc, state_root: Path, tmp_path: Path
) -> None:
    orc("volume", "create", "hot")
    mountpoint = Path(json.loads(orc("volume", "inspect", "hot").stdout)[0]["Mountpoint"])
    (mountpoint / "file").write_text("hot data\n")
    script = (
        "until [ -e /hot/file ]; do sleep 0.02; done; cat /hot/file; "
        "until [ ! -e /hot/file ]; do sleep 0.02; done; echo gone; sleep 30"
    )
    orc("run", "-d", "--name", "live", "busybox", "sh", "-c", script)
    orc("volume", "attach", "--ro", "live", "hot:/hot")
    record = json.loads(orc("inspect", "live").stdout)[0]
    assert [(m["source"], m["target"], m["read_only"]) for m in record["attached"]] == [
        ("hot", "/hot", True)
    ]
    done = orc("volume", "rm", "hot", check=False)
    assert done.returncode == 1 and "in use by live" in done.stderr
    assert _host_mounts(state_root) == []  # inside the container only
    done = orc("exec", "live", "touch", "/hot/x", check=False)
    assert done.returncode != 0 and "Read-only" in done.stderr
    orc("volume", "detach", "live", "/hot")
    deadline = time.monotonic() + 10
    while orc("logs", "live").stdout != "hot data\ngone\n":
        assert time.monotonic() < deadline, orc("logs", "live").stdout
        time.sleep(0.05)
    assert json.loads(orc("inspect", "live").stdout)[0]["attached"] == []
    # attached again, it is there after a restart too; a host folder works the same way
    host = tmp_path / "host"
    host.mkdir()
    (host / "h").write_text("h\n")
    orc("volume", "attach", "live", f"{host}:/from-host")
    orc("kill", "live")
    orc("wait", "live")
    orc("start", "live")
    assert orc("exec", "live", "cat", "/from-host/h").stdout == "h\n"
    done = orc("volume", "attach", "live", "missing:/m", check=False)
    assert done.returncode == 1 and "no such volume: missing" in done.stderr
    done = orc("volume", "attach", "live", f"{host}:/from-host", check=False)
    assert done.returncode == 1 and "already has a mount at /from-host" in done.stderr
    orc("kill", "live")
    orc("wait", "live")
    orc("volume", "detach", "live", "/from-host")  # stopped: gone from its next start
    orc("start", "live")
    done = orc("exec", "live", "ls", "/from-host/h", check=False)
    assert done.returncode != 0
    orc("rm", "-f", "live")
    assert _host_mounts(tmp_path) == []


def test_a_symlink_another_container_planted_in_a_shared_volume_stays_inside(
    orc: Orc, tmp_path: Path
) -> None:
    """Container A makes symlinks in a shared volume: /v/escape to /tmp (a host folder too),
    /v/up to ``..``s, /v/dangling to a host folder the container lacks. Container B mounts
    through them: the mounts land inside B's root (or are refused), the host's folders stay
    untouched, and nothing is mounted on the host."""
    victim = tmp_path / "victim"
    victim.mkdir()
    unique = f"orc-victim-{os.getpid()}-{time.monotonic_ns()}"
    links = f"ln -s /tmp /v/escape; ln -s ../../../../.. /v/up; ln -s {victim} /v/dangling"
    _run(orc, "-v", "shared:/v", "busybox", "sh", "-c", links)
    script = f"touch /tmp/{unique}/in-tmpfs /etc/o/in-volume && grep -c {unique} /proc/mounts"
    out = _run(
        orc,
        *("-v", "shared:/v", "--tmpfs", f"/v/escape/{unique}", "-v", "other:/v/up/etc/o"),
        *("busybox", "sh", "-c", script),
    )
    assert out == "1\n"
    assert not os.path.lexists(f"/tmp/{unique}")
    done = orc(
        "run", "--rm", "-v", "shared:/v", "--tmpfs", "/v/dangling/t", "busybox", "true", check=False
    )
    assert done.returncode == 125 and "/v/dangling" in done.stderr
    assert list(victim.iterdir()) == []
    assert _host_mounts(tmp_path) == [] and _host_mounts(Path("/tmp") / unique) == []


def test_bad_input_is_one_clear_error_and_nothing_is_made(orc: Orc, seeded: str) -> None:
    cases = [
        (["-v", "data:/data:bogus"], "-v data:/data:bogus: unknown option 'bogus'"),
        (["-v", "data:relative"], "must be an absolute path"),
        (["-v", "x:/proc/sys"], "/proc belongs to the runtime"),
        (["--tmpfs", "/dev"], "/dev belongs to the runtime"),
        (["-v", "x:/"], "cannot mount over the container's root"),
        (["--tmpfs", "/t:mode=999"], "not an octal file mode"),
        (["--tmpfs", "/t:size=12q"], "is not a size"),
        (["--mount", "type=tmpfs,dst=/t,tmpfs-size=-1m"], "cannot be negative"),
        (["--mount", "type=bind,dst=/t"], "a bind mount needs a source"),
        (
            ["--mount", "type=volume,src=v,dst=/t,tmpfs-size=1m"],
            "tmpfs-size does not go with type=volume",
        ),
        (["-v", "/no/such/dir:/d"], "/no/such/dir does not exist"),
        (["-v", "fresh:/etc/motd"], "has a file there, where a folder is needed"),
        (["-v", "aa:/same", "--tmpfs", "/same"], "two mounts at /same"),
    ]
    for flags, message in cases:
        done = orc("run", "--rm", *flags, seeded, "true", check=False)
        assert done.returncode == 125, flags  # Docker's status for run's own errors
        assert message in done.stderr, (flags, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert orc("ps", "-a", "-q").stdout == ""
    assert _volumes(orc) == []  # "fresh" (and the image's anonymous volume) were not left
    for args, message in (
        (["volume", "rm", "nope"], "no such volume: nope"),
        (["volume", "inspect", "nope"], "no such volume: nope"),
        (["volume", "create", "-o", "type=tmpfs", "t"], "only type=none,o=bind,device=DIR"),
        (["volume", "create", "bad/name"], "not a valid volume name"),
    ):
        done = orc(*args, check=False)
        assert done.returncode == 1 and message in done.stderr, (args, done.stderr)


def test_volume_create_options_labels_and_listing(orc: Orc, tmp_path: Path) -> None:
    device = tmp_path / "device"
    device.mkdir()
    orc(
        "volume",
        "create",
        "-l",
        "tier=db",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        f"device={device}",
        "dev",
    )
    orc("volume", "create", "plain")
    info = json.loads(orc("volume", "inspect", "dev").stdout)[0]
    assert info["Mountpoint"] == str(device) and info["Labels"] == {"tier": "db"}
    _run(orc, "-v", "dev:/d", "busybox", "touch", "/d/made")
    assert (device / "made").exists()
    assert orc("volume", "ls", "-q", "-f", "label=tier=db").stdout.split() == ["dev"]
    assert [v["Name"] for v in json.loads(orc("volume", "ls", "--format", "json").stdout)] == [
        "dev",
        "plain",
    ]
    orc("volume", "rm", "dev")
    assert (device / "made").exists()  # the folder of an o=bind volume is the user's


def test_volume_data_survives_a_killed_monitor(orc: Orc, state_root: Path) -> None:
    import signal

    cid = orc(
        "run",
        "-d",
        "--name",
        "cc",
        "-v",
        "keep:/d",
        "busybox",
        "sh",
        "-c",
        "echo x > /d/f; sleep 30",
    ).stdout.strip()
    state = json.loads((state_root / "runtime" / cid / "state.json").read_text())
    deadline = time.monotonic() + 10
    data = Path(json.loads(orc("volume", "inspect", "keep").stdout)[0]["Mountpoint"])
    while not (data / "f").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(state["monitor_pid"], signal.SIGKILL)  # the monitor crashes, then the container
    os.kill(state["pid"], signal.SIGKILL)
    orc("rm", "-f", "-v", "cc")  # -v: anonymous volumes only, never a named one
    assert (data / "f").read_text() == "x\n"
    assert _run(orc, "-v", "keep:/d", "busybox", "cat", "/d/f") == "x\n"


STACK = """
name: shop
services:
  db:
    image: busybox
    network_mode: none
    command: ["sh", "-c", "echo from-db > /var/lib/db/f; cat /ext/e"]
    volumes: [data:/var/lib/db, "ext:/ext:ro"]
  web:
    image: busybox
    network_mode: none
    command: ["sh", "-c", "cat /var/lib/db/f; touch /var/lib/db/g 2>/dev/null || echo ro"]
    read_only: true
    volumes_from: ["db:ro"]
volumes:
  data: {labels: {tier: db}}
  ext: {external: true, name: outside}
"""


def test_the_supervisors_pieces_for_a_stack(orc: Orc, state_root: Path, tmp_path: Path) -> None:
    """What ``up`` will call: the stack's volumes made, services described, containers made
    and started through Containers (volumes_from naming the other service's container)."""
    from orchestrator import stackvolumes
    from orchestrator.containers import Containers
    from orchestrator.description import from_service
    from orchestrator.errors import NotFoundError
    from orchestrator.stack import load_stack

    (tmp_path / "compose.yaml").write_text(STACK)
    stack = load_stack([tmp_path / "compose.yaml"])
    with pytest.raises(NotFoundError, match="external volume outside does not exist"):
        stackvolumes.ensure(state_root, stack)
    assert _volumes(orc) == []  # nothing made when one is missing
    orc("volume", "create", "outside")
    Path(json.loads(orc("volume", "inspect", "outside").stdout)[0]["Mountpoint"], "e").write_text(
        "external\n"
    )
    assert stackvolumes.ensure(state_root, stack) == ["shop_data"]
    assert stackvolumes.ensure(state_root, stack) == []  # idempotent
    names = stackvolumes.volume_names(stack)
    containers = Containers(state_root)
    outputs = []
    for service in ("db", "web"):
        description = from_service(
            stack.name, stack.services[service], 1, f"shop-{service}-1", volume_names=names
        )
        container = containers.create(description)
        containers.start(container)
        containers.wait(container)
        outputs.append(orc("logs", container.name).stdout)
    assert outputs == ["external\n", "from-db\nro\n"]
    labels = json.loads(orc("volume", "inspect", "shop_data").stdout)[0]["Labels"]
    assert labels == {
        "tier": "db",
        "org.orchestrator.project": "shop",
        "org.orchestrator.volume": "data",
    }
    assert stackvolumes.remove(state_root, stack) == []  # in use
    for service in ("web", "db"):
        containers.remove(containers.get(f"shop-{service}-1"))
    assert stackvolumes.remove(state_root, stack) == ["shop_data"]
    assert _volumes(orc) == ["outside"]  # external: never removed here
