"""The one rule of "expected online": schedules' weekly hours, maintenance, service liveness.

Pure: every function takes the facts (schedule versions, windows, events, liveness intervals)
and `now` as arguments. The status rule (status.py) is unchanged; this rule sits beside it and
every consumer (status JSON, /metrics, history) asks it.

Hours are wall-clock hours in the schedule's IANA time zone. A boundary that falls twice
(the hour repeated when clocks go back) means its first occurrence; a boundary the clock
jumps over (when clocks go forward) means the jump itself.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import NamedTuple, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .records import (
    EventKind,
    KioskEvent,
    KioskRecord,
    LivenessInterval,
    MaintenanceWindow,
    ScheduleVersion,
)
from .status import KioskStatus

ALWAYS = "always"
SCHEDULE_NAME_LIMIT = 64
HOURS_LIMIT = 1024
REASON_LIMIT = 256
# The liveness task writes every period; a gap shorter than one period is no gap.
LIVENESS_PERIOD_SECONDS = 5.0
LIVENESS_GRACE = timedelta(seconds=LIVENESS_PERIOD_SECONDS)

Interval = tuple[datetime, datetime]
T = TypeVar("T")

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEK = 7 * 1440
_ENTRY = re.compile(r"([a-z]{3})(?:-([a-z]{3}))?((?:\s+\d{1,2}:\d{2}-\d{1,2}:\d{2})+)")
_RANGE = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")
# Longest stretch a schedule that is not expected all the time can be inside at once.
_LOOKBACK = timedelta(days=8)


@dataclass(frozen=True)
class WeeklyHours:
    """Merged spans in minutes from Monday 00:00 local; an end past the week's end wraps."""

    spans: tuple[tuple[int, int], ...]

    @property
    def full(self) -> bool:
        return self.spans == ((0, _WEEK),)


@functools.lru_cache(maxsize=256)
def parse_hours(text: str) -> WeeklyHours:
    """Parse "Mon-Fri 07:00-20:00, Sat 08:00-12:00"; an end at or before the start crosses
    midnight ("Fri 18:00-02:00" ends Saturday 02:00); a day left out is a day off.
    Raises ValueError saying what is wrong."""
    entries = [e.strip() for e in text.lower().split(",")]
    if len(text) > HOURS_LIMIT or not any(entries):
        raise ValueError(f'expected hours such as "Mon-Fri 07:00-20:00" (<= {HOURS_LIMIT} chars)')
    covered = bytearray(_WEEK)
    for entry in entries:
        match = _ENTRY.fullmatch(entry)
        if match is None or match.group(1) not in _DAYS or match.group(2) not in (None, *_DAYS):
            raise ValueError(f'cannot read {entry!r}: expected e.g. "Mon-Fri 07:00-20:00"')
        first = _DAYS.index(match.group(1))
        last = first if match.group(2) is None else _DAYS.index(match.group(2))
        days = [(first + n) % 7 for n in range((last - first) % 7 + 1)]
        for start, end in (_minutes(r, entry) for r in _RANGE.finditer(match.group(3))):
            for day in days:
                for minute in range(day * 1440 + start, day * 1440 + end):
                    covered[minute % _WEEK] = 1
    return WeeklyHours(_runs(covered))


def _minutes(found: re.Match[str], entry: str) -> tuple[int, int]:
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"{entry!r}: times run from 00:00 to 24:00")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end % 1440 and end != 1440:
        raise ValueError(f"{entry!r}: a range must not start where it ends (00:00-24:00 is a day)")
    return start, end if end > start else end + 1440


def _runs(covered: bytearray) -> tuple[tuple[int, int], ...]:
    """Covered minutes as spans, a span across Sunday midnight kept whole."""
    if all(covered):
        return ((0, _WEEK),)
    origin = covered.index(0)
    spans: list[tuple[int, int]] = []
    start = None
    for offset in range(1, _WEEK + 1):
        minute = (origin + offset) % _WEEK
        if covered[minute] and start is None:
            start = origin + offset
        elif not covered[minute] and start is not None:
            spans.append((start % _WEEK, start % _WEEK + origin + offset - start))
            start = None
    return tuple(sorted(spans))


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA zone (tzdata ships with the package, so this works without a system database)."""
    try:
        if not name or name != name.strip() or len(name) > 64:
            raise ValueError
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Paris"
        ) from None


# -- wall clock to instants ------------------------------------------------------------------------


def wall_to_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant at which the zone's clock reaches `wall` (naive) for the first time."""
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # `wall` is skipped (clocks go forward): the first instant whose clock is past it.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(timezone.utc)
    low, high = min(before, instant), max(before, instant)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0) if high.microsecond else high


