"""Pure logic of the runtime: config validation, the state machine, logs, users, capabilities."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime import logs, state, users
from runtime.errors import BundleError, Error, SetupError, StateError
from runtime.linux import caps
from runtime.spec import parse_config, parse_signal
from runtime.specgen import default_spec


def config(tmp_path: Path, **changes: Any) -> Any:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    spec = default_spec(["sh"])
    for key, value in changes.items():
        target = spec
        *path, last = key.split("__")
        for part in path:
            target = target.setdefault(part, {})
        target[last] = value
    return parse_config(json.loads(json.dumps(spec)), tmp_path)


def test_default_spec_parses_to_docker_defaults(tmp_path: Path) -> None:
    c = config(tmp_path)
    assert c.args == ("sh",) and c.cwd == "/" and c.uid == 0
    assert caps.names_of(c.capabilities.bounding) == sorted(
        caps.DOCKER_DEFAULT, key=caps.NUMBERS.__getitem__
    )
    assert c.capabilities.inheritable == 0 and c.capabilities.ambient == 0
    assert "/proc/kcore" in c.masked_paths and "/proc/sys" in c.readonly_paths
    assert {m.destination for m in c.mounts} >= {"/proc", "/dev", "/dev/pts", "/sys"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"process__args": []}, "process.args: must be a non-empty list"),
        ({"process__cwd": "relative"}, "process.cwd: 'relative' must be an absolute path"),
        ({"process__env": ["NOEQUALS"]}, "process.env: 'NOEQUALS' is not NAME=VALUE"),
        ({"process__user": {"uid": -1}}, "process.user.uid: must be between 0 and"),
        ({"process__user": {"uid": True}}, "process.user.uid: must be an integer"),
        ({"process__capabilities": {"bounding": ["CAP_NOPE"]}}, "unknown capability 'CAP_NOPE'"),
        ({"process__rlimits": [{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}]}, "unknown rlimit"),
        (
            {"process__rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 2}]},
            "soft: is larger than hard",
        ),
        ({"process__oomScoreAdj": 5000}, "oomScoreAdj: must be between -1000 and 1000"),
        ({"hostname": "bad host\nname"}, "is not a valid hostname"),
        (
            {"linux__namespaces": [{"type": "pid"}], "root__readonly": True},
            "a read-only root needs a mount namespace",
        ),
        ({"linux__namespaces": [{"type": "mount"}, {"type": "mount"}]}, "listed twice"),
        ({"linux__namespaces": [{"type": "mount"}, {"type": "bogus"}]}, "unknown namespace type"),
        (
            {"linux__namespaces": [{"type": "mount"}, {"type": "user"}]},
            "needs uidMappings and gidMappings",
        ),
        ({"linux__rootfsPropagation": "sideways"}, "unknown propagation"),
        ({"linux__sysctl": {"../../etc": "1"}}, "invalid entry"),
        (
            {"linux__sysctl": {"vm.swappiness": "1"}},
            "change the host's value (it is not namespaced)",
        ),
        (
            {
                "linux__sysctl": {"net.ipv4.ip_forward": "1"},
                "linux__namespaces": [{"type": "mount"}],
            },
            "without a network namespace",
        ),
        ({"hooks": {"prestart": [{"path": "relative"}]}}, "hooks.prestart[0].path"),
        ({"hooks": {"poststop": [{"path": "/x", "timeout": 0}]}}, "hooks.poststop[0].timeout"),
        ({"mounts": [{"destination": "relative", "type": "tmpfs"}]}, "must be an absolute path"),
        (
            {"mounts": [{"destination": "/x", "type": "tmpfs", "options": ["idmap"]}]},
            "is not supported",
        ),
        ({"annotations": {"org.orchestrator.rootfs.lowerdirs": "not json"}}, "must be a JSON list"),
    ],
)
def test_invalid_configs_name_the_field(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(BundleError) as info:
        config(tmp_path, **changes)
    assert message in str(info.value)
    assert str(info.value).startswith("config.json: ")


def test_namespaces_not_listed_are_the_hosts(tmp_path: Path) -> None:
    c = config(tmp_path, linux__namespaces=[{"type": "pid"}])
    assert c.namespaces == {"pid": None}
    assert c.warnings == (  # nothing is mounted: the host's mount namespace
        "mounts, linux.maskedPaths, linux.readonlyPaths ignored: without a mount namespace"
        " the container shares the host's mounts (its root is root.path, by chroot)",
    )


def test_security_labels_warn_where_no_module_applies_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runtime import spec

    monkeypatch.setattr(spec, "security_module_active", lambda module: False)
    c = config(tmp_path, process__apparmorProfile="docker-default", linux__mountLabel="x")
    assert c.warnings == (
        "process.apparmorProfile ignored: AppArmor is not enabled on this host",
        "linux.mountLabel ignored: SELinux is not enabled on this host",
    )
    monkeypatch.setattr(spec, "security_module_active", lambda module: module == "SELinux")
    with pytest.raises(BundleError, match=r"process\.selinuxLabel: SELinux is active"):
        config(tmp_path, process__selinuxLabel="system_u:system_r:container_t:s0")


def test_hooks_are_parsed_and_kept_in_order(tmp_path: Path) -> None:
    from runtime.hooks import Hook

    c = config(
        tmp_path,
        hooks={
            "prestart": [{"path": "/bin/a"}, {"path": "/bin/b", "args": ["b", "1"], "timeout": 5}],
            "poststop": [{"path": "/bin/c", "env": ["X=1"]}],
            "futureKind": [{"path": "/bin/d"}],
        },
    )
    assert c.hooks == {
        "prestart": (Hook("/bin/a", ("/bin/a",), (), None), Hook("/bin/b", ("b", "1"), (), 5)),
        "poststop": (Hook("/bin/c", ("/bin/c",), ("X=1",), None),),
    }


def test_overlay_directories_may_not_hold_separators(tmp_path: Path) -> None:
    for d in ("a,b", "up", "work"):
        (tmp_path / d).mkdir()
    annotations = {
        "org.orchestrator.rootfs.lowerdirs": json.dumps([str(tmp_path / "a,b")]),
        "org.orchestrator.rootfs.upperdir": str(tmp_path / "up"),
        "org.orchestrator.rootfs.workdir": str(tmp_path / "work"),
    }
    with pytest.raises(BundleError, match="contains , or :"):
        config(tmp_path, annotations=annotations)


def test_signals() -> None:
    assert parse_signal("SIGTERM") == 15 and parse_signal("kill") == 9 and parse_signal("10") == 10
    for bad in ("SIGNOPE", "0", "65"):
        with pytest.raises(ValueError):
            parse_signal(bad)


def test_state_machine() -> None:
    state.check_transition("c", "created", "start")
    for status, operation in [
        ("running", "start"),
        ("stopped", "kill"),
        ("running", "delete"),
        ("created", "pause"),
    ]:
        with pytest.raises(StateError, match=f"container c is {status}: cannot {operation} it"):
            state.check_transition("c", status, operation)
    with pytest.raises(Error, match="invalid container id"):
        state.validate_id("a/b")
    assert state.validate_id("web-1.db_2") == "web-1.db_2"


def test_log_writer_splits_lines_and_rotates(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    writer = logs.LogWriter(str(path), max_size=400, max_files=3)
    writer.write("stdout", b"first line\nsecond ")
    writer.write("stdout", b"half\n")
    writer.write("stderr", b"oops\n")
    for i in range(20):
        writer.write("stdout", f"filler {i:02d}\n".encode())
    writer.write("stdout", b"no newline at the end")
    writer.close()
    rotated = sorted(p.name for p in tmp_path.iterdir())
    assert rotated == ["c.log", "c.log.1", "c.log.2"]
    entries = logs.read(path)
    texts = [e.text for e in entries]
    assert texts[-1] == "no newline at the end"
    assert "filler 19\n" in texts
    assert all(len(p.read_bytes()) <= 400 for p in tmp_path.iterdir())
    # oldest first across files, and the oldest file fell off
    fillers = [t for t in texts if t.startswith("filler")]
    assert fillers == sorted(fillers)
    record = json.loads(path.read_text().splitlines()[0])
    assert set(record) == {"log", "stream", "time"} and record["time"].endswith("Z")


def test_users_from_the_image_files(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    group = tmp_path / "group"
    passwd.write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n# comment\nbroken\n"
    )
    group.write_text("root:x:0:\napp:x:1001:\nextra:x:2000:app,other\nstaff:x:50:\n")
    resolve = lambda spec: users.resolve(spec, str(passwd), str(group))  # noqa: E731
    assert resolve("app") == users.ResolvedUser(1000, 1001, (2000,), "/home/app")
    assert resolve("1000") == users.ResolvedUser(1000, 1001, (2000,), "/home/app")
    assert resolve("app:staff") == users.ResolvedUser(1000, 50, (), "/home/app")
    assert resolve("4242").gid == 0  # unknown numeric uid: group 0, as Docker
    assert resolve("4242:7").gid == 7
    with pytest.raises(SetupError, match="unable to find user ghost"):
        resolve("ghost")
    with pytest.raises(SetupError, match="unable to find group nogroup"):
        resolve("app:nogroup")


def test_capability_names() -> None:
    assert caps.mask(["net_admin", "CAP_CHOWN", "SYS_ADMIN"]) == (1 << 12) | 1 | (1 << 21)
    with pytest.raises(ValueError, match="unknown capability 'fly'"):
        caps.mask(["fly"])
