"""Single containers' lifecycle events, as JSON lines under the state root (``events.log``),
what ``orchestrator events`` shows and follows.

Whoever acts records the event: the CLI (create, start, stop, kill, pause, unpause, destroy,
rename) through ``Containers``. A container's own death is seen only by whoever waits on it:
``die`` is recorded by the CLI when it learns of it (an attached ``run``/``start -a``, ``wait``,
``stop``) and by ``events`` while it follows (it waits on every running container's monitor);
each death is written once (by container and finish time).

An event, one line::

    {"time": 1733390000.123, "timeNano": 1733390000123000000, "type": "container",
     "action": "die", "id": "...", "name": "web", "image": "busybox",
     "attributes": {"exitCode": "0"}}

The log is bounded: past ``MAX_SIZE`` it becomes ``events.log.1`` (the previous one dropped),
as Docker keeps a bounded history. Recording never fails a command: an unwritable log is
skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

LOG_NAME = "events.log"
MAX_SIZE = 1 << 20
ACTIONS = ("create", "start", "die", "stop", "kill", "pause", "unpause", "destroy", "rename")


def log_path(root: Path) -> Path:
    return Path(root) / LOG_NAME


def record(
    root: Path,
    action: str,
    container_id: str,
    name: str,
    image: str | None,
    attributes: dict[str, Any] | None = None,
    now: float | None = None,
    max_size: int = MAX_SIZE,
) -> dict[str, Any]:
    """Append one event (and rotate the log when it is full); the event."""
    ns = time.time_ns() if now is None else int(now * 1e9)
    event = {
        "time": ns / 1e9,
        "timeNano": ns,
        "type": "container",
        "action": action,
        "id": container_id,
        "name": name,
        "image": image or "",
        "attributes": {k: str(v) for k, v in (attributes or {}).items()},
    }
    line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
    path = log_path(root)
    with contextlib.suppress(OSError):
        _rotate(path, max_size)
        # One write with O_APPEND: lines of concurrent writers never interleave.
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # after a line a crash cut short: ours stays whole
            os.write(fd, line)
        finally:
            os.close(fd)
    return event


def _rotate(path: Path, max_size: int) -> None:
    try:
        if path.stat().st_size < max_size:
            return
    except FileNotFoundError:
        return
    from runtime.filelock import exclusive

    with exclusive(path.with_name(LOG_NAME + ".lock")), contextlib.suppress(FileNotFoundError):
        if path.stat().st_size >= max_size:  # (not rotated meanwhile by another writer)
            os.replace(path, path.with_name(LOG_NAME + ".1"))


def note(root: Path, action: str, container: Any, **attributes: Any) -> None:
    """Record ``action`` for a ``Container`` (orchestrator.containers) under ``root``."""
    labels = container.record.get("options", {}).get("labels") or {}
    record(
        root,
        action,
        container.id,
        container.name,
        container.record.get("image"),
        {**{str(k): v for k, v in labels.items()}, **attributes},
    )


def died(root: Path, container: Any, exit_record: dict[str, Any] | None) -> None:
    """Record the container's ``die`` once: whoever learns of it calls this, maybe several."""
    if not exit_record:
        return
    finished = str(exit_record.get("finished") or "")
    if finished and _seen_death(root, container.id, finished):
        return
    code = exit_record.get("exit_code")
    attributes: dict[str, Any] = {"exitCode": "unknown" if code is None else code}
    if finished:
        attributes["finished"] = finished
    if exit_record.get("oom_killed"):
        attributes["oomKilled"] = "true"
    note(root, "die", container, **attributes)


def died_at_exit(container: Any, exit_record: dict[str, Any] | None) -> None:
    """``died`` for a caller that holds a Container but not its state root (two levels above
    the container's directory)."""
    died(Path(container.directory).parent.parent, container, exit_record)


