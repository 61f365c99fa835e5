"""Fleet metrics: every family declared once in FAMILIES, each kiosk judged by the one rule.

Adding a family is a local change: one KioskFamily (a value per judged kiosk, None for "no
sample") or FleetFamily (samples over the whole fleet) in FAMILIES below. A family that needs
a fact the kiosk record does not carry gets it as a field of Judged, set in `judge_fleet()`.
Both renderers read the same table: the fast one in exposition.py that serves /metrics, and
`to_client_family()` for prometheus_client (tests check they agree).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, NamedTuple

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from . import metrics as names
from .attention import (
    ATTENTION,
    FLAPPING_WINDOW,
    AttentionMemory,
    LocationTally,
    counts_for_availability,
    needs_attention,
)
from .clock import Clock
from .config import Settings
from .expected import FleetExpectation, KioskExpectation
from .history import HistoryService, Totals
from .records import KioskRecord, Vitals
from .status import KioskStatus, classify, heartbeat_age, is_outdated
from .store import Store
from .vitals import is_fresh

Pairs = tuple[tuple[str, str], ...]


class Judged(NamedTuple):
    """One kiosk judged at the scrape's instant (a NamedTuple: a scrape builds 100,000)."""

    kiosk: KioskRecord
    status: KioskStatus
    age_seconds: float | None
    outdated: bool | None  # None: no latest_app_version, or a version that cannot be compared
    expected: KioskExpectation  # the expected-hours rule's verdict at the same instant
    # The vitals snapshot while younger than the online threshold, else None: a dead
    # tablet's last battery reading is not its battery now.
    vitals: Vitals | None = None
    totals: Totals | None = None  # outage history counters; None: never observed
    # Outages that began to count within the last hour (attention mode only; else None).
    recent_outages: int | None = None


@dataclass(frozen=True)
class Snapshot:
    """The fleet read and judged at one instant; what every renderer formats."""

    now: datetime
    kiosks: list[Judged]  # the kiosks with per-kiosk series: all, or attention's selection
    fleet: list[Judged] | None = None  # every kiosk when `kiosks` is a selection
    tally: LocationTally | None = None  # attention mode's per-location roll-ups

    @property
    def everyone(self) -> list[Judged]:
        """Every kiosk, for the fleet-wide families."""
        return self.kiosks if self.fleet is None else self.fleet


@dataclass(frozen=True)
class KioskFamily:
    """A family with one sample per kiosk, labelled with the kiosk's identity (+ `details`)."""

    name: str
    documentation: str
    value: Callable[[Judged], float | None]  # None: this kiosk has no sample
    kind: str = "gauge"  # "gauge", "counter" (name ending _total) or "info"
    details: Callable[[Judged], Pairs] | None = None  # labels after the identity ones
    wanted: Callable[[Settings], bool] = lambda settings: True
    # What the value is read from, when a kiosk without it (None) has no sample: the
    # renderer reads it once per scrape for all the families that share it, and skips those
    # families when no kiosk has it (a fleet without vitals: 12 families, ~0.1 s a scrape
    # at 100,000 kiosks).
    source: Callable[[Judged], object] | None = None


@dataclass(frozen=True)
class FleetFamily:
    """A family computed over the whole fleet (counts, roll-ups)."""

    name: str
    documentation: str
    samples: Callable[[Snapshot], list[tuple[Pairs, float]]]
    kind: str = "gauge"
    wanted: Callable[[Settings], bool] = lambda settings: True


def _last_heartbeat(j: Judged) -> float | None:
    at = j.kiosk.last_heartbeat_at
    return None if at is None else at.timestamp()


def _float_or_none(value: int | None) -> float | None:
    return None if value is None else float(value)


def _fleet_counts(snapshot: Snapshot) -> list[tuple[Pairs, float]]:
    counts = dict.fromkeys(KioskStatus, 0)
    for judged in snapshot.everyone:
        counts[judged.status] += 1
    return [((("status", s.value),), float(n)) for s, n in counts.items()]


def _vital(field: str, divisor: float) -> Callable[[Judged], float | None]:
    index = Vitals._fields.index(field)

    def value(j: Judged) -> float | None:
        reading = None if j.vitals is None else j.vitals[index]
        return None if reading is None else reading / divisor

    return value


