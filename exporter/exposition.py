"""The /metrics page: service metrics through prometheus_client, fleet families rendered fast.

prometheus_client formats ~7 us a sample, ~4 s for 100,000 kiosks x 6 series; the fleet
families here share each kiosk's escaped identity labels across its series instead.
"""

from __future__ import annotations

import gc
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client import exposition as text_format
from prometheus_client.openmetrics import exposition as openmetrics_format

from .collector import (
    FleetCollector,
    FleetFamily,
    Judged,
    KioskFamily,
    Pairs,
    Snapshot,
    identity,
)

GZIP_LEVEL = 1


@dataclass(frozen=True)
class Format:
    content_type: str
    openmetrics: bool


TEXT = Format(text_format.CONTENT_TYPE_LATEST, openmetrics=False)
OPENMETRICS = Format(openmetrics_format.CONTENT_TYPE_LATEST, openmetrics=True)


def negotiate(accept: str | None) -> Format:
    """OpenMetrics when the scraper lists it (as Prometheus does), text otherwise."""
    for part in (accept or "").split(","):
        if part.split(";", 1)[0].strip().lower() == "application/openmetrics-text":
            return OPENMETRICS
    return TEXT


def escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def escape_label_value(value: str) -> str:
    """The escaping both the text format and OpenMetrics require."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def label_text(pairs: Pairs) -> str:
    return ",".join(f'{k}="{escape_label_value(v)}"' for k, v in pairs)


class FleetText:
    """Formats a Snapshot as exposition text, every family from the one table in collector.py.

    Two caches, both keyed by what they format, so nothing ever needs invalidating (a kiosk
    renamed by the CLI or a heartbeat taken by another replica simply misses):
    - each kiosk's escaped identity labels, shared by all its series;
    - each family's lines of the previous scrape: a kiosk whose value (and labels) did not
      change reuses its line. Between two scrapes most kiosks keep their version, activity
      and status, so only the ages and the kiosks that sent a heartbeat are formatted anew.
    """

    def __init__(self, families: Sequence[KioskFamily | FleetFamily]) -> None:
        self._families = families
        self._identities: dict[tuple[int, str, str], str] = {}
        self._previous: dict[str, _Lines] = {}

    def render(self, snapshot: Snapshot, openmetrics: bool) -> str:
        identities = self._identity_texts(snapshot)
        lines: list[str] = []
        for family in self._families:
            name, kind = family.name, "counter" if family.kind == "counter" else "gauge"
            if family.kind == "info" and openmetrics:
                name, kind = name.removesuffix("_info"), "info"
            if kind == "counter" and openmetrics:
                name = name.removesuffix("_total")
            lines.append(f"# HELP {name} {escape_help(family.documentation)}")
            lines.append(f"# TYPE {name} {kind}")
            if isinstance(family, FleetFamily):
                lines.extend(_fleet_lines(family, snapshot))
            else:
                formatted = _kiosk_lines(
                    family, snapshot.kiosks, identities, self._previous.get(family.name)
                )
                self._previous[family.name] = formatted
                lines.extend(filter(None, formatted.lines))
        lines.append("")
        return "\n".join(lines)

    def _identity_texts(self, snapshot: Snapshot) -> list[str]:
        previous, current = self._identities, {}
        texts = []
        for judged in snapshot.kiosks:
            kiosk = judged.kiosk
            key = (kiosk.id, kiosk.name, kiosk.location)
            text = previous.get(key)
            if text is None:
                text = label_text(identity(kiosk))
            current[key] = text
            texts.append(text)
        self._identities = current  # kiosks gone from the fleet leave the cache here
        return texts


@dataclass(frozen=True)
class _Lines:
    """One family's lines of a scrape, aligned with the kiosks (None: no sample)."""

    identities: list[str]
    keys: list[object]  # what each line formats besides the identity
    lines: list[str | None]


def _fleet_lines(family: FleetFamily, snapshot: Snapshot) -> list[str]:
    name = family.name
    return [
        f"{name}{{{label_text(pairs)}}} {value!r}" if pairs else f"{name} {value!r}"
        for pairs, value in family.samples(snapshot)
    ]


