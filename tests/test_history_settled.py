"""Outages judged once settled: the hourly job stores each ended outage's downtime, and a
fleet document sums those wholly inside its window in the database and judges only the
rest. Its figures must be exactly those of judging every outage on each request, and those
of the one-kiosk documents (which still judge everything). The real app on SQLite,
PostgreSQL and MariaDB; only the clock moves.

T0 is Thursday 2026-11-26 10:00 UTC; the threshold is 300 s.
"""

from __future__ import annotations

import random
from datetime import timedelta
from itertools import pairwise

import pytest

from exporter import history
from exporter.config import Settings
from exporter.history import HistoryKeeper, HistoryService
from tests.test_history_api import get
from tests.test_history_expected import at, liveness, ping, tick

DAY = 24 * 60
WINDOWS = [(-2 * DAY, 2 * DAY), (0, DAY), (30.5, 900.25), (641, DAY - 1), (-100, 200)]


def query(since: float, until: float) -> str:
    return f"since={at(since).isoformat()}&until={at(until).isoformat()}".replace("+", "%2B")


@pytest.fixture
def fleet(client, store, add_kiosk, clock):
    """Five kiosks over a day and a half of uneven pings: gaps of exactly the threshold,
    outages cut by every window's edges, office hours (nights), a maintenance window, a
    deactivation and a stop of the service."""
    rng = random.Random(14)
    clock.now = at(-DAY)
    store.add_schedule("office", timezone="UTC", hours="Mon-Fri 09:00-18:00", now=clock())
    kiosks = [add_kiosk(f"Kiosk-{n}", f"Building {n % 2}") for n in range(5)]
    store.assign_schedule(kiosks[1][0], "office", now=clock())
    liveness(store, (-DAY, 600), (640, 2 * DAY))  # the service was stopped 20:00-20:40
    actions = [
        (
            200,
            lambda: store.start_maintenance(
                [kiosks[2][0]], starts_at=at(200), ends_at=at(260), reason="new stand"
            ),
        ),
        (700, lambda: store.set_active(kiosks[3][0], False, now=at(700))),
        (760, lambda: store.set_active(kiosks[3][0], True, now=at(760))),
    ]
    for n, (_, key) in enumerate(kiosks):
        minute = -DAY / 2 + n
        while minute < DAY + 60:
            if not (600 < minute < 640 or (700 <= minute < 760 and n == 3)):
                actions.append(
                    (minute, lambda key=key, minute=minute: ping(client, clock, key, minute))
                )
            minute += rng.choice([1, 2, 4, 4, 4, 5, 5, 7, 15, 45, 130, 400])
    for minute, action in sorted(actions, key=lambda a: a[0]):
        if not 600 < minute < 640:
            tick(store, clock, minute)  # the 5-s loop, while the service listened
        clock.now = at(minute)
        action()
    clock.now = at(DAY + 60)
    return [kiosk_id for kiosk_id, _ in kiosks]


def documents(client, token):
    return [get(client, token, "/kiosk/availability", query(*w)).json for w in WINDOWS]


def test_judged_outages_change_no_figure_of_the_fleet_document(client, token, store, clock, fleet):
    before = documents(client, token)
    assert before[0]["fleet"]["outages"] > 10  # the scenario has outages to judge
    service = HistoryService(store, Settings(), clock)
    judged = service.judge_settled(at(DAY + 30))
    assert judged > 10
    assert store.history_state().judged_through == at(DAY + 30)
    # Some gaps were nights or the service's stop: judged as no outage at all.
    settled = store.fleet_window(at(-2 * DAY), at(DAY + 30)).settled
    assert 0 < sum(s.outages for s in settled.values()) < judged
    assert documents(client, token) == before
    assert service.judge_settled(at(DAY + 30)) == 0  # nothing new to judge


def test_each_kiosk_row_matches_its_own_document_once_judged(client, token, store, clock, fleet):
    HistoryService(store, Settings(), clock).judge_settled(at(DAY + 30))
    for since, until in WINDOWS:
        rows = get(client, token, "/kiosk/availability", query(since, until)).json["kiosks"]
        for row in rows:
            own = get(client, token, f"/kiosk/{row['kiosk_id']}/availability", query(since, until))
            assert {k: own.json[k] for k in row} == row


