"""Strict parsers for the small languages inside a stack file.

    parse_size("1.5g")          # -> 1610612736 (bytes, binary multiples as Docker)
    parse_duration("1m30s")     # -> 90_000_000_000 (nanoseconds)
    parse_ports("127.0.0.1:8000-8001:80-81/udp")   # -> two Port objects
    parse_restart("on-failure:3")                  # -> RestartPolicy("on-failure", 3)

Every parser raises :class:`UnitError` (a ``ValueError``) with a plain message and never accepts a
negative, an overflow, an unknown unit or trailing junk. Inputs are bounded in length first, so each
check is quick whatever the input.
"""

from __future__ import annotations

import ipaddress
import re
import signal
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from orchestrator.stack.model import ExtraHost, Port, Protocol, RestartName, RestartPolicy

INT64_MAX = 2**63 - 1
_MAX_TEXT = 64


class UnitError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _text(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UnitError(f"{what} must be a string or a number")
    text = str(value).strip()
    if len(text) > _MAX_TEXT:
        raise UnitError(f"{what} is too long")
    return text


# -- sizes -----------------------------------------------------------------------------------------

_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s?([kmgtp]?)(i?)(b?)$", re.IGNORECASE)
_SIZE_MULT = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def parse_size(value: Any, what: str = "size") -> int:
    """Bytes from ``1024``, ``"512m"``, ``"1.5g"``, ``"2GiB"``, ``"100b"`` (multiples of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise UnitError(f"{what} cannot be negative")
        if value > INT64_MAX:
            raise UnitError(f"{what} is too large")
        return value
    if isinstance(value, float):
        raise UnitError(f"{what} must be a whole number of bytes or a string such as '512m'")
    text = _text(value, what)
    if text.startswith("-"):
        raise UnitError(f"{what} cannot be negative")
    m = _SIZE.match(text)
    if not m or (m.group(3) and not m.group(2)):
        raise UnitError(
            f"{what} {text!r} is not a size: use a number with b, k, m, g, t or p (such as '512m')"
        )
    number = Decimal(m.group(1))
    result = int(number * _SIZE_MULT[m.group(2).lower()])
    if result > INT64_MAX:
        raise UnitError(f"{what} {text!r} is too large")
    return result


def format_size(n: int) -> str:
    """The shortest exact spelling: ``536870912`` -> ``"512m"``."""
    for unit in ("p", "t", "g", "m", "k"):
        mult = _SIZE_MULT[unit]
        if n and n % mult == 0:
            return f"{n // mult}{unit}"
    return f"{n}b"


# -- durations -------------------------------------------------------------------------------------


def parse_duration(value: Any, what: str = "duration") -> int:
    """Nanoseconds from a Go-style duration: ``"1m30s"``, ``"1.5s"``, ``"250ms"``, ``"1h"``.

    A bare ``0`` is allowed; any other bare number is refused (it has no unit). The grammar is
    :func:`orchestrator.durations.parse_duration`'s, shared with Dockerfile ``HEALTHCHECK``."""
    # Imported here: `orchestrator run` loads this module for sizes and CPUs, not durations.
    from orchestrator.durations import DurationError
    from orchestrator.durations import parse_duration as parse

    try:
        return parse(value, what)
    except DurationError as exc:
        raise UnitError(exc.message) from None


def format_duration(ns: int) -> str:
    """Go's spelling of a duration: ``90_000_000_000`` -> ``"1m30s"``."""
    from orchestrator.durations import format_duration as spell

    return spell(ns)


# -- cpus and plain numbers ------------------------------------------------------------------------

MAX_CPUS = 4096.0


def parse_cpus(value: Any, what: str = "cpus") -> float:
    """CPUs as a float: ``1``, ``0.5``, ``"1.5"``; ``0`` means no limit."""
    text = _text(value, what)
    if not re.match(r"^[0-9]+(?:\.[0-9]+)?$", text):
        if text.startswith("-"):
            raise UnitError(f"{what} cannot be negative")
        raise UnitError(f"{what} {text!r} is not a number of CPUs (such as 0.5 or 2)")
    cpus = float(text)
    if cpus > MAX_CPUS:
        raise UnitError(f"{what} {text} is more than {MAX_CPUS:g} CPUs")
    if 0 < cpus < 0.01:
        raise UnitError(f"{what} must be at least 0.01")
    return cpus


def parse_int(value: Any, what: str, minimum: int = 0, maximum: int = INT64_MAX) -> int:
    if isinstance(value, bool):
        raise UnitError(f"{what} must be an integer")
    if isinstance(value, str):
        text = value.strip()
        if not re.match(r"^[-+]?[0-9]{1,20}$", text):
            raise UnitError(f"{what} {value!r} is not an integer")
        value = int(text)
    if not isinstance(value, int):
        raise UnitError(f"{what} must be an integer")
    if value < minimum:
        raise UnitError(
            f"{what} must be at least {minimum}" if minimum else f"{what} cannot be negative"
        )
    if value > maximum:
        raise UnitError(f"{what} must be at most {maximum}")
    return value


def parse_mode(value: Any, what: str = "mode") -> int:
    """A file mode: an integer (``0o440`` written as ``0440`` or ``288``) or an octal string."""
    if isinstance(value, str):
        text = value.strip().removeprefix("0o")
        if not re.match(r"^[0-7]{1,4}$", text):
            raise UnitError(f"{what} {value!r} is not an octal file mode (such as 0440)")
        return int(text, 8)
    return parse_int(value, what, 0, 0o7777)


# -- ports -----------------------------------------------------------------------------------------

_PROTOCOLS = ("tcp", "udp", "sctp")
_RANGE = re.compile(r"^([0-9]{1,5})(?:-([0-9]{1,5}))?$")


def parse_port_range(text: str, what: str = "port") -> tuple[int, int]:
    m = _RANGE.match(text)
    if not m:
        raise UnitError(f"{what} {text!r} is not a port or a range such as 8000-8010")
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else start
    for p in (start, end):
        if not 1 <= p <= 65535:
            raise UnitError(f"{what} {p} is out of range (1-65535)")
    if end < start:
        raise UnitError(f"{what} range {text!r} ends before it starts")
    return start, end


def parse_protocol(text: str) -> Protocol:
    proto = text.lower()
    if proto not in _PROTOCOLS:
        raise UnitError(f"protocol {text!r} must be tcp, udp or sctp")
    return cast("Protocol", proto)


def parse_ip(text: str, what: str = "IP address") -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UnitError(f"{what} {text!r} is not an IP address") from None


def parse_ports(value: Any) -> list[Port]:
    """The short syntax ``[HOST_IP:][HOST_PORT[-END]:]PORT[-END][/PROTOCOL]`` (IPv6 in brackets).

    A container range gives one :class:`Port` per port; a host range with one container port
    leaves the host to pick a port in that range."""
    from orchestrator.stack.model import Port

    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise UnitError("a port must be a string or a number")
    text = value.strip()
    if len(text) > 100:
        raise UnitError("port is too long")
    protocol: Protocol = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
        protocol = parse_protocol(proto)
    host_ip: str | None = None
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            raise UnitError(f"port {value!r}: an IPv6 address must be written [ADDRESS]:HOST:PORT")
        host_ip = parse_ip(text[1:close], "host IP")
        parts = ["", *text[close + 2 :].split(":")]
        if len(parts) != 3:
            raise UnitError(f"port {value!r}: expected [ADDRESS]:HOST_PORT:PORT")
    else:
        parts = text.split(":")
        if len(parts) > 3:
            raise UnitError(
                f"port {value!r}: too many ':' (write an IPv6 host address in brackets)"
            )
        if len(parts) == 3:
            host_ip = parse_ip(parts[0], "host IP") if parts[0] else None
    container = parts[-1]
    host = parts[-2] if len(parts) >= 2 else ""
    c_start, c_end = parse_port_range(container, "container port")
    if not host:
        return [
            Port(target=p, host_ip=host_ip, protocol=protocol) for p in range(c_start, c_end + 1)
        ]
    h_start, h_end = parse_port_range(host, "host port")
    if c_start == c_end:
        return [
            Port(
                target=c_start,
                published_start=h_start,
                published_end=h_end,
                host_ip=host_ip,
                protocol=protocol,
            )
        ]
    if h_end - h_start != c_end - c_start:
        raise UnitError(
            f"port {value!r}: host range {host} and container range {container} differ in size"
        )
    return [
        Port(
            target=c_start + i,
            published_start=h_start + i,
            published_end=h_start + i,
            host_ip=host_ip,
            protocol=protocol,
        )
        for i in range(c_end - c_start + 1)
    ]


def parse_expose(value: Any) -> str:
    """``3306``, ``"8000-8010"``, ``"53/udp"`` -> a normalised string."""
    text = (
        str(value).strip()
        if isinstance(value, (int, str)) and not isinstance(value, bool)
        else None
    )
    if text is None:
        raise UnitError("an exposed port must be a string or a number")
    proto = ""
    if "/" in text:
        text, p = text.rsplit("/", 1)
        proto = "/" + parse_protocol(p)
    start, end = parse_port_range(text, "exposed port")
    return (f"{start}-{end}" if end != start else str(start)) + ("" if proto == "/tcp" else proto)


# -- restart policies ------------------------------------------------------------------------------

_RESTART = re.compile(r"^(no|always|unless-stopped|on-failure)(?::([0-9]{1,9}))?$")


def parse_restart(value: Any) -> RestartPolicy:
    from orchestrator.stack.model import RestartPolicy

    if value is False:  # "restart: no" written by a YAML 1.1 habit and quoted as false elsewhere
        return RestartPolicy("no")
    if not isinstance(value, str):
        raise UnitError("restart must be one of no, always, on-failure[:N], unless-stopped")
    m = _RESTART.match(value.strip())
    if not m:
        raise UnitError(
            f"restart {value!r} must be one of no, always, on-failure[:N], unless-stopped"
        )
    name = cast("RestartName", m.group(1))
    if m.group(2) is not None and name != "on-failure":
        raise UnitError(f"restart {value!r}: only on-failure takes a retry count")
    attempts = int(m.group(2)) if m.group(2) is not None else None
    return RestartPolicy(name, attempts)


# -- names -----------------------------------------------------------------------------------------

_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SERVICE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
_RESOURCE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
_CONTAINER = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_LABEL = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")


def check_project_name(name: str) -> str:
    if not _PROJECT.match(name) or len(name) > 200:
        raise UnitError(
            f"project name {name!r} must contain only lowercase letters, digits, dashes and "
            "underscores, and start with a letter or digit"
        )
    return name


def project_name_from_directory(dirname: str) -> str:
    """Compose's normalisation of a directory name: lowercase, keep ``[a-z0-9_-]``."""
    name = re.sub(r"[^a-z0-9_-]", "", dirname.lower())
    name = name.lstrip("_-")
    if not name:
        raise UnitError(
            f"cannot derive a project name from directory {dirname!r}: give one with -p or 'name:'"
        )
    return name


def check_service_name(name: str) -> str:
    if not _SERVICE.match(name) or len(name) > 63:
        raise UnitError(
            f"service name {name!r} must be letters, digits, '.', '_' or '-' (at most 63), "
            "starting with a letter or digit"
        )
    return name


def check_resource_name(name: str, kind: str) -> str:
    if not _RESOURCE.match(name) or len(name) > 200:
        raise UnitError(f"{kind} name {name!r} must be letters, digits, '.', '_' or '-'")
    return name


def check_container_name(name: str) -> str:
    if not _CONTAINER.match(name) or len(name) > 128:
        raise UnitError(
            f"container_name {name!r} must be at least two of letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name


def check_hostname(name: str, what: str = "hostname", max_length: int = 253) -> str:
    """An RFC 1123 host name: dot-separated labels of letters, digits and inner dashes. Nothing
    that could break a hosts file line (space, newline, '#') gets through."""
    if not isinstance(name, str) or not name:
        raise UnitError(f"{what} must be a non-empty string")
    if len(name) > max_length:
        raise UnitError(f"{what} is longer than {max_length} characters")
    for label in name.split("."):
        if not _LABEL.match(label):
            raise UnitError(
                f"{what} {name!r} is not a valid host name (letters, digits and '-', "
                "in dot-separated parts of at most 63)"
            )
    return name


def parse_extra_host(value: Any) -> ExtraHost:
    """``"name:ip"``, ``"name=ip"`` (the address may be IPv6, optionally in brackets) or
    ``host-gateway``."""
    if not isinstance(value, str):
        raise UnitError("an extra host must be a string 'HOSTNAME:IP'")
    sep = "=" if "=" in value else ":"
    if sep not in value:
        raise UnitError(f"extra host {value!r} must be 'HOSTNAME:IP'")
    host, address = value.split(sep, 1)
    return make_extra_host(host, address)


def make_extra_host(host: str, address: Any) -> ExtraHost:
    from orchestrator.stack.model import ExtraHost

    if not isinstance(address, str):
        raise UnitError(f"extra host {host!r}: the address must be a string")
    check_hostname(host, "extra host name")
    address = address.strip()
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    if address != "host-gateway":
        address = parse_ip(address, f"extra host {host!r} address")
    return ExtraHost(host, address)


# -- signals, capabilities, ulimits -----------------------------------------------------------------


def parse_signal(value: Any) -> str:
    """``SIGTERM``, ``TERM``, ``15``, ``SIGRTMIN+3`` -> a canonical ``SIG...`` name."""
    text = _text(value, "stop_signal").upper()
    if re.fullmatch(r"[0-9]{1,3}", text):
        number = int(text)
        try:
            return signal.Signals(number).name
        except ValueError:
            if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                return f"SIGRTMIN+{number - signal.SIGRTMIN}"
            raise UnitError(f"stop_signal {value!r} is not a signal number") from None
    name = text if text.startswith("SIG") else "SIG" + text
    if name in signal.Signals.__members__:
        return name
    m = re.match(r"^SIGRTM(IN|AX)([+-][0-9]{1,2})?$", name)
    if m:
        base = signal.SIGRTMIN if m.group(1) == "IN" else signal.SIGRTMAX
        if signal.SIGRTMIN <= base + int(m.group(2) or 0) <= signal.SIGRTMAX:
            return name
    raise UnitError(f"stop_signal {value!r} is not a signal name")


CAPABILITIES = frozenset(
    [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ]
)


def parse_capability(value: Any) -> str:
    """``NET_ADMIN`` or ``CAP_NET_ADMIN`` (any case) -> ``NET_ADMIN``; ``ALL`` is allowed."""
    if not isinstance(value, str):
        raise UnitError("a capability must be a string")
    name = value.strip().upper().removeprefix("CAP_")
    if name != "ALL" and name not in CAPABILITIES:
        raise UnitError(f"unknown capability {value!r}")
    return name


ULIMITS = frozenset(
    [
        "as",
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ]
)
