"""The outage and availability arithmetic (exporter/outages.py), exact at the boundaries."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.outages import (
    Exclusions,
    Outage,
    day_bounds,
    gap_is_outage,
    merge,
    offline_at,
    ratio,
    seconds,
    subtract,
    summarize,
    window_totals,
)
from tests.conftest import T0

THRESHOLD = 300
US = timedelta(microseconds=1)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def outage(last: float, ended: float | None) -> Outage:
    """An outage after a heartbeat at minute `last`, ended by one at minute `ended`."""
    started = at(last)
    return Outage(started, offline_at(started, THRESHOLD), None if ended is None else at(ended))


def window(outages, since=0, until=60, now=None, first=0, unknown=(), excluded=()):
    return summarize(
        outages,
        observed_since=at(first),
        since=at(since),
        until=at(until),
        now=at(until if now is None else now),
        exclusions=Exclusions(
            unknown=merge((at(a), at(b)) for a, b in unknown),
            excluded=merge((at(a), at(b)) for a, b in excluded),
        ),
    )


@pytest.mark.parametrize(
    ("gap", "is_outage"),
    [
        (timedelta(seconds=THRESHOLD) - US, False),
        (timedelta(seconds=THRESHOLD), True),
        (timedelta(seconds=THRESHOLD) + US, True),
        (timedelta(seconds=60), False),
    ],
)
def test_a_gap_is_an_outage_exactly_when_the_status_rule_said_offline(gap, is_outage):
    assert gap_is_outage(T0, T0 + gap, THRESHOLD) is is_outage


def test_a_closed_outage_inside_the_window_counts_from_offline_at_to_its_end():
    summary = window([outage(10, 20)])
    assert summary.downtime == timedelta(minutes=5)  # 10:15 -> 10:20: offline_at to the end
    assert summary.observed == timedelta(minutes=60)
    assert summary.availability_ratio == pytest.approx(1 - 5 / 60)
    assert [seconds(o.outage.duration(at(60))) for o in summary.outages] == [600]
    assert seconds(summary.longest_outage) == seconds(summary.mean_outage) == 300


@pytest.mark.parametrize(
    ("since", "until", "downtime_minutes"),
    [
        (0, 60, 20),  # 10:15 -> 10:35 whole
        (20, 60, 15),  # cut at the start
        (0, 30, 15),  # cut at the end
        (20, 30, 10),  # both
        (35, 60, None),  # after its end: not in the window
        (0, 15, None),  # before offline_at: the kiosk was still online by the rule
    ],
)
def test_a_window_counts_only_the_part_of_an_outage_inside_it(since, until, downtime_minutes):
    summary = window([outage(10, 35)], since=since, until=until, now=60)
    if downtime_minutes is None:
        assert summary.outages == [] and summary.downtime == timedelta(0)
    else:
        assert [o.downtime for o in summary.outages] == [timedelta(minutes=downtime_minutes)]
        assert summary.downtime == timedelta(minutes=downtime_minutes)
    assert summary.observed == timedelta(minutes=until - since)


def test_an_ongoing_outage_counts_up_to_now():
    summary = window([outage(40, None)], until=52, now=52)
    assert summary.downtime == timedelta(minutes=7)  # 10:45 -> 10:52
    assert summary.outages[0].outage.duration(at(52)) == timedelta(minutes=12)


def test_a_gap_of_exactly_the_threshold_is_an_outage_of_no_downtime():
    last = at(10)
    exact = Outage(last, offline_at(last, THRESHOLD), last + timedelta(seconds=THRESHOLD))
    summary = window([exact])
    assert len(summary.outages) == 1 and summary.downtime == timedelta(0)
    assert summary.availability_ratio == 1.0
    assert window([exact], since=16).outages == []  # its instant, 10:15, is before


def test_observed_time_starts_at_the_first_heartbeat():
    summary = window([], first=30)
    assert summary.observed == timedelta(minutes=30)
    never = summarize([], observed_since=None, since=at(0), until=at(60), now=at(60))
    assert never.observed == timedelta(0) and never.availability_ratio is None


def test_unknown_time_is_neither_downtime_nor_observed():
    """The service was down 10:20-10:30 (stopped, or killed -9) in the middle of an outage."""
    summary = window([outage(10, 45)], unknown=[(20, 30)])
    # 10:15-10:20, then from 10:35 (the threshold to ping again after 10:30) to 10:45
    assert summary.downtime == timedelta(minutes=15)
    assert summary.observed == timedelta(minutes=50)
    assert summary.unknown == timedelta(minutes=10)


def test_a_gap_whose_downtime_falls_entirely_in_unknown_time_is_no_outage():
    """A kill -9 at 10:05 and a restart at 10:40: the kiosks were not charged for it."""
    summary = window([outage(2, 41)], unknown=[(5, 40)])
    assert summary.outages == []
    assert summary.downtime == timedelta(0)


def test_the_reality_of_an_outage_is_judged_over_its_whole_life_not_the_window():
    """Cut by a window where it was all unknown time, it is still listed (downtime 0 there)."""
    summary = window([outage(10, 50)], since=20, until=30, now=60, unknown=[(20, 30)])
    assert [o.downtime for o in summary.outages] == [timedelta(0)]


def test_deactivation_in_the_middle_of_an_outage_stops_the_downtime():
    summary = window([outage(10, 50)], excluded=[(25, 60)])
    assert summary.downtime == timedelta(minutes=10)  # 10:15 -> 10:25
    assert summary.observed == timedelta(minutes=25)
    assert summary.unknown == timedelta(0)


def test_a_closed_night_is_not_an_outage():
    summary = window([outage(10, 50)], excluded=[(12, 50)])
    assert summary.outages == [] and summary.downtime == timedelta(0)


def test_unknown_time_that_is_also_excluded_is_reported_once_as_excluded():
    summary = window([], unknown=[(10, 30)], excluded=[(20, 40)])
    assert summary.unknown == timedelta(minutes=10)
    assert summary.observed == timedelta(minutes=30)


def test_outages_are_newest_first_with_mean_and_longest_on_downtime():
    summary = window([outage(0, 10), outage(20, 40)])
    assert [o.outage.started_at for o in summary.outages] == [at(20), at(0)]
    assert summary.longest_outage == timedelta(minutes=15)
    assert summary.mean_outage == timedelta(minutes=10)


def test_an_outage_from_before_observation_counts_from_it():
    """A kiosk offline at the upgrade that brought history: observed from the upgrade."""
    summary = window([outage(-30, 20)], first=0)
    assert summary.downtime == timedelta(minutes=20)
    assert len(summary.outages) == 1


@pytest.mark.parametrize(
    ("down", "observed", "expected"),
    [(0, 0, None), (0, 10, 1.0), (5, 10, 0.5), (10, 10, 0.0)],
)
def test_ratio(down, observed, expected):
    assert ratio(timedelta(seconds=down), timedelta(seconds=observed)) == expected


def test_whole_seconds_are_floored():
    assert seconds(timedelta(seconds=59, microseconds=999_999)) == 59
    assert seconds(None) is None


def test_interval_arithmetic():
    a = merge([(at(0), at(10)), (at(5), at(20)), (at(30), at(40)), (at(50), at(50))])
    assert a == [(at(0), at(20)), (at(30), at(40))]
    assert subtract(a, merge([(at(5), at(6)), (at(15), at(35))])) == [
        (at(0), at(5)),
        (at(6), at(15)),
        (at(35), at(40)),
    ]


def test_days_follow_the_report_time_zone_across_daylight_saving():
    paris = ZoneInfo("Europe/Paris")
    start = datetime(2026, 3, 28, 0, 0, tzinfo=paris)
    days = day_bounds(start, datetime(2026, 3, 30, 0, 0, tzinfo=paris))
    assert [end - begin for begin, end in days] == [timedelta(hours=24), timedelta(hours=23)]
    assert days[0][0] == datetime(2026, 3, 27, 23, 0, tzinfo=timezone.utc)


def test_after_the_service_returns_a_kiosk_gets_the_threshold_to_ping_again():
    """Down 10:20-10:30: the silent kiosk counts as down again from 10:35, not 10:30."""
    summary = window([outage(10, 50)], unknown=[(20, 30)])
    assert summary.downtime == timedelta(minutes=5 + 15)  # 10:15-10:20 and 10:35-10:50
    assert summary.observed == timedelta(minutes=50)


def test_after_expected_time_begins_a_kiosk_gets_the_threshold_to_ping_again():
    """Closed until 10:30 (hours, maintenance or deactivation): silent since 10:10, it counts
    as down from 10:35, as the fleet rules count it, not from opening time."""
    summary = window([outage(10, 50)], excluded=[(0, 30)])
    assert summary.downtime == timedelta(minutes=15)  # 10:35-10:50
    switched_on_in_time = window([outage(10, 34)], excluded=[(0, 30)])
    assert switched_on_in_time.outages == [] and switched_on_in_time.downtime == timedelta(0)


# -- the arithmetic against a minute-by-minute reading of the definitions ---------------------


@st.composite
def histories(draw):
    """A kiosk's heartbeats (minutes), holes, a window and now, all on whole minutes; gaps
    of exactly the threshold and holes that begin or end on a heartbeat or an offline_at
    are drawn often, as the boundaries are where the arithmetic takes its shortcuts."""
    grace = draw(st.integers(1, 15))
    steps = st.sampled_from([1, grace - 1 or 1, grace, grace + 1, 7, 20, 45])
    beats = [draw(st.integers(0, 30))]
    for step in draw(st.lists(steps, max_size=7)):
        beats.append(beats[-1] + step)
    now = draw(st.integers(beats[-1], beats[-1] + 60))
    outages = []
    for previous, received in zip(beats, [*beats[1:], None], strict=True):
        if received is None:
            if now - previous >= grace:
                outages.append((previous, None))
        elif received - previous >= grace:
            outages.append((previous, received))
    edges = sorted({*beats, *(b + grace for b in beats), now})
    moment = st.one_of(st.integers(0, now + 20), st.sampled_from(edges))
    hole = st.tuples(moment, moment).filter(lambda p: p[0] < p[1])
    since = draw(st.integers(0, now - 1)) if now > 0 else 0
    until = draw(st.integers(since + 1, now)) if now > since else since + 1
    return {
        "beats": beats,
        "grace": grace,
        "now": max(now, until),
        "outages": outages,
        "unknown": draw(st.lists(hole, max_size=3)),
        "excluded": draw(st.lists(hole, max_size=3)),
        "since": since,
        "until": until,
        # After the first heartbeat too: a kiosk connected before the upgrade that began
        # its history is observed from the upgrade on.
        "first": draw(st.one_of(st.integers(0, beats[0]), st.sampled_from(edges))),
    }


def by_minutes(h):
    """downtime, observed, unknown (minutes) and the first minute of downtime of each outage
    found (when it began to count: kiosk_outages_total), read minute by minute."""
    unknown = {m for a, b in h["unknown"] for m in range(a, b)}
    excluded = {m for a, b in h["excluded"] for m in range(a, b)}
    holes = unknown | excluded
    returns = {m for m in range(0, 400) if m in holes and m + 1 not in holes}
    backs = {m + 1 for m in returns}

    def judged(m):
        return m >= h["first"] and m not in holes

    down_total, firsts = 0, []
    window = range(h["since"], h["until"])
    for last, ended in h["outages"]:
        low = last + h["grace"]
        high = ended if ended is not None else max(h["now"], low)
        overlaps = (
            (h["since"] <= low < h["until"])
            if high == low
            else (low < h["until"] and high > h["since"])
        )
        if not overlaps:
            continue
        down = [
            m
            for m in range(low, high)
            if judged(m) and not any(b <= m < b + h["grace"] for b in backs)
        ]
        if down or (high == low and judged(low)):
            firsts.append(down[0] if down else low)
            down_total += sum(1 for m in down if m in window)
    start = max(h["since"], h["first"])
    observed = sum(1 for m in range(start, h["until"]) if judged(m))
    unknown_only = sum(1 for m in range(start, h["until"]) if m in unknown and m not in excluded)
    return down_total, observed, unknown_only, sorted(firsts)


@settings(max_examples=1000, derandomize=True, deadline=None)
@given(histories())
def test_the_arithmetic_agrees_with_a_minute_by_minute_reading(h):
    threshold = timedelta(minutes=h["grace"])
    outages = [
        Outage(at(last), at(last) + threshold, None if ended is None else at(ended))
        for last, ended in h["outages"]
    ]
    question = {
        "observed_since": at(h["first"]),
        "since": at(h["since"]),
        "until": at(h["until"]),
        "now": at(h["now"]),
        "exclusions": Exclusions(
            unknown=merge((at(a), at(b)) for a, b in h["unknown"]),
            excluded=merge((at(a), at(b)) for a, b in h["excluded"]),
        ),
    }
    summary = summarize(outages, **question)
    down, observed, unknown, firsts = by_minutes(h)
    assert summary.downtime == timedelta(minutes=down)
    assert summary.observed == timedelta(minutes=observed)
    assert summary.unknown == timedelta(minutes=unknown)
    assert sorted(o.first_down_at for o in summary.outages) == [at(m) for m in firsts]
    # The counters' shortcut (kiosk_offline_seconds_total, kiosk_outages_total and co).
    started = sum(1 for m in firsts if h["since"] <= m < h["until"])
    expected = (timedelta(minutes=down), timedelta(minutes=observed), started)
    assert window_totals(outages, **question) == expected
