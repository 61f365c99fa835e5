"""Outages and availability over a window: the history the status rule implies, as exact
interval arithmetic on persisted times. The JSON API, /metrics and the report all ask it.

An outage is a gap between two heartbeats (or the last one and now) long enough for the
status rule to say offline. Its downtime is [offline_at, ended_at) minus the time that
counts neither way: the service not listening (unknown), the kiosk not expected online or
deactivated (excluded). Observed time is the window after the kiosk's first heartbeat minus
the same. Everything is in microseconds (datetime/timedelta), floored to whole seconds
only where shown, so two replicas or two partitions of a window always agree exactly.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from .status import KioskStatus, classify

Interval = tuple[datetime, datetime]
ZERO = timedelta(0)
SECOND = timedelta(seconds=1)


# -- intervals: sorted, disjoint, non-empty [start, end) pairs --------------------------------


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort and join overlapping or touching intervals; empty ones vanish."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[0] < i[1]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def subtract(base: Sequence[Interval], holes: Sequence[Interval]) -> list[Interval]:
    """`base` minus `holes`, both merged (see merge())."""
    result: list[Interval] = []
    index = 0
    for start, end in base:
        while index < len(holes) and holes[index][1] <= start:
            index += 1
        cursor, scan = start, index
        while scan < len(holes) and holes[scan][0] < end:
            hole_start, hole_end = holes[scan]
            if hole_start > cursor:
                result.append((cursor, hole_start))
            cursor = max(cursor, hole_end)
            scan += 1
        if cursor < end:
            result.append((cursor, end))
    return result


def total(intervals: Iterable[Interval]) -> timedelta:
    return sum((end - start for start, end in intervals), ZERO)


def contains(intervals: Sequence[Interval], starts: Sequence[datetime], moment: datetime) -> bool:
    index = bisect.bisect_right(starts, moment) - 1
    return index >= 0 and intervals[index][0] <= moment < intervals[index][1]


# -- outages ----------------------------------------------------------------------------------


def gap_is_outage(previous: datetime, received: datetime, threshold_seconds: float) -> bool:
    """Did the status rule say offline at some instant between the two heartbeats? Exactly
    when the older one reached the threshold's age before the newer one arrived."""
    age = (received - previous).total_seconds()
    return classify(True, age, threshold_seconds) is KioskStatus.OFFLINE


def offline_at(last_heartbeat_at: datetime, threshold_seconds: float) -> datetime:
    """When `status` turned offline after this heartbeat (stored with the outage, so a later
    change of the threshold does not rewrite history)."""
    return last_heartbeat_at + timedelta(seconds=threshold_seconds)


class Outage(NamedTuple):
    """An outage as stored: `ended_at` is None while it goes on. A NamedTuple: a fleet
    document reads hundreds of thousands."""

    started_at: datetime
    offline_at: datetime
    ended_at: datetime | None

    def end(self, now: datetime) -> datetime:
        return self.ended_at if self.ended_at is not None else max(now, self.offline_at)

    def duration(self, now: datetime) -> timedelta:
        """From the last heartbeat, as `offline_duration_seconds` counts."""
        return self.end(now) - self.started_at


EARLIEST = datetime(1, 1, 2, tzinfo=timezone.utc)
LATEST = datetime(9999, 12, 30, tzinfo=timezone.utc)


class Measure:
    """Merged intervals with their starts, ends and running totals: the part inside any
    [a, b) in O(log n), so a fleet document judges each kiosk without building lists."""

    def __init__(self, intervals: Sequence[Interval]) -> None:
        self.intervals = list(intervals)
        self.starts = [start for start, _ in self.intervals]
        self.ends = [end for _, end in self.intervals]
        self.prefix = [ZERO]
        for start, end in self.intervals:
            self.prefix.append(self.prefix[-1] + (end - start))

    def within(self, a: datetime, b: datetime) -> timedelta:
        if a >= b:
            return ZERO
        first = bisect.bisect_right(self.ends, a)
        last = bisect.bisect_left(self.starts, b)
        if first >= last:
            return ZERO
        part = self.prefix[last] - self.prefix[first]
        if self.starts[first] < a:
            part -= a - self.starts[first]
        if self.ends[last - 1] > b:
            part -= self.ends[last - 1] - b
        return part

    def index_at(self, moment: datetime) -> int:
        """The interval holding `moment`, or -1."""
        index = bisect.bisect_right(self.starts, moment) - 1
        return index if index >= 0 and moment < self.ends[index] else -1

    def overlapping(self, a: datetime, b: datetime) -> list[Interval]:
        """The intervals' parts inside [a, b)."""
        index = max(0, bisect.bisect_right(self.starts, a) - 1)
        found = []
        while index < len(self.starts) and self.starts[index] < b:
            low, high = max(self.starts[index], a), min(self.ends[index], b)
            if low < high:
                found.append((low, high))
            index += 1
        return found