def test_history_is_judged_a_step_at_a_time_with_the_same_result(
    client, token, store, clock, fleet, monkeypatch
):
    before = documents(client, token)
    monkeypatch.setattr(history, "JUDGE_STEP", timedelta(hours=3))
    service = HistoryService(store, Settings(), clock)
    # Judged in two calls, the second from where the first stopped.
    first = service.judge_settled(at(300))
    assert store.history_state().judged_through == at(300)
    assert first + service.judge_settled(at(DAY + 30)) > 10
    assert documents(client, token) == before


def test_an_outage_is_judged_over_its_whole_life_whatever_order_the_rows_come_in(
    client, token, store, add_kiosk, clock, monkeypatch
):
    """Off from Thursday evening to Monday (office hours), then a 30-minute gap on Monday:
    both end in the same step. PostgreSQL and MariaDB return rows in no set order (their
    heap order after updates): the long one must still be judged with its nights."""
    clock.now = at(-60)
    store.add_schedule("office", timezone="UTC", hours="Mon-Fri 09:00-18:00", now=clock())
    kiosk, key = store.add_kiosk("Kiosk-Lobby", "Building A", now=clock())
    kiosk_id = kiosk.id
    store.assign_schedule(kiosk_id, "office", now=clock())
    liveness(store, (-60, 6 * DAY))
    for minute in (0, 4 * DAY, 4 * DAY + 30, 4 * DAY + 31):
        tick(store, clock, minute)
        ping(client, clock, key, minute)
    clock.now = at(5 * DAY)
    window = query(-DAY, 5 * DAY)
    before = get(client, token, "/kiosk/availability", window).json
    assert before["kiosks"][0]["outages"] == 2
    original = store.outages_ended_between
    monkeypatch.setattr(store, "outages_ended_between", lambda a, b: original(a, b)[::-1])
    HistoryService(store, Settings(), clock).judge_settled(at(5 * DAY))
    assert get(client, token, "/kiosk/availability", window).json == before
    own = get(client, token, f"/kiosk/{kiosk_id}/availability", window).json
    assert own["downtime_seconds"] == before["kiosks"][0]["downtime_seconds"]


def test_nothing_is_judged_past_the_last_recorded_liveness(client, token, store, clock, fleet):
    """Facts after the last liveness record may still change (the service may have been
    killed): judging stops there, as the counters' totals do."""
    clock.now = at(3 * DAY)
    HistoryService(store, Settings(), clock).judge_settled(clock())
    assert store.history_state().judged_through == at(2 * DAY)


def test_the_hourly_job_judges_what_ended(client, token, store, clock, fleet):
    before = documents(client, token)
    HistoryKeeper(store, Settings(), clock).tick()
    assert store.history_state().judged_through == clock() - history.SETTLED
    assert documents(client, token) == before


def test_the_job_judges_a_backlog_a_step_per_tick_when_its_budget_is_spent(
    client, token, store, clock, fleet, monkeypatch
):
    """After an upgrade, a year of history to judge: the job runs in the service's
    liveness loop, so it stops when its budget is spent and goes on at the next tick."""
    before = documents(client, token)
    monkeypatch.setattr(history, "JUDGE_STEP", timedelta(hours=6))
    monkeypatch.setattr(history, "JUDGE_BUDGET_SECONDS", 0.0)
    keeper = HistoryKeeper(store, Settings(), clock)
    marks = []
    for _ in range(40):
        keeper.tick()
        marks.append(store.history_state().judged_through)
        if not keeper.judging:
            break
    # One step a tick: the first ends 6 hours after the oldest outage ended, and so on.
    assert all(b - a == timedelta(hours=6) for a, b in pairwise(marks[:-1]))
    assert 3 < len(marks) < 40 and marks[-1] == clock() - history.SETTLED
    assert documents(client, token) == before
