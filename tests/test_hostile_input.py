"""Hostile input answered the same way on every database: a 4xx naming the culprit, never a
500, whatever the driver underneath accepts."""

from __future__ import annotations

import http.client
import logging
import time

import pytest

from exporter.logs import printable
from tests.support.rawhttp import exchange, status_lines

HTTP_REASONS = {"400": "Bad Request", "413": "Request Entity Too Large"}


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


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        ("/kiosk/heartbeat", "/kiosk/heartbeat"),
        ("/a\nFAKE", "/a\\nFAKE"),
        ("/a\r\nFAKE", "/a\\r\\nFAKE"),
        ("/\x1b[2J", "/\\x1b[2J"),
        ("/\x9b31m", "/\\x9b31m"),  # C1 CSI: a terminal escape in one character
        ("/\u2028x", "/\\u2028x"),
        ('/a" 200 0.1ms', '/a\\" 200 0.1ms'),
        ("/a\\x0a", "/a\\\\x0a"),  # a literal backslash cannot pass for an escape
        ("/Bâtiment–A", "/Bâtiment–A"),
    ],
)
def test_printable_escapes_what_could_forge_a_log_line(text, logged):
    assert printable(text) == logged


def test_a_url_cannot_forge_an_access_log_line_or_send_terminal_escapes(server):
    forged = "/kiosk/%0D%0A2026-11-30 10:00:00,000 INFO exporter.access: FORGED%1B[2J%C2%9B"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("GET", forged.replace(" ", "%20"), skip_accept_encoding=True)
        connection.endheaders()
        assert connection.getresponse().status == 404
    finally:
        connection.close()
    assert server.wait_until(lambda: any("FORGED" in line for line in server.log_lines))
    (line,) = [line for line in server.log_lines if "FORGED" in line]
    assert "exporter.access" in line.split("FORGED")[0].split("\\n")[0]
    assert "\\r\\n2026-11-30 10:00:00,000 INFO exporter.access: FORGED\\x1b[2J\\x9b" in line
    assert not any(ch in line for ch in "\r\x1b\x9b")


@pytest.mark.parametrize(
    ("content_length", "status"),
    [("abc", "400"), ("-1", "400"), ("1e3", "400"), ("99999999", "413")],
)
def test_expect_100_continue_with_a_refused_content_length_is_answered_at_once(
    server, content_length, status
):
    """waitress used to send "100 Continue" and then hold the connection for its idle
    timeout; a client must get the refusal, at once, and no invitation to send a body."""
    started = time.monotonic()
    answer = exchange(
        server.port,
        b"POST /kiosk/heartbeat HTTP/1.1\r\nHost: kiosk\r\nExpect: 100-continue\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + content_length.encode()
        + b"\r\n\r\n",
        timeout=8,
        until=b"\r\n\r\n",
    )
    assert time.monotonic() - started < 5
    assert status_lines(answer) == [f"HTTP/1.1 {status} " + HTTP_REASONS[status]], answer


def test_expect_100_continue_with_a_valid_body_still_gets_its_answer(server):
    _, key = server.add_kiosk("Kiosk-Expect", "Building E")
    body = b'{"app_version": "1.0.0"}'
    head = (
        "POST /kiosk/heartbeat HTTP/1.1\r\nHost: kiosk\r\nExpect: 100-continue\r\n"
        f"X-Kiosk-API-Key: {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = exchange(server.port, head + body, timeout=8)
    assert status_lines(answer)[-1] == "HTTP/1.1 200 OK", answer


@pytest.mark.parametrize(
    "sent_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:30+00:31"]
)
def test_a_sent_at_at_the_ends_of_the_calendar_is_rejected_and_the_heartbeat_recorded(
    client, add_kiosk, clock, caplog, sent_at
):
    """Converting these to UTC overflowed: a 500 with a traceback in the log."""
    _, key = add_kiosk()
    with caplog.at_level(logging.DEBUG):
        reply = client.simulate_post(
            "/kiosk/heartbeat", json={"sent_at": sent_at}, headers={"X-Kiosk-API-Key": key}
        )
    assert reply.status_code == 200, reply.text
    assert reply.json["rejected_fields"] == {
        "sent_at": "out of range: the time in UTC falls outside years 1-9999"
    }
    status = client.simulate_get("/kiosk/status", headers={"X-Kiosk-API-Key": key}).json
    assert status["last_heartbeat_at"] == reply.json["received_at"]
    logged = [r for r in caplog.records if r.name != "exporter.access"]
    assert [r.getMessage() for r in logged if r.levelno > logging.DEBUG] == []