@dataclass(frozen=True)
class Exclusions:
    """Time of one kiosk that is neither downtime nor observed.

    `unknown`: the service was not listening (outside every replica's liveness).
    `excluded`: the kiosk was deactivated or not expected online (hours, maintenance).
    Both merged (see merge()). Kiosks on the same hours share one object, so the merged
    holes are worked out once per fleet document, not once per kiosk.
    """

    unknown: Sequence[Interval] = ()
    excluded: Sequence[Interval] = ()

    @functools.cached_property
    def holes(self) -> list[Interval]:
        """Unknown and excluded time merged."""
        return merge([*self.unknown, *self.excluded])

    @functools.cached_property
    def returns(self) -> list[datetime]:
        """The ends of the holes: when judged time begins again."""
        return [back for _, back in self.holes]

    @functools.cached_property
    def judged(self) -> Measure:
        """Everything but the holes, from the beginning of time to its end: each kiosk's
        judged time is this after its first heartbeat."""
        return Measure(subtract([(EARLIEST, LATEST)], self.holes))

    @functools.cached_property
    def unknown_only(self) -> Measure:
        """Unknown time that is not also excluded (reported once, as excluded)."""
        return Measure(subtract(self.unknown, self.excluded) if self.excluded else self.unknown)


NO_EXCLUSIONS = Exclusions()


class JudgedOutage(NamedTuple):
    """An outage seen from a window: `downtime` is the part inside it; `first_down_at` the
    first instant of its downtime over its whole life (when it began to count)."""

    outage: Outage
    downtime: timedelta
    first_down_at: datetime


@dataclass(frozen=True)
class WindowSummary:
    """One kiosk over [since, until): exact durations; ratios and whole seconds derived.

    `outages` are the outages judged for this summary; a fleet document adds, with
    plus_settled(), those judged once when they settled and summed by the database: counted
    (`outage_count`, `longest_outage`, `downtime`), not listed."""

    downtime: timedelta = ZERO
    observed: timedelta = ZERO
    unknown: timedelta = ZERO
    outages: list[JudgedOutage] = field(default_factory=list)
    settled_outages: int = 0
    settled_longest: timedelta = ZERO

    def plus_settled(self, outages: int, downtime: timedelta, longest: timedelta) -> WindowSummary:
        return replace(
            self,
            downtime=self.downtime + downtime,
            settled_outages=self.settled_outages + outages,
            settled_longest=max(self.settled_longest, longest),
        )

    @property
    def outage_count(self) -> int:
        return len(self.outages) + self.settled_outages

    @property
    def availability_ratio(self) -> float | None:
        return ratio(self.downtime, self.observed)

    def started(self, since: datetime, until: datetime) -> int:
        """Outages that began to count in [since, until): over consecutive windows, each
        outage is counted exactly once (kiosk_outages_total)."""
        return sum(1 for o in self.outages if since <= o.first_down_at < until)

    @property
    def longest_outage(self) -> timedelta:
        return max([self.settled_longest, *(o.downtime for o in self.outages)])

    @property
    def mean_outage(self) -> timedelta | None:
        count = self.outage_count
        return self.downtime / count if count else None


def ratio(downtime: timedelta, observed: timedelta) -> float | None:
    """1 - downtime / observed, None when nothing was observed."""
    if observed <= ZERO:
        return None
    return min(1.0, max(0.0, 1.0 - downtime / observed))


def seconds(duration: timedelta | None) -> int | None:
    """Whole seconds, floored, as offline_duration_seconds is."""
    return None if duration is None else duration // SECOND


