"""A heartbeat is never refused for what it adds: unknown fields are ignored, invalid
diagnostic fields dropped, and both are named in the reply, counted and (once) logged."""

from __future__ import annotations

import logging

import pytest

from exporter.service import IgnoredFieldLog
from tests.test_metrics import samples

HEADERS_JSON = {"Content-Type": "application/json"}


def beat(client, key, body):
    return client.simulate_post("/kiosk/heartbeat", json=body, headers={"X-Kiosk-API-Key": key})


def test_a_heartbeat_with_an_unknown_field_is_recorded_and_the_field_listed(
    client, add_kiosk, store, clock
):
    kiosk_id, key = add_kiosk()
    reply = beat(client, key, {"app_version": "2.0.0", "battery_level": 87, "orientation": "up"})
    assert reply.status_code == 200
    assert reply.json["ignored_fields"] == ["battery_level", "orientation"]
    assert "rejected_fields" not in reply.json
    kiosk = store.get_kiosk(kiosk_id)
    assert (kiosk.last_heartbeat_at, kiosk.app_version) == (clock(), "2.0.0")
    value = client.application.registry.get_sample_value
    assert value("kiosk_exporter_heartbeat_ignored_fields_total") == 2
    assert value("kiosk_exporter_heartbeats_rejected_total", {"reason": "invalid"}) == 0


def test_an_invalid_sent_at_is_named_with_its_reason_and_the_heartbeat_recorded(
    client, add_kiosk, store, clock
):
    kiosk_id, key = add_kiosk()
    reply = beat(client, key, {"device_info": "Tab A8", "sent_at": "yesterday"})
    assert reply.status_code == 200
    assert set(reply.json["rejected_fields"]) == {"sent_at"}
    assert reply.json["rejected_fields"]["sent_at"].startswith("not a time")
    assert "ignored_fields" not in reply.json
    assert store.get_kiosk(kiosk_id).last_heartbeat_at == clock()
    value = client.application.registry.get_sample_value
    assert value("kiosk_exporter_heartbeat_rejected_fields_total", {"field": "sent_at"}) == 1
    assert value("kiosk_exporter_heartbeats_rejected_total", {"reason": "invalid"}) == 0
    assert value("kiosk_exporter_heartbeat_delay_seconds_count") == 0
    assert value("kiosk_exporter_heartbeats_total") == 1


def test_a_clean_heartbeat_reply_has_neither_list(client, add_kiosk):
    _, key = add_kiosk()
    reply = beat(client, key, {"app_version": "1.0.0", "sent_at": "2026-11-26T09:59:59Z"})
    assert set(reply.json) == {"kiosk_id", "received_at", "next_heartbeat_in_seconds"}


@pytest.mark.parametrize(
    ("sent_at", "skewed", "delay_sum"),
    [
        ("2026-11-26T09:59:58", False, 2.0),  # no zone: UTC
        ("2026-11-25T10:00:01Z", False, 86_399.0),  # just under a day late
        ("2026-11-25T09:59:59Z", True, 0.0),  # more than a day late
        ("2026-11-27T10:00:01Z", True, 0.0),  # more than a day ahead
        ("2026-11-26T12:00:00+01:00", False, 0.0),  # an hour ahead: counts as 0
    ],
)
def test_a_sent_at_more_than_a_day_away_is_counted_apart_from_the_delay(
    make_client, add_kiosk, sent_at, skewed, delay_sum
):
    client = make_client()
    _, key = add_kiosk()
    assert beat(client, key, {"sent_at": sent_at}).status_code == 200
    value = client.application.registry.get_sample_value
    assert value("kiosk_exporter_heartbeat_clock_skew_total") == (1 if skewed else 0)
    assert value("kiosk_exporter_heartbeat_delay_seconds_count") == (0 if skewed else 1)
    assert value("kiosk_exporter_heartbeat_delay_seconds_sum") == pytest.approx(delay_sum)


def test_a_refused_heartbeat_counts_no_field(client, add_kiosk):
    _, key = add_kiosk()
    reply = beat(client, key, {"app_version": 7, "battery_level": 1, "sent_at": "x"})
    assert reply.status_code == 400 and reply.json["field"] == "app_version"
    value = client.application.registry.get_sample_value
    assert value("kiosk_exporter_heartbeat_ignored_fields_total") == 0
    assert value("kiosk_exporter_heartbeat_rejected_fields_total", {"field": "sent_at"}) == 0


def test_each_unknown_field_name_is_logged_once_and_safely(caplog):
    field_log = IgnoredFieldLog(max_names=3)
    with caplog.at_level(logging.INFO, logger="exporter.service"):
        field_log.notice(("battery_level", "x\nFAKE LOG LINE"))
        field_log.notice(("battery_level", "zoom"))
        field_log.notice(("a", "b", "c"))
    lines = caplog.messages
    assert sum("'battery_level'" in line for line in lines) == 1
    assert all("\n" not in line for line in lines)
    assert sum("no longer logged" in line for line in lines) == 1
    assert not any("'b'" in line or "'c'" in line for line in lines)
    assert len(lines) == 4  # three names, then one line saying new names are not logged


def test_tolerance_over_real_http(server):
    _, key = server.add_kiosk("Kiosk-Entrance", "Building A")
    token = server.add_token()
    reply = server.heartbeat(
        key,
        {"app_version": "3.0.0", "battery_level": 87, "sent_at": "the day before yesterday"},
    )
    assert reply.status == 200, reply.body
    assert reply.json["ignored_fields"] == ["battery_level"]
    assert set(reply.json["rejected_fields"]) == {"sent_at"}
    assert server.heartbeat(key, {"battery_level": 86}).status == 200
    (kiosk,) = server.all_status(token).json
    assert (kiosk["status"], kiosk["app_version"]) == ("online", "3.0.0")
    parsed = samples(server.metrics("text/plain").body.decode())
    assert parsed[("kiosk_exporter_heartbeat_ignored_fields_total", ())] == 2
    assert parsed[("kiosk_exporter_heartbeat_rejected_fields_total", (("field", "sent_at"),))] == 1
    assert parsed[("kiosk_exporter_heartbeats_total", ())] == 2
    assert server.wait_until(
        lambda: sum("'battery_level'" in line for line in server.log_lines) == 1
    )
