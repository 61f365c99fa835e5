"""The /metrics page: service metrics through prometheus_client, fleet families rendered fast.

prometheus_client formats ~7 us a sample, ~4 s for 100,000 kiosks x 6 series; the fleet
families here share each kiosk's escaped identity labels across its series instead.
"""

from __future__ import annotations

import gc
import io
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import compress
from operator import attrgetter, ne, or_
from typing import BinaryIO, Protocol

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
    """Formats a Snapshot as exposition text (UTF-8), every family from the table in collector.py.

    What it keeps between scrapes is keyed by what it formats, so nothing ever needs
    invalidating (a kiosk renamed by the CLI or a heartbeat taken by another replica simply
    differs from what was kept):
    - each kiosk's escaped identity labels, shared by all its series;
    - each per-kiosk family's values, lines and encoded body of the previous scrape. A family
      whose values and kiosks all equal the previous scrape's reuses its body as it was (most
      families between two scrapes: activity, status, version, expected hours); one where a
      few kiosks changed formats only their lines; the rest (ages) are formatted anew.
    Values are compared as whole lists (C loops) rather than kiosk by kiosk in Python: at
    100,000 kiosks the per-line comparison was most of the formatting time.
    """

    def __init__(self, families: Sequence[KioskFamily | FleetFamily]) -> None:
        self._families = families
        self._identities: dict[tuple[int, str, str], str] = {}
        self._keys: list[tuple[int, str, str]] = []
        self._texts: list[str] = []
        self._previous: dict[str, _Body] = {}
        # One render at a time: what it keeps must stay aligned with one fleet (a text and an
        # OpenMetrics scrape may render at once in the serving process's threads).
        self._lock = threading.Lock()

    def render(self, snapshot: Snapshot, openmetrics: bool) -> list[bytes]:
        """The page's fleet part, as pieces to join once with the rest of the page (a
        100,000-kiosk page is ~110 MB: each copy of it costs ~0.1 s)."""
        with self._lock:
            return self._render(snapshot, openmetrics)

    def _render(self, snapshot: Snapshot, openmetrics: bool) -> list[bytes]:
        kiosks = snapshot.kiosks
        identities, moved = self._identity_texts(kiosks)
        parts: list[bytes] = []
        bodies: dict[str, _Body] = {}
        sourced: dict[Callable[[Judged], object], bool] = {}  # source -> any kiosk has it
        for family in self._families:
            parts.append(_header(family, openmetrics))
            if isinstance(family, FleetFamily):
                parts.append(_fleet_body(family, snapshot))
                continue
            previous = None if moved is None else self._previous.get(family.name)
            if family.source is not None and not _any_has(sourced, family.source, kiosks):
                body = _empty_body(len(kiosks))
            else:
                body = _kiosk_body(family, kiosks, identities, previous, moved or ())
            bodies[family.name] = body
            parts.append(body.text)
        self._previous = bodies  # families no longer rendered leave the cache here
        return parts

    def _identity_texts(self, kiosks: list[Judged]) -> tuple[list[str], list[int] | None]:
        """Each kiosk's identity labels, and where they differ from the previous scrape's:
        [] when the fleet is the same, None when it is not aligned with it (a kiosk added or
        removed: every family is formatted anew)."""
        keys = list(map(_IDENTITY_KEY, map(_KIOSK, kiosks)))
        if keys == self._keys:
            return self._texts, []
        previous, current = self._identities, {}
        texts = []
        for key, judged in zip(keys, kiosks, strict=True):
            text = previous.get(key)
            if text is None:
                text = label_text(identity(judged.kiosk))
            current[key] = text
            texts.append(text)
        moved = None
        if len(texts) == len(self._texts):
            pairs = enumerate(zip(texts, self._texts, strict=True))
            moved = [n for n, (text, before) in pairs if text is not before]
        self._identities, self._keys, self._texts = current, keys, texts
        return texts, moved


_KIOSK = attrgetter("kiosk")
_IDENTITY_KEY = attrgetter("id", "name", "location")


@dataclass(frozen=True)
class _Body:
    """One per-kiosk family's sample lines of a scrape, aligned with the kiosks."""

    values: list[float | None]  # None: no sample for that kiosk
    details: list[Pairs] | None  # the labels after the identity, for families that have them
    lines: list[str | None]
    text: bytes  # the lines, encoded, as they appear on the page


def _header(family: KioskFamily | FleetFamily, openmetrics: bool) -> bytes:
    name, kind = family.name, "counter" if family.kind == "counter" else "gauge"
    if family.kind == "info" and openmetrics:
        name, kind = name.removesuffix("_info"), "info"
    if kind == "counter" and openmetrics:
        name = name.removesuffix("_total")
    help_ = escape_help(family.documentation)
    return f"# HELP {name} {help_}\n# TYPE {name} {kind}\n".encode()


def _fleet_body(family: FleetFamily, snapshot: Snapshot) -> bytes:
    name = family.name
    return "".join(
        f"{name}{{{label_text(pairs)}}} {value!r}\n" if pairs else f"{name} {value!r}\n"
        for pairs, value in family.samples(snapshot)
    ).encode()


