"""Strict parsers: examples, refusals, and properties (hypothesis)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.stack.model import Port, RestartPolicy
from orchestrator.stack.units import (
    INT64_MAX,
    UnitError,
    check_container_name,
    check_hostname,
    check_project_name,
    check_service_name,
    format_duration,
    format_size,
    parse_capability,
    parse_cpus,
    parse_duration,
    parse_expose,
    parse_extra_host,
    parse_mode,
    parse_ports,
    parse_restart,
    parse_signal,
    parse_size,
    project_name_from_directory,
)

NS = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (0, 0),
        (1024, 1024),
        ("100", 100),
        ("100b", 100),
        ("1k", 1024),
        ("1kb", 1024),
        ("512m", 512 * 2**20),
        ("512M", 512 * 2**20),
        ("1.5g", 3 * 2**29),
        ("1GiB", 2**30),
        ("2 GB", 2 * 2**30),
        ("1t", 2**40),
        ("1p", 2**50),
    ],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("-1", "negative"),
        (-5, "negative"),
        ("1x", "not a size"),
        ("m", "not a size"),
        ("1.5.5g", "not a size"),
        ("1ib", "not a size"),
        ("", "not a size"),
        ("99999999999p", "too large"),
        (2**63, "too large"),
        (1.5, "whole number"),
        (True, "string or a number"),
        ([], "string or a number"),
        ("9" * 100, "too long"),
    ],
)
def test_size_refusals(text: object, words: str) -> None:
    with pytest.raises(UnitError, match=words):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1m30s", 90 * NS),
        ("1h", 3600 * NS),
        ("1.5s", 1_500_000_000),
        ("250ms", 250_000_000),
        ("10us", 10_000),
        ("10µs", 10_000),
        ("7ns", 7),
        ("1h2m3s4ms", 3723 * NS + 4_000_000),
        (".5s", NS // 2),
        ("0", 0),
        (0, 0),
        ("0s", 0),
    ],
)
def test_durations(text: object, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("-1s", "negative"),
        ("10", "not a duration"),
        (10, "needs a unit"),
        ("1d", "not a duration"),
        ("s", "not a duration"),
        ("1m30", "not a duration"),
        ("1 s", "not a duration"),
        ("", "empty"),
        ("300000000h", "too long"),
    ],
)
def test_duration_refusals(text: object, words: str) -> None:
    with pytest.raises(UnitError, match=words):
        parse_duration(text)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (90 * NS, "1m30s"),
        (3600 * NS, "1h0m0s"),
        (1_500_000, "1.5ms"),
        (1_500, "1.5µs"),
        (5, "5ns"),
        (NS + 1, "1.000000001s"),
    ],
)
def test_format_duration_like_go(ns: int, text: str) -> None:
    assert format_duration(ns) == text


@given(st.integers(min_value=0, max_value=INT64_MAX))
def test_duration_round_trip(ns: int) -> None:
    assert parse_duration(format_duration(ns)) == ns


@given(st.integers(min_value=0, max_value=2**62))
def test_size_round_trip(n: int) -> None:
    assert parse_size(format_size(n)) == n


@settings(max_examples=300)
@given(st.text(max_size=30))
def test_parsers_raise_only_unit_errors(text: str) -> None:
    for parser in (
        parse_size,
        parse_duration,
        parse_cpus,
        parse_ports,
        parse_restart,
        parse_expose,
        parse_mode,
        parse_signal,
        parse_extra_host,
    ):
        try:
            parser(text)
        except UnitError:
            pass


@given(st.text(max_size=80))
def test_accepted_hostnames_are_safe_in_hosts_files(text: str) -> None:
    try:
        check_hostname(text)
    except UnitError:
        return
    assert not any(c in text for c in " \t\n\r#\x00")
    assert len(text) <= 253


@given(
    st.integers(1, 65535),
    st.one_of(st.none(), st.integers(1, 65535)),
    st.sampled_from(["tcp", "udp", "sctp"]),
    st.one_of(st.none(), st.sampled_from(["127.0.0.1", "::1", "0.0.0.0"])),
)
def test_port_short_syntax_properties(
    target: int, published: int | None, proto: str, ip: str | None
) -> None:
    text = str(target)
    if published is not None:
        text = f"{published}:{text}"
        if ip is not None:
            text = (f"[{ip}]" if ":" in ip else ip) + ":" + text
    text += f"/{proto}"
    (port,) = parse_ports(text)
    assert port.target == target and port.protocol == proto
    assert port.published_start == published
    if published is not None:
        assert port.host_ip == ip


def test_huge_inputs_are_refused_quickly() -> None:
    start = time.perf_counter()
    for parser in (parse_size, parse_duration, parse_cpus, parse_ports, parse_expose):
        with pytest.raises(UnitError):
            parser("1" * 1_000_000)
    with pytest.raises(UnitError):
        check_hostname("a." * 500_000)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    ("text", "ports"),
    [
        ("80", [Port(80)]),
        (80, [Port(80)]),
        ("8080:80", [Port(80, 8080, 8080)]),
        ("127.0.0.1:8080:80", [Port(80, 8080, 8080, "127.0.0.1")]),
        ("127.0.0.1::80", [Port(80, None, None, "127.0.0.1")]),
        ("[::1]:53:53/udp", [Port(53, 53, 53, "::1", "udp")]),
        ("3000-3001", [Port(3000), Port(3001)]),
        (
            "8000-8001:3000-3001/UDP",
            [Port(3000, 8000, 8000, protocol="udp"), Port(3001, 8001, 8001, protocol="udp")],
        ),
        ("9000-9009:80", [Port(80, 9000, 9009)]),
    ],
)
def test_ports(text: object, ports: list[Port]) -> None:
    assert parse_ports(text) == ports


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("0", "out of range"),
        ("65536", "out of range"),
        ("-1", "not a port"),
        ("80/icmp", "protocol"),
        ("a:b", "not a port"),
        ("1.2.3.4:5:6:7", "too many"),
        ("999.1.1.1:80:80", "not an IP"),
        ("8000-8002:3000-3001", "differ in size"),
        ("3001-3000", "ends before"),
        ("[::1:80:80", "IPv6"),
        ("", "not a port"),
    ],
)
def test_port_refusals(text: str, words: str) -> None:
    with pytest.raises(UnitError, match=words):
        parse_ports(text)


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("no", RestartPolicy("no")),
        ("always", RestartPolicy("always")),
        ("unless-stopped", RestartPolicy("unless-stopped")),
        ("on-failure", RestartPolicy("on-failure")),
        ("on-failure:3", RestartPolicy("on-failure", 3)),
        (False, RestartPolicy("no")),
    ],
)
def test_restart(text: object, policy: RestartPolicy) -> None:
    assert parse_restart(text) == policy


@pytest.mark.parametrize(
    "text", ["never", "always:3", "on-failure:-1", "on-failure:x", "on-failure:9999999999", 3]
)
def test_restart_refusals(text: object) -> None:
    with pytest.raises(UnitError):
        parse_restart(text)


@pytest.mark.parametrize(("text", "cpus"), [(1, 1.0), ("0.5", 0.5), (1.25, 1.25), (0, 0.0)])
def test_cpus(text: object, cpus: float) -> None:
    assert parse_cpus(text) == cpus


@pytest.mark.parametrize("text", ["-1", "abc", "0.001", "1e400", "nan", "inf", 99999])
def test_cpus_refusals(text: object) -> None:
    with pytest.raises(UnitError):
        parse_cpus(text)


def test_names() -> None:
    assert check_project_name("my_app-1") == "my_app-1"
    for bad in ("My", "-x", "_x", "a b", "", "a.b"):
        with pytest.raises(UnitError):
            check_project_name(bad)
    assert project_name_from_directory("My Project.v2") == "myprojectv2"
    with pytest.raises(UnitError):
        project_name_from_directory("...")
    assert check_service_name("web.1_a-b") == "web.1_a-b"
    for bad in ("a b", "-a", "a/b", "x" * 64):
        with pytest.raises(UnitError):
            check_service_name(bad)
    assert check_container_name("my-container_1.x") == "my-container_1.x"
    for bad in ("a", "-ab", "a b", "a/b"):
        with pytest.raises(UnitError):
            check_container_name(bad)
    assert check_hostname("web-1.example.com") == "web-1.example.com"
    for bad in ("-web", "web-", "a..b", "a_b", "x" * 64, "a b", "a\nb", "a#b", ""):
        with pytest.raises(UnitError):
            check_hostname(bad)


def test_extra_hosts() -> None:
    assert parse_extra_host("db:10.0.0.2").address == "10.0.0.2"
    assert parse_extra_host("db=::1").address == "::1"
    assert parse_extra_host("db:::1").address == "::1"
    assert parse_extra_host("db=[fe80::1]").address == "fe80::1"
    assert parse_extra_host("gw:host-gateway").address == "host-gateway"
    for bad in ("nocolon", "a b:1.2.3.4", "db:1.2.3", "db:1.2.3.4 # x"):
        with pytest.raises(UnitError):
            parse_extra_host(bad)


def test_modes_signals_capabilities_expose() -> None:
    assert parse_mode("0440") == 0o440
    assert parse_mode(0o440) == 0o440
    assert parse_mode("0o600") == 0o600
    for bad in ("0999", "rw", 0o10000, -1):
        with pytest.raises(UnitError):
            parse_mode(bad)
    assert parse_signal("SIGTERM") == "SIGTERM"
    assert parse_signal("quit") == "SIGQUIT"
    assert parse_signal(9) == "SIGKILL"
    assert parse_signal("SIGRTMIN+3") == "SIGRTMIN+3"
    for bad in ("SIGNOPE", "999", "SIGRTMIN+99"):
        with pytest.raises(UnitError):
            parse_signal(bad)
    assert parse_capability("cap_net_admin") == "NET_ADMIN"
    assert parse_capability("ALL") == "ALL"
    assert parse_expose(3306) == "3306"
    assert parse_expose("53/udp") == "53/udp"
    assert parse_expose("80/tcp") == "80"
    assert parse_expose("5000-5001") == "5000-5001"
