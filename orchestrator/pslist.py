"""What ``orchestrator ps`` shows, in Docker's terms: its rows (``ID``, ``Image``, ``Command``,
``RunningFor``, ``Status``, ``Ports``, ``Names``...), its durations ("Up 5 minutes", "Exited
(0) 3 minutes ago") and its ``--filter`` semantics (the same key ORed, different keys ANDed;
every ``label`` filter must hold, as Docker's do)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from orchestrator.errors import UserError
from orchestrator.gotemplate import StrMap
from orchestrator.timespec import from_record

DEFAULT_TABLE = (
    "{{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t{{.Status}}\\t{{.Ports}}\\t{{.Names}}"
)
HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
    "LocalVolumes": "LOCAL VOLUMES",
}
FILTER_KEYS = ("name", "id", "status", "label", "ancestor", "exited", "before", "since")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def human_duration(seconds: float) -> str:
    """Docker's (go-units) HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def parse_time(stamp: str | None) -> float | None:
    """Seconds since the epoch of a record's UTC timestamp (``2026-12-05T08:23:16.12Z``)."""
    return from_record(stamp)


def status_text(status: dict[str, Any], now: float, health: str | None = None) -> str:
    """Docker's STATUS column; ``health``: its healthcheck's verdict, if it has one."""
    state = status.get("state")
    if state in ("running", "paused"):
        started = parse_time(status.get("started")) or now
        text = f"Up {human_duration(now - started)}"
        if state == "paused":
            return text + " (Paused)"
        if health == "starting":
            return text + " (health: starting)"
        return text + f" ({health})" if health else text
    if state == "exited":
        code = "unknown" if status.get("exit_unknown") else status.get("exit_code")
        finished = parse_time(status.get("finished"))
        ago = f" {human_duration(now - finished)} ago" if finished else ""
        return f"Exited ({code}){ago}"
    return str(state or "unknown").capitalize()


def ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def row(
    container: Any,
    status: dict[str, Any],
    command: list[str],
    ports: Sequence[Any],
    networks: Sequence[str],
    trunc: bool,
    now: float,
    size: str = "",
    health: str | None = None,
) -> dict[str, Any]:
    """One container as Docker's ps formats it (the fields ``--format`` templates name)."""
    created = parse_time(status.get("created")) or now
    joined = " ".join(command)
    record = container.record
    mounts = [
        str(m.get("source") or "") for m in record.get("mounts") or [] if m.get("type") != "tmpfs"
    ]
    return {
        "ID": container.id[:12] if trunc else container.id,
        "Image": str(record.get("image") or ""),
        "Command": json.dumps(ellipsis(joined, 20) if trunc else joined, ensure_ascii=False),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(created)),
        "RunningFor": f"{human_duration(now - created)} ago",
        "Ports": ", ".join(port_text(b) for b in ports),
        "State": str(status.get("state")),
        "Status": status_text(status, now, health),
        "Size": size,  # (measured only when asked: ps -s, or a template naming it)
        "Names": container.name,
        "Labels": StrMap(record.get("options", {}).get("labels") or {}),
        "Mounts": ",".join(m for m in mounts if m),
        "Networks": ",".join(networks),
        "LocalVolumes": str(
            sum(1 for m in record.get("mounts") or [] if m.get("type") == "volume")
        ),
    }


def port_text(binding: Any) -> str:
    host = binding.host_ip or "0.0.0.0"
    return f"{host}:{binding.host_port}->{binding.port}/{binding.protocol}"


def effective_command(
    record: dict[str, Any], image_config: Callable[[str], dict[str, Any]]
) -> list[str]:
    """What the container runs: its own entrypoint and command, else the image's (an
    ``--entrypoint`` given without a command drops the image's CMD, as Docker does)."""
    options = record.get("options") or {}
    entrypoint = options.get("entrypoint")
    command = options.get("command")
    if entrypoint is None or command is None:
        config: dict[str, Any] = {}
        try:
            config = image_config(str(record.get("image_id") or "")).get("config") or {}
        except Exception:
            pass  # the image is gone: show what the container itself says
        if entrypoint is None:
            entrypoint = config.get("Entrypoint")
            if command is None:
                command = config.get("Cmd")
    return [str(p) for p in list(entrypoint or []) + list(command or [])]


# -- filters ----------------------------------------------------------------------------------


def parse_filters(values: Sequence[str]) -> dict[str, list[str]]:
    """``--filter key=value`` flags by key; an unknown key or a bad value is a user error."""
    out: dict[str, list[str]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep:
            raise UserError(f"--filter {item}: give key=value")
        if key not in FILTER_KEYS:
            raise UserError(
                f"--filter {item}: invalid filter {key!r} (one of {', '.join(FILTER_KEYS)})"
            )
        if key == "status" and value not in STATUSES:
            raise UserError(
                f"--filter {item}: invalid status {value!r} (one of {', '.join(STATUSES)})"
            )
        if key == "exited" and not value.lstrip("-").isdigit():
            raise UserError(f"--filter {item}: the exit code must be an integer")
        if key == "name":
            try:
                re.compile(value)
            except re.error as exc:
                raise UserError(f"--filter {item}: bad pattern: {exc}") from None
        out.setdefault(key, []).append(value)
    return out


class Matcher:
    """Whether a container passes the filters; ``resolve_image`` maps an ``ancestor`` value
    to an image id (None if it names none), ``find`` a ``before``/``since`` value to a
    container."""

    def __init__(
        self,
        filters: dict[str, list[str]],
        resolve_image: Callable[[str], str | None],
        find: Callable[[str], Any],
    ) -> None:
        self.filters = filters
        self.ancestors = [(a, resolve_image(a)) for a in filters.get("ancestor", [])]
        self.before = [self._created(find(v)) for v in filters.get("before", [])]
        self.since = [self._created(find(v)) for v in filters.get("since", [])]

    @staticmethod
    def _created(container: Any) -> str:
        return str(container.record.get("created") or "")

    def __call__(self, container: Any, status: dict[str, Any]) -> bool:
        f = self.filters
        state = status.get("state")
        checks: list[tuple[str, Callable[[str], bool]]] = [
            ("name", lambda v: re.search(v, container.name) is not None),
            ("id", lambda v: bool(container.id.startswith(v))),
            ("status", lambda v: state == v),
            ("exited", lambda v: state == "exited" and status.get("exit_code") == int(v)),
        ]
        for key, test in checks:
            if key in f and not any(test(v) for v in f[key]):
                return False
        labels = container.record.get("options", {}).get("labels") or {}
        for wanted in f.get("label", []):
            name, sep, value = wanted.partition("=")
            if name not in labels or (sep and labels[name] != value):
                return False
        if self.ancestors and not any(
            self._descends(container, name, image_id) for name, image_id in self.ancestors
        ):
            return False
        created = self._created(container)
        if any(created >= b for b in self.before):
            return False
        return not any(created <= s for s in self.since)

    @staticmethod
    def _descends(container: Any, name: str, image_id: str | None) -> bool:
        record = container.record
        if image_id is not None:
            return bool(record.get("image_id") == image_id)
        return bool(record.get("image") == name)
