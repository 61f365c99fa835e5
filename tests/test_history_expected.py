"""The history judged by the expected-hours rule and the service's own liveness: nights,
maintenance, deactivation and the service's absences count neither as downtime nor as
observed time. The real app on SQLite, PostgreSQL and MariaDB; only the clock moves.

T0 is Thursday 2026-11-26 10:00 UTC; the threshold is 300 s.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from exporter.config import Settings
from exporter.history import HistoryService
from tests.conftest import T0
from tests.test_api import beat
from tests.test_history_api import get

HOUR = 3600


def at(minutes: float):
    return T0 + timedelta(minutes=minutes)


def ping(client, clock, key, minutes):
    clock.now = at(minutes)
    reply = beat(client, key)
    assert reply.status_code == 200, reply.text


def tick(store, clock, minutes):
    """What serve's 5-s loop does at that minute: open the outages that began."""
    clock.now = at(minutes)
    store.open_outages(now=clock(), online_threshold_seconds=300)


def availability(client, token, kiosk_id, since, until):
    reply = get(
        client,
        token,
        f"/kiosk/{kiosk_id}/availability",
        f"since={at(since).isoformat()}&until={at(until).isoformat()}".replace("+", "%2B"),
    )
    assert reply.status_code == 200, reply.text
    return reply.json


def outages(client, token, kiosk_id, since, until):
    query = f"since={at(since).isoformat()}&until={at(until).isoformat()}".replace("+", "%2B")
    reply = get(client, token, f"/kiosk/{kiosk_id}/outages", query)
    assert reply.status_code == 200, reply.text
    return reply.json["outages"]


def scraped(client, kiosk_id):
    """kiosk_offline_seconds_total, kiosk_observed_seconds_total, kiosk_outages_total."""
    page = client.simulate_get("/metrics").text
    values = {}
    for line in page.splitlines():
        for name in ("offline_seconds", "observed_seconds", "outages"):
            if line.startswith(f"kiosk_{name}_total{{") and f'kiosk_id="{kiosk_id}"' in line:
                values[name] = float(line.rsplit(" ", 1)[1])
    return values["offline_seconds"], values["observed_seconds"], values["outages"]


@pytest.fixture
def morning(store, add_kiosk, clock):
    """A kiosk on 10:00-10:30 weekday hours (UTC), pinging every 4 minutes until 10:28 on
    Thursday, then dark for the night (the schedule assigned the day before)."""
    clock.now = at(-24 * 60)
    store.add_schedule("brief", timezone="UTC", hours="Mon-Fri 10:00-10:30", now=clock())
    kiosk_id, key = add_kiosk()
    store.assign_schedule(kiosk_id, "brief", now=clock())
    return kiosk_id, key


FRIDAY = 24 * 60  # Friday 10:00, in minutes from T0


def test_a_kiosk_switched_off_for_the_night_and_on_after_opening_has_no_outage(
    client, token, store, clock, morning
):
    kiosk_id, key = morning
    for minute in range(0, 29, 4):
        ping(client, clock, key, minute)
    tick(store, clock, 40)  # the 5-s loop persists the gap as it begins, hours or not
    ping(client, clock, key, FRIDAY + 2)  # on two minutes after opening: inside its grace
    ping(client, clock, key, FRIDAY + 6)
    tick(store, clock, FRIDAY + 10)
    row = availability(client, token, kiosk_id, 0, FRIDAY + 10)
    assert row["outages"] == 0 and row["downtime_seconds"] == 0
    # Observed: Thursday 10:00-10:30 and Friday 10:00-10:10; the night counts neither way.
    assert row["observed_seconds"] == 40 * 60
    assert row["availability_ratio"] == 1.0
    assert outages(client, token, kiosk_id, 0, FRIDAY + 10) == []


def test_a_kiosk_still_dark_after_opening_is_down_from_its_grace_on(
    client, token, store, clock, morning
):
    kiosk_id, key = morning
    for minute in range(0, 29, 4):
        ping(client, clock, key, minute)
    tick(store, clock, 40)
    ping(client, clock, key, FRIDAY + 12)  # switched on 12 minutes late
    ping(client, clock, key, FRIDAY + 16)
    clock.now = at(FRIDAY + 20)
    (outage,) = outages(client, token, kiosk_id, 0, FRIDAY + 20)
    # Down from 10:05 (opening + the threshold, when the fleet rules count it down) to 10:12.
    assert outage["downtime_seconds"] == 7 * 60
    assert outage["started_at"] == "2026-11-26T10:28:00.000000Z"
    row = availability(client, token, kiosk_id, 0, FRIDAY + 20)
    assert (row["downtime_seconds"], row["observed_seconds"]) == (7 * 60, 50 * 60)
    days = get(client, token, f"/kiosk/{kiosk_id}/availability", "bucket=day").json["days"]
    # The outage overlaps Thursday evening ([offline_at, ended_at) does), with no downtime there.
    assert [(d["date"], d["downtime_seconds"], d["outages"]) for d in days[-2:]] == [
        ("2026-11-26", 0, 1),
        ("2026-11-27", 7 * 60, 1),
    ]


