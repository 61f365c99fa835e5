"""Time: one aware-UTC clock type and the one wire format (ISO-8601 with a Z)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock; everything else takes a Clock so tests can move time."""
    return datetime.now(timezone.utc)


def format_utc(moment: datetime | None) -> str | None:
    """Render as `2026-11-26T10:00:00.123456Z`: the format tablets and the back office parse."""
    if moment is None:
        return None
    return (
        moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")
        + "Z"
    )


def parse_utc(text: str) -> datetime:
    """Parse ISO-8601; a value without an offset is taken as UTC (tablets often omit it)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
