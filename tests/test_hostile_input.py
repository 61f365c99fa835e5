"""Hostile input answered the same way on every database: a 4xx naming the culprit, never a
500, whatever the driver underneath accepts."""

from __future__ import annotations

import pytest


def all_status(client, token, query):
    return client.simulate_get(
        "/kiosk/all-status", query_string=query, headers={"Authorization": f"Bearer {token}"}
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("location=%00", "location"),
        ("location=Building%0AA", "location"),
        ("location=%1B%5B31m", "location"),
        ("location=%C2%9B", "location"),  # C1 control (CSI)
        ("status=%00", "status"),
        ("status=online%0D", "status"),
    ],
)
def test_a_control_character_in_a_query_parameter_is_a_400_naming_it(
    client, add_kiosk, token, query, field
):
    add_kiosk()
    reply = all_status(client, token, query)
    assert reply.status_code == 400, reply.text
    assert reply.json["field"] == field
    assert "control characters" in reply.json["description"]


def test_a_location_with_ordinary_unicode_still_filters(client, add_kiosk, token):
    add_kiosk("Kiosk-Café", "Bâtiment A – étage 2")
    reply = all_status(client, token, "location=B%C3%A2timent%20A%20%E2%80%93%20%C3%A9tage%202")
    assert reply.status_code == 200
    assert [k["kiosk_name"] for k in reply.json] == ["Kiosk-Café"]


@pytest.mark.parametrize("body", [b"\x0b", b"\x0c", b" \x0b\n"])
def test_a_body_of_non_json_whitespace_is_not_an_empty_heartbeat(client, add_kiosk, body):
    """Found by the contract fuzzer: Python's strip() took \\x0b for blank, JSON does not."""
    _, key = add_kiosk()
    reply = client.simulate_post(
        "/kiosk/heartbeat",
        body=body,
        headers={"X-Kiosk-API-Key": key, "Content-Type": "application/json"},
    )
    assert reply.status_code == 400
    assert reply.json["field"] == "body"


@pytest.mark.parametrize("kiosk_id", ["0", "-1", "9223372036854775808", "159772547494851641344"])
def test_a_kiosk_id_no_row_can_have_is_404(client, add_kiosk, token, kiosk_id):
    """Found by the contract fuzzer: an id past 64 bits overflowed the driver (a 500)."""
    add_kiosk()
    reply = client.simulate_get(f"/kiosk/{kiosk_id}", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 404
