"""Parsing run's -v, --mount, --tmpfs and --volumes-from; the OCI entries they become; a stack
service's mounts in the description; targets refused at config time."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.description import ContainerDescription, from_service
from orchestrator.errors import StackError, UserError
from orchestrator.mountspec import (
    Mount,
    VolumesFrom,
    from_flags,
    parse_mount,
    parse_tmpfs,
    parse_volume,
    parse_volumes_from,
    refused_target,
)
from orchestrator.ocimounts import add_to_spec, entry
from orchestrator.stack import load_stack


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/data", Mount("volume", "/data")),
        ("db:/var/lib/db", Mount("volume", "/var/lib/db", "db")),
        ("db:/var/lib/db/:ro", Mount("volume", "/var/lib/db", "db", read_only=True)),
        ("db:/d:rw,nocopy", Mount("volume", "/d", "db", nocopy=True)),
        ("/srv:/srv:ro,z", Mount("bind", "/srv", "/srv", read_only=True)),
        ("/srv:/srv:rslave", Mount("bind", "/srv", "/srv", propagation="rslave")),
        (
            "/srv:/srv:suid,dev,noexec",
            Mount("bind", "/srv", "/srv", suid=True, dev=True, exec=False),
        ),
        ("./conf:/etc/conf", Mount("bind", "/etc/conf", "/work/conf")),
        ("../x:/x", Mount("bind", "/x", "/x")),
    ],
)
def test_short_volume_syntax(text: str, expected: Mount) -> None:
    assert parse_volume(text, cwd="/work") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("db:/d:bogus", "-v db:/d:bogus: unknown option 'bogus'"),
        ("db:/d:ro,rw", "give ro or rw once"),
        ("db:/d:rslave", "propagation rslave applies to bind mounts only"),
        ("/srv:/srv:nocopy", "nocopy applies to volumes only"),
        ("a:b:c:d", "use [SOURCE:]TARGET[:OPTIONS]"),
        (":/d", "use [SOURCE:]TARGET[:OPTIONS]"),
        ("db:data", "must be an absolute path"),
        ("x:/", "cannot mount over the container's root"),
        ("x:/proc", "/proc belongs to the runtime"),
        ("x:/sys/fs/cgroup", "/sys belongs to the runtime"),
        ("x:/dev", "/dev belongs to the runtime"),
        ("x:/dev/pts/0", "the runtime makes it in /dev"),
        ("b@d:/d", "is not a valid volume name"),
        ("x:/a/../../proc/x", "/proc belongs to the runtime"),
    ],
)
def test_short_volume_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_volume(text, cwd="/work")


def test_allowed_targets_inside_the_runtime_trees() -> None:
    assert refused_target("/dev/shm") is None  # sized by the user, as in Docker
    assert refused_target("/dev/snd") is None
    assert refused_target("/proc/meminfo") is None  # lxcfs, as runc allows
    assert refused_target("/procx") is None


def test_long_mount_syntax() -> None:
    assert parse_mount("type=volume,source=db,target=/d,readonly") == Mount(
        "volume", "/d", "db", read_only=True
    )
    assert parse_mount("src=db,dst=/d,volume-nocopy=true,volume-label=a=b,volume-opt=o=x") == Mount(
        "volume", "/d", "db", nocopy=True, volume_labels=("a=b",), volume_options=("o=x",)
    )
    assert parse_mount("target=/anon") == Mount("volume", "/anon")
    assert parse_mount(
        "type=bind,src=/h,dst=/c,bind-propagation=rshared,bind-nonrecursive,ro=false",
        cwd="/",
    ) == Mount("bind", "/c", "/h", propagation="rshared", recursive=False)
    assert parse_mount("type=bind,src=./h,dst=/c,bind-create-host-path", cwd="/w") == Mount(
        "bind", "/c", "/w/h", create_host_path=True
    )
    assert parse_mount("type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=1770,exec") == Mount(
        "tmpfs", "/t", tmpfs_size=64 << 20, tmpfs_mode=0o1770, exec=True
    )
    assert parse_mount('type=bind,"src=/a,b",dst=/c') == Mount("bind", "/c", "/a,b")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type=npipe,dst=/d", "type 'npipe' is not one of volume, bind, tmpfs"),
        ("type=bind,dst=/d", "a bind mount needs a source"),
        ("type=bind,src=rel,dst=/d", "must be a path"),
        ("type=volume,src=v", "target is required"),
        ("type=tmpfs,src=x,dst=/t", "a tmpfs mount has no source"),
        ("type=tmpfs,dst=/t,tmpfs-size=big", "is not a size"),
        ("type=tmpfs,dst=/t,tmpfs-size=-1", "cannot be negative"),
        ("type=tmpfs,dst=/t,tmpfs-mode=8", "not an octal file mode"),
        ("type=volume,dst=/t,tmpfs-size=1m", "tmpfs-size does not go with type=volume"),
        ("type=bind,src=/a,dst=/t,volume-nocopy", "volume-nocopy does not go with type=bind"),
        ("type=bind,src=/a,dst=/t,bind-propagation=weird", "bind-propagation 'weird'"),
        ("dst=/t,readonly=maybe", "readonly=maybe: use true or false"),
        ("dst=/t,colour=blue", "unknown key 'colour'"),
        ("dst=/t,dst=/u", "dst given twice"),
        ("src=vv,dst=/t,volume-driver=nfs", "only the local driver"),
        ("src=vv,dst=/t,volume-subpath=a", "volume-subpath is not supported"),
        ("dst=/t,volume-label=a=b", "need a named volume"),
    ],
)
def test_long_mount_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_mount(text)


def test_tmpfs_flag() -> None:
    assert parse_tmpfs("/run") == Mount("tmpfs", "/run")
    assert parse_tmpfs("/run:size=1g,mode=755,ro,exec") == Mount(
        "tmpfs", "/run", read_only=True, tmpfs_size=1 << 30, tmpfs_mode=0o755, exec=True
    )
    for bad, message in (
        ("/t:size=", "tmpfs size .. is not a size"),
        ("/t:size=1x", "is not a size"),
        ("/t:mode=rwx", "not an octal file mode"),
        ("/t:uid=0", "unknown option 'uid=0'"),
        ("/proc/x", "/proc belongs to the runtime"),
    ):
        with pytest.raises(UserError, match=message):
            parse_tmpfs(bad)


def test_volumes_from_and_flags_together() -> None:
    assert parse_volumes_from("db") == VolumesFrom("db", None)
    assert parse_volumes_from("db:ro") == VolumesFrom("db", True)
    with pytest.raises(UserError, match="use CONTAINER"):
        parse_volumes_from("db:rx")
    fields = from_flags(["v1:/a"], ["type=tmpfs,dst=/b"], ["/c"], ["x:rw"])
    assert [m.target for m in fields["mounts"]] == ["/a", "/b", "/c"]
    assert fields["volumes_from"] == (VolumesFrom("x", False),)
    with pytest.raises(UserError, match="two mounts at /a"):
        from_flags(["v1:/a"], [], ["/a/"], [])


def test_oci_entries_and_their_order() -> None:
    volume = Mount("volume", "/data", "db", host_path="/state/volumes/db/_data")
    assert entry(volume) == {
        "destination": "/data",
        "type": "bind",
        "source": "/state/volumes/db/_data",
        "options": ["rbind", "rprivate", "rw", "nosuid", "nodev", "exec"],
    }
    bind = Mount("bind", "/c", "/h", True, propagation="rslave", recursive=False, suid=True)
    assert entry(bind)["options"] == ["bind", "rslave", "ro", "suid", "nodev", "exec"]
    tmpfs = Mount("tmpfs", "/t", tmpfs_size=1024, tmpfs_mode=0o700)
    assert entry(tmpfs) == {
        "destination": "/t",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["rw", "nosuid", "nodev", "noexec", "size=1024", "mode=700"],
    }
    with pytest.raises(ValueError, match="not been resolved"):
        entry(Mount("volume", "/x", "db"))
    spec = {
        "mounts": [
            {"destination": "/proc", "type": "proc"},
            {"destination": "/dev", "type": "tmpfs"},
            {"destination": "/dev/shm", "type": "tmpfs"},
            {"destination": "/etc/hosts", "type": "bind", "source": "/c/hosts"},
        ]
    }
    add_to_spec(
        spec,
        [
            Mount("volume", "/data/cache", "c", host_path="/v/c"),
            Mount("tmpfs", "/dev/shm", tmpfs_size=1 << 20),
            Mount("volume", "/data", "d", host_path="/v/d"),
            Mount("bind", "/etc", "/host/etc"),
        ],
    )
    assert [(m["destination"], m.get("source")) for m in spec["mounts"]] == [
        ("/proc", None),
        ("/dev", None),
        ("/dev/shm", "tmpfs"),  # the user's replaces the default, in place
        ("/data", "/v/d"),
        ("/etc", "/host/etc"),
        ("/etc/hosts", "/c/hosts"),
        ("/data/cache", "/v/c"),
    ]


STACK = """
name: shop
services:
  db:
    image: busybox
    volumes:
      - data:/var/lib/db
      - ./conf:/etc/conf:ro
      - /cache
      - type: bind
        source: ./logs
        target: /logs
        bind: {create_host_path: true, propagation: rslave}
      - type: volume
        source: data
        target: /backup
        read_only: true
        volume: {nocopy: true}
    tmpfs: ["/run:size=1m"]
  web:
    image: busybox
    read_only: true
    volumes_from: ["db:ro", "container:legacy"]
    volumes:
      - type: tmpfs
        target: /tmp
        tmpfs: {size: 2m, mode: "1770"}
