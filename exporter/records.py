"""Plain values that cross the store boundary, so nothing Pony-shaped leaks out of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, NamedTuple


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
    # None: the built-in `always` schedule.
    schedule_id: int | None = None


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


class EventKind(str, Enum):
    """What the kiosk event log records; the history judges the past from these."""

    SCHEDULE_ASSIGNED = "schedule_assigned"
    MAINTENANCE_STARTED = "maintenance_started"
    MAINTENANCE_ENDED = "maintenance_ended"
    ACTIVATED = "activated"
    DEACTIVATED = "deactivated"
    # Management (#18): who created, renamed, moved, re-keyed or enrolled a kiosk, and when.
    CREATED = "created"
    RENAMED = "renamed"
    MOVED = "moved"
    KEY_ROTATED = "key_rotated"
    ENROLLMENT_CODE_ISSUED = "enrollment_code_issued"
    ENROLLED = "enrolled"


@dataclass(frozen=True)
class KioskEvent:
    """One change of a kiosk, with when, who (None: not known) and the facts of the change."""

    kiosk_id: int
    at: datetime
    kind: str
    actor: str | None
    detail: dict[str, Any] | None


@dataclass(frozen=True)
class ScheduleVersion:
    """A schedule's hours from `valid_from` on; hours None: removed from then on."""

    schedule_id: int
    valid_from: datetime
    timezone: str
    hours: str | None


@dataclass(frozen=True)
class ScheduleRecord:
    """A schedule as it is now (its latest version) and how many kiosks follow it."""

    id: int
    name: str
    timezone: str
    hours: str
    created_at: datetime
    updated_at: datetime
    kiosks: int


@dataclass(frozen=True)
class MaintenanceWindow:
    id: int
    kiosk_id: int
    starts_at: datetime
    ends_at: datetime
    reason: str | None


@dataclass(frozen=True)
class LivenessInterval:
    """One replica's uninterrupted liveness: from its start to its last recorded tick."""

    id: int
    replica: str
    started_at: datetime
    last_seen_at: datetime
