"""Plain values that cross the store boundary, so nothing Pony-shaped leaks out of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import NamedTuple


class KioskRecord(NamedTuple):
    """A kiosk as stored. A NamedTuple rather than a frozen dataclass: a scrape builds one per
    kiosk, and at 100,000 kiosks the dataclass __init__ alone cost ~0.4 s."""

    id: int
    name: str
    location: str
    is_active: bool
    created_at: datetime
    last_heartbeat_at: datetime | None
    app_version: str | None
    device_info: str | None
    key_prefix: str


@dataclass(frozen=True)
class TokenRecord:
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool
    scope: str = "read"
    # Empty: every location.
    locations: tuple[str, ...] = ()


@dataclass(frozen=True)
class HeartbeatWrite:
    """One heartbeat to record; key_hash re-checks the key inside the write itself."""

    kiosk_id: int
    key_hash: str
    received_at: datetime
    app_version: str | None
    device_info: str | None


class Outcome(str, Enum):
    ACCEPTED = "accepted"
    UNKNOWN_KEY = "auth"
    INACTIVE = "inactive"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True)
class HeartbeatResult:
    outcome: Outcome
    # When rate limited: when the kiosk's previous accepted heartbeat arrived.
    previous_at: datetime | None = None
