"""The warm command line's pure parts: which commands go warm, the call's wire format, and why a
zygote refuses a call (runtime.warmcli, runtime.zygote, orchestrator.quick)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from orchestrator import quick
from orchestrator.commands import COMMANDS
from runtime import protocol, warmcli, zygote


def test_the_socket_name_is_the_protocol_s() -> None:
    assert warmcli.SOCKET_NAME == protocol.FORK_SERVER_SOCKET


@pytest.mark.parametrize(
    ("argv", "root"),
    [
        (["run", "--rm", "busybox", "true"], "/env/root"),
        (["--root", "/r", "ps", "-a"], "/r"),
        (["rm", "-f", "web"], "/env/root"),
        (["logs", "web"], "/env/root"),
        (["run", "-it", "busybox", "sh"], None),  # a terminal: here
        (["run", "-d", "-i", "busybox"], None),
        (["run", "--tty", "busybox"], None),
        (["run", "--rm", "busybox", "ls", "-lt"], None),  # conservative: here too
        (["exec", "-ti", "web", "sh"], None),
        (["-f", "compose.yaml", "ps"], "/env/root"),  # a stack's verbs too
        (["-p", "shop", "--root", "/r", "logs", "web"], "/r"),
        (["up", "-d"], "/env/root"),
        (["-f", "compose.yaml", "run", "web", "sh"], None),  # a terminal may be its
        (["-f", "compose.yaml", "exec", "web", "sh"], None),
        (["supervisor"], None),
        (["-f", "compose.yaml", "inspect", "x"], None),  # not a stack's verb
        (["-f", "compose.yaml", "logs", "-t"], "/env/root"),  # timestamps
        (["stop", "-t", "0", "web"], "/env/root"),  # a time
        (["start", "-ai", "web"], None),
        (["--root=/r", "ps"], None),
        (["--debug", "ps"], None),
        (["image", "import", "x.tar", "x"], None),
        (["run", "--help"], None),
        ([], None),
    ],
)
def test_which_commands_go_warm(
    argv: list[str], root: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_ROOT", "/env/root")
    assert quick.warm_root(argv) == root


def test_warm_verbs_are_commands() -> None:
    assert set(COMMANDS) >= quick.VERBS
    from orchestrator.cli import _SHARED_VERBS

    assert set(_SHARED_VERBS) | quick.STACK_ONLY >= quick.STACK_VERBS


def test_a_request_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORC_TEST_VALUE", "a=b\nc")
    argv = ["orchestrator", "run", "", "caf\udce9", "x y"]
    request = warmcli.decode_request(warmcli.encode_request("m:f", "w.mod", argv))
    assert request["entry"] == "m:f"
    assert request["warm"] == "w.mod"
    assert request["argv"] == argv
    assert request["path"] == sys.path
    assert request["interpreter"] == warmcli.interpreter()
    assert request["namespaces"] == warmcli.namespaces()
    assert request["credentials"] == warmcli.credentials()
    assert b"CapEff:" in warmcli.credentials()
    assert request["env"][b"ORC_TEST_VALUE"] == b"a=b\nc"  # type: ignore[index]
    assert dict(request["env"]) == dict(os.environb)  # type: ignore[call-overload]
    umask = os.umask(0)
    os.umask(umask)
    assert request["umask"] == umask
    assert len(request["stdio"]) == 3  # type: ignore[arg-type]


def test_another_version_is_refused() -> None:
    data = warmcli.encode_request("m:f", "w", ["x"])
    with pytest.raises(ValueError, match="version"):
        warmcli.decode_request(b"9" + data[1:])


def _request() -> dict[str, object]:
    return warmcli.decode_request(warmcli.encode_request("mod:main", "w", ["x"]))


def test_a_call_from_here_is_served(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("")
    later = time.time_ns() + 10**9
    assert zygote.refusal(_request(), os.geteuid(), ("mod",), {str(source): later}) is None


def test_why_a_call_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("")
    later = time.time_ns() + 10**9
    ok = ("mod",)
    assert zygote.refusal(_request(), os.geteuid() + 1, ok, {}) == "another user"
    assert zygote.refusal(_request(), os.geteuid(), ("other",), {}) == (
        "an entry point not kept warm"
    )
    elsewhere = {**_request(), "namespaces": b"1:2"}
    assert zygote.refusal(elsewhere, os.geteuid(), ok, {}) == "other namespaces"
    other_code = {**_request(), "package_dir": "/elsewhere/runtime"}
    assert zygote.refusal(other_code, os.geteuid(), ok, {}) == "other code"
    fewer_caps = {**_request(), "credentials": b"CapEff: 0"}
    assert zygote.refusal(fewer_caps, os.geteuid(), ok, {}) == (
        "other credentials (groups, capabilities, no_new_privs or seccomp)"
    )
    other_python = {**_request(), "interpreter": b"/usr/bin/python9\n/usr"}
    assert zygote.refusal(other_python, os.geteuid(), ok, {}) == "another interpreter"
    # a source written after the zygote loaded it: not what it runs
    earlier = time.time_ns() - 10**9
    assert "changed since it was loaded" in str(
        zygote.refusal(_request(), os.geteuid(), ok, {str(source): earlier})
    )
    assert "is gone" in str(
        zygote.refusal(_request(), os.geteuid(), ok, {str(tmp_path / "gone.py"): later})
    )