def hours_intervals(
    hours: WeeklyHours, zone: ZoneInfo, since: datetime, until: datetime
) -> list[Interval]:
    """The instants inside `hours` within [since, until), as sorted disjoint intervals."""
    if since >= until:
        return []
    if hours.full:
        return [(since, until)]
    first = since.astimezone(zone).date() - timedelta(days=7)
    monday = first - timedelta(days=first.weekday())
    last = until.astimezone(zone).date()
    found: list[Interval] = []
    while monday <= last:
        base = datetime.combine(monday, time())
        for start, end in hours.spans:
            begin = wall_to_instant(base + timedelta(minutes=start), zone)
            finish = wall_to_instant(base + timedelta(minutes=end), zone)
            if finish > since and begin < until:
                found.append((max(begin, since), min(finish, until)))
        monday += timedelta(days=7)
    return merge(found)


def schedule_intervals(
    versions: Sequence[ScheduleVersion] | None, since: datetime, until: datetime
) -> list[Interval]:
    """Expected time of a schedule over [since, until), each version from its edit on.

    `versions` None is `always`. Before its first version, and after it was removed, a
    schedule expects nothing."""
    if versions is None:
        return [(since, until)] if since < until else []
    ordered = sorted(versions, key=lambda v: v.valid_from)
    found: list[Interval] = []
    for version, following in zip(ordered, [*ordered[1:], None], strict=True):
        low = max(since, version.valid_from)
        high = until if following is None else min(until, following.valid_from)
        if version.hours is not None and low < high:
            hours = parse_hours(version.hours)
            found += hours_intervals(hours, parse_timezone(version.timezone), low, high)
    return merge(found)


# -- interval arithmetic ---------------------------------------------------------------------------


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint; touching intervals become one."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[0] < i[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    return merge((max(s1, s2), min(e1, e2)) for s1, e1 in a for s2, e2 in b if s1 < e2 and s2 < e1)


