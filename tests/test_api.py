"""The HTTP API through falcon's TestClient: the real app on each database; only time moves."""

from __future__ import annotations

import pytest

from exporter.errors import StorageUnavailable

HEARTBEAT = {"app_version": "1.0.0", "device_info": "Android/11 - Samsung Galaxy Tab A8"}


def beat(client, key, body=HEARTBEAT, **kwargs):
    headers = {"X-Kiosk-API-Key": key} if key is not None else {}
    return client.simulate_post("/kiosk/heartbeat", json=body, headers=headers, **kwargs)


def all_status(client, token, query=""):
    return client.simulate_get(
        "/kiosk/all-status", query_string=query, headers={"Authorization": f"Bearer {token}"}
    )


# -- the eight scenarios of the original design ---------------------------------------------------


def test_heartbeat_succeeds_and_says_when_to_send_the_next(client, add_kiosk, clock):
    kiosk_id, key = add_kiosk()
    reply = beat(client, key)
    assert reply.status_code == 200
    assert reply.json == {
        "kiosk_id": kiosk_id,
        "received_at": "2026-11-26T10:00:00.000000Z",
        "next_heartbeat_in_seconds": 60,
    }


def test_heartbeat_without_a_key_is_401(client, add_kiosk):
    add_kiosk()
    reply = beat(client, None)
    assert reply.status_code == 401
    assert "X-Kiosk-API-Key" in reply.json["description"]


def test_heartbeat_with_an_unknown_key_is_401_with_the_same_body(client, add_kiosk):
    add_kiosk()
    assert beat(client, "kk_not-a-key").json == beat(client, None).json
    assert beat(client, "kk_not-a-key").status_code == 401


def test_status_is_online_after_a_heartbeat(client, add_kiosk, clock):
    kiosk_id, key = add_kiosk()
    beat(client, key)
    clock.advance(299)
    status = client.simulate_get("/kiosk/status", headers={"X-Kiosk-API-Key": key}).json
    assert status == {
        "kiosk_id": kiosk_id,
        "kiosk_name": "Kiosk-Entrance",
        "location": "Building A",
        "is_active": True,
        "last_heartbeat_at": "2026-11-26T10:00:00.000000Z",
        "app_version": "1.0.0",
        "device_info": "Android/11 - Samsung Galaxy Tab A8",
        "is_online": True,
        "offline_duration_seconds": None,
        "status": "online",
        "vitals": {},
        "expected_online": True,
        "schedule": None,
        "maintenance_until": None,
        "offline_while_expected_seconds": 0,
    }


def test_status_is_offline_with_its_duration_once_the_threshold_passes(client, add_kiosk, clock):
    _, key = add_kiosk()
    beat(client, key)
    clock.advance(15 * 60 + 0.5)
    status = client.simulate_get("/kiosk/status", headers={"X-Kiosk-API-Key": key}).json
    assert (status["status"], status["is_online"], status["offline_duration_seconds"]) == (
        "offline",
        False,
        900,
    )


def test_status_of_a_kiosk_that_never_connected(client, add_kiosk):
    _, key = add_kiosk()
    status = client.simulate_get("/kiosk/status", headers={"X-Kiosk-API-Key": key}).json
    assert status["status"] == "never_connected"
    assert status["last_heartbeat_at"] is None
    assert status["offline_duration_seconds"] is None
    assert status["is_online"] is False


def test_all_status_lists_every_kiosk_in_id_order(client, add_kiosk, token, clock):
    ids = [add_kiosk(f"Kiosk-{n}", "Building A")[0] for n in ("Entrance", "Cafeteria", "Exit")]
    reply = all_status(client, token)
    assert reply.status_code == 200
    assert [k["kiosk_id"] for k in reply.json] == ids


def test_a_new_heartbeat_moves_the_timestamp(client, add_kiosk, clock):
    _, key = add_kiosk()
    beat(client, key)
    clock.advance(61)
    assert beat(client, key).status_code == 200
    status = client.simulate_get("/kiosk/status", headers={"X-Kiosk-API-Key": key}).json
    assert status["last_heartbeat_at"] == "2026-11-26T10:01:01.000000Z"


