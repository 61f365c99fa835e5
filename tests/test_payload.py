"""Heartbeat bodies: what is accepted, and errors that name the field at fault."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from exporter.errors import InvalidHeartbeat
from exporter.payload import parse_heartbeat


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
        (b'{"sent_at": "yesterday"}', "sent_at"),
        (b'{"sent_at": 1764151200}', "sent_at"),
        (b'{"app_version": "1.0", "battery": 80}', "battery"),
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
