"""Fleet metrics: every family declared once in FAMILIES, each kiosk judged by the one rule.

Adding a family is a local change: one KioskFamily (a value per judged kiosk, None for "no
sample") or FleetFamily (samples over the whole fleet) in FAMILIES below. A family that needs
a fact the kiosk record does not carry gets it as a field of Judged, set in `judge_fleet()`.
Both renderers read the same table: the fast one in exposition.py that serves /metrics, and
`to_client_family()` for prometheus_client (tests check they agree).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from . import metrics as names
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


@dataclass(frozen=True)
class Snapshot:
    """The fleet read and judged at one instant; what every renderer formats."""

    now: datetime
    kiosks: list[Judged]


@dataclass(frozen=True)
class KioskFamily:
    """A family with one sample per kiosk, labelled with the kiosk's identity (+ `details`)."""

    name: str
    documentation: str
    value: Callable[[Judged], float | None]  # None: this kiosk has no sample
    kind: str = "gauge"  # "gauge", "counter" (name ending _total) or "info"
    details: Callable[[Judged], Pairs] | None = None  # labels after the identity ones
    wanted: Callable[[Settings], bool] = lambda settings: True


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
    for judged in snapshot.kiosks:
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


def _vital_families() -> tuple[KioskFamily, ...]:
    gauges = tuple(
        KioskFamily(name, documentation, _vital(field, divisor), wanted=_vitals_wanted)
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
        details=lambda j: (
            ("app_version", j.kiosk.app_version or ""),
            ("device_info", j.kiosk.device_info or ""),
        ),
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
    ),
    KioskFamily(
        names.OBSERVED_SECONDS,
        "Seconds observed since the first heartbeat (active, expected, service listening).",
        lambda j: None if j.totals is None else j.totals.observed_us / 1e6,
        kind="counter",
    ),
    KioskFamily(
        names.OUTAGES,
        "Outages that began to count, the ongoing one included.",
        lambda j: None if j.totals is None else float(j.totals.outages),
        kind="counter",
    ),
    *_vital_families(),
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
) -> list[Judged]:
    """Every kiosk through the one status rule and the expected-hours rule, at one instant;
    `totals` are the outage history's counters by kiosk id."""
    totals = totals or {}
    verdicts: dict[str | None, bool | None] = {}
    judged = []
    for kiosk in kiosks:
        seconds = heartbeat_age(kiosk.last_heartbeat_at, now)
        outdated = None
        if latest is not None:
            version = kiosk.app_version
            if version not in verdicts:
                verdicts[version] = is_outdated(version, latest)
            outdated = verdicts[version]
        status = classify(kiosk.is_active, seconds, threshold)
        fresh = kiosk.vitals if is_fresh(kiosk.vitals, now, threshold) else None
        judged.append(
            Judged(
                kiosk,
                status,
                seconds,
                outdated,
                expected.judge(kiosk, status),
                fresh,
                totals.get(kiosk.id),
            )
        )
    return judged


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

    def snapshot(self, now: datetime | None = None) -> Snapshot:
        """Read every kiosk (the session ends here) and judge each at `now`."""
        now = self._clock() if now is None else now
        kiosks = self._store.list_kiosks()
        offline_before = now - timedelta(seconds=self._threshold)
        facts = self._store.expectation_facts(now, offline_before=offline_before)
        rule = FleetExpectation(facts, now)
        totals = self._history.counters(now)
        return Snapshot(now, judge_fleet(kiosks, now, self._threshold, self._latest, rule, totals))

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