def _vitals_wanted(settings: Settings) -> bool:
    return settings.metrics_vitals


def _attention(settings: Settings) -> bool:
    return settings.metrics_per_kiosk == ATTENTION


def _every_kiosk(settings: Settings) -> bool:
    return settings.metrics_per_kiosk != ATTENTION


def _rollup(
    field: str, label_names: tuple[str, ...], divisor: float
) -> Callable[[Snapshot], list[tuple[Pairs, float]]]:
    """Samples of one LocationTally counter, by location (and status or version)."""

    def samples(snapshot: Snapshot) -> list[tuple[Pairs, float]]:
        if snapshot.tally is None:
            return []
        counts: Mapping[Any, int] = getattr(snapshot.tally, field)
        return [
            (
                tuple(zip(label_names, key if isinstance(key, tuple) else (key,), strict=True)),
                n / divisor,
            )
            for key, n in sorted(counts.items())
        ]

    return samples


# Attention mode (exporter/attention.py): every kiosk counted per location. The history
# counters' sums stand in for the per-kiosk counters, which a kiosk entering and leaving
# the page would break (increase() reads a series that comes back as a reset).
# (name, help, LocationTally field, labels after location, kind, divisor to base unit)
_ROLLUPS = (
    (
        names.LOCATION_KIOSKS,
        "Kiosks per location and status (every kiosk, shown on the page or not).",
        "statuses",
        ("status",),
        "gauge",
        1,
    ),
    (
        names.LOCATION_ELIGIBLE,
        "Kiosks that count for availability: expected online, and online or offline while"
        " expected for at least online_threshold_seconds.",
        "eligible",
        (),
        "gauge",
        1,
    ),
    (
        names.LOCATION_ELIGIBLE_ONLINE,
        "Kiosks expected online that are online.",
        "eligible_online",
        (),
        "gauge",
        1,
    ),
    (
        names.LOCATION_VERSIONS,
        "Kiosks per location and app version (empty: none reported).",
        "versions",
        ("app_version",),
        "gauge",
        1,
    ),
    (
        names.LOCATION_OFFLINE_SECONDS,
        "Sum of kiosk_offline_seconds_total over the location's kiosks; goes down when a"
        " kiosk is deleted or moves away (a counter reset to Prometheus).",
        "downtime_us",
        (),
        "counter",
        1e6,
    ),
    (
        names.LOCATION_OBSERVED_SECONDS,
        "Sum of kiosk_observed_seconds_total over the location's kiosks (same caveat).",
        "observed_us",
        (),
        "counter",
        1e6,
    ),
    (
        names.LOCATION_OUTAGES,
        "Sum of kiosk_outages_total over the location's kiosks (same caveat).",
        "outages",
        (),
        "counter",
        1,
    ),
)


def _rollup_families() -> tuple[FleetFamily, ...]:
    return tuple(
        FleetFamily(
            name,
            documentation,
            _rollup(field, ("location", *labels), divisor),
            kind=kind,
            wanted=_attention,
        )
        for name, documentation, field, labels, kind, divisor in _ROLLUPS
    )


# Device vitals (issue 16), in base units; a value the fresh snapshot does not know has no
# sample. (name, help, Vitals field, divisor to the base unit).
_VITAL_GAUGES = (
    (names.BATTERY_RATIO, "Battery charge, 0..1, as last reported.", "battery_percent", 100),
    (names.BATTERY_CHARGING, "1 if the tablet is on power.", "battery_charging", 1),
    (names.STORAGE_FREE, "Free bytes of the app data partition.", "storage_free_bytes", 1),
    (names.STORAGE_SIZE, "Size in bytes of the app data partition.", "storage_total_bytes", 1),
    (names.MEMORY_FREE, "Free (available) RAM in bytes.", "memory_free_bytes", 1),
    (names.MEMORY_SIZE, "Total RAM in bytes.", "memory_total_bytes", 1),
    (
        names.BOOT_TIME,
        "When the tablet booted (Unix s); changes only on a reboot, so changes() counts them.",
        "boot_time",
        1,
    ),
    (names.WIFI_SIGNAL, "Wi-Fi signal in dBm, when on Wi-Fi.", "wifi_signal_dbm", 1),
    (
        names.APP_IN_FOREGROUND,
        "1 if the kiosk app is what the screen shows.",
        "app_in_foreground",
        1,
    ),
    (names.SCREEN_ON, "1 if the display is on.", "screen_on", 1),
)