def _seen_death(root: Path, container_id: str, finished: str, window: int = 256 << 10) -> bool:
    """Whether a ``die`` of this run is in the log already (its last ``window`` bytes)."""
    try:
        with open(log_path(root), "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - window))
            data = f.read()
    except OSError:
        return False
    needle = container_id.encode()
    for line in data.splitlines():
        if needle in line and b'"die"' in line and finished.encode() in line:
            return True
    return False


# -- reading -------------------------------------------------------------------------------------


def history(root: Path, since: float | None = None, until: float | None = None) -> list[Any]:
    """The recorded events between ``since`` and ``until`` (seconds), oldest first."""
    events = []
    for path in (log_path(root).with_name(LOG_NAME + ".1"), log_path(root)):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        events += _parse(data)
    return [e for e in events if _within(e, since, until)]


def _parse(data: bytes) -> list[dict[str, Any]]:
    events = []
    for line in data.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(event, dict) and isinstance(event.get("time"), (int, float)):
            events.append(event)
    return events


def _within(event: dict[str, Any], since: float | None, until: float | None) -> bool:
    t = float(event["time"])
    return (since is None or t >= since) and (until is None or t <= until)


def follow(
    root: Path,
    since: float | None = None,
    until: float | None = None,
    idle: Callable[[], None] | None = None,
    interval: float = 0.1,
) -> Iterator[dict[str, Any]]:
    """The events from ``since`` (or from now), then new ones as they are written, until
    ``until`` has passed (or for ever). ``idle`` runs between reads (``events`` watches the
    running containers' monitors there)."""
    path = log_path(root)
    inode: int | None = None
    current = b""
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
        # what is there now is history; the follow starts exactly where it ends
        current = f.read()
        inode = os.fstat(f.fileno()).st_ino
    if since is not None:
        older = _read_from(path.with_name(LOG_NAME + ".1"), 0)
        for event in _parse(older) + _parse(current[: current.rfind(b"\n") + 1]):
            if _within(event, since, until):
                yield event
    position = current.rfind(b"\n") + 1  # (a line being written is read whole later)
    pending = b""
    while until is None or time.time() <= until:
        if idle is not None:
            idle()
        try:
            st: os.stat_result | None = path.stat()
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_ino != inode or st.st_size < position):
            if inode is not None:  # rotated: finish the old file first
                for event in _parse(_read_from(path.with_name(LOG_NAME + ".1"), position)):
                    if _within(event, since, until):
                        yield event
            position, inode, pending = 0, st.st_ino, b""
        if st is not None and st.st_size > position:
            data = _read_from(path, position)
            position += len(data)
            pending += data
            complete, _, pending = pending.rpartition(b"\n")
            for event in _parse(complete):
                if _within(event, since, until):
                    yield event
            continue
        time.sleep(interval)


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read()
    except OSError:
        return b""


# -- filters and formats -------------------------------------------------------------------------


def parse_filters(items: list[str]) -> dict[str, set[str]]:
    """``--filter KEY=VALUE`` (repeatable): container, event, image, label, type."""
    from orchestrator.errors import UserError

    filters: dict[str, set[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("container", "event", "image", "label", "type"):
            raise UserError(
                f"--filter {item!r}: use container=, event=, image=, label= or type= with a value"
            )
        filters.setdefault(key, set()).add(value)
    return filters


def matches(event: dict[str, Any], filters: dict[str, set[str]]) -> bool:
    """Docker's rule: values of one key are alternatives, different keys must all match."""
    for key, values in filters.items():
        if key == "container":
            ok = any(
                v in (event.get("name"), event.get("id"))
                or (len(v) >= 3 and str(event.get("id", "")).startswith(v))
                for v in values
            )
        elif key == "event":
            ok = event.get("action") in values
        elif key == "image":
            ok = event.get("image") in values or any(
                str(event.get("image", "")).split(":")[0] == v for v in values
            )
        elif key == "type":
            ok = event.get("type") in values
        else:  # label=KEY or label=KEY=VALUE
            attrs = event.get("attributes", {})
            ok = any(
                (k in attrs and (not sep or attrs[k] == val))
                for k, sep, val in (v.partition("=") for v in values)
            )
        if not ok:
            return False
    return True


def render(event: dict[str, Any]) -> str:
    """Docker's text line: ``TIME container ACTION ID (image=..., name=..., ATTRS)``."""
    ns = int(event.get("timeNano") or event["time"] * 1e9)
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"
    attrs = {"image": event.get("image", ""), "name": event.get("name", "")}
    attrs.update(event.get("attributes", {}))
    text = ", ".join(f"{k}={v}" for k, v in sorted(attrs.items()))
    return f"{stamp} {event.get('type', 'container')} {event['action']} {event['id']} ({text})"


def stopped(containers: Any, container: Any) -> None:
    """After ``stop``: its ``die`` (once) and ``stop``."""
    exit_record = None
    with contextlib.suppress(Exception):
        exit_record = containers.runtime.state(container.id).exit
    if not exit_record:
        with contextlib.suppress(Exception):
            exit_record = containers.runtime.exited(container.id)
    died(containers.root, container, exit_record)
    note(containers.root, "stop", container)
