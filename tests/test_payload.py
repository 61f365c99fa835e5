"""Heartbeat bodies: what is accepted, and errors that name the field at fault."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from exporter.errors import InvalidHeartbeat
from exporter.payload import DIAGNOSTIC_FIELDS, Reject, parse_heartbeat


def test_the_documented_body_is_accepted():
    payload = parse_heartbeat(
        b'{"app_version":"1.0.0","device_info":"Android/11 - Samsung Galaxy Tab A8"}'
    )
    assert payload.app_version == "1.0.0"
    assert payload.device_info == "Android/11 - Samsung Galaxy Tab A8"
    assert payload.sent_at is None


@pytest.mark.parametrize("body", [b"", b"  ", b"{}", b'{"app_version": null}'])
def test_every_field_is_optional(body):
    assert parse_heartbeat(body).app_version is None


@pytest.mark.parametrize(
    ("sent_at", "expected"),
    [
        ("2026-11-26T10:00:00Z", datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)),
        (
            "2026-11-26T11:00:00.250+01:00",
            datetime(2026, 11, 26, 10, 0, 0, 250000, tzinfo=timezone.utc),
        ),
        ("2026-11-26T10:00:00", datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)),
    ],
)
def test_sent_at_is_read_as_utc(sent_at, expected):
    assert parse_heartbeat(json.dumps({"sent_at": sent_at}).encode()).sent_at == expected


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"\xff\xfe", "body"),
        (b"[1, 2]", "body"),
        (b'"text"', "body"),
        (b'{"app_version": 1}', "app_version"),
        (b'{"device_info": ["a"]}', "device_info"),
        (b'{"app_version": "' + b"9" * 65 + b'"}', "app_version"),
        (b'{"device_info": "' + b"x" * 257 + b'"}', "device_info"),
        (b'{"device_info": "line\\nbreak"}', "device_info"),
        (b'{"app_version": "1.0\\u0000"}', "app_version"),
        (b'{"app_version": 1, "sent_at": "bad", "battery": 80}', "app_version"),
    ],
)
def test_bad_bodies_name_the_field(body, field):
    with pytest.raises(InvalidHeartbeat) as error:
        parse_heartbeat(body)
    assert error.value.field == field


def test_limits_count_characters_not_bytes():
    device = "Tablette d'accueil - Bâtiment É " * 8  # 256 characters, more bytes
    assert len(device) == 256
    assert parse_heartbeat(json.dumps({"device_info": device}).encode()).device_info == device


def test_json_nested_too_deeply_is_a_400_not_a_crash():
    with pytest.raises(InvalidHeartbeat) as error:
        parse_heartbeat(b'{"device_info":' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert error.value.field == "body"


def test_unknown_top_level_fields_are_ignored_and_listed_in_body_order():
    payload = parse_heartbeat(
        b'{"zoom": 1, "app_version": "2.0", "battery_level": 87, "extra": {"a": [1]}}'
    )
    assert payload.app_version == "2.0"
    assert payload.ignored_fields == ("zoom", "battery_level", "extra")
    assert payload.rejected_fields == {}


@pytest.mark.parametrize(
    "sent_at", ["yesterday", 1764151200, True, ["2026-11-26T10:00:00Z"], "2026-11-26T" + "0" * 40]
)
def test_an_invalid_sent_at_is_dropped_and_named_with_its_reason(sent_at):
    payload = parse_heartbeat(json.dumps({"app_version": "1.0", "sent_at": sent_at}).encode())
    assert payload.app_version == "1.0"
    assert payload.sent_at is None
    assert "sent_at" not in payload.diagnostics
    assert payload.rejected_fields["sent_at"].startswith("not a time")
    assert payload.ignored_fields == ()


def test_a_null_diagnostic_field_is_simply_not_sent():
    payload = parse_heartbeat(b'{"sent_at": null}')
    assert (payload.sent_at, payload.rejected_fields, payload.ignored_fields) == (None, {}, ())


@pytest.mark.parametrize("name", sorted(DIAGNOSTIC_FIELDS))
def test_every_declared_diagnostic_field_rejects_an_object_with_a_reason(name):
    outcome = DIAGNOSTIC_FIELDS[name]({"not": "a measurement"})
    assert isinstance(outcome, Reject) and outcome.reason


def test_an_invalid_stored_field_is_still_a_400_even_with_unknown_fields_beside_it():
    with pytest.raises(InvalidHeartbeat) as error:
        parse_heartbeat(b'{"battery_level": 87, "device_info": 5}')
    assert error.value.field == "device_info"
