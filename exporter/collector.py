"""Fleet metrics, read from the database at scrape time and judged by the one status rule."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from . import metrics as names
from .clock import Clock
from .config import Settings
from .status import KioskStatus, classify, heartbeat_age, is_outdated
from .store import Store


class LabelSet:
    """Label pairs that render their exposition text once, however many series share them.

    Each kiosk's identity labels appear on five or six series; escaping them once per kiosk
    instead of once per sample is most of what makes a 100,000-kiosk scrape fit in 2 s.
    """

    __slots__ = ("_text", "pairs")

    def __init__(self, pairs: tuple[tuple[str, str], ...]) -> None:
        self.pairs = pairs
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in self.pairs)
        return self._text


def escape_label_value(value: str) -> str:
    """The escaping both the text format and OpenMetrics require."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@dataclass
class Family:
    """A metric family as plain data: which samples exist is decided once, here."""

    name: str
    documentation: str
    kind: str  # "gauge" or "info"
    samples: list[tuple[LabelSet, float]] = field(default_factory=list)


def _empty_families() -> list[Family]:
    return [
        Family(
            names.LAST_HEARTBEAT, "Server receive time of the last heartbeat (Unix s).", "gauge"
        ),
        Family(names.HEARTBEAT_AGE, "Seconds since the last heartbeat at scrape time.", "gauge"),
        Family(names.ONLINE, "1 if active with a heartbeat younger than the threshold.", "gauge"),
        Family(names.ACTIVE, "1 if the kiosk is active; deactivated kiosks never page.", "gauge"),
        Family(names.INFO, "Kiosk app version and device description; always 1.", "info"),
        Family(names.FLEET, "Number of kiosks per status.", "gauge"),
        Family(names.OUTDATED, "1 if the app version is older than latest_app_version.", "gauge"),
    ]


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
        for family in self._wanted(_empty_families()):
            yield to_client_family(family)

    def collect(self) -> Iterator[Metric]:
        for family in self.families():
            yield to_client_family(family)

    def _wanted(self, families: list[Family]) -> list[Family]:
        return families if self._latest is not None else families[:-1]

    def families(self) -> list[Family]:
        """Read every kiosk (the session ends before anything is yielded) and judge each."""
        now = self._clock()
        kiosks = self._store.list_kiosks()
        last, age, online, active, info, fleet, outdated = families = _empty_families()
        counts = dict.fromkeys(KioskStatus, 0)
        verdicts: dict[str | None, bool | None] = {}
        for kiosk in kiosks:
            seconds = heartbeat_age(kiosk.last_heartbeat_at, now)
            status = classify(kiosk.is_active, seconds, self._threshold)
            counts[status] += 1
            identity = LabelSet(
                (
                    ("kiosk_id", str(kiosk.id)),
                    ("kiosk_name", kiosk.name),
                    ("location", kiosk.location),
                )
            )
            if kiosk.last_heartbeat_at is not None and seconds is not None:
                last.samples.append((identity, kiosk.last_heartbeat_at.timestamp()))
                age.samples.append((identity, seconds))
            online.samples.append((identity, 1.0 if status is KioskStatus.ONLINE else 0.0))
            active.samples.append((identity, 1.0 if kiosk.is_active else 0.0))
            details = (
                ("app_version", kiosk.app_version or ""),
                ("device_info", kiosk.device_info or ""),
            )
            info.samples.append((LabelSet(identity.pairs + details), 1.0))
            if self._latest is not None:
                if kiosk.app_version not in verdicts:
                    verdicts[kiosk.app_version] = is_outdated(kiosk.app_version, self._latest)
                verdict = verdicts[kiosk.app_version]
                if verdict is not None:
                    outdated.samples.append((identity, 1.0 if verdict else 0.0))
        fleet.samples = [(LabelSet((("status", s.value),)), float(n)) for s, n in counts.items()]
        return self._wanted(families)


def to_client_family(family: Family) -> Metric:
    """The same family as prometheus_client objects, for registries and tests."""
    if family.kind == "info":
        info = InfoMetricFamily(family.name.removesuffix("_info"), family.documentation)
        for labels, _ in family.samples:
            info.add_metric([], dict(labels.pairs))
        return info
    label_names = [k for k, _ in family.samples[0][0].pairs] if family.samples else None
    gauge = GaugeMetricFamily(family.name, family.documentation, labels=label_names)
    for labels, value in family.samples:
        gauge.add_metric([v for _, v in labels.pairs], value)
    return gauge