def subtract(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    result = list(merge(a))
    for cut_start, cut_end in merge(b):
        pieces: list[Interval] = []
        for start, end in result:
            if cut_end <= start or cut_start >= end:
                pieces.append((start, end))
                continue
            pieces += [(start, cut_start)] if start < cut_start else []
            pieces += [(cut_end, end)] if cut_end < end else []
        result = pieces
    return result


def containing(intervals: Sequence[Interval], moment: datetime) -> Interval | None:
    return next((i for i in intervals if i[0] <= moment < i[1]), None)


# -- service liveness ------------------------------------------------------------------------------


def listening_blocks(intervals: Iterable[LivenessInterval]) -> list[Interval]:
    """Replicas' liveness merged; a block lasts one period past its last record."""
    return merge((i.started_at, i.last_seen_at + LIVENESS_GRACE) for i in intervals)


def unknown_intervals(
    intervals: Iterable[LivenessInterval], since: datetime, until: datetime
) -> list[Interval]:
    """Time in [since, until) when no replica was listening: the gaps between listening
    blocks. Time before the first record ever counts as listening (an upgrade resets
    nobody); time after the last one is unknown only once the service has missed more than
    two periods, as a replica's own loop judges itself (a running service writes every
    period, so a late tick is no gap)."""
    records = list(intervals)
    blocks = listening_blocks(records)
    gaps = [(end, start) for (_, end), (start, _) in itertools.pairwise(blocks)]
    if records:
        last_seen = max(i.last_seen_at for i in records)
        if until - last_seen > 2 * LIVENESS_GRACE:
            gaps.append((last_seen + LIVENESS_GRACE, until))
    return [(max(s, since), min(e, until)) for s, e in gaps if s < until and e > since]


def latest_liveness(intervals: Iterable[LivenessInterval]) -> datetime | None:
    """The last instant any replica recorded itself listening: the history's counters run
    up to it, never up to a replica's own clock, so every replica reports the same value."""
    return max((i.last_seen_at for i in intervals), default=None)


def listening_since(intervals: Iterable[LivenessInterval], now: datetime) -> datetime | None:
    """When the service came back after its latest gap, or None when it has had none (time
    before the first record ever counts as listening, so an upgrade resets nobody)."""
    blocks = [b for b in listening_blocks(intervals) if b[0] <= now]
    return blocks[-1][0] if len(blocks) > 1 else None


# -- a kiosk at one instant ------------------------------------------------------------------------


class Expectation(NamedTuple):
    """Whether a kiosk is expected online at one instant, and since when (a NamedTuple:
    a scrape builds one per kiosk)."""

    expected_online: bool
    in_maintenance: bool
    maintenance_until: datetime | None
    # Start of the current expected time; None when not expected or expected for longer
    # than anything else recorded (then only the heartbeat counts).
    since: datetime | None


class ScheduleVerdict(NamedTuple):
    inside: bool
    since: datetime | None


def judge_schedule(versions: Sequence[ScheduleVersion] | None, now: datetime) -> ScheduleVerdict:
    """Inside at `now`, and since when: once per schedule per scrape, never per kiosk."""
    if versions is None:
        return ScheduleVerdict(True, None)
    low = now - _LOOKBACK
    current = containing(schedule_intervals(versions, low, now + timedelta(seconds=1)), now)
    if current is None:
        return ScheduleVerdict(False, None)
    return ScheduleVerdict(True, None if current[0] <= low else current[0])


def maintenance_at(windows: Iterable[MaintenanceWindow], now: datetime) -> datetime | None:
    """The end of the maintenance covering `now` (windows that touch count as one), or None."""
    block = containing(merge((w.starts_at, w.ends_at) for w in windows), now)
    return None if block is None else block[1]


def expectation(
    *,
    is_active: bool,
    schedule: ScheduleVerdict,
    maintenance_until: datetime | None,
    last_maintenance_end: datetime | None,
    last_change: datetime | None,
) -> Expectation:
    """Expected = active, inside the schedule's hours, in no maintenance. Its current stretch
    starts at the latest of: the schedule's opening, the end of the last maintenance, the
    last activation or schedule change (a change starts a new stretch)."""
    in_maintenance = maintenance_until is not None
    expected = is_active and schedule.inside and not in_maintenance
    starts = [t for t in (schedule.since, last_maintenance_end, last_change) if t is not None]
    return Expectation(
        expected_online=expected,
        in_maintenance=in_maintenance,
        maintenance_until=maintenance_until,
        since=max(starts) if expected and starts else None,
    )


def offline_while_expected_seconds(
    *,
    status: KioskStatus,
    last_heartbeat_at: datetime | None,
    expectation: Expectation,
    listening_since: datetime | None,
    now: datetime,
) -> int | None:
    """Seconds offline while expected, from the latest of: the last heartbeat, the start of
    the current expected time, the service's return after a gap in its liveness. 0 when
    online or not expected; None for a kiosk that never connected (it never pages)."""
    if last_heartbeat_at is None:
        return None
    if status is not KioskStatus.OFFLINE or not expectation.expected_online:
        return 0
    starts = (last_heartbeat_at, expectation.since, listening_since)
    start = max(t for t in starts if t is not None)
    return max(0, int((now - start).total_seconds()))


# -- the scrape's view of the fleet ----------------------------------------------------------------


@dataclass(frozen=True)
class ExpectationFacts:
    """What the store knows at one instant, read in a few queries per scrape."""

    schedule_names: Mapping[int, str]
    versions: Mapping[int, Sequence[ScheduleVersion]]
    # Per kiosk: windows not yet over at the instant of the read.
    open_windows: Mapping[int, Sequence[MaintenanceWindow]]
    # Per kiosk: the latest end of a maintenance window, and the latest activation or
    # schedule assignment (the store may leave out those before the last heartbeat).
    last_maintenance_end: Mapping[int, datetime]
    last_change: Mapping[int, datetime]
    liveness: Sequence[LivenessInterval]


class KioskExpectation(NamedTuple):
    expectation: Expectation
    schedule: str | None
    offline_while_expected_seconds: int | None


class FleetExpectation:
    """The rule applied to a whole fleet at one instant: each schedule is judged once."""

    def __init__(self, facts: ExpectationFacts, now: datetime) -> None:
        self._facts = facts
        self.now = now
        self._verdicts: dict[int | None, ScheduleVerdict] = {None: ScheduleVerdict(True, None)}
        self.listening_since = listening_since(facts.liveness, now)
        # Kiosks with a maintenance window, an activation or a schedule change of their own
        # on record; every other kiosk's expectation follows from its schedule and whether it
        # is active, so the fleet shares one per pair (at 100,000 kiosks: 0.16 -> 0.07 s).
        self._particular = (
            facts.open_windows.keys() | facts.last_maintenance_end.keys() | facts.last_change.keys()
        )
        self._shared: dict[tuple[bool, int | None], Expectation] = {}

    def _verdict(self, schedule_id: int | None) -> ScheduleVerdict:
        verdict = self._verdicts.get(schedule_id)
        if verdict is None:
            versions = self._facts.versions.get(schedule_id, ())  # type: ignore[arg-type]
            verdict = self._verdicts[schedule_id] = judge_schedule(versions, self.now)
        return verdict

    def kiosk(self, kiosk_id: int, is_active: bool, schedule_id: int | None) -> Expectation:
        windows = self._facts.open_windows.get(kiosk_id)
        return expectation(
            is_active=is_active,
            schedule=self._verdict(schedule_id),
            maintenance_until=maintenance_at(windows, self.now) if windows else None,
            last_maintenance_end=self._facts.last_maintenance_end.get(kiosk_id),
            last_change=self._facts.last_change.get(kiosk_id),
        )

    def judge(self, kiosk: KioskRecord, status: KioskStatus) -> KioskExpectation:
        """Everything the status object and /metrics say about a kiosk's expected time.
        Runs once per kiosk a scrape: calls are kept few (each is ~0.03 s per 100,000)."""
        kiosk_id, is_active, schedule_id = kiosk.id, kiosk.is_active, kiosk.schedule_id
        if kiosk_id in self._particular:
            judged = self.kiosk(kiosk_id, is_active, schedule_id)
        else:
            judged = self._shared.get((is_active, schedule_id)) or self._share(
                kiosk_id, is_active, schedule_id
            )
        seconds = offline_while_expected_seconds(
            status=status,
            last_heartbeat_at=kiosk.last_heartbeat_at,
            expectation=judged,
            listening_since=self.listening_since,
            now=self.now,
        )
        name = None if schedule_id is None else self._facts.schedule_names.get(schedule_id)
        # tuple.__new__: NamedTuple's own __new__ is a Python call.
        return tuple.__new__(KioskExpectation, (judged, name, seconds))

    def _share(self, kiosk_id: int, is_active: bool, schedule_id: int | None) -> Expectation:
        shared = self._shared[(is_active, schedule_id)] = self.kiosk(
            kiosk_id, is_active, schedule_id
        )
        return shared


# -- history ---------------------------------------------------------------------------------------


def expected_intervals(
    *,
    events: Sequence[KioskEvent],
    versions: Mapping[int, Sequence[ScheduleVersion]],
    windows: Sequence[MaintenanceWindow],
    is_active: bool,
    schedule_id: int | None,
    since: datetime,
    until: datetime,
) -> list[Interval]:
    """When a kiosk was expected online within [since, until), judged as it was then: the
    event log gives its activity and schedule over time, each schedule's versions its hours,
    the windows its maintenance. `is_active`/`schedule_id` are its current values (what held
    before the first logged change is read from that change)."""
    ordered = sorted(events, key=lambda e: e.at)
    active = _segments(ordered, since, until, is_active, _activity_change)
    scheduled: list[Interval] = []
    for start, end, assigned in _segments(ordered, since, until, schedule_id, _schedule_change):
        chosen = None if assigned is None else versions.get(assigned, ())
        scheduled += schedule_intervals(chosen, start, end)
    on = [(start, end) for start, end, value in active if value]
    expected = intersect(merge(scheduled), on)
    return subtract(expected, [(w.starts_at, w.ends_at) for w in windows])


def _activity_change(event: KioskEvent) -> tuple[bool, bool] | None:
    """(value before, value after) for an activity event, else None."""
    if event.kind == EventKind.ACTIVATED:
        return False, True
    if event.kind == EventKind.DEACTIVATED:
        return True, False
    return None


def _schedule_change(event: KioskEvent) -> tuple[int | None, int | None] | None:
    if event.kind != EventKind.SCHEDULE_ASSIGNED:
        return None
    detail = event.detail or {}
    return detail.get("previous_schedule_id"), detail.get("schedule_id")


def _segments(
    events: Sequence[KioskEvent],
    since: datetime,
    until: datetime,
    current: T,
    change: Callable[[KioskEvent], tuple[T, T] | None],
) -> list[tuple[datetime, datetime, T]]:
    """[(start, end, value)] over [since, until) of a fact the events change."""
    changes = [(e.at, c) for e in events if (c := change(e)) is not None]
    value = changes[0][1][0] if changes else current
    segments: list[tuple[datetime, datetime, T]] = []
    start = since
    for at, (_, after) in changes:
        if at >= until:
            break
        if at > start:
            segments.append((start, at, value))
            start = at
        value = after
    if start < until:
        segments.append((start, until, value))
    return segments
