"""Fleet metrics, read from the database at scrape time and judged by the one status rule."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from . import metrics as names
from .clock import Clock
from .config import Settings
from .status import KioskStatus, is_outdated, judge
from .store import Store

Labels = tuple[tuple[str, str], ...]


@dataclass
class Family:
    """A metric family as plain data: what samples exist is decided once, here."""

    name: str
    documentation: str
    kind: str  # "gauge" or "info"
    samples: list[tuple[Labels, float]] = field(default_factory=list)


class FleetCollector(Collector):
    """A prometheus_client Collector whose families are rebuilt from the database each scrape.

    Nothing is kept between scrapes, so a removed or renamed kiosk is gone from the next one.
    """

    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        self._store = store
        self._threshold = settings.online_threshold_seconds
        self._latest = settings.latest_app_version
        self._clock = clock

    def describe(self) -> Iterator[Metric]:
        """Registering must not touch the database: describe from names alone."""
        for family in self._empty_families():
            yield _to_client_family(family)

    def collect(self) -> Iterator[Metric]:
        for family in self.families():
            yield _to_client_family(family)

    def families(self) -> list[Family]:
        """Read every kiosk (the session closes before any sample is yielded) and judge it."""
        now = self._clock()
        kiosks = self._store.list_kiosks()
        last, age, online, active, info, outdated, fleet = self._empty_families()
        counts = dict.fromkeys(KioskStatus, 0)
        for kiosk in kiosks:
            state = judge(
                is_active=kiosk.is_active,
                last_heartbeat_at=kiosk.last_heartbeat_at,
                now=now,
                online_threshold_seconds=self._threshold,
            )
            counts[state.status] += 1
            identity: Labels = (
                ("kiosk_id", str(kiosk.id)),
                ("kiosk_name", kiosk.name),
                ("location", kiosk.location),
            )
            if kiosk.last_heartbeat_at is not None and state.age_seconds is not None:
                last.samples.append((identity, kiosk.last_heartbeat_at.timestamp()))
                age.samples.append((identity, state.age_seconds))
            online.samples.append((identity, 1.0 if state.is_online else 0.0))
            active.samples.append((identity, 1.0 if kiosk.is_active else 0.0))
            info.samples.append(
                (
                    (
                        *identity,
                        ("app_version", kiosk.app_version or ""),
                        ("device_info", kiosk.device_info or ""),
                    ),
                    1.0,
                )
            )
            if self._latest is not None:
                verdict = is_outdated(kiosk.app_version, self._latest)
                if verdict is not None:
                    outdated.samples.append((identity, 1.0 if verdict else 0.0))
        fleet.samples = [((("status", s.value),), float(n)) for s, n in counts.items()]
        families = [last, age, online, active, info, fleet]
        return [*families, outdated] if self._latest is not None else families

    @staticmethod
    def _empty_families() -> list[Family]:
        return [
            Family(
                names.LAST_HEARTBEAT,
                "Server receive time of the kiosk's last heartbeat (Unix seconds).",
                "gauge",
            ),
            Family(
                names.HEARTBEAT_AGE,
                "Seconds since the kiosk's last heartbeat at scrape time.",
                "gauge",
            ),
            Family(
                names.ONLINE,
                "1 if the kiosk is active and its last heartbeat is younger than the threshold.",
                "gauge",
            ),
            Family(
                names.ACTIVE, "1 if the kiosk is active; deactivated kiosks never page.", "gauge"
            ),
            Family(names.INFO, "Kiosk app version and device description; always 1.", "info"),
            Family(
                names.OUTDATED,
                "1 if the kiosk's app version is older than latest_app_version.",
                "gauge",
            ),
            Family(names.FLEET, "Number of kiosks per status.", "gauge"),
        ]


def _to_client_family(family: Family) -> Metric:
    metric: GaugeMetricFamily | InfoMetricFamily
    if family.kind == "info":
        metric = InfoMetricFamily(family.name.removesuffix("_info"), family.documentation)
        for labels, _ in family.samples:
            metric.add_metric([], dict(labels))
        return metric
    metric = GaugeMetricFamily(
        family.name,
        family.documentation,
        labels=[k for k, _ in family.samples[0][0]] if family.samples else None,
    )
    for labels, value in family.samples:
        metric.add_metric([v for _, v in labels], value)
    return metric