volumes:
  data: {name: real-data}
"""


def test_a_services_mounts_become_the_descriptions(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(STACK)
    stack = load_stack([tmp_path / "compose.yaml"])
    db = from_service(
        stack.name, stack.services["db"], 1, "shop-db-1", volume_names={"data": "real-data"}
    )
    labels = ("org.orchestrator.project=shop", "org.orchestrator.volume=data")
    assert db.mounts == (
        Mount("volume", "/var/lib/db", "real-data", volume_labels=labels),
        Mount("bind", "/etc/conf", str(tmp_path / "conf"), True, create_host_path=True),
        Mount("volume", "/cache"),
        Mount("bind", "/logs", str(tmp_path / "logs"), propagation="rslave", create_host_path=True),
        Mount("volume", "/backup", "real-data", True, nocopy=True, volume_labels=labels),
        Mount("tmpfs", "/run", tmpfs_size=1 << 20),
    )
    web = from_service(stack.name, stack.services["web"], 1, "shop-web-1")
    assert web.read_only
    assert web.mounts == (Mount("tmpfs", "/tmp", tmpfs_size=2 << 20, tmpfs_mode=0o1770),)
    assert web.volumes_from == (VolumesFrom("shop-db-1", True), VolumesFrom("legacy", None))
    again = ContainerDescription.from_record(db.to_record())  # container.json keeps them
    assert again.mounts == db.mounts and again.volumes_from == db.volumes_from


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        ('"/cache:/proc/self"', "/proc belongs to the runtime"),
        ('"data:/"', "cannot mount over the container's root"),
        ("{type: tmpfs, target: /dev/pts}", "the runtime makes it in /dev"),
    ],
)
def test_runtime_owned_targets_are_refused_at_config_time(
    tmp_path: Path, volume: str, message: str
) -> None:
    (tmp_path / "compose.yaml").write_text(
        f"services:\n  s:\n    image: busybox\n    volumes: [{volume}]\nvolumes:\n  data: {{}}\n"
    )
    with pytest.raises(StackError, match=message) as info:
        load_stack([tmp_path / "compose.yaml"])
    assert "services.s.volumes" in str(info.value)


def test_tmpfs_key_targets_are_checked_too(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  s:\n    image: busybox\n    tmpfs: /sys/x\n"
    )
    with pytest.raises(StackError, match="/sys belongs to the runtime"):
        load_stack([tmp_path / "compose.yaml"])
