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
    # The latest vitals snapshot, None when the kiosk never sent one (see vitals.py).
    vitals: Vitals | None = None


class Vitals(NamedTuple):
    """One heartbeat's device vitals (None = not known in that snapshot), the time the
    service received them, and the boot time, which the store keeps apart from the
    snapshot (a heartbeat without uptime leaves it as it was). A NamedTuple for the same
    reason as KioskRecord: a scrape builds one per kiosk."""

    reported_at: datetime
    battery_percent: float | None = None
    battery_charging: bool | None = None
    storage_free_bytes: int | None = None
    storage_total_bytes: int | None = None
    memory_free_bytes: int | None = None
    memory_total_bytes: int | None = None
    uptime_seconds: float | None = None
    network: str | None = None
    wifi_signal_dbm: int | None = None
    app_in_foreground: bool | None = None
    screen_on: bool | None = None
    boot_time: float | None = None  # Unix seconds: received time - uptime


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
    # A snapshot replaces the stored one; None keeps it (a heartbeat without any vital).
    vitals: Vitals | None = None


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