def test_a_maintenance_window_is_neither_downtime_nor_observed(
    client, token, store, add_kiosk, clock
):
    kiosk_id, key = add_kiosk()
    for minute in (0, 4, 8):
        ping(client, clock, key, minute)
    store.start_maintenance([kiosk_id], starts_at=at(10), ends_at=at(40), reason="new stand")
    tick(store, clock, 20)
    for minute in (41, 45, 49):  # back within its grace after the window
        ping(client, clock, key, minute)
    clock.now = at(50)
    row = availability(client, token, kiosk_id, 0, 50)
    assert (row["outages"], row["downtime_seconds"]) == (0, 0)
    assert row["observed_seconds"] == 20 * 60  # 10:00-10:10 and 10:40-10:50


def test_deactivation_in_the_middle_of_an_outage_stops_its_downtime(
    client, token, store, add_kiosk, clock
):
    kiosk_id, key = add_kiosk()
    ping(client, clock, key, 0)
    tick(store, clock, 6)  # offline since 10:05
    store.set_active(kiosk_id, False, now=at(20))
    store.set_active(kiosk_id, True, now=at(40))
    ping(client, clock, key, 47)  # reactivated at 10:40, pinged after its grace: down 2 min
    for minute in (51, 55, 59):
        ping(client, clock, key, minute)
    clock.now = at(60)
    (outage,) = outages(client, token, kiosk_id, 0, 60)
    assert outage["downtime_seconds"] == (15 + 2) * 60  # 10:05-10:20 and 10:45-10:47
    row = availability(client, token, kiosk_id, 0, 60)
    assert row["observed_seconds"] == 40 * 60  # 10:00-10:20 and 10:40-11:00
    assert scraped(client, kiosk_id) == (17 * 60, 40 * 60, 1)


def liveness(store, *spans):
    """Liveness intervals of one replica, as its 5-s loop writes them."""
    for start, last_seen in spans:
        interval = store.start_liveness("replica-a", now=at(start))
        store.touch_liveness(interval, now=at(last_seen))


def test_time_the_service_was_not_listening_is_unknown_and_charges_no_kiosk(
    client, token, store, add_kiosk, clock
):
    """Killed at 10:10 (last liveness record), restarted at 10:30: the kiosk's gap across
    it is no outage, and the 19 min 55 s after the last record's grace are unknown."""
    kiosk_id, key = add_kiosk()
    liveness(store, (0, 10), (30, 60))
    for minute in (0, 4, 8):
        ping(client, clock, key, minute)
    tick(store, clock, 30)  # the restarted service opens the outage at once
    for minute in range(31, 60, 4):
        ping(client, clock, key, minute)
    clock.now = at(60)
    assert outages(client, token, kiosk_id, 0, 60) == []
    row = availability(client, token, kiosk_id, 0, 60)
    assert row["unknown_seconds"] == 19 * 60 + 55
    assert row["observed_seconds"] == 60 * 60 - row["unknown_seconds"]
    assert row["downtime_seconds"] == 0
    fleet = get(
        client, token, "/kiosk/availability", f"since={at(0).isoformat()}".replace("+", "%2B")
    )
    assert fleet.json["fleet"]["unknown_seconds"] == 19 * 60 + 55


def test_an_outage_across_a_restart_counts_only_its_listened_part(
    client, token, store, add_kiosk, clock
):
    kiosk_id, key = add_kiosk()
    liveness(store, (0, 20), (30, 60))
    ping(client, clock, key, 0)
    tick(store, clock, 6)
    for minute in range(45, 60, 4):
        ping(client, clock, key, minute)
    clock.now = at(60)
    (outage,) = outages(client, token, kiosk_id, 0, 60)
    # 10:05 to 10:20:05 (the last record's grace), then 10:35 (back at 10:30 + grace) to 10:45.
    assert outage["downtime_seconds"] == 15 * 60 + 5 + 10 * 60