def _kiosk_lines(
    family: KioskFamily, kiosks: list[Judged], identities: list[str], previous: _Lines | None
) -> _Lines:
    value, details = family.value, family.details
    if details is None:
        keys: list[object] = [value(judged) for judged in kiosks]
        head = family.name + "{"
        make = lambda ident, v: None if v is None else f"{head}{ident}}} {v!r}"  # noqa: E731
    else:
        texts: dict[Pairs, str] = {}  # a fleet shares a handful of versions and devices
        keys = [(value(judged), _cached_text(texts, details(judged))) for judged in kiosks]
        head = family.name + "{"
        make = lambda ident, k: None if k[0] is None else f"{head}{ident},{k[1]}}} {k[0]!r}"  # noqa: E731
    if previous is None or len(previous.keys) != len(keys):
        return _Lines(identities, keys, [make(i, k) for i, k in zip(identities, keys, strict=True)])
    lines = [
        line if (key == old and ident is old_ident) else make(ident, key)
        for ident, key, old_ident, old, line in zip(
            identities, keys, previous.identities, previous.keys, previous.lines, strict=True
        )
    ]
    return _Lines(identities, keys, lines)


def _cached_text(texts: dict[Pairs, str], pairs: Pairs) -> str:
    text = texts.get(pairs)
    if text is None:
        text = texts[pairs] = label_text(pairs)
    return text


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a scrape allocates ~1M short-lived objects.

    Measured at 100,000 kiosks: 0.7 s of CPU with the collector paused, 1.6-2.3 s without,
    because each full collection walks every kiosk record still alive. Nothing here forms
    reference cycles, so nothing waits on the collector; the previous state is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class PageRequest:
    """What one scrape asks of a fleet renderer: plain values, so it can cross a pipe."""

    openmetrics: bool
    now: datetime
    service: bytes  # the service's own metrics, already rendered by the request's process
    gzip: bool


class FleetPage(Protocol):
    """Whatever assembles the page: in this thread (tests, small fleets) or a renderer process."""

    def page(self, request: PageRequest) -> bytes: ...

    def close(self) -> None: ...


class LocalFleetPage:
    """The fleet read and formatted in the calling thread."""

    def __init__(self, collector: FleetCollector) -> None:
        self._collector = collector
        self._text = FleetText(collector.families_wanted)

    def page(self, request: PageRequest) -> bytes:
        with gc_paused():
            snapshot = self._collector.snapshot(request.now)
            fleet = self._text.render(snapshot, request.openmetrics).encode("utf-8")
            del snapshot
            return assemble(request, fleet)

    def close(self) -> None:
        """Nothing to release: the store belongs to the caller."""


def assemble(request: PageRequest, fleet: bytes) -> bytes:
    """Service metrics, then the fleet; gzip (level 1) when the scraper accepts it."""
    head = request.service
    parts = (
        [head.removesuffix(b"# EOF\n"), fleet, b"# EOF\n"] if request.openmetrics else [head, fleet]
    )
    if not request.gzip:
        return b"".join(parts)
    # Level 1: 58 MB -> 4.8 MB for 100,000 kiosks in 0.14 s; level 6 saves 1.2 MB more for
    # twice the CPU (docs/performance.md). mtime=0 keeps equal pages byte-equal.
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join([compressor.compress(part) for part in parts] + [compressor.flush()])


def service_text(registry: CollectorRegistry, openmetrics: bool) -> bytes:
    if openmetrics:
        return openmetrics_format.generate_latest(registry)  # type: ignore[no-any-return,no-untyped-call]
    return text_format.generate_latest(registry)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """gzip when listed without q=0 (Prometheus sends `Accept-Encoding: gzip`)."""
    for part in (accept_encoding or "").split(","):
        coding, _, params = part.partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            quality = params.strip().lower().removeprefix("q=")
            try:
                return not params.strip() or float(quality) > 0
            except ValueError:
                return False
    return False


class SingleFlight:
    """Concurrent callers for the same key share one computation.

    Two HA Prometheus servers scrape at nearly the same moment: one database read and one
    render serve both, and no result is older than the request that asked for it.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._flights: dict[object, _Flight] = {}

    def run(self, key: object, compute: Callable[[], bytes]) -> bytes:
        with self._guard:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            return flight.wait()
        try:
            flight.result = compute()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._guard:
                del self._flights[key]
            flight.done.set()
        return flight.result


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: bytes = b""
        self.error: BaseException | None = None

    def wait(self) -> bytes:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result
