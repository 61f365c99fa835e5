"""HTTP details: CORS for browser-based kiosks, errors that always explain themselves, query
strings checked by one rule, and the client address behind a trusted proxy."""

from __future__ import annotations

import pytest

from tests.support.http import request
from tests.support.service import RunningService

APP_ORIGIN = "https://kiosk-app.example"


def preflight(url: str, path: str, method: str, origin: str = APP_ORIGIN):
    return request(
        "OPTIONS",
        url + path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type,x-kiosk-api-key",
        },
    )


@pytest.fixture
def cors_server(tmp_path):
    settings = {"min_heartbeat_interval_seconds": 0, "cors_allowed_origins": APP_ORIGIN}
    with RunningService(tmp_path, settings) as service:
        yield service


def test_a_browser_kiosk_on_an_allowed_origin_can_post_and_read_its_status(cors_server):
    _, key = cors_server.add_kiosk("Kiosk-PWA", "Hall")
    allowed = preflight(cors_server.url, "/kiosk/heartbeat", "POST")
    assert allowed.status == 204
    assert allowed.headers["access-control-allow-origin"] == APP_ORIGIN
    assert allowed.headers["access-control-allow-methods"] == "POST"
    assert "x-kiosk-api-key" in allowed.headers["access-control-allow-headers"].lower()
    beat = request(
        "POST",
        cors_server.url + "/kiosk/heartbeat",
        headers={"Origin": APP_ORIGIN, "X-Kiosk-API-Key": key},
        json_body={"app_version": "1.0.0"},
    )
    assert beat.status == 200
    assert beat.headers["access-control-allow-origin"] == APP_ORIGIN
    assert preflight(cors_server.url, "/kiosk/status", "GET").status == 204
    status = request(
        "GET",
        cors_server.url + "/kiosk/status",
        headers={"Origin": APP_ORIGIN, "X-Kiosk-API-Key": key},
    )
    assert (status.status, status.headers["access-control-allow-origin"]) == (200, APP_ORIGIN)
    refused = request("GET", cors_server.url + "/kiosk/status", headers={"Origin": APP_ORIGIN})
    assert refused.status == 401  # an error a web app can read, too
    assert refused.headers["access-control-allow-origin"] == APP_ORIGIN


@pytest.mark.parametrize(
    ("path", "method", "origin"),
    [
        ("/kiosk/heartbeat", "POST", "https://evil.example"),
        ("/kiosk/heartbeat", "DELETE", APP_ORIGIN),
        ("/kiosk/all-status", "GET", APP_ORIGIN),
        ("/metrics", "GET", APP_ORIGIN),
    ],
)
def test_preflights_are_answered_only_for_the_tablet_routes_and_origins(
    cors_server, path, method, origin
):
    reply = preflight(cors_server.url, path, method, origin)
    assert reply.status == 403
    assert "access-control-allow-origin" not in reply.headers
    plain = request("GET", cors_server.url + path, headers={"Origin": origin})
    assert "access-control-allow-origin" not in plain.headers


def test_without_cors_allowed_origins_no_origin_is_allowed(client):
    reply = client.simulate_options(
        "/kiosk/heartbeat",
        headers={"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in reply.headers


@pytest.mark.parametrize(
    ("method", "path", "words"),
    [
        ("GET", "/kiosk/nothing", ["/kiosk/nothing"]),
        ("GET", "/kiosk/heartbeat", ["GET", "POST"]),
        ("DELETE", "/metrics", ["DELETE", "GET"]),
    ],
)
def test_404_and_405_bodies_carry_a_description(client, method, path, words):
    reply = client.simulate_request(method, path, headers={"Accept": "text/html"})
    assert reply.status_code in (404, 405)
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json["title"]
    assert all(word in reply.json["description"] for word in words), reply.json


def all_status(client, token, query):
    return client.simulate_get(
        "/kiosk/all-status", query_string=query, headers={"Authorization": f"Bearer {token}"}
    )


def test_a_repeated_status_filter_is_a_union(client, add_kiosk, token, clock):
    online, key = add_kiosk("Online", "Hall")
    add_kiosk("Never", "Hall")
    assert (
        client.simulate_post("/kiosk/heartbeat", headers={"X-Kiosk-API-Key": key}).status_code
        == 200
    )
    reply = all_status(client, token, "status=online&status=never_connected")
    assert sorted(k["kiosk_name"] for k in reply.json) == ["Never", "Online"]
    assert all_status(client, token, "status=online").json[0]["kiosk_id"] == online
    assert all_status(client, token, "status=offline&status=inactive").json == []


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/kiosk/all-status", "stauts=offline", "stauts"),
        ("/kiosk/all-status", "status=online&page=2", "page"),
        ("/kiosk/all-status", "location=A&location=B", "location"),
        ("/kiosk/all-status", "status=online&status=asleep", "status"),
        ("/kiosk/status", "verbose=1", "verbose"),
    ],
)
def test_unknown_or_repeated_query_parameters_are_a_400_naming_them(
    client, add_kiosk, token, path, query, field
):
    _, key = add_kiosk()
    headers = {"Authorization": f"Bearer {token}", "X-Kiosk-API-Key": key}
    reply = client.simulate_get(path, query_string=query, headers=headers)
    assert reply.status_code == 400
    assert reply.json["field"] == field
    assert field in reply.json["description"]


def test_the_query_is_checked_after_authentication(client):
    reply = client.simulate_get("/kiosk/all-status", query_string="anything=1")
    assert reply.status_code == 401


def test_behind_a_trusted_proxy_the_access_log_shows_the_forwarded_client(tmp_path, cors_server):
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    settings = {"trusted_proxy": "127.0.0.1"}
    (tmp_path / "proxied").mkdir()
    with RunningService(tmp_path / "proxied", settings) as proxied:
        assert request("GET", proxied.url + "/healthz", headers=forwarded).status == 200
        assert proxied.wait_until(
            lambda: any('203.0.113.7 "GET /healthz" 200' in x for x in proxied.log_lines)
        )
    # Without trusted_proxy the header is anyone's to forge: the socket's address is logged.
    assert request("GET", cors_server.url + "/healthz", headers=forwarded).status == 200
    assert cors_server.wait_until(
        lambda: any('127.0.0.1 "GET /healthz" 200' in x for x in cors_server.log_lines)
    )
    assert not any("203.0.113.7" in line for line in cors_server.log_lines)


def test_a_browser_kiosk_enrolls_from_an_allowed_origin(cors_server):
    """POST /kiosk/enroll answers the same preflights as the heartbeat (#18)."""
    admin = cors_server.add_token("ops-admin", scope="admin")
    made = request(
        "POST",
        cors_server.url + "/admin/kiosks",
        headers={"Authorization": f"Bearer {admin}"},
        json_body={"name": "Kiosk-PWA", "location": "Hall"},
    )
    allowed = preflight(cors_server.url, "/kiosk/enroll", "POST")
    assert (allowed.status, allowed.headers["access-control-allow-origin"]) == (204, APP_ORIGIN)
    assert allowed.headers["access-control-allow-methods"] == "POST"
    assert preflight(cors_server.url, "/kiosk/enroll", "POST", "https://evil.example").status == 403
    enrolled = request(
        "POST",
        cors_server.url + "/kiosk/enroll",
        headers={"Origin": APP_ORIGIN},
        json_body={"code": made.json["enrollment"]["code"]},
    )
    assert (enrolled.status, enrolled.headers["access-control-allow-origin"]) == (200, APP_ORIGIN)
    assert preflight(cors_server.url, "/admin/kiosks", "POST").status == 403  # back office: no