_VITALS = attrgetter("vitals")


@functools.lru_cache(maxsize=4096)
def _info_labels(app_version: str | None, device_info: str | None) -> Pairs:
    """One tuple per version and device, shared by the kiosks that have them: a fleet has a
    handful, and the renderer compares identical tuples without walking them."""
    return (("app_version", app_version or ""), ("device_info", device_info or ""))


def _vital_families() -> tuple[KioskFamily, ...]:
    gauges = tuple(
        KioskFamily(
            name, documentation, _vital(field, divisor), wanted=_vitals_wanted, source=_VITALS
        )
        for name, documentation, field, divisor in _VITAL_GAUGES
    )
    network = KioskFamily(
        names.NETWORK_INFO,
        "The link the tablet uses; always 1.",
        lambda j: None if j.vitals is None or j.vitals.network is None else 1.0,
        kind="info",
        # Asked of every kiosk by the fast renderer, sample or not: never None.
        details=lambda j: (("network", (j.vitals and j.vitals.network) or ""),),
        wanted=_vitals_wanted,
        source=_VITALS,
    )
    return (*gauges, network)


FAMILIES: tuple[KioskFamily | FleetFamily, ...] = (
    KioskFamily(
        names.LAST_HEARTBEAT,
        "Server receive time of the last heartbeat (Unix s).",
        _last_heartbeat,
    ),
    KioskFamily(
        names.HEARTBEAT_AGE,
        "Seconds since the last heartbeat at scrape time.",
        lambda j: j.age_seconds,
    ),
    KioskFamily(
        names.ONLINE,
        "1 if active with a heartbeat younger than the threshold.",
        lambda j: 1.0 if j.status is KioskStatus.ONLINE else 0.0,
    ),
    KioskFamily(
        names.ACTIVE,
        "1 if the kiosk is active; deactivated kiosks never page.",
        lambda j: 1.0 if j.kiosk.is_active else 0.0,
    ),
    KioskFamily(
        names.INFO,
        "Kiosk app version and device description; always 1.",
        lambda j: 1.0,
        kind="info",
        details=lambda j: _info_labels(j.kiosk.app_version, j.kiosk.device_info),
    ),
    FleetFamily(names.FLEET, "Number of kiosks per status.", _fleet_counts),
    KioskFamily(
        names.OFFLINE_WHILE_EXPECTED,
        "Seconds offline while expected online (from the last heartbeat, the start of the"
        " expected time or the service's return, whichever came last); 0 when online or"
        " not expected; absent for never-connected kiosks.",
        lambda j: _float_or_none(j.expected.offline_while_expected_seconds),
    ),
    KioskFamily(
        names.EXPECTED_ONLINE,
        "1 if the kiosk is expected online now: active, inside its schedule's hours, not"
        " in maintenance.",
        lambda j: 1.0 if j.expected.expectation.expected_online else 0.0,
    ),
    KioskFamily(
        names.MAINTENANCE,
        "1 if the kiosk is in a maintenance window now.",
        lambda j: 1.0 if j.expected.expectation.in_maintenance else 0.0,
    ),
    KioskFamily(
        names.OUTDATED,
        "1 if the app version is older than latest_app_version.",
        lambda j: None if j.outdated is None else 1.0 if j.outdated else 0.0,
        wanted=lambda settings: settings.latest_app_version is not None,
    ),
    # The outage history's counters (exporter/history.py), from persisted times only.
    KioskFamily(
        names.OFFLINE_SECONDS,
        "Seconds the status rule said offline (outage downtime), from persisted times.",
        lambda j: None if j.totals is None else j.totals.downtime_us / 1e6,
        kind="counter",
        wanted=_every_kiosk,
    ),
    KioskFamily(
        names.OBSERVED_SECONDS,
        "Seconds observed since the first heartbeat (active, expected, service listening).",
        lambda j: None if j.totals is None else j.totals.observed_us / 1e6,
        kind="counter",
        wanted=_every_kiosk,
    ),
    KioskFamily(
        names.OUTAGES,
        "Outages that began to count, the ongoing one included.",
        lambda j: None if j.totals is None else float(j.totals.outages),
        kind="counter",
        wanted=_every_kiosk,
    ),
    KioskFamily(
        names.RECENT_OUTAGES,
        "Outages that began to count within the last hour; in attention mode only, where it"
        " stands in for increases of kiosk_outages_total (KioskFlapping).",
        lambda j: _float_or_none(j.recent_outages),
        wanted=_attention,
    ),
    *_vital_families(),
    *_rollup_families(),
)


