"""Where databases differ by default, the service does not: case, precision, Unicode, limits.

Each test runs on SQLite, PostgreSQL and MariaDB (the `database_url` fixture); MariaDB's
defaults alone (case-insensitive collations, 3-byte `utf8`, whole-second DATETIME,
changed-rows counts) would break every one of them.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from exporter.errors import DuplicateName

EMOJI_NAME = "Kiosk-Café ☕ 🙂"


def beat(client, key, body=None):
    return client.simulate_post(
        "/kiosk/heartbeat",
        json=body or {"app_version": "1.0.0", "device_info": "Test"},
        headers={"X-Kiosk-API-Key": key},
    )


def all_status(client, token, query=""):
    reply = client.simulate_get(
        "/kiosk/all-status", query_string=query, headers={"Authorization": f"Bearer {token}"}
    )
    assert reply.status_code == 200, reply.text
    return reply.json


def test_names_that_differ_only_in_case_are_two_kiosks(store):
    first, _ = store.add_kiosk("Kiosk-Entrance", "Building A")
    second, _ = store.add_kiosk("kiosk-entrance", "Building A")
    assert first.id != second.id
    with pytest.raises(DuplicateName):
        store.add_kiosk("Kiosk-Entrance", "Building B")


def test_the_location_filter_is_exact(client, add_kiosk, token):
    upper, _ = add_kiosk("K1", "Building A")
    add_kiosk("K2", "building a")
    add_kiosk("K3", "Building A - Floor 1")
    assert [k["kiosk_id"] for k in all_status(client, token, "location=Building A")] == [upper]


def test_microseconds_survive_the_round_trip(client, add_kiosk, clock):
    _, key = add_kiosk()
    clock.advance(0.123456)
    received = beat(client, key).json["received_at"]
    assert received == "2026-11-26T10:00:00.123456Z"
    status = client.simulate_get("/kiosk/status", headers={"X-Kiosk-API-Key": key}).json
    assert status["last_heartbeat_at"] == received


def test_the_rate_limit_is_judged_to_the_microsecond(client, add_kiosk, clock):
    _, key = add_kiosk()
    clock.advance(0.5)
    assert beat(client, key).status_code == 200
    clock.advance(timedelta(seconds=10, microseconds=-1).total_seconds())
    assert beat(client, key).status_code == 429
    clock.advance(0.000001)
    assert beat(client, key).status_code == 200


def test_unicode_up_to_the_length_limits_is_stored_intact(client, store, clock, token):
    _, key = store.add_kiosk(EMOJI_NAME, "Bâtiment Ä 🏢", now=clock())
    body = {"app_version": "é" * 64, "device_info": "🙂" * 256}
    assert beat(client, key, body).status_code == 200
    (listed,) = all_status(client, token)
    assert (listed["kiosk_name"], listed["location"]) == (EMOJI_NAME, "Bâtiment Ä 🏢")
    assert (listed["app_version"], listed["device_info"]) == (
        body["app_version"],
        body["device_info"],
    )


def test_an_unchanged_heartbeat_still_counts_as_recorded(make_client, add_kiosk, store):
    """The same values at the same instant change no column: MySQL reports 0 rows unless
    the client asks for found rows, and a heartbeat must not be refused for that."""
    client = make_client(min_heartbeat_interval_seconds=0)
    kiosk_id, key = add_kiosk()
    assert [beat(client, key).status_code for _ in range(3)] == [200, 200, 200]
    assert store.get_kiosk(kiosk_id).app_version == "1.0.0"
