"""Points in time as Docker's ``--since``/``--until`` and ``--filter until=`` take them: a
Unix timestamp (``1733390000``, ``1733390000.5``), an RFC 3339 date and time
(``2026-12-05T08:00:00Z``, ``2026-12-05T09:00:00+01:00``, ``2026-12-05``), or a Go duration
counted back from now (``10m``, ``1h30m``).

    parse_time("10m", "--since", now=1000.0)   # -> 400.0
"""

from __future__ import annotations

import datetime
import time

from orchestrator.durations import DurationError, parse_duration
from orchestrator.errors import UserError


def parse_time(value: str, flag: str, now: float | None = None) -> float:
    """Seconds since the epoch for ``value``; a UserError naming ``flag`` otherwise."""
    text = value.strip()
    now = time.time() if now is None else now
    try:
        return float(text)
    except ValueError:
        pass
    if text and text[0].isdigit() and not text[-1].isdigit() and "-" not in text:
        try:
            return now - parse_duration(text, flag) / 1e9
        except DurationError:
            pass
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UserError(
            f"{flag} {value}: give a Unix timestamp, an RFC 3339 time"
            " (2026-12-05T08:00:00Z) or a duration (10m)"
        ) from None
    if moment.tzinfo is None:  # Docker reads a time without a zone as local time
        return moment.timestamp()
    return moment.astimezone(datetime.UTC).timestamp()


def from_record(text: str | None) -> float | None:
    """Seconds since the epoch from a record's timestamp (``runtime.logs.timestamp``: RFC 3339
    in UTC with nanoseconds); None when absent or unreadable."""
    if not text:
        return None
    try:
        head, _, frac = text.rstrip("Z").partition(".")
        moment = datetime.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S")
        seconds = moment.replace(tzinfo=datetime.UTC).timestamp()
        return seconds + (float(f"0.{frac}") if frac.isdigit() else 0.0)
    except ValueError:
        return None