def identity(kiosk: KioskRecord) -> Pairs:
    """The labels that name a kiosk on every per-kiosk series."""
    return (("kiosk_id", str(kiosk.id)), ("kiosk_name", kiosk.name), ("location", kiosk.location))


def judge_fleet(
    kiosks: Sequence[KioskRecord],
    now: datetime,
    threshold: float,
    latest: str | None,
    expected: FleetExpectation,
    totals: Mapping[int, Totals] | None = None,
    recent: Mapping[int, int] | None = None,
) -> list[Judged]:
    """Every kiosk through the one status rule and the expected-hours rule, at one instant;
    `totals` are the outage history's counters by kiosk id, `recent` the outages of the
    last hour (attention mode; None leaves them unknown)."""
    totals = totals or {}
    verdicts: dict[str | None, bool | None] = {}
    judged = []
    # Names bound once (a global lookup per kiosk and call adds up over 100,000 kiosks);
    # tuple.__new__ because NamedTuple's own __new__ is a Python call (~30 ms per 100,000).
    new, age_of, status_of, expectation_of = tuple.__new__, heartbeat_age, classify, expected.judge
    for kiosk in kiosks:
        seconds = age_of(kiosk.last_heartbeat_at, now)
        outdated = None
        if latest is not None:
            version = kiosk.app_version
            if version not in verdicts:
                verdicts[version] = is_outdated(version, latest)
            outdated = verdicts[version]
        status = status_of(kiosk.is_active, seconds, threshold)
        vitals = kiosk.vitals
        fresh = vitals if vitals is not None and is_fresh(vitals, now, threshold) else None
        judged.append(
            new(
                Judged,
                (
                    kiosk,
                    status,
                    seconds,
                    outdated,
                    expectation_of(kiosk, status),
                    fresh,
                    totals.get(kiosk.id),
                    None if recent is None else recent.get(kiosk.id, 0),
                ),
            )
        )
    return judged


def tally_locations(fleet: Sequence[Judged], threshold: float) -> LocationTally:
    """Attention mode's roll-ups: every kiosk counted in its location (zeros included, so a
    location whose kiosks are all fine still has its samples)."""
    tally = LocationTally()
    for judged in fleet:
        location = judged.kiosk.location
        if location not in tally.eligible:
            for status in KioskStatus:
                tally.statuses[(location, status.value)] += 0
            tally.eligible[location] += 0
            tally.eligible_online[location] += 0
        tally.statuses[(location, judged.status.value)] += 1
        tally.versions[(location, judged.kiosk.app_version or "")] += 1
        if counts_for_availability(judged.status, judged.expected, threshold):
            tally.eligible[location] += 1
            tally.eligible_online[location] += int(judged.status is KioskStatus.ONLINE)
        if judged.totals is not None:
            tally.downtime_us[location] += judged.totals.downtime_us
            tally.observed_us[location] += judged.totals.observed_us
            tally.outages[location] += judged.totals.outages
    return tally