@dataclass(frozen=True)
class _Judged:
    """One kiosk's judged time: its exclusions' judged time (shared by every kiosk on the
    same hours) from `lower`, its first heartbeat, on."""

    exclusions: Exclusions
    lower: datetime

    def observed(self, start: datetime, until: datetime) -> timedelta:
        return self.exclusions.judged.within(max(start, self.lower), until)

    def downtime(
        self, outage: Outage, now: datetime, a: datetime = EARLIEST, b: datetime = LATEST
    ) -> list[Interval]:
        """The outage's judged downtime inside [a, b) (its whole life by default). After each
        return to judged time (the service back from unknown time, the kiosk's expected time
        beginning: an opening, the end of a maintenance, a reactivation), the kiosk gets the
        outage's own threshold to ping again before it counts as down, as after any
        heartbeat, and as the fleet rules count it: a restart or a kiosk switched on at
        opening time charges nobody.

        Only the judged time and the returns near [a, b) are walked: an outage open for weeks
        crosses every night and restart since, and a scrape asks each one for the last
        minutes alone."""
        low, high = outage.offline_at, outage.end(now)
        found = self.exclusions.judged.overlapping(max(low, self.lower, a), min(high, b))
        if not found:
            return found
        grace = outage.offline_at - outage.started_at
        returns = self.exclusions.returns
        # A return's grace [back, back + grace) reaches into the outage and into [a, b)
        # only for a return in (max(low, a) - grace, min(high, b)).
        first = bisect.bisect_right(returns, max(low, a) - grace)
        last = bisect.bisect_left(returns, min(high, b), first)
        if first >= last:
            return found
        regrace = merge((max(back, low), min(back + grace, high)) for back in returns[first:last])
        return subtract(found, regrace)

    def first_down(self, outage: Outage, now: datetime) -> datetime | None:
        """The first instant of the outage's downtime over its whole life (None: it has
        none): the first judged instant after its offline_at that no return's grace covers.
        Judged stretches hold no return (a return ends a hole), so only the last return
        before a stretch can cover its start; nearly always the first stretch has it."""
        low, high = outage.offline_at, outage.end(now)
        judged, returns = self.exclusions.judged, self.exclusions.returns
        starts, ends = judged.starts, judged.ends
        grace = low - outage.started_at
        first = max(low, self.lower)
        index = max(0, bisect.bisect_right(starts, first) - 1)
        while index < len(starts) and starts[index] < high:
            begin, end = max(starts[index], first), min(ends[index], high)
            back = bisect.bisect_right(returns, begin) - 1
            if back >= 0 and returns[back] > low - grace:
                begin = max(begin, min(returns[back] + grace, high))
            if begin < end:
                return begin
            index += 1
        return None

    def judge(
        self, outage: Outage, now: datetime, start: datetime, end: datetime
    ) -> JudgedOutage | None:
        """None when it is not an outage at all: all its downtime fell in unknown or
        excluded time. A gap of exactly the threshold has an empty downtime: real when its
        instant was judged."""
        low, high = outage.offline_at, outage.end(now)
        judged = self.exclusions.judged
        index = judged.index_at(outage.started_at)
        if index >= 0 and self.lower <= outage.started_at and low < high <= judged.ends[index]:
            # Judged throughout, since before its last heartbeat: no hole, no return, so
            # its downtime is [offline_at, end) (most outages; no lists built).
            part = min(high, end) - max(low, start)
            return JudgedOutage(outage, part if part > ZERO else ZERO, low)
        if start <= max(low, self.lower) and high <= end:
            # The window holds its whole life (a history never folded yet): one walk.
            life = self.downtime(outage, now)
            if life:
                return JudgedOutage(outage, total(life), life[0][0])
        elif (first := self.first_down(outage, now)) is not None:
            return JudgedOutage(outage, total(self.downtime(outage, now, start, end)), first)
        if high == low and self.lower <= low and judged.index_at(low) >= 0:
            return JudgedOutage(outage, ZERO, low)
        return None


def life_downtime(
    outage: Outage, *, observed_since: datetime, exclusions: Exclusions, now: datetime
) -> timedelta | None:
    """The outage's downtime over its whole life: what any window holding all of it counts.
    None when it is no outage at all (all of it in unknown or excluded time). Once every
    fact it depends on is settled it never changes, so the history stores it (see
    HistoryService.judge_settled) and fleet documents sum it instead of judging again."""
    judged = _Judged(exclusions, observed_since).judge(outage, now, EARLIEST, LATEST)
    return None if judged is None else judged.downtime


def summarize(
    outages: Iterable[Outage],
    *,
    observed_since: datetime | None,
    since: datetime,
    until: datetime,
    now: datetime,
    exclusions: Exclusions = NO_EXCLUSIONS,
) -> WindowSummary:
    """One kiosk over [since, until) (`until` <= `now`): observed time after `observed_since`
    (its first heartbeat), downtime, unknown time, and the outages that overlap the window.

    `outages` may hold any of the kiosk's outages; `exclusions` must cover the window and
    the outages overlapping it (an outage's reality is judged over its whole life).
    """
    if observed_since is None:
        return WindowSummary()
    start = max(since, observed_since)
    if not exclusions.unknown and not exclusions.excluded:
        return _summarize_plain(outages, observed_since, start, since, until, now)
    judged = _Judged(exclusions, observed_since)
    found = _judge_all(outages, judged, since, until, now, start)
    found.sort(key=lambda j: j.outage.offline_at, reverse=True)
    return WindowSummary(
        downtime=sum((j.downtime for j in found), ZERO),
        observed=judged.observed(start, until),
        unknown=exclusions.unknown_only.within(start, until) if exclusions.unknown else ZERO,
        outages=found,
    )