# -- back office --------------------------------------------------------------------------------


def test_all_status_filters_by_status_and_location(client, add_kiosk, token, clock, store):
    online_id, online_key = add_kiosk("Kiosk-Entrance", "Building A")
    offline_id, offline_key = add_kiosk("Kiosk-Floor2", "Building C")
    never_id, _ = add_kiosk("Kiosk-Exit", "Building A")
    beat(client, offline_key)
    clock.advance(900)
    beat(client, online_key)
    inactive_id, _ = add_kiosk("Kiosk-Old", "Building A")
    store.set_active(inactive_id, False)

    def ids(query):
        return [k["kiosk_id"] for k in all_status(client, token, query).json]

    assert ids("status=online") == [online_id]
    assert ids("status=offline") == [offline_id]
    assert ids("status=never_connected") == [never_id]
    assert ids("status=inactive") == [inactive_id]
    assert ids("location=Building A") == [online_id, never_id, inactive_id]
    assert ids("location=Building A&status=online") == [online_id]
    assert ids("location=Nowhere") == []


def test_an_unknown_status_filter_is_400_naming_status(client, token):
    reply = all_status(client, token, "status=broken")
    assert reply.status_code == 400
    assert reply.json["field"] == "status"


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer "])
def test_all_status_needs_a_valid_back_office_token(client, header):
    headers = {"Authorization": header} if header else {}
    reply = client.simulate_get("/kiosk/all-status", headers=headers)
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == "Bearer"


def test_a_revoked_token_stops_working(client, store, clock):
    record, secret = store.add_token("ops", now=clock())
    assert all_status(client, secret).status_code == 200
    store.revoke_token(record.id)
    assert all_status(client, secret).status_code == 401


def test_token_use_is_recorded(client, store, clock):
    _, secret = store.add_token("ops", now=clock())
    all_status(client, secret)
    assert store.list_tokens()[0].last_used_at == clock()


# -- refusals -----------------------------------------------------------------------------------


def test_a_deactivated_kiosk_is_403_at_once_and_its_heartbeat_is_not_recorded(
    client, add_kiosk, store, clock
):
    kiosk_id, key = add_kiosk()
    beat(client, key)  # cached key -> id: deactivation must still win
    store.set_active(kiosk_id, False)
    clock.advance(60)
    assert beat(client, key).status_code == 403
    assert client.simulate_get("/kiosk/status", headers={"X-Kiosk-API-Key": key}).status_code == 403
    assert store.get_kiosk(kiosk_id).last_heartbeat_at.minute == 0
    store.set_active(kiosk_id, True)
    assert beat(client, key).status_code == 200


def test_a_rotated_key_stops_working_at_once(client, add_kiosk, store, clock):
    kiosk_id, old_key = add_kiosk()
    assert beat(client, old_key).status_code == 200
    new_key = store.rotate_key(kiosk_id)
    clock.advance(60)
    assert beat(client, old_key).status_code == 401
    assert beat(client, new_key).status_code == 200


def test_a_removed_kiosk_key_is_401(client, add_kiosk, store):
    kiosk_id, key = add_kiosk()
    beat(client, key)
    store.remove_kiosk(kiosk_id)
    assert beat(client, key).status_code == 401


def test_heartbeats_closer_than_the_minimum_are_429_and_keep_the_first(
    client, add_kiosk, store, clock
):
    kiosk_id, key = add_kiosk()
    assert beat(client, key).status_code == 200
    clock.advance(3.2)
    reply = beat(client, key, {"app_version": "9.9.9"})
    assert reply.status_code == 429
    assert reply.headers["Retry-After"] == "7"
    kiosk = store.get_kiosk(kiosk_id)
    assert (kiosk.app_version, kiosk.last_heartbeat_at) == (
        "1.0.0",
        clock.now.replace(second=0, microsecond=0),
    )
    clock.advance(6.8)
    assert beat(client, key).status_code == 200


