"""Expected hours through the status JSON and /metrics: the real app on each database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.test_api import all_status
from tests.test_metrics import kiosk_value, samples

OFFICE = "Mon-Fri 07:00-20:00, Sat 08:00-12:00"
# Monday 30 November 2026, 20:30 in Paris (UTC+1).
EVENING = datetime(2026, 11, 30, 19, 30, tzinfo=timezone.utc)


def documents(client, token, query=""):
    reply = all_status(client, token, query)
    assert reply.status_code == 200, reply.json
    return {d["kiosk_name"]: d for d in reply.json}


def test_an_office_kiosk_dark_at_night_is_outside_hours_and_pages_at_opening(
    client, store, clock, token
):
    """The issue's "done when": dark at 20:30, calm overnight, 10 minutes late at 07:10."""
    clock.now = EVENING - timedelta(days=1)
    store.add_schedule("office", timezone="Europe/Paris", hours=OFFICE, now=clock())
    office, _ = store.add_kiosk("Kiosk-Office", "Building A", now=clock())
    always, _ = store.add_kiosk("Kiosk-Lobby", "Building A", now=clock())
    store.assign_schedule(office.id, "office", now=clock())
    for kiosk in (office, always):
        store.record_heartbeat(kiosk.id, received_at=EVENING - timedelta(minutes=1))
    clock.now = EVENING + timedelta(minutes=15)

    night = documents(client, token)
    assert {k: night["Kiosk-Office"][k] for k in ("status", "expected_online", "schedule")} == {
        "status": "offline",
        "expected_online": False,
        "schedule": "office",
    }
    assert night["Kiosk-Office"]["offline_while_expected_seconds"] == 0
    assert night["Kiosk-Office"]["maintenance_until"] is None
    assert night["Kiosk-Lobby"]["offline_while_expected_seconds"] == 16 * 60  # heartbeat age
    assert night["Kiosk-Lobby"]["schedule"] is None
    parsed = samples(client.simulate_get("/metrics").text)
    assert kiosk_value(parsed, "kiosk_expected_online", office.id) == 0.0
    assert kiosk_value(parsed, "kiosk_offline_while_expected_seconds", office.id) == 0.0
    assert kiosk_value(parsed, "kiosk_maintenance", office.id) == 0.0
    assert kiosk_value(parsed, "kiosk_offline_while_expected_seconds", always.id) == 960.0
    assert [d["kiosk_name"] for d in all_status(client, token, "expected=false").json] == [
        "Kiosk-Office"
    ]

    clock.now = datetime(2026, 12, 1, 6, 10, tzinfo=timezone.utc)  # Tuesday 07:10 in Paris
    morning = documents(client, token, "expected=true")
    assert morning["Kiosk-Office"]["expected_online"] is True
    assert morning["Kiosk-Office"]["offline_while_expected_seconds"] == 600
    parsed = samples(client.simulate_get("/metrics").text)
    assert kiosk_value(parsed, "kiosk_offline_while_expected_seconds", office.id) == 600.0
    assert kiosk_value(parsed, "kiosk_expected_online", office.id) == 1.0


def test_maintenance_and_a_service_gap_are_not_offline_time(client, store, clock, token):
    kiosk, key = store.add_kiosk("Kiosk-Hall", "Building B", now=clock())
    never, _ = store.add_kiosk("Kiosk-New", "Building B", now=clock())
    store.record_heartbeat(kiosk.id, received_at=clock())
    store.start_liveness("host:1", now=clock())
    until = clock() + timedelta(hours=2)
    store.start_maintenance([kiosk.id, never.id], starts_at=clock(), ends_at=until, reason="x")
    clock.advance(3600)
    during = documents(client, token)["Kiosk-Hall"]
    assert (during["expected_online"], during["offline_while_expected_seconds"]) == (False, 0)
    assert during["maintenance_until"] == "2026-11-26T12:00:00.000000Z"
    status = client.simulate_get("/kiosk/status", headers={"X-Kiosk-API-Key": key}).json
    assert status["maintenance_until"] == during["maintenance_until"]
    parsed = samples(client.simulate_get("/metrics").text)
    assert kiosk_value(parsed, "kiosk_maintenance", kiosk.id) == 1.0
    assert kiosk_value(parsed, "kiosk_offline_while_expected_seconds", never.id) is None
    # The window ends while the kiosk is still off: counted from its end, not the last ping.
    clock.now = until + timedelta(minutes=4)
    assert documents(client, token)["Kiosk-Hall"]["offline_while_expected_seconds"] == 240
    # The service was down for 20 minutes and is back since 12:30: counted from its return.
    store.start_liveness("host:2", now=until + timedelta(minutes=30))
    clock.now = until + timedelta(minutes=33)
    after = documents(client, token)
    assert after["Kiosk-Hall"]["offline_while_expected_seconds"] == 180
    assert after["Kiosk-New"]["offline_while_expected_seconds"] is None
    # An operator ends a window early: expected again from then on.
    store.start_maintenance([kiosk.id], starts_at=clock(), ends_at=clock() + timedelta(hours=1))
    store.end_maintenance(kiosk.id, now=clock() + timedelta(minutes=1))
    clock.advance(120)
    assert documents(client, token)["Kiosk-Hall"]["offline_while_expected_seconds"] == 60


def test_the_expected_filter_is_validated(client, token):
    reply = all_status(client, token, "expected=maybe")
    assert reply.status_code == 400
    assert reply.json["field"] == "expected"