def _judge_all(
    outages: Iterable[Outage],
    judged: _Judged,
    since: datetime,
    until: datetime,
    now: datetime,
    start: datetime,
) -> list[JudgedOutage]:
    """The outages that overlap [since, until), judged (see _Judged.judge). The common case,
    an outage judged throughout since its last heartbeat, is inlined: a fleet document runs
    this loop for hundreds of thousands of outages."""
    starts, ends = judged.exclusions.judged.starts, judged.exclusions.judged.ends
    lower, find, new = judged.lower, bisect.bisect_right, tuple.__new__
    found = []
    for o in outages:
        low, ended = o.offline_at, o.ended_at
        high = ended if ended is not None else (now if now > low else low)
        if not (since <= low < until if high == low else low < until and high > since):
            continue
        index = find(starts, o.started_at) - 1
        if index >= 0 and lower <= o.started_at and low < high <= ends[index]:
            part = (high if high < until else until) - (low if low > start else start)
            found.append(new(JudgedOutage, (o, part if part > ZERO else ZERO, low)))
        elif (index < 0 or o.started_at >= ends[index]) and (
            index + 1 == len(starts)
            or starts[index + 1] > high
            or (starts[index + 1] == high and high > low)
        ):
            continue  # all of its life in a hole (a night, a restart): no outage at all
        elif (j := judged.judge(o, now, start, until)) is not None:
            found.append(j)
    return found


def _summarize_plain(
    outages: Iterable[Outage],
    observed_since: datetime,
    start: datetime,
    since: datetime,
    until: datetime,
    now: datetime,
) -> WindowSummary:
    """summarize() when nothing is excluded (the common case, and most of a fleet): judged
    time is one interval from `observed_since` on, so each outage is O(1) arithmetic."""
    found = [
        JudgedOutage(o, part, first)
        for o, part, first in _plain_parts(outages, observed_since, start, since, until, now)
    ]
    found.sort(key=lambda j: j.outage.offline_at, reverse=True)
    downtime = sum((j.downtime for j in found), ZERO)
    return WindowSummary(downtime=downtime, observed=max(until - start, ZERO), outages=found)


def _plain_parts(
    outages: Iterable[Outage],
    observed_since: datetime,
    start: datetime,
    since: datetime,
    until: datetime,
    now: datetime,
) -> Iterator[tuple[Outage, timedelta, datetime]]:
    """Each outage overlapping [since, until) with nothing excluded: its downtime inside
    the window and the first instant of its downtime."""
    for o in outages:
        if not _overlaps(o, since, until, now):
            continue
        end = o.end(now)
        first = max(o.offline_at, observed_since)
        if first >= end and not (end == o.offline_at and observed_since <= end):
            continue  # all of it before observation began: no outage of ours
        part = min(end, until) - max(first, start)
        yield o, part if part > ZERO else ZERO, first


def window_totals(
    outages: Iterable[Outage],
    *,
    observed_since: datetime | None,
    since: datetime,
    until: datetime,
    now: datetime,
    exclusions: Exclusions = NO_EXCLUSIONS,
) -> tuple[timedelta, timedelta, int]:
    """summarize()'s downtime and observed time, and how many outages began to count in
    [since, until) (see WindowSummary.started), for the counters: a scrape asks it for
    every kiosk in an outage (a whole fleet switched off at night, say), and the common
    case, nothing excluded, then builds no summary."""
    if observed_since is None:
        return ZERO, ZERO, 0
    start = max(since, observed_since)
    if exclusions.unknown or exclusions.excluded:
        summary = summarize(
            outages,
            observed_since=observed_since,
            since=since,
            until=until,
            now=now,
            exclusions=exclusions,
        )
        return summary.downtime, summary.observed, summary.started(since, until)
    downtime, started = ZERO, 0
    for _, part, first in _plain_parts(outages, observed_since, start, since, until, now):
        downtime += part
        started += since <= first < until
    return downtime, max(until - start, ZERO), started


def _overlaps(outage: Outage, since: datetime, until: datetime, now: datetime) -> bool:
    """[offline_at, end) overlaps [since, until); a zero-length outage (a gap of exactly the
    threshold) belongs to the window holding its instant."""
    end = outage.end(now)
    if end == outage.offline_at:
        return since <= outage.offline_at < until
    return outage.offline_at < until and end > since


def day_bounds(first_day: datetime, until: datetime) -> list[Interval]:
    """Consecutive [midnight, next midnight) pairs in `first_day`'s time zone, from the
    midnight of `first_day` up to `until`. Calendar days: 23 or 25 hours across DST."""
    day = first_day.replace(hour=0, minute=0, second=0, microsecond=0)
    bounds: list[Interval] = []
    while day < until:
        # Same-zone arithmetic is wall-clock arithmetic: the next midnight, whatever DST does.
        following = day + timedelta(days=1)
        bounds.append((day.astimezone(timezone.utc), following.astimezone(timezone.utc)))
        day = following
    return bounds