def test_no_rate_limit_when_the_minimum_is_zero(make_client, add_kiosk):
    client = make_client(min_heartbeat_interval_seconds=0)
    _, key = add_kiosk()
    assert [beat(client, key).status_code for _ in range(3)] == [200, 200, 200]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"app_version": 3}', "app_version"),
        ('{"device_info": "' + "x" * 300 + '"}', "device_info"),
        ('{"app_version": "1\\u0007"}', "app_version"),
        ("[]", "body"),
        ("{not json", "body"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(client, add_kiosk, body, field):
    _, key = add_kiosk()
    reply = client.simulate_post(
        "/kiosk/heartbeat",
        body=body,
        headers={"X-Kiosk-API-Key": key, "Content-Type": "application/json"},
    )
    assert reply.status_code == 400
    assert reply.json["field"] == field
    assert field in reply.json["description"]


def test_a_body_over_16_kib_is_413(client, add_kiosk):
    _, key = add_kiosk()
    reply = client.simulate_post(
        "/kiosk/heartbeat",
        body="{" + " " * 17000 + "}",
        headers={"X-Kiosk-API-Key": key, "Content-Type": "application/json"},
    )
    assert reply.status_code == 413


def test_a_body_that_is_not_json_by_content_type_is_415(client, add_kiosk):
    _, key = add_kiosk()
    reply = client.simulate_post(
        "/kiosk/heartbeat",
        body="app_version=1",
        headers={"X-Kiosk-API-Key": key, "Content-Type": "text/plain"},
    )
    assert reply.status_code == 415


def test_an_empty_heartbeat_is_accepted_and_keeps_the_known_fields(client, add_kiosk, store, clock):
    kiosk_id, key = add_kiosk()
    beat(client, key)
    clock.advance(60)
    assert (
        client.simulate_post("/kiosk/heartbeat", headers={"X-Kiosk-API-Key": key}).status_code
        == 200
    )
    kiosk = store.get_kiosk(kiosk_id)
    assert (kiosk.app_version, kiosk.last_heartbeat_at) == ("1.0.0", clock())


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/kiosk/heartbeat"), ("POST", "/kiosk/status"), ("DELETE", "/metrics")],
)
def test_wrong_methods_are_405(client, method, path):
    reply = client.simulate_request(method, path)
    assert reply.status_code == 405
    assert reply.headers["content-type"].startswith("application/json")


def test_an_unknown_path_is_a_json_404(client):
    reply = client.simulate_get("/kiosk/nothing")
    assert reply.status_code == 404
    assert reply.json["title"]


def test_a_database_failure_is_503_with_retry_after_and_no_trace(
    make_client, add_kiosk, store, monkeypatch
):
    client = make_client()
    _, key = add_kiosk()

    def broken(*args, **kwargs):
        raise StorageUnavailable("database unavailable: OperationalError")

    monkeypatch.setattr(store, "record_heartbeats", broken)
    reply = beat(client, key)
    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "5"
    assert "Traceback" not in reply.text


def test_an_unexpected_error_is_a_generic_500_without_details(
    make_client, add_kiosk, store, monkeypatch
):
    client = make_client()
    _, key = add_kiosk()
    monkeypatch.setattr(store, "find_kiosk_by_key", lambda key_hash: 1 / 0)
    reply = client.simulate_get("/kiosk/status", headers={"X-Kiosk-API-Key": key})
    assert reply.status_code == 500
    assert "ZeroDivision" not in reply.text


# -- health ---------------------------------------------------------------------------------------


def test_healthz_and_readyz(client, backend):
    assert client.simulate_get("/healthz").json == {"status": "ok"}
    ready = client.simulate_get("/readyz")
    assert ready.status_code == 200
    # unauthenticated: it must not tell strangers where the database lives
    assert ready.json == {"status": "ready"}
    assert client.simulate_head("/healthz").status_code == 200
    assert client.simulate_head("/readyz").status_code == 200