class FleetCollector(Collector):
    """A prometheus_client Collector whose families are rebuilt from the database each scrape.

    Nothing about the fleet is kept between scrapes, so a removed or renamed kiosk is gone
    from the next one.
    """

    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        self._store = store
        self._threshold = settings.online_threshold_seconds
        self._latest = settings.latest_app_version
        self._clock = clock
        self._history = HistoryService(store, settings, clock)
        self.families_wanted = [f for f in FAMILIES if f.wanted(settings)]
        self._attention = AttentionMemory() if _attention(settings) else None
        self._vitals_exported = settings.metrics_vitals

    def snapshot(self, now: datetime | None = None) -> Snapshot:
        """Read every kiosk (the session ends here) and judge each at `now`."""
        now = self._clock() if now is None else now
        kiosks = self._store.fleet_kiosks()
        offline_before = now - timedelta(seconds=self._threshold)
        facts = self._store.expectation_facts(now, offline_before=offline_before)
        rule = FleetExpectation(facts, now)
        totals = self._history.counters(kiosks)
        recent = self._recent_outages(kiosks, now)
        judged = judge_fleet(kiosks, now, self._threshold, self._latest, rule, totals, recent)
        return Snapshot(now, judged) if self._attention is None else self._select(now, judged)

    def _recent_outages(self, kiosks: list[KioskRecord], now: datetime) -> dict[int, int] | None:
        """Attention mode: outages per kiosk that began to count within FLAPPING_WINDOW, as
        the history judges them (a night or a restart of the service is none)."""
        if self._attention is None:
            return None
        return self._history.outages_started(kiosks, now - FLAPPING_WINDOW, now)

    def _select(self, now: datetime, judged: list[Judged]) -> Snapshot:
        """Attention mode: per-kiosk series for the kiosks attention.py picks (and those it
        picked within its hold); every kiosk counts in the per-location roll-ups."""
        assert self._attention is not None
        needing = [
            j.kiosk.id
            for j in judged
            if needs_attention(
                status=j.status,
                expected=j.expected,
                outdated=j.outdated,
                # No vitals exported, no vitals alert: no reason to show the kiosk for them.
                vitals=j.vitals if self._vitals_exported else None,
                recent_outages=j.recent_outages or 0,
                now=now,
            )
        ]
        shown = self._attention.shown(needing, now)
        selected = [j for j in judged if j.kiosk.id in shown]
        return Snapshot(now, selected, judged, tally_locations(judged, self._threshold))

    def describe(self) -> Iterator[Metric]:
        """Registering must not touch the database: describe from names alone."""
        for family in self.families_wanted:
            yield to_client_family(Family(family.name, family.documentation, family.kind))

    def collect(self) -> Iterator[Metric]:
        for family in self.families():
            yield to_client_family(family)

    def families(self, snapshot: Snapshot | None = None) -> list[Family]:
        """The wanted families as plain data (the generic path; exposition.py has the fast one)."""
        snapshot = self.snapshot() if snapshot is None else snapshot
        identities = [identity(judged.kiosk) for judged in snapshot.kiosks]
        return [plain_family(family, snapshot, identities) for family in self.families_wanted]


@dataclass
class Family:
    """A metric family as plain data, for prometheus_client and tests."""

    name: str
    documentation: str
    kind: str  # "gauge", "counter" or "info"
    samples: list[tuple[Pairs, float]] = field(default_factory=list)


def plain_family(
    family: KioskFamily | FleetFamily, snapshot: Snapshot, identities: list[Pairs]
) -> Family:
    if isinstance(family, FleetFamily):
        return Family(family.name, family.documentation, family.kind, family.samples(snapshot))
    samples = []
    for judged, labels in zip(snapshot.kiosks, identities, strict=True):
        value = family.value(judged)
        if value is not None:
            extra = family.details(judged) if family.details is not None else ()
            samples.append((labels + extra, value))
    return Family(family.name, family.documentation, family.kind, samples)


def to_client_family(family: Family) -> Metric:
    """The same family as prometheus_client objects, for registries and tests."""
    if family.kind == "info":
        info = InfoMetricFamily(family.name.removesuffix("_info"), family.documentation)
        for labels, _ in family.samples:
            info.add_metric([], dict(labels))
        return info
    label_names = [k for k, _ in family.samples[0][0]] if family.samples else None
    if family.kind == "counter":
        counter = CounterMetricFamily(family.name, family.documentation, labels=label_names)
        for labels, value in family.samples:
            counter.add_metric([v for _, v in labels], value)
        return counter
    gauge = GaugeMetricFamily(family.name, family.documentation, labels=label_names)
    for labels, value in family.samples:
        gauge.add_metric([v for _, v in labels], value)
    return gauge