def test_the_counters_run_up_to_the_last_recorded_liveness_on_every_replica(
    client, make_client, store, add_kiosk, clock
):
    """Counters come from persisted times only: a replica whose clock runs ahead of the
    last liveness record, or another replica, reports exactly the same values."""
    kiosk_id, key = add_kiosk()
    liveness(store, (0, 30))
    ping(client, clock, key, 0)
    tick(store, clock, 6)  # ongoing outage, offline since 10:05
    clock.now = at(45)  # 15 minutes past the last record: the service was killed at 10:30
    first = scraped(client, kiosk_id)
    assert first == ((25 * 60), 30 * 60, 1)
    other = make_client()
    assert scraped(other, kiosk_id) == first
    clock.now = at(90)
    assert scraped(client, kiosk_id) == first  # no record since: nothing added
    liveness(store, (90, 100))  # restarted at 11:30: the kiosk gets its grace from there
    clock.now = at(100)
    # 10:30-10:30:05 is the last record's grace; from 11:30 the kiosk had 5 minutes to ping.
    later = ((25 + 5) * 60 + 5, (30 + 10) * 60 + 5, 1)
    assert scraped(client, kiosk_id) == later
    service = HistoryService(store, Settings(), clock)
    assert service.advance_totals(at(100)) == 1
    assert scraped(other, kiosk_id) == later


def test_kiosk_flapping_needs_real_outages_not_nights(client, token, store, clock, morning):
    """Three nights and a weekend are no outage: kiosk_outages_total stays 0."""
    kiosk_id, key = morning
    days = (0, 1, 4)  # Thursday, Friday, Monday
    for day in days:
        for minute in range(0, 29, 4):
            ping(client, clock, key, day * 24 * 60 + minute)
        tick(store, clock, day * 24 * 60 + 40)
    ping(client, clock, key, 5 * 24 * 60)  # Tuesday 10:00
    clock.now = at(5 * 24 * 60 + 1)
    assert scraped(client, kiosk_id)[2] == 0
    row = availability(client, token, kiosk_id, 0, 5 * 24 * 60 + 1)
    assert row["outages"] == 0 and row["observed_seconds"] == len(days) * 30 * 60 + 60


def test_the_daily_purge_takes_old_events_windows_and_liveness_not_the_counters(
    client, store, add_kiosk, clock
):
    kiosk_id, key = add_kiosk()
    liveness(store, (0, 30))
    for minute in (0, 4, 8):
        ping(client, clock, key, minute)
    store.start_maintenance([kiosk_id], starts_at=at(10), ends_at=at(20))
    store.set_active(kiosk_id, False, now=at(25))
    store.set_active(kiosk_id, True, now=at(26))
    tick(store, clock, 27)
    days = 3 * 24 * 60
    liveness(store, (days, days + 10))  # back three days later
    clock.now = at(days + 10)
    before = scraped(client, kiosk_id)
    service = HistoryService(store, Settings(), clock)
    # Folded up to the last liveness record, the purge may take all but the open outage.
    assert service.advance_totals(clock()) == 1
    store.purge_history(before=at(days))
    assert store.kiosk_events(kiosk_id) == []
    assert store.maintenance_windows(kiosk_id=kiosk_id) == []
    assert [i.started_at for i in store.liveness_intervals()] == [at(days)]
    assert scraped(client, kiosk_id) == before
    assert store.history_state().purged_before == at(days)


def test_the_purge_keeps_what_unfolded_counters_still_read(client, store, add_kiosk, clock):
    kiosk_id, key = add_kiosk()
    ping(client, clock, key, 0)
    store.start_maintenance([kiosk_id], starts_at=at(10), ends_at=at(20))
    clock.now = at(60)
    before = scraped(client, kiosk_id)
    store.purge_history(before=at(60))  # nothing folded yet: the window stays
    assert len(store.maintenance_windows(kiosk_id=kiosk_id)) == 1
    assert scraped(client, kiosk_id) == before


def test_attention_modes_recent_outages_are_judged_like_the_counter(
    client, store, add_kiosk, clock
):
    """kiosk_outages_last_hour (attention mode) counts what kiosk_outages_total counts: the
    gap across the restart is none, the silence while the service ran is one."""
    kiosk_id, key = add_kiosk()
    liveness(store, (0, 10), (30, 60))
    for minute in (0, 4, 8, 31, 35):
        ping(client, clock, key, minute)
    tick(store, clock, 30)
    ping(client, clock, key, 47)  # silent 10:35-10:47 while the service ran
    clock.now = at(60)
    service = HistoryService(store, Settings(), clock)
    kiosks = store.list_kiosks()
    assert service.outages_started(kiosks, at(0), at(60)) == {kiosk_id: 1}
    assert service.outages_started(kiosks, at(41), at(60)) == {}  # began to count at 10:40
    assert scraped(client, kiosk_id)[2] == 1
