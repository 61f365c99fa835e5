"""Schedules, maintenance windows, the kiosk event log and liveness, on every database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from exporter.config import parse_database_url
from exporter.errors import KioskNotFound, ScheduleConflict, ScheduleNotFound
from exporter.expected import ExpectationFacts
from exporter.records import EventKind, ScheduleVersion
from exporter.store import open_store
from tests.conftest import T0
from tests.test_schema import apply_first, seed_kiosk_at

OFFICE = "Mon-Fri 07:00-20:00, Sat 08:00-12:00"


def kinds(store, kiosk_id):
    return [e.kind for e in store.kiosk_events(kiosk_id)]


def test_activation_changes_and_other_kinds_go_to_the_event_log(store, add_kiosk):
    kiosk_id, _ = add_kiosk()
    store.set_active(kiosk_id, False, now=T0, actor="alice")
    store.set_active(kiosk_id, False, now=T0 + timedelta(seconds=1))  # no change, no event
    store.set_active(kiosk_id, True, now=T0 + timedelta(seconds=2))
    events = store.kiosk_events(kiosk_id)
    assert [(e.kind, e.at, e.actor) for e in events] == [
        ("deactivated", T0, "alice"),
        ("activated", T0 + timedelta(seconds=2), None),
    ]
    assert store.get_kiosk(kiosk_id).is_active
    kiosk_id, _ = add_kiosk("Kiosk-Hall")
    store.append_event(kiosk_id, "key_rotated", at=T0, actor="ops", detail={"prefix": "kk_1"})
    store.append_event(kiosk_id, "renamed", at=T0 + timedelta(hours=1), detail={"to": "B"})
    window = store.kiosk_events(kiosk_id, since=T0 + timedelta(minutes=1))
    assert [(e.kind, e.detail) for e in window] == [("renamed", {"to": "B"})]
    assert store.events_since(T0)[kiosk_id][0].detail == {"prefix": "kk_1"}
    with pytest.raises(KioskNotFound):
        store.append_event(999, "renamed", at=T0)
    with pytest.raises(KioskNotFound):
        store.kiosk_events(999)


def test_schedules_are_versioned_refused_while_in_use_and_assignments_logged(store, add_kiosk):
    store.add_schedule("office", timezone="Europe/Paris", hours=OFFICE, now=T0)
    edited = store.update_schedule(
        "office", hours="Mon-Fri 08:00-18:00", now=T0 + timedelta(days=1)
    )
    assert (edited.hours, edited.timezone, edited.updated_at) == (
        "Mon-Fri 08:00-18:00",
        "Europe/Paris",
        T0 + timedelta(days=1),
    )
    versions = store.schedule_versions()[edited.id]
    assert versions == [
        ScheduleVersion(edited.id, T0, "Europe/Paris", OFFICE),
        ScheduleVersion(edited.id, T0 + timedelta(days=1), "Europe/Paris", "Mon-Fri 08:00-18:00"),
    ]
    with pytest.raises(ScheduleConflict):
        store.add_schedule("office", timezone="UTC", hours=OFFICE, now=T0)
    kiosk_id, _ = add_kiosk()
    later = T0 + timedelta(days=2)
    store.assign_schedule(kiosk_id, "office", now=later + timedelta(minutes=1), actor="cli")
    store.assign_schedule(kiosk_id, "office", now=later + timedelta(minutes=2))  # no change
    assert store.get_kiosk(kiosk_id).schedule_id == store.list_schedules()[0].id
    assert store.list_schedules()[0].kiosks == 1
    with pytest.raises(ScheduleConflict, match="used by 1 kiosk"):
        store.remove_schedule("office", now=later)
    store.assign_schedule(kiosk_id, None, now=later + timedelta(minutes=3))
    store.remove_schedule("office", now=later + timedelta(minutes=4))
    assert store.list_schedules() == []
    with pytest.raises(ScheduleNotFound):
        store.assign_schedule(kiosk_id, "office", now=later)
    events = store.kiosk_events(kiosk_id)
    assert [(e.kind, e.detail["schedule"], e.detail["previous_schedule"]) for e in events] == [
        ("schedule_assigned", "office", None),
        ("schedule_assigned", None, "office"),
    ]
    # The removed schedule's hours stay for the history; the name can be used again.
    assert store.schedule_versions()[events[0].detail["schedule_id"]][-1].hours is None
    store.add_schedule("office", timezone="UTC", hours="Sat 08:00-12:00", now=later + timedelta(1))
    assert [s.hours for s in store.list_schedules()] == ["Sat 08:00-12:00"]


def test_maintenance_windows_are_logged_and_go_with_their_kiosk(store, add_kiosk):
    first, _ = add_kiosk("K1")
    second, _ = add_kiosk("K2")
    windows = store.start_maintenance(
        [first, second], starts_at=T0, ends_at=T0 + timedelta(hours=2), reason="new screen"
    )
    assert [w.kiosk_id for w in windows] == [first, second]
    ended = store.end_maintenance(first, now=T0 + timedelta(hours=1), actor="ops")
    assert [(w.kiosk_id, w.ends_at) for w in ended] == [(first, T0 + timedelta(hours=1))]
    assert store.end_maintenance(first, now=T0 + timedelta(hours=1)) == []
    assert kinds(store, first) == ["maintenance_started", "maintenance_ended"]
    assert store.kiosk_events(first)[0].detail["reason"] == "new screen"
    later = store.maintenance_windows(since=T0 + timedelta(minutes=90))
    assert [(w.kiosk_id, w.ends_at) for w in later] == [(second, T0 + timedelta(hours=2))]
    with pytest.raises(KioskNotFound):
        store.start_maintenance([first, 999], starts_at=T0, ends_at=T0 + timedelta(hours=1))
    assert len(store.maintenance_windows(kiosk_id=first)) == 1  # all or nothing
    # Removing a kiosk removes its history.
    store.set_active(first, False, now=T0)
    store.remove_kiosk(first)
    assert set(store.events_since(T0 - timedelta(days=1))) == {second}
    assert [w.kiosk_id for w in store.maintenance_windows()] == [second]


def test_liveness_intervals_and_the_facts_a_scrape_reads(store, add_kiosk):
    first = store.start_liveness("host:1", now=T0)
    store.touch_liveness(first, now=T0 + timedelta(seconds=5))
    second = store.start_liveness("host:2", now=T0 + timedelta(minutes=20))
    intervals = store.liveness_intervals()
    assert [(i.id, i.replica, i.started_at, i.last_seen_at) for i in intervals] == [
        (first, "host:1", T0, T0 + timedelta(seconds=5)),
        (second, "host:2", T0 + timedelta(minutes=20), T0 + timedelta(minutes=20)),
    ]
    recent = store.liveness_intervals(since=T0 + timedelta(minutes=1))
    assert [i.id for i in recent] == [second]
    assert [i.id for i in store.liveness_intervals(until=T0 + timedelta(minutes=1))] == [first]
    kiosk_id, _ = add_kiosk()
    # Silent since before its changes: they can start its offline time later.
    store.record_heartbeat(kiosk_id, received_at=T0 - timedelta(hours=1))
    # Changed, then heard from again: its changes cannot matter and are not read.
    quiet_id, _ = add_kiosk("Kiosk-Quiet")
    store.add_schedule("office", timezone="Europe/Paris", hours=OFFICE, now=T0)
    for kiosk in (kiosk_id, quiet_id):
        store.assign_schedule(kiosk, "office", now=T0 + timedelta(minutes=1))
        store.start_maintenance([kiosk], starts_at=T0, ends_at=T0 + timedelta(minutes=30))
    store.record_heartbeat(quiet_id, received_at=T0 + timedelta(minutes=40))
    store.start_maintenance(
        [kiosk_id], starts_at=T0 + timedelta(hours=1), ends_at=T0 + timedelta(hours=3)
    )
    now = T0 + timedelta(hours=2)
    facts = store.expectation_facts(now, offline_before=now - timedelta(minutes=5))
    assert isinstance(facts, ExpectationFacts)
    schedule_id = store.get_kiosk(kiosk_id).schedule_id
    assert facts.schedule_names == {schedule_id: "office"}
    assert [v.hours for v in facts.versions[schedule_id]] == [OFFICE]
    assert [w.ends_at for w in facts.open_windows[kiosk_id]] == [T0 + timedelta(hours=3)]
    assert facts.last_maintenance_end == {kiosk_id: T0 + timedelta(minutes=30)}
    assert facts.last_change == {kiosk_id: T0 + timedelta(minutes=1)}
    assert [i.replica for i in facts.liveness] == ["host:1", "host:2"]


def test_upgrade_from_0001_puts_every_existing_kiosk_on_always(empty_database_url):
    apply_first(empty_database_url, 1)
    seed_kiosk_at(empty_database_url)
    store = open_store(parse_database_url(empty_database_url), upgrade=True)
    try:
        (kiosk,) = store.list_kiosks()
        assert kiosk.schedule_id is None
        assert store.kiosk_events(kiosk.id) == []
        assert store.liveness_intervals() == []
        assert store.expectation_facts(T0, offline_before=T0).last_change == {}
    finally:
        store.close()


def test_event_kinds_are_the_contract_other_issues_extend():
    assert {k.value for k in EventKind} >= {
        "schedule_assigned",
        "maintenance_started",
        "maintenance_ended",
        "activated",
        "deactivated",
    }
