"""Outage history use cases: the outage list, the availability documents, the report.

One place turns stored facts into the documents the HTTP API and `kiosk-exporter report`
share; the arithmetic itself is exporter/outages.py's.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, NamedTuple

from .access import Caller
from .clock import Clock, format_utc, parse_utc
from .config import Settings, time_zone
from .errors import ExporterError, InvalidInput
from .exclusions import FleetExclusions, fleet_exclusions, reach
from .expected import latest_liveness
from .history_store import TotalsAdvance
from .outages import (
    ZERO,
    Outage,
    WindowSummary,
    day_bounds,
    life_downtime,
    ratio,
    seconds,
    summarize,
    window_totals,
)
from .records import KioskRecord
from .store import Store

log = logging.getLogger(__name__)
DEFAULT_WINDOW = timedelta(days=30)
MAX_DAY_BUCKETS = timedelta(days=400)
TICK_SECONDS = 5.0
PURGE_EVERY = timedelta(days=1)
ADVANCE_EVERY = timedelta(hours=1)
# How much outage history one judge_step() reads: a day (10,000 rows for 10,000 kiosks at an
# outage a day each, ~0.4 s), and serve's job stops stepping after JUDGE_BUDGET_SECONDS,
# because it runs in the liveness loop: a long job would delay the service's own record.
JUDGE_STEP = timedelta(days=1)
JUDGE_BUDGET_SECONDS = 1.0
SETTLED = timedelta(minutes=1)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_OFFSET = re.compile(r"(Z|z|[+-]\d{2}:?\d{2})$")


@dataclass(frozen=True)
class Window:
    """[since, until), both aware UTC, until never after `now`; `complete` is False when it
    reaches back before the retained history (or before the upgrade that began it)."""

    since: datetime
    until: datetime
    now: datetime
    complete: bool


def parse_moment(text: str, field: str, zone_name: str) -> datetime:
    """ISO-8601 with Z or an offset, or a date (midnight in the report time zone)."""
    value = text.strip()
    try:
        if _DATE.fullmatch(value):
            day = date.fromisoformat(value)
            local = datetime(day.year, day.month, day.day, tzinfo=time_zone(zone_name))
            return local.astimezone(timezone.utc)
        if not _OFFSET.search(value):
            raise ValueError
        return parse_utc(value)
    except (ValueError, OverflowError):
        raise InvalidInput(
            field, f"{text!r} is not ISO-8601 with Z or an offset, nor a date YYYY-MM-DD"
        ) from None


@dataclass
class HistoryService:
    store: Store
    settings: Settings
    clock: Clock

    def window(self, since: str | None, until: str | None) -> Window:
        """The requested window, by default the last 30 days up to now."""
        now = self.clock()
        zone = self.settings.report_timezone
        end = now if until is None else parse_moment(until, "until", zone)
        try:
            start = end - DEFAULT_WINDOW if since is None else parse_moment(since, "since", zone)
        except OverflowError:
            raise InvalidInput("until", "too early for a 30-day window; give since") from None
        if start >= end:
            raise InvalidInput("since", "must be before until")
        end = min(end, now)
        start = min(start, end)
        complete = start >= self.store.history_state().complete_from()
        return Window(start, end, now, complete)

    # -- documents --------------------------------------------------------------------------

    def _kiosk(self, kiosk_id: int, caller: Caller | None) -> KioskRecord:
        """A location-limited token sees another location's kiosk as not found."""
        kiosk = self.store.get_kiosk(kiosk_id)
        if caller is not None:
            caller.require_visible(kiosk_id, kiosk.location)
        return kiosk

    def kiosk_outages(
        self, kiosk_id: int, window: Window, caller: Caller | None = None
    ) -> dict[str, Any]:
        kiosk = self._kiosk(kiosk_id, caller)
        summary = self._summaries([kiosk], window)[kiosk.id]
        return {
            "kiosk_id": kiosk.id,
            **_window_fields(window),
            "outages": [
                {
                    "started_at": format_utc(j.outage.started_at),
                    "offline_at": format_utc(j.outage.offline_at),
                    "ended_at": format_utc(j.outage.ended_at),
                    "duration_seconds": seconds(j.outage.duration(window.now)),
                    "downtime_seconds": seconds(j.downtime),
                    "ongoing": j.outage.ended_at is None,
                }
                for j in summary.outages
            ],
        }

    def fleet_availability(
        self, window: Window, location: str | None, caller: Caller | None = None
    ) -> dict[str, Any]:
        """Every kiosk the caller may see (None: the command line, every kiosk)."""
        kiosks = self.store.list_kiosks(location=location)
        if caller is not None:
            kiosks = [k for k in kiosks if caller.sees(k.location)]
        # Outages judged once settled and wholly inside the window are summed by the
        # database; only the others (the window's edges, the last hour) are judged here.
        read = self.store.fleet_window(window.since, window.until)
        summaries = self._summaries(kiosks, window, read.outages)
        for kiosk_id, settled in read.settled.items():
            if kiosk_id in summaries:
                summaries[kiosk_id] = summaries[kiosk_id].plus_settled(
                    settled.outages,
                    settled.downtime_us * MICROSECOND,
                    settled.longest_us * MICROSECOND,
                )
        rows = [kiosk_row(k, summaries[k.id]) for k in kiosks]
        downtime = sum((s.downtime for s in summaries.values()), ZERO)
        observed = sum((s.observed for s in summaries.values()), ZERO)
        outages = sum(s.outage_count for s in summaries.values())
        fleet = {
            "kiosks": len(kiosks),
            "availability_ratio": ratio(downtime, observed),
            "downtime_seconds": seconds(downtime),
            "observed_seconds": seconds(observed),
            "unknown_seconds": seconds(sum((s.unknown for s in summaries.values()), ZERO)),
            "outages": outages,
            "mean_outage_seconds": seconds(downtime / outages) if outages else None,
        }
        return {**_window_fields(window), "fleet": fleet, "kiosks": rows}

    def kiosk_availability(
        self, kiosk_id: int, window: Window, bucket: str | None, caller: Caller | None = None
    ) -> dict[str, Any]:
        if bucket not in (None, "day"):
            raise InvalidInput("bucket", f"unknown bucket {bucket!r}; use day")
        if bucket == "day" and window.until - window.since > MAX_DAY_BUCKETS:
            raise InvalidInput("since", f"day buckets cover at most {MAX_DAY_BUCKETS.days} days")
        kiosk = self._kiosk(kiosk_id, caller)
        summary = self._summaries([kiosk], window)[kiosk.id]
        document = {**_window_fields(window), **kiosk_row(kiosk, summary)}
        if bucket == "day":
            document["days"] = self._days(kiosk, window)
        return document

    def _days(self, kiosk: KioskRecord, window: Window) -> list[dict[str, Any]]:
        zone = time_zone(self.settings.report_timezone)
        bounds = day_bounds(window.since.astimezone(zone), window.until)
        whole = (
            Window(bounds[0][0], window.until, window.now, window.complete) if bounds else window
        )
        facts = self._facts([kiosk], whole)
        days = []
        for start, end in bounds:
            part = self._summarize(kiosk.id, facts, start, min(end, window.until), window.now)
            days.append(
                {
                    "date": start.astimezone(zone).date().isoformat(),
                    "availability_ratio": part.availability_ratio,
                    "downtime_seconds": seconds(part.downtime),
                    "observed_seconds": seconds(part.observed),
                    "outages": len(part.outages),
                }
            )
        return days

    def outages_started(
        self, kiosks: Sequence[KioskRecord], since: datetime, until: datetime
    ) -> dict[int, int]:
        """Outages per kiosk that began to count within [since, until) (attention mode's
        stand-in for increases of kiosk_outages_total), judged as every history figure is:
        a closed night or a restart of the service is no outage. Kiosks with none are left
        out."""
        with_rows = self.store.outages_between(since, until)
        concerned = [k for k in kiosks if k.id in with_rows]
        if not concerned:
            return {}
        window = Window(since, until, until, True)
        facts = self._facts(concerned, window)
        started = {
            k.id: self._summarize(k.id, facts, since, until, until).started(since, until)
            for k in concerned
        }
        return {k: n for k, n in started.items() if n}

    # -- counters: kiosk_offline_seconds_total and co ----------------------------------------

    def counters(
        self, kiosks: Sequence[KioskRecord] | None = None, until: datetime | None = None
    ) -> dict[int, Totals]:
        """Each observed kiosk's totals since it was first observed: the stored totals
        (exact up to their `through_at`) plus what the facts add after it, up to the last
        recorded liveness of any replica (`until` by default: never this replica's clock, so
        every replica reports the same values, and a `kill -9` adds nothing). Purging rows
        the totals hold changes nothing. Runs on every scrape: one pass over the kiosks,
        times parsed once per distinct value."""
        rows = self.store.counter_rows()
        if not rows:
            return {}
        liveness = self.store.liveness_intervals()
        if until is None:
            # Before the first liveness record ever, the service counts as listening.
            until = latest_liveness(liveness) or self.clock()
        parse = functools.lru_cache(maxsize=None)(self.store.time_from_db)
        earliest = min(min(parse(row[1]) for row in rows), until)
        outages = self.store.outages_between(earliest, until)
        kiosks = self.store.list_kiosks() if kiosks is None else kiosks
        exclusions = fleet_exclusions(
            self.store, kiosks, reach(earliest, outages), until, liveness, one_kiosk=False
        )
        everyone, by_kiosk = exclusions.everyone, exclusions.by_kiosk
        plain: dict[tuple[datetime, int], int] = {}
        new = tuple.__new__
        totals: dict[int, Totals] = {}
        for kiosk_id, since_value, first, down_us, seen_us, count in rows:
            since = parse(since_value)
            if since >= until:
                totals[kiosk_id] = new(Totals, (down_us, seen_us, count))
                continue
            judged = by_kiosk.get(kiosk_id, everyone)
            found = outages.get(kiosk_id)
            if found is None:
                # The common case, no outage: observed time is the stretch minus the holes,
                # the same for every kiosk folded at the same instant on the same hours.
                key = (since, id(judged))
                extra = plain.get(key)
                if extra is None:
                    extra = plain[key] = judged.judged.within(since, until) // MICROSECOND
                totals[kiosk_id] = new(Totals, (down_us, seen_us + extra, count))
                continue
            down, seen, started = window_totals(
                found,
                observed_since=parse(first),
                since=since,
                until=until,
                now=until,
                exclusions=judged,
            )
            totals[kiosk_id] = new(
                Totals,
                (down_us + down // MICROSECOND, seen_us + seen // MICROSECOND, count + started),
            )
        return totals

    def advance_totals(self, through: datetime) -> int:
        """Fold everything before `through` (at most the last recorded liveness) into the
        stored totals, so scrapes only add the short stretch after it (and old rows can be
        purged)."""
        histories = self.store.kiosk_histories()
        latest = latest_liveness(self.store.liveness_intervals())
        through = through if latest is None else min(through, latest)
        counted = self.counters(until=through)
        advances = [
            TotalsAdvance(
                kiosk_id,
                h.through_at,
                through,
                counted[kiosk_id].downtime_us - h.downtime_us,
                counted[kiosk_id].observed_us - h.observed_us,
                counted[kiosk_id].outages - h.outages,
            )
            for kiosk_id, h in histories.items()
            if kiosk_id in counted and (h.through_at or h.observed_since) < through
        ]
        return self.store.advance_totals(advances)

    def settle(self, through: datetime) -> tuple[int, int]:
        """Fold the counters' totals and judge every outage that ended, both up to `through`
        (at most the last recorded liveness), at once. Returns how many kiosks were folded
        and how many outages judged. (serve's job does the same in bounded steps.)"""
        return self.advance_totals(through), self.judge_settled(through)

    def judge_settled(self, through: datetime) -> int:
        """judge_step() until every outage that ended before `through` is judged; returns
        how many were."""
        judged, more = self.judge_step(through)
        while more:
            step, more = self.judge_step(through)
            judged += step
        return judged

    def judge_step(self, through: datetime) -> tuple[int, bool]:
        """Store the downtime of the outages that ended in the next JUDGE_STEP after
        `judged_through` and before `through` (at most the last recorded liveness: every
        fact they depend on is settled). Returns how many were judged and whether more
        remain: after an upgrade, a year of history is judged a day per step, in the
        background."""
        latest = latest_liveness(self.store.liveness_intervals())
        through = through if latest is None else min(through, latest)
        previous = self.store.history_state().judged_through
        cursor = previous if previous is not None else self.store.first_outage_end()
        if cursor is None:  # no outage ended yet
            self.store.record_judgements({}, previous, through)
            return 0, False
        if cursor >= through:
            return 0, False
        end = min(cursor + JUDGE_STEP, through)
        found = self._judge_lives(self.store.outages_ended_between(cursor, end), end)
        self.store.record_judgements(found, previous, end)
        return len(found), end < through

    def _judge_lives(
        self, rows: Sequence[tuple[int, int, Outage]], through: datetime
    ) -> dict[int, int]:
        """Outage id -> its judged downtime in microseconds (-1: no outage at all). Those of
        a kiosk deleted meanwhile (its outages go with it) are left alone."""
        if not rows:
            return {}
        kiosks = {k.id: k for k in self.store.list_kiosks()}
        observed = {k: h.observed_since for k, h in self.store.kiosk_histories().items()}
        by_kiosk: dict[int, list[Outage]] = {}
        for _, kiosk_id, outage in rows:
            by_kiosk.setdefault(kiosk_id, []).append(outage)
        for found in by_kiosk.values():
            found.sort()  # oldest first, as reach() expects: the rows come in no order
        concerned = [kiosks[k] for k in by_kiosk if k in kiosks and k in observed]
        if not concerned:
            return {}
        exclusions = fleet_exclusions(
            self.store,
            concerned,
            reach(through, by_kiosk),
            through,
            self.store.liveness_intervals(),
            one_kiosk=False,
        )
        found = {}
        for outage_id, kiosk_id, outage in rows:
            if kiosk_id not in kiosks or kiosk_id not in observed:
                continue
            downtime = life_downtime(
                outage,
                observed_since=observed[kiosk_id],
                exclusions=exclusions.of(kiosk_id),
                now=through,
            )
            found[outage_id] = -1 if downtime is None else downtime // MICROSECOND
        return found

    # -- from stored facts to summaries ------------------------------------------------------

    def _summaries(
        self,
        kiosks: Sequence[KioskRecord],
        window: Window,
        outages: dict[int, list[Outage]] | None = None,
    ) -> dict[int, WindowSummary]:
        facts = self._facts(kiosks, window, outages)
        return {
            k.id: self._summarize(k.id, facts, window.since, window.until, window.now)
            for k in kiosks
        }

    def _facts(
        self,
        kiosks: Sequence[KioskRecord],
        window: Window,
        outages: dict[int, list[Outage]] | None = None,
    ) -> _Facts:
        """Read once per request: outages (unless given), observation starts and
        exclusions. A fleet request reads every kiosk's rows at once rather than one query
        per kiosk."""
        one = len(kiosks) == 1
        wanted = [k.id for k in kiosks] if one else None
        if outages is None:
            outages = self.store.outages_between(window.since, window.until, wanted)
        observed = {k: h.observed_since for k, h in self.store.kiosk_histories(wanted).items()}
        exclusions = fleet_exclusions(
            self.store,
            kiosks,
            reach(window.since, outages),
            window.now,
            self.store.liveness_intervals(),
            one_kiosk=one,
        )
        return _Facts(outages, observed, exclusions)

    @staticmethod
    def _summarize(
        kiosk_id: int, facts: _Facts, since: datetime, until: datetime, now: datetime
    ) -> WindowSummary:
        return summarize(
            facts.outages.get(kiosk_id, ()),
            observed_since=facts.observed_since.get(kiosk_id),
            since=since,
            until=until,
            now=now,
            exclusions=facts.exclusions.of(kiosk_id),
        )


class Totals(NamedTuple):
    """Counter values in whole microseconds: exact, so no partition of time changes them."""

    downtime_us: int
    observed_us: int
    outages: int


MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class _Facts:
    outages: dict[int, list[Outage]]
    observed_since: dict[int, datetime]
    exclusions: FleetExclusions


def _window_fields(window: Window) -> dict[str, Any]:
    return {
        "since": format_utc(window.since),
        "until": format_utc(window.until),
        "complete": window.complete,
    }


def kiosk_row(kiosk: KioskRecord, summary: WindowSummary) -> dict[str, Any]:
    return {
        "kiosk_id": kiosk.id,
        "kiosk_name": kiosk.name,
        "location": kiosk.location,
        "availability_ratio": summary.availability_ratio,
        "downtime_seconds": seconds(summary.downtime),
        "observed_seconds": seconds(summary.observed),
        "unknown_seconds": seconds(summary.unknown),
        "outages": summary.outage_count,
        "longest_outage_seconds": seconds(summary.longest_outage),
        "mean_outage_seconds": seconds(summary.mean_outage),
    }


@dataclass
class HistoryKeeper:
    """What `serve` does for history in the background: each tick opens the outages that
    began (so an ongoing outage is persisted within a tick of `offline_at`, with the
    threshold then in force); every hour it folds the counters' totals and judges the
    outages that ended (after an upgrade, a year of them a day per step, JUDGE_BUDGET_SECONDS
    per tick); once a day it purges what is past `outage_retention_days`."""

    store: Store
    settings: Settings
    clock: Clock
    last_purge: datetime | None = None

    last_advance: datetime | None = None
    judging: bool = False  # outages that ended are left to judge

    def tick(self) -> None:
        now = self.clock()
        self.store.open_outages(
            now=now, online_threshold_seconds=self.settings.online_threshold_seconds
        )
        service = HistoryService(self.store, self.settings, self.clock)
        if self.last_advance is None or now - self.last_advance >= ADVANCE_EVERY:
            # Late facts (a gap closed by a heartbeat no tick saw begin) land within a few
            # seconds of their time: totals stop well before now.
            service.advance_totals(now - SETTLED)
            self.last_advance = now
            self.judging = True
        if self.judging:
            # Judged in steps while the budget lasts; what is left goes on at the next tick.
            started, more = time.monotonic(), True
            while more:
                _, more = service.judge_step(now - SETTLED)
                if time.monotonic() - started >= JUDGE_BUDGET_SECONDS:
                    break
            self.judging = more
        days = self.settings.outage_retention_days
        if days and (self.last_purge is None or now - self.last_purge >= PURGE_EVERY):
            purged = self.store.purge_history(before=now - timedelta(days=days))
            self.last_purge = now
            log.info("purged %d history row(s) older than %d days", purged, days)


def run_every(seconds: float, task: Callable[[], None], stop: threading.Event) -> threading.Thread:
    """Run `task` every `seconds` until `stop` is set, in a daemon thread. A database that
    is away costs a warning per tick, never the thread."""

    def loop() -> None:
        while not stop.wait(seconds):
            try:
                task()
            except ExporterError as exc:
                log.warning("history tick failed: %s", exc)
            except Exception:
                log.exception("history tick failed")

    thread = threading.Thread(target=loop, name="history", daemon=True)
    thread.start()
    return thread
