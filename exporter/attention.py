"""`metrics_per_kiosk: attention` (issue 17): which kiosks keep per-kiosk series, in one place.

At 100,000 kiosks the page is ~2.4M series, almost all of them kiosks that are fine. In
attention mode a kiosk keeps its per-kiosk series only while an alert rule could fire on it,
and for HOLD after that; every kiosk still counts in the per-location roll-ups.

The predicate asks the domain rules' verdicts (status.py's status, expected.py's expectation,
the outdated verdict, the fresh vitals snapshot of vitals.py) and compares them with the
thresholds of the shipped alerts in rules/kiosk.yml; tests/test_attention.py reads those
thresholds from the rules file, so the two cannot drift apart silently.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .expected import KioskExpectation
from .records import Vitals
from .status import KioskStatus

ALL = "all"
ATTENTION = "attention"

# A kiosk that stops needing attention keeps its series this long, so they show the
# recovery (online again, charging, ...) before they go: the rules read per-kiosk inputs with
# last_over_time(...[5m]), and a series that vanished with its alerting value would keep its
# alert firing for those 5 minutes. Longer than that guard, with room for a missed scrape.
HOLD = timedelta(minutes=10)

# The shipped alerts' thresholds (rules/kiosk.yml).
BATTERY_LOW_RATIO = 0.2  # KioskBatteryLow (and KioskOffline's battery hint)
STORAGE_LOW_RATIO = 0.1  # KioskStorageLow
REBOOT_WINDOW = timedelta(hours=1)  # KioskRebootLoop counts boots within an hour
FLAPPING_OUTAGES = 3  # KioskFlapping: outages that began within FLAPPING_WINDOW
FLAPPING_WINDOW = timedelta(hours=1)


def needs_attention(
    *,
    status: KioskStatus,
    expected: KioskExpectation,
    outdated: bool | None,
    vitals: Vitals | None,
    recent_outages: int,
    now: datetime,
) -> bool:
    """True while some shipped alert could fire on this kiosk (or is about to).

    A kiosk that is dark outside its hours or in maintenance is not expected online: no alert
    reads it, so it stays out (the roll-ups count it). Deactivated kiosks never page.
    """
    if status is KioskStatus.INACTIVE:
        return False
    if status is KioskStatus.NEVER_CONNECTED or outdated:
        return True
    if status is KioskStatus.OFFLINE and expected.expectation.expected_online:
        return True
    if recent_outages >= FLAPPING_OUTAGES:
        return True
    return vitals is not None and vitals_need_attention(vitals, now)


def vitals_need_attention(vitals: Vitals, now: datetime) -> bool:
    """A fresh snapshot past a vitals alert's threshold, or a boot within the reboot window
    (KioskRebootLoop counts the boot times its series shows, so the series must begin with
    the first boot of a possible loop)."""
    battery = vitals.battery_percent
    if battery is not None and battery / 100 < BATTERY_LOW_RATIO:
        return True
    free, size = vitals.storage_free_bytes, vitals.storage_total_bytes
    if free is not None and size and free / size < STORAGE_LOW_RATIO:
        return True
    if vitals.app_in_foreground is False:
        return True
    boot = vitals.boot_time
    return boot is not None and now.timestamp() - boot < REBOOT_WINDOW.total_seconds()


def counts_for_availability(
    status: KioskStatus, expected: KioskExpectation, threshold_seconds: float
) -> bool:
    """The availability rules' denominator (location:kiosk_eligible:count in rules/kiosk.yml)
    as a roll-up: expected online, and online or offline while expected for a threshold."""
    if not expected.expectation.expected_online:
        return False
    if status is KioskStatus.ONLINE:
        return True
    offline = expected.offline_while_expected_seconds
    return offline is not None and offline >= threshold_seconds


class AttentionMemory:
    """When each kiosk last needed attention, for HOLD: what "changed state in the last 10
    minutes" means here.

    One per collector, so one per renderer process: a restart forgets, and a kiosk that
    recovered just before it vanishes at once (its alerts then resolve after the rules'
    5-minute staleness guard, as for a deleted kiosk).
    """

    def __init__(self, hold: timedelta = HOLD) -> None:
        self._hold = hold
        self._lock = threading.Lock()  # in-thread pages may render concurrently
        self._needed: dict[int, datetime] = {}

    def shown(self, needing: Iterable[int], now: datetime) -> set[int]:
        """The kiosk ids to show at `now`: those needing attention, and those that did
        within the hold (ids of deleted kiosks expire with it)."""
        cutoff = now - self._hold
        with self._lock:
            for kiosk_id in needing:
                last = self._needed.get(kiosk_id)
                self._needed[kiosk_id] = now if last is None else max(last, now)
            self._needed = {k: t for k, t in self._needed.items() if t > cutoff}
            return set(self._needed)


@dataclass
class LocationTally:
    """Per-location roll-ups over every kiosk (attention mode's fleet-wide families)."""

    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)
    eligible: Counter[str] = field(default_factory=Counter)
    eligible_online: Counter[str] = field(default_factory=Counter)
    versions: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Sums of the per-kiosk history counters, in microseconds and outages.
    downtime_us: Counter[str] = field(default_factory=Counter)
    observed_us: Counter[str] = field(default_factory=Counter)
    outages: Counter[str] = field(default_factory=Counter)