def _any_has(
    sourced: dict[Callable[[Judged], object], bool],
    source: Callable[[Judged], object],
    kiosks: list[Judged],
) -> bool:
    found = sourced.get(source)
    if found is None:
        read = list(map(source, kiosks))
        found = sourced[source] = read.count(None) != len(read)
    return found


def _empty_body(kiosks: int) -> _Body:
    """A family no kiosk has a sample of; the next scrape compares its values as usual."""
    return _Body([None] * kiosks, None, [None] * kiosks, b"")


def _kiosk_body(
    family: KioskFamily,
    kiosks: list[Judged],
    identities: list[str],
    previous: _Body | None,
    moved: Sequence[int],
) -> _Body:
    """The family's lines: the previous body if nothing in it changed, the previous lines
    with the changed ones replaced if few did, all formatted anew otherwise."""
    values = list(map(family.value, kiosks))
    details = None if family.details is None else list(map(family.details, kiosks))
    texts: dict[Pairs, str] = {}  # a fleet shares a handful of versions and devices
    head = family.name + "{"

    def line(n: int) -> str | None:
        value = values[n]
        if value is None:
            return None
        if details is None:
            return f"{head}{identities[n]}}} {value!r}"
        return f"{head}{identities[n]},{_cached_text(texts, details[n])}}} {value!r}"

    if previous is not None and len(previous.values) == len(values):
        if not moved and values == previous.values and details == previous.details:
            return previous
        changed = _few_changes(moved, values, previous.values, details, previous.details)
        if changed is not None:
            lines = previous.lines.copy()
            for n in changed:
                lines[n] = line(n)
            return _Body(values, details, lines, _joined(lines))
    if details is None:
        lines = [
            None if v is None else f"{head}{i}}} {v!r}"
            for i, v in zip(identities, values, strict=True)
        ]
    else:
        lines = [line(n) for n in range(len(values))]
    return _Body(values, details, lines, _joined(lines))


def _few_changes(
    moved: Sequence[int],
    values: list[float | None],
    before: list[float | None],
    details: list[Pairs] | None,
    details_before: list[Pairs] | None,
) -> set[int] | None:
    """The kiosks whose line changed, or None when more than a quarter did (the family is
    formatted anew: ages and other values that move at every scrape). Compared in C loops:
    one flag per kiosk, counted before any index is listed."""
    flags = list(map(ne, values, before))
    if details is not None and details_before is not None:
        flags = list(map(or_, flags, map(ne, details, details_before)))
    for n in moved:
        flags[n] = True
    if flags.count(True) * 4 > len(flags):
        return None
    return set(compress(range(len(flags)), flags))


def _joined(lines: list[str | None]) -> bytes:
    present = [line for line in lines if line is not None]
    return ("\n".join(present) + "\n").encode() if present else b""


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


class Page(Protocol):
    """A rendered /metrics body: its size, and a reader per response (two scrapes that
    share one render each read it from the start)."""

    def __len__(self) -> int: ...

    def open(self) -> BinaryIO: ...


@dataclass(frozen=True)
class BytesPage:
    """A page held in this process's memory."""

    data: bytes

    def __len__(self) -> int:
        return len(self.data)

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)


class FleetPage(Protocol):
    """Whatever assembles the page: in this thread (tests, small fleets) or a renderer process."""

    def page(self, request: PageRequest) -> Page: ...

    def close(self) -> None: ...


class LocalFleetPage:
    """The fleet read and formatted in the calling thread."""

    def __init__(self, collector: FleetCollector) -> None:
        self._collector = collector
        self._text = FleetText(collector.families_wanted)

    def page(self, request: PageRequest) -> BytesPage:
        return BytesPage(b"".join(self.pieces(request)))

    def pieces(self, request: PageRequest) -> list[bytes]:
        """The page in pieces, as they are written out (a 100,000-kiosk page is ~110 MB:
        joining it costs ~0.1 s of CPU that a writer of the pieces does not pay)."""
        with gc_paused():
            snapshot = self._collector.snapshot(request.now)
            fleet = self._text.render(snapshot, request.openmetrics)
            del snapshot
            return assemble(request, fleet)

    def close(self) -> None:
        """Nothing to release: the store belongs to the caller."""


def assemble(request: PageRequest, fleet: list[bytes]) -> list[bytes]:
    """Service metrics, then the fleet, in pieces; gzip (level 1) when the scraper accepts it."""
    head = request.service
    parts = (
        [head.removesuffix(b"# EOF\n"), *fleet, b"# EOF\n"]
        if request.openmetrics
        else [head, *fleet]
    )
    if not request.gzip:
        return parts
    # Level 1: 58 MB -> 4.8 MB for 100,000 kiosks in 0.14 s; level 6 saves 1.2 MB more for
    # twice the CPU (docs/performance.md). mtime=0 keeps equal pages byte-equal.
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return [compressor.compress(part) for part in parts] + [compressor.flush()]


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

    def run(self, key: object, compute: Callable[[], Page]) -> Page:
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
        self.result: Page = BytesPage(b"")
        self.error: BaseException | None = None

    def wait(self) -> Page:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result
