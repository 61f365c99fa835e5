"""The expected-hours rule, table-driven with explicit instants across zones and DST."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from exporter.expected import (
    ExpectationFacts,
    FleetExpectation,
    WeeklyHours,
    expectation,
    expected_intervals,
    judge_schedule,
    latest_liveness,
    listening_since,
    maintenance_at,
    offline_while_expected_seconds,
    parse_hours,
    parse_timezone,
    schedule_intervals,
    unknown_intervals,
)
from exporter.records import (
    KioskEvent,
    KioskRecord,
    LivenessInterval,
    MaintenanceWindow,
    ScheduleVersion,
)
from exporter.status import KioskStatus

OFFICE = "Mon-Fri 07:00-20:00, Sat 08:00-12:00"
SINCE_EVER = datetime(2020, 1, 1, tzinfo=timezone.utc)
DAY = 1440


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def version(hours: str | None, zone: str = "Europe/Paris", valid_from=SINCE_EVER):
    return ScheduleVersion(1, valid_from, zone, hours)


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("Mon 07:00-20:00", ((420, 1200),)),
        ("Sat 08:00-12:00, Mon 07:00-08:00", ((420, 480), (5 * DAY + 480, 5 * DAY + 720))),
        ("Fri 18:00-02:00", ((4 * DAY + 1080, 5 * DAY + 120),)),
        ("Sun 22:00-02:00", ((6 * DAY + 1320, 7 * DAY + 120),)),
        ("Sun 22:00-24:00, Mon 00:00-06:00", ((6 * DAY + 1320, 7 * DAY + 360),)),
        ("Fri-Mon 09:00-10:00", tuple((d * DAY + 540, d * DAY + 600) for d in (0, 4, 5, 6))),
        ("mon-sun 00:00-24:00", ((0, 7 * DAY),)),
        ("Mon 08:00-12:00 14:00-18:00", ((480, 720), (840, 1080))),
        ("Mon 08:00-12:00, Mon 11:00-13:00", ((480, 780),)),
    ],
)
def test_weekly_hours_are_parsed_into_merged_spans(text, spans):
    assert parse_hours(text) == WeeklyHours(spans)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " , ",
        "Mon",
        "Xyz 07:00-08:00",
        "Mon 25:00-26:00",
        "Mon 07:60-08:00",
        "Mon 07:00-07:00",
        "Mon 24:30-01:00",
        "Mon-Fri07:00-08:00",
        "Mon 07:00-08:00;",
    ],
)
def test_unreadable_hours_are_refused_with_a_reason(text):
    with pytest.raises(ValueError, match=r"."):
        parse_hours(text)


@pytest.mark.parametrize("name", ["Mars/Olympus", "", " Europe/Paris", "../etc/passwd"])
def test_unknown_time_zones_are_refused(name):
    with pytest.raises(ValueError, match="unknown time zone"):
        parse_timezone(name)


# (hours, zone, instant UTC, inside, since UTC or None)
CASES = [
    # Paris in winter (UTC+1), Monday 30 November 2026.
    (OFFICE, "Europe/Paris", "2026-11-30 05:59", False, None),
    (OFFICE, "Europe/Paris", "2026-11-30 06:00", True, "2026-11-30 06:00"),
    (OFFICE, "Europe/Paris", "2026-11-30 18:59", True, "2026-11-30 06:00"),
    (OFFICE, "Europe/Paris", "2026-11-30 19:00", False, None),
    (OFFICE, "Europe/Paris", "2026-12-05 07:00", True, "2026-12-05 07:00"),
    (OFFICE, "Europe/Paris", "2026-12-05 11:00", False, None),
    (OFFICE, "Europe/Paris", "2026-12-06 12:00", False, None),
    # Paris in summer (UTC+2): the same wall-clock hours, one hour earlier in UTC.
    (OFFICE, "Europe/Paris", "2026-03-30 05:00", True, "2026-03-30 05:00"),
    (OFFICE, "Europe/Paris", "2026-03-27 04:59", False, None),
    # Crossing midnight: Friday 18:00 to Saturday 02:00.
    ("Fri 18:00-02:00", "UTC", "2026-12-05 01:59", True, "2026-12-04 18:00"),
    ("Fri 18:00-02:00", "UTC", "2026-12-05 02:00", False, None),
    ("Sun 22:00-02:00", "UTC", "2026-11-30 01:00", True, "2026-11-29 22:00"),
    # Clocks go forward in Paris on 29 March 2026 at 02:00 (01:00 UTC): 02:30 never shows,
    # the hours start when the clock jumps past it.
    ("Sun 02:30-05:00", "Europe/Paris", "2026-03-29 00:59", False, None),
    ("Sun 02:30-05:00", "Europe/Paris", "2026-03-29 01:00", True, "2026-03-29 01:00"),
    ("Sun 02:30-05:00", "Europe/Paris", "2026-03-29 02:59", True, "2026-03-29 01:00"),
    ("Sun 02:30-05:00", "Europe/Paris", "2026-03-29 03:00", False, None),
    # Clocks go back on 25 October 2026 (03:00 CEST -> 02:00 CET, at 01:00 UTC): 02:30 means
    # its first occurrence (00:30 UTC); 04:00 CET is 03:00 UTC.
    ("Sun 02:30-04:00", "Europe/Paris", "2026-10-25 00:29", False, None),
    ("Sun 02:30-04:00", "Europe/Paris", "2026-10-25 00:30", True, "2026-10-25 00:30"),
    ("Sun 02:30-04:00", "Europe/Paris", "2026-10-25 02:59", True, "2026-10-25 00:30"),
    ("Sun 02:30-04:00", "Europe/Paris", "2026-10-25 03:00", False, None),
    # New York, the Monday after its spring change (8 March 2026): 09:00 EDT = 13:00 UTC.
    ("Mon-Fri 09:00-17:00", "America/New_York", "2026-03-09 12:59", False, None),
    ("Mon-Fri 09:00-17:00", "America/New_York", "2026-03-09 13:00", True, "2026-03-09 13:00"),
    # Sydney in its summer (UTC+11): Monday 07:00 local is Sunday 20:00 UTC.
    (OFFICE, "Australia/Sydney", "2026-11-29 20:00", True, "2026-11-29 20:00"),
    # Kolkata (UTC+5:30, no DST).
    (OFFICE, "Asia/Kolkata", "2026-11-30 01:30", True, "2026-11-30 01:30"),
    (OFFICE, "Asia/Kolkata", "2026-11-30 01:29", False, None),
    # Expected all the time: inside, and since nothing this rule knows.
    ("Mon-Sun 00:00-24:00", "Europe/Paris", "2026-11-30 03:00", True, None),
]


@pytest.mark.parametrize(("hours", "zone", "at", "inside", "since"), CASES)
def test_a_schedule_is_judged_in_its_zone_with_daylight_saving(hours, zone, at, inside, since):
    verdict = judge_schedule([version(hours, zone)], utc(at))
    assert (verdict.inside, verdict.since) == (inside, since and utc(since))


def test_always_is_inside_since_forever():
    verdict = judge_schedule(None, utc("2026-11-30 03:00"))
    assert (verdict.inside, verdict.since) == (True, None)


def test_an_edit_applies_from_the_edit_on_and_a_removal_expects_nothing():
    edit, removal = utc("2026-11-30 12:00"), utc("2026-12-01 12:00")
    versions = [
        version(OFFICE),
        version("Mon-Fri 08:00-18:00", valid_from=edit),
        version(None, valid_from=removal),
    ]
    # Monday before the edit: 07:00-20:00 Paris; Tuesday after it: 08:00-18:00.
    assert judge_schedule(versions, utc("2026-11-30 06:30")).inside
    assert not judge_schedule(versions, utc("2026-12-01 06:30")).inside
    assert judge_schedule(versions, utc("2026-12-01 07:00")).since == utc("2026-12-01 07:00")
    assert not judge_schedule(versions, utc("2026-12-02 08:00")).inside
    week = schedule_intervals(versions, utc("2026-11-30 00:00"), utc("2026-12-03 00:00"))
    assert week == [
        (utc("2026-11-30 06:00"), utc("2026-11-30 17:00")),
        (utc("2026-12-01 07:00"), utc("2026-12-01 12:00")),
    ]


def test_maintenance_windows_that_touch_are_one():
    windows = [
        MaintenanceWindow(1, 7, utc("2026-11-30 10:00"), utc("2026-11-30 11:00"), None),
        MaintenanceWindow(2, 7, utc("2026-11-30 11:00"), utc("2026-11-30 12:30"), "more"),
    ]
    assert maintenance_at(windows, utc("2026-11-30 10:30")) == utc("2026-11-30 12:30")
    assert maintenance_at(windows, utc("2026-11-30 12:30")) is None


OPEN = judge_schedule([version(OFFICE)], utc("2026-11-30 09:00"))  # since 06:00 UTC
CLOSED = judge_schedule([version(OFFICE)], utc("2026-11-30 21:00"))


@pytest.mark.parametrize(
    ("active", "schedule", "maintenance_until", "last_end", "last_change", "expected", "since"),
    [
        (True, OPEN, None, None, None, True, "2026-11-30 06:00"),
        (False, OPEN, None, None, None, False, None),
        (True, CLOSED, None, None, None, False, None),
        (True, OPEN, utc("2026-11-30 10:00"), None, None, False, None),
        (True, OPEN, None, utc("2026-11-30 08:00"), None, True, "2026-11-30 08:00"),
        (
            True,
            OPEN,
            None,
            utc("2026-11-29 08:00"),
            utc("2026-11-30 08:30"),
            True,
            "2026-11-30 08:30",
        ),
        (True, judge_schedule(None, utc("2026-11-30 09:00")), None, None, None, True, None),
    ],
)
def test_expected_means_active_inside_hours_and_not_in_maintenance(
    active, schedule, maintenance_until, last_end, last_change, expected, since
):
    judged = expectation(
        is_active=active,
        schedule=schedule,
        maintenance_until=maintenance_until,
        last_maintenance_end=last_end,
        last_change=last_change,
    )
    assert (judged.expected_online, judged.since) == (expected, since and utc(since))
    assert judged.in_maintenance == (maintenance_until is not None)


NOW = utc("2026-11-30 09:00")


@pytest.mark.parametrize(
    ("status", "heartbeat", "expected", "since", "back", "seconds"),
    [
        (KioskStatus.NEVER_CONNECTED, None, True, None, None, None),
        (KioskStatus.INACTIVE, None, False, None, None, None),
        (KioskStatus.ONLINE, "2026-11-30 08:59", True, None, None, 0),
        (KioskStatus.OFFLINE, "2026-11-29 19:30", False, None, None, 0),
        # Always, the service kept running: today's heartbeat age.
        (KioskStatus.OFFLINE, "2026-11-30 08:40", True, None, None, 1200),
        # Dark since last night: counted from opening time, not from the last ping.
        (KioskStatus.OFFLINE, "2026-11-29 19:30", True, "2026-11-30 06:00", None, 3 * 3600),
        # The service came back at 08:55 after a gap: kiosks get the time to ping again.
        (KioskStatus.OFFLINE, "2026-11-30 08:00", True, None, "2026-11-30 08:55", 300),
        (
            KioskStatus.OFFLINE,
            "2026-11-30 08:58",
            True,
            "2026-11-30 06:00",
            "2026-11-30 08:55",
            120,
        ),
    ],
)
def test_offline_while_expected_counts_from_the_latest_start(
    status, heartbeat, expected, since, back, seconds
):
    judged = expectation(
        is_active=status is not KioskStatus.INACTIVE,
        schedule=judge_schedule(None if expected else [version(None)], NOW),
        maintenance_until=None,
        last_maintenance_end=None,
        last_change=since and utc(since),
    )
    value = offline_while_expected_seconds(
        status=status,
        last_heartbeat_at=heartbeat and utc(heartbeat),
        expectation=judged,
        listening_since=back and utc(back),
        now=NOW,
    )
    assert value == seconds


def liveness(*spans):
    return [LivenessInterval(n, "r", utc(a), utc(b)) for n, (a, b) in enumerate(spans)]


@pytest.mark.parametrize(
    ("spans", "back"),
    [
        ((), None),
        ((("2026-11-30 08:00", "2026-11-30 08:59"),), None),
        # A restart within one period is no gap.
        (
            (("2026-11-30 07:00", "2026-11-30 08:00"), ("2026-11-30 08:00:04", "2026-11-30 09:00")),
            None,
        ),
        # Twenty minutes down: listening again from the restart.
        (
            (("2026-11-30 07:00", "2026-11-30 08:00"), ("2026-11-30 08:20", "2026-11-30 09:00")),
            "2026-11-30 08:20",
        ),
        # Another replica covered the restart.
        (
            (
                ("2026-11-30 07:00", "2026-11-30 08:00"),
                ("2026-11-30 07:30", "2026-11-30 09:00"),
                ("2026-11-30 08:20", "2026-11-30 09:00"),
            ),
            None,
        ),
    ],
)
def test_the_service_return_after_a_gap_in_its_liveness(spans, back):
    assert listening_since(liveness(*spans), NOW) == (back and utc(back))


@pytest.mark.parametrize(
    ("spans", "until", "unknown"),
    [
        # Never recorded: listening (a database from before liveness records existed).
        ((), "2026-11-30 10:00", []),
        # Killed after the 08:00 record, back at 08:20: unknown from the record's grace.
        (
            (("2026-11-30 07:00", "2026-11-30 08:00"), ("2026-11-30 08:20", "2026-11-30 09:00")),
            "2026-11-30 09:00",
            [("2026-11-30 08:00:05", "2026-11-30 08:20")],
        ),
        # Running now, its next record a little late: no gap at the end.
        ((("2026-11-30 07:00", "2026-11-30 08:59:52"),), "2026-11-30 09:00", []),
        # Stopped since 08:00 and asked at 09:00 (a report run with the service down).
        (
            (("2026-11-30 07:00", "2026-11-30 08:00"),),
            "2026-11-30 09:00",
            [("2026-11-30 08:00:05", "2026-11-30 09:00")],
        ),
    ],
)
def test_unknown_time_is_outside_every_replicas_liveness(spans, until, unknown):
    found = unknown_intervals(liveness(*spans), utc("2026-11-30 06:00"), utc(until))
    assert found == [(utc(a), utc(b)) for a, b in unknown]
    latest = latest_liveness(liveness(*spans))
    assert latest == (utc(spans[-1][1]) if spans else None)


def event(at, kind, **detail):
    return KioskEvent(7, utc(at), kind, None, detail or None)


def test_expected_intervals_replay_the_event_log_schedule_versions_and_maintenance():
    """A kiosk on `always` until Tuesday noon, then on office hours; deactivated on Wednesday
    from 10:00 to 12:00; in maintenance Thursday 09:00-10:00 (Paris = UTC+1)."""
    events = [
        event("2026-12-01 12:00", "schedule_assigned", previous_schedule_id=None, schedule_id=1),
        event("2026-12-02 09:00", "deactivated"),
        event("2026-12-02 11:00", "activated"),
        event("2026-12-05 00:00", "renamed", to="B"),
    ]
    windows = [MaintenanceWindow(1, 7, utc("2026-12-03 08:00"), utc("2026-12-03 09:00"), None)]
    intervals = expected_intervals(
        events=events,
        versions={1: [version(OFFICE)]},
        windows=windows,
        is_active=True,
        schedule_id=1,
        since=utc("2026-11-30 12:00"),
        until=utc("2026-12-04 00:00"),
    )
    assert intervals == [
        (utc("2026-11-30 12:00"), utc("2026-12-01 19:00")),
        (utc("2026-12-02 06:00"), utc("2026-12-02 09:00")),
        (utc("2026-12-02 11:00"), utc("2026-12-02 19:00")),
        (utc("2026-12-03 06:00"), utc("2026-12-03 08:00")),
        (utc("2026-12-03 09:00"), utc("2026-12-03 19:00")),
    ]


def test_expected_intervals_without_events_use_the_current_facts():
    since, until = utc("2026-11-30 00:00"), utc("2026-12-01 00:00")
    common = {"events": [], "versions": {}, "windows": [], "since": since, "until": until}
    assert expected_intervals(is_active=True, schedule_id=None, **common) == [(since, until)]
    assert expected_intervals(is_active=False, schedule_id=None, **common) == []
    # A window after a deactivation that ended before the period: active throughout.
    before = [event("2026-11-29 00:00", "activated")]
    assert expected_intervals(is_active=True, schedule_id=None, **{**common, "events": before}) == [
        (since, until)
    ]


def kiosk(kiosk_id, *, active=True, schedule=None, heartbeat="2026-11-30 08:00"):
    return KioskRecord(
        kiosk_id,
        f"k{kiosk_id}",
        "Hall",
        active,
        SINCE_EVER,
        utc(heartbeat),
        "1",
        "d",
        "k",
        schedule_id=schedule,
    )


def test_a_fleet_is_judged_kiosk_by_kiosk_even_where_kiosks_share_a_verdict():
    """The scrape shares one expectation between kiosks with nothing of their own on record;
    a kiosk in maintenance, reactivated or moved to a schedule today must still get its own,
    wherever it sits among the others."""
    facts = ExpectationFacts(
        schedule_names={1: "office"},
        versions={1: [version(OFFICE)]},
        open_windows={
            3: [MaintenanceWindow(1, 3, utc("2026-11-30 08:30"), utc("2026-11-30 10:00"), None)]
        },
        last_maintenance_end={4: utc("2026-11-30 08:50")},
        last_change={5: utc("2026-11-30 08:45"), 6: utc("2026-11-30 07:30")},
        liveness=[LivenessInterval(1, "a", utc("2026-11-29 00:00"), utc("2026-11-30 09:00"))],
    )
    fleet = [
        kiosk(1),
        kiosk(2, schedule=1),
        kiosk(3, schedule=1),
        kiosk(4, schedule=1),
        kiosk(5),
        kiosk(6, schedule=1),
        kiosk(7, active=False),
        kiosk(8, schedule=1),
        kiosk(9),
    ]
    shared = FleetExpectation(facts, NOW)
    judged = {k.id: shared.judge(k, KioskStatus.OFFLINE) for k in fleet}
    for k in fleet:  # each against a rule that has judged no other kiosk
        alone = FleetExpectation(facts, NOW).judge(k, KioskStatus.OFFLINE)
        assert judged[k.id] == alone, k.id
    seconds = {k: j.offline_while_expected_seconds for k, j in judged.items()}
    assert seconds == {1: 3600, 2: 3600, 3: 0, 4: 600, 5: 900, 6: 3600, 7: 0, 8: 3600, 9: 3600}
    assert judged[3].expectation.in_maintenance
