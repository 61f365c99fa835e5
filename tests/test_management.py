"""Kiosk management over HTTP (/admin/kiosks) with admin tokens, on each database.

Breadth through falcon's TestClient; the races (two back offices, a retried request) against
the real server process, since only real connections overlap for real.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator

import pytest

from exporter.cli import main
from exporter.config import parse_database_url
from exporter.keys import ENROLLMENT_ALPHABET
from tests.support import databases
from tests.support.http import request
from tests.support.openapi import assert_documented
from tests.support.service import RunningService

HEARTBEAT = {"app_version": "1.0.0"}
ROUTES = [
    ("POST", "/admin/kiosks", {"name": "K", "location": "L"}),
    ("PATCH", "/admin/kiosks/{id}", {"name": "K2"}),
    ("POST", "/admin/kiosks/{id}/deactivate", None),
    ("POST", "/admin/kiosks/{id}/activate", None),
    ("POST", "/admin/kiosks/{id}/rotate-key", None),
    ("DELETE", "/admin/kiosks/{id}", None),
]


def bearer(token: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **more}


@pytest.fixture
def admin(store, clock) -> str:
    return store.add_token("ops-admin", scope="admin", now=clock())[1]


def call(client, token, method, path, body=None, **headers):
    return client.simulate_request(
        method, path, json=body, headers=bearer(token, **headers) if token else headers
    )


def create(client, token, name="Kiosk-Entrance", location="Building A", **headers):
    return call(
        client, token, "POST", "/admin/kiosks", {"name": name, "location": location}, **headers
    )


# -- creating -----------------------------------------------------------------------------------


def test_an_admin_creates_a_kiosk_with_an_enrollment_code_and_never_sees_its_key(
    client, admin, store, database_url
):
    reply = create(client, admin)
    assert reply.status_code == 201
    kiosk = reply.json
    assert reply.headers["location"] == f"/admin/kiosks/{kiosk['kiosk_id']}"
    assert (kiosk["kiosk_name"], kiosk["location"], kiosk["status"]) == (
        "Kiosk-Entrance",
        "Building A",
        "never_connected",
    )
    code = kiosk["enrollment"]["code"]
    assert (
        kiosk["enrollment"]["qr_svg"].startswith("<?xml") and code in kiosk["enrollment"]["qr_svg"]
    )
    assert kiosk["enrollment"]["expires_at"] == "2026-11-27T10:00:00.000000Z"  # 24 h by default
    first, second = code.split("-")
    assert len(first) == len(second) == 5
    assert set(first + second) <= set(ENROLLMENT_ALPHABET)
    assert "kk_" not in reply.text and "api_key" not in reply.text
    assert code.encode() not in databases.stored_bytes(database_url)
    assert [k.name for k in store.list_kiosks()] == ["Kiosk-Entrance"]


@pytest.mark.parametrize("backend", ["sqlite"])  # validation: the database adds nothing
def test_the_code_lifetime_follows_the_setting(make_client, admin):
    reply = create(make_client(enrollment_code_ttl_seconds=3600), admin)
    assert reply.json["enrollment"]["expires_at"] == "2026-11-26T11:00:00.000000Z"


def test_a_duplicate_name_is_409_naming_the_field(client, admin):
    assert create(client, admin).status_code == 201
    reply = create(client, admin, location="Building B")
    assert reply.status_code == 409
    assert reply.json["field"] == "name" and "Kiosk-Entrance" in reply.json["description"]


@pytest.mark.parametrize("backend", ["sqlite"])  # validation: the database adds nothing
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"location": "Building A"}, "name"),
        ({"name": "K"}, "location"),
        ({"name": "  ", "location": "Building A"}, "name"),
        ({"name": "K", "location": 7}, "location"),
        ({"name": "K\tX", "location": "Building A"}, "name"),
        ({"name": "K" * 129, "location": "Building A"}, "name"),
        ({"name": "K", "location": "L", "api_key": "kk_mine"}, "api_key"),
        (["K", "L"], "body"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(client, admin, body, field):
    reply = call(client, admin, "POST", "/admin/kiosks", body)
    assert reply.status_code == 400
    assert reply.json["field"] == field


@pytest.mark.parametrize("backend", ["sqlite"])  # validation: the database adds nothing
def test_a_body_that_is_not_json_is_400_or_415(client, admin):
    headers = bearer(admin, **{"Content-Type": "application/json"})
    reply = client.simulate_post("/admin/kiosks", body="{name", headers=headers)
    assert (reply.status_code, reply.json["field"]) == (400, "body")
    reply = client.simulate_post(
        "/admin/kiosks", body="name=K", headers=bearer(admin, **{"Content-Type": "text/plain"})
    )
    assert reply.status_code == 415


# -- scopes and locations -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])  # per route: the rule runs before any query
@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_a_read_token_on_an_admin_route_is_403_naming_the_scope(
    client, store, clock, add_kiosk, method, path, body
):
    kiosk_id = add_kiosk()[0]
    _, reader = store.add_token("reader", now=clock())
    reply = call(client, reader, method, path.format(id=kiosk_id), body)
    assert reply.status_code == 403
    assert reply.json["required_scope"] == "admin"
    assert "'admin'" in reply.json["description"]
    assert call(client, None, method, path.format(id=kiosk_id), body).status_code == 401
    assert [k.name for k in store.list_kiosks()] == ["Kiosk-Entrance"]
    assert store.list_kiosks()[0].is_active


@pytest.mark.parametrize("backend", ["sqlite"])  # per route: the rule runs before any query
@pytest.mark.parametrize(("method", "path", "body"), ROUTES[1:])
def test_another_locations_kiosk_is_404_for_a_limited_admin(
    client, store, clock, add_kiosk, method, path, body
):
    elsewhere = add_kiosk("Kiosk-B", "Building B")[0]
    _, limited = store.add_token("site-a", scope="admin", locations=["Building A"], now=clock())
    reply = call(client, limited, method, path.format(id=elsewhere), body)
    assert reply.status_code == 404
    missing = call(client, limited, method, path.format(id=9999), body).json
    assert reply.json == {**missing, "description": f"no kiosk with id {elsewhere}"}


def test_a_limited_admin_creates_and_moves_only_within_its_locations(client, store, clock):
    _, limited = store.add_token("site-a", scope="admin", locations=["Building A"], now=clock())
    reply = create(client, limited, location="Building B")
    assert (reply.status_code, reply.json["field"]) == (403, "location")
    made = create(client, limited, location="Building A")
    assert made.status_code == 201
    path = f"/admin/kiosks/{made.json['kiosk_id']}"
    moved = call(client, limited, "PATCH", path, {"location": "Building B"})
    assert (moved.status_code, moved.json["field"]) == (403, "location")
    assert [k.location for k in store.list_kiosks()] == ["Building A"]


# -- changing -----------------------------------------------------------------------------------


def test_patch_renames_and_moves_and_refuses_a_duplicate(client, admin, add_kiosk):
    kiosk_id = add_kiosk()[0]
    add_kiosk("Kiosk-Exit", "Building A")
    path = f"/admin/kiosks/{kiosk_id}"
    reply = call(client, admin, "PATCH", path, {"name": "Kiosk-Hall", "location": "Annex"})
    assert reply.status_code == 200
    assert (reply.json["kiosk_name"], reply.json["location"]) == ("Kiosk-Hall", "Annex")
    assert call(client, admin, "PATCH", path, {"name": "Kiosk-Exit"}).status_code == 409
    assert call(client, admin, "PATCH", path, {}).json["field"] == "body"
    assert call(client, admin, "PATCH", path, {"is_active": False}).json["field"] == "is_active"


def test_deactivate_activate_rotate_and_delete(client, admin, add_kiosk, clock):
    kiosk_id, key = add_kiosk()
    path = f"/admin/kiosks/{kiosk_id}"

    def beat(api_key):
        clock.advance(60)
        return client.simulate_post(
            "/kiosk/heartbeat", json=HEARTBEAT, headers={"X-Kiosk-API-Key": api_key}
        ).status_code

    off = call(client, admin, "POST", path + "/deactivate")
    assert (off.status_code, off.json["status"]) == (200, "inactive")
    assert beat(key) == 403
    on = call(client, admin, "POST", path + "/activate")
    assert (on.status_code, on.json["is_active"]) == (200, True)
    assert beat(key) == 200
    rotated = call(client, admin, "POST", path + "/rotate-key")
    assert rotated.status_code == 200
    assert rotated.json["kiosk_id"] == kiosk_id and rotated.json["enrollment"]["code"]
    assert "kk_" not in rotated.text
    assert beat(key) == 401  # revoked at once
    assert call(client, admin, "DELETE", path).status_code == 204
    assert call(client, admin, "DELETE", path).status_code == 404
    assert call(client, admin, "POST", path + "/activate").status_code == 404


@pytest.mark.parametrize("backend", ["sqlite"])  # validation: the database adds nothing
@pytest.mark.parametrize("kiosk_id", ["abc", "0", "99999999999999999999"])
def test_an_id_that_cannot_exist_is_404_not_a_database_error(client, admin, kiosk_id):
    assert call(client, admin, "DELETE", f"/admin/kiosks/{kiosk_id}").status_code == 404


# -- idempotency --------------------------------------------------------------------------------


def test_a_repeated_idempotency_key_returns_the_same_kiosk(client, admin, store, clock):
    first = create(client, admin, **{"Idempotency-Key": "req-1"})
    again = create(client, admin, **{"Idempotency-Key": "req-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json["kiosk_id"] == first.json["kiosk_id"]
    assert again.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(store.list_kiosks()) == 1
    other = create(client, admin, name="Kiosk-Other", **{"Idempotency-Key": "req-1"})
    assert other.status_code == 422
    _, second_admin = store.add_token("other-admin", scope="admin", now=clock())
    # Keys belong to the token that sent them: another back office's "req-1" is its own.
    assert create(client, second_admin, **{"Idempotency-Key": "req-1"}).status_code == 409
    bad = create(client, admin, name="K3", **{"Idempotency-Key": "x" * 129})
    assert (bad.status_code, bad.json["field"]) == (400, "Idempotency-Key")


# -- the races, on the real server ----------------------------------------------------------------


@pytest.fixture
def service(database_url, store, tmp_path) -> Iterator[RunningService]:
    with RunningService(tmp_path, database=database_url) as running:
        running.admin_tokens = [  # type: ignore[attr-defined]
            store.add_token(f"back-office-{n}", scope="admin")[1] for n in range(2)
        ]
        yield running


def post_kiosk(service, token, name, timeout=10.0, **headers):
    return request(
        "POST",
        service.url + "/admin/kiosks",
        headers=bearer(token, **headers),
        json_body={"name": name, "location": "Building A"},
        timeout=timeout,
    )


def test_two_back_offices_creating_one_name_at_once_get_one_201_and_one_409(service):
    tokens = service.admin_tokens

    def send(token: str, name: str, start: threading.Barrier, statuses: list[int]) -> None:
        start.wait(5)
        statuses.append(post_kiosk(service, token, name).status)

    for round_ in range(4):
        start = threading.Barrier(2)
        statuses: list[int] = []
        threads = [
            threading.Thread(target=send, args=(t, f"Kiosk-{round_}", start, statuses))
            for t in tokens
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(statuses) == [201, 409], statuses
    names = [k["kiosk_name"] for k in service.all_status(tokens[0]).json]
    assert names == [f"Kiosk-{n}" for n in range(4)]


@contextlib.contextmanager
def inserts_held(url: str, name: str) -> Iterator[None]:
    """Make the service's INSERT of kiosk `name` wait, as a slow database would: another
    session holds SQLite's write lock, or an uncommitted row with the same unique name."""
    parsed = parse_database_url(url)
    if parsed.provider != "sqlite":
        insert = (
            "INSERT INTO kiosks (kiosk_name, location, is_active, created_at, api_key_hash,"
            " key_prefix) VALUES (%s, 'x', TRUE, '2026-11-26 10:00:00', %s, 'kk_x')"
        )
        with databases.open_transaction(url, insert, (name, "f" * 64), at_most=8):
            yield
        return
    with contextlib.closing(sqlite3.connect(parsed.params["filename"], timeout=8)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            writer.rollback()


def test_an_idempotency_key_retried_after_a_timeout_returns_the_same_kiosk(service):
    token = service.admin_tokens[0]
    key = {"Idempotency-Key": "3f1c2a"}
    retried: list = []
    with inserts_held(service.database, "Kiosk-Slow"):
        with pytest.raises(TimeoutError):
            post_kiosk(service, token, "Kiosk-Slow", timeout=0.5, **key)
        # The back office retries while its first request is still waiting in the server.
        retry = threading.Thread(
            target=lambda: retried.append(post_kiosk(service, token, "Kiosk-Slow", **key))
        )
        retry.start()
        threading.Event().wait(0.5)
    retry.join(30)
    [reply] = retried
    assert reply.status == 201, (reply.body, "\n".join(service.log_lines[-12:]))
    later = post_kiosk(service, token, "Kiosk-Slow", **key)
    assert later.status == 201 and later.headers.get("idempotent-replayed") == "true"
    assert later.json["kiosk_id"] == reply.json["kiosk_id"]
    assert [k["kiosk_name"] for k in service.all_status(token).json] == ["Kiosk-Slow"]


# -- the command line runs the same operations -------------------------------------------------


def test_the_kiosk_commands_issue_enrollment_codes_too(database_url, capsys):
    assert main(["--database", database_url, "db", "upgrade"], {}) == 0  # as an operator does
    capsys.readouterr()

    def run(*args: str) -> dict:
        assert main(["--database", database_url, *args, "--json"], {}) == 0
        return json.loads(capsys.readouterr().out)

    created = run("kiosk", "add", "--name", "Kiosk-Entrance", "--location", "Building A")
    assert created["api_key"].startswith("kk_") and created["enrollment"]["code"]
    rotated = run("kiosk", "rotate-key", str(created["id"]))
    assert rotated["api_key"] != created["api_key"]
    assert rotated["enrollment"]["code"] != created["enrollment"]["code"]


# -- the document --------------------------------------------------------------------------------


def test_real_answers_of_the_management_and_enrollment_routes_match_the_document(tmp_path):
    """Each answer these routes document that a client can provoke, held to openapi.json."""
    with RunningService(tmp_path) as service:
        admin = service.add_token("ops-admin", scope="admin")
        reader = service.add_token("reader")
        answers = []

        def call(method, template, path=None, token=admin, **kwargs):
            headers = {**kwargs.pop("headers", {}), **({} if token is None else bearer(token))}
            reply = request(method, service.url + (path or template), headers=headers, **kwargs)
            answers.append((method, template, reply))
            return reply

        body = {"name": "Kiosk-Doc", "location": "Building D"}
        made = call("POST", "/admin/kiosks", json_body=body, headers={"Idempotency-Key": "k1"})
        call("POST", "/admin/kiosks", json_body=body, headers={"Idempotency-Key": "k1"})
        call(
            "POST",
            "/admin/kiosks",
            json_body={**body, "name": "X"},
            headers={"Idempotency-Key": "k1"},
        )
        call("POST", "/admin/kiosks", json_body=body)  # 409
        call("POST", "/admin/kiosks", json_body={"name": "X"})  # 400
        call("POST", "/admin/kiosks", body="name=X", headers={"Content-Type": "text/plain"})
        call(
            "POST",
            "/admin/kiosks",
            body=b"{" * 17_000,
            headers={"Content-Type": "application/json"},
        )
        call("POST", "/admin/kiosks", json_body=body, token=None)  # 401
        call("POST", "/admin/kiosks", json_body=body, token=reader)  # 403
        one = "/admin/kiosks/{kiosk_id}"
        kiosk = f"/admin/kiosks/{made.json['kiosk_id']}"
        call("PATCH", one, kiosk, json_body={"location": "Annex"})
        call("PATCH", one, kiosk, json_body={})
        for action in ("deactivate", "activate", "rotate-key"):
            call("POST", f"{one}/{action}", f"{kiosk}/{action}")
            call("POST", f"{one}/{action}", f"/admin/kiosks/9999/{action}")
        code = answers[-2][2].json["enrollment"]["code"]
        call("POST", "/kiosk/enroll", json_body={"code": 5}, token=None)  # 400
        for attempt in [code, code] + ["ABCDE-FGHJK"] * 10:  # 200, then 401 until 429
            call("POST", "/kiosk/enroll", json_body={"code": attempt}, token=None)
        call("DELETE", one, kiosk)
        call("DELETE", one, kiosk)
    statuses: dict = {}
    for method, template, reply in answers:
        assert_documented(method, template, reply)
        statuses.setdefault((method, template), set()).add(reply.status)
    assert statuses[("POST", "/admin/kiosks")] == {201, 400, 401, 403, 409, 413, 415, 422}
    assert statuses[("POST", "/kiosk/enroll")] == {200, 400, 401, 429}
    assert statuses[("DELETE", one)] == {204, 404}


# -- the kiosk event log (#13's) -----------------------------------------------------------------


def test_each_change_is_in_the_kiosk_event_log_with_the_tokens_name(client, admin, store, clock):
    store.add_schedule("office", timezone="Europe/Paris", hours="Mon-Fri 07:00-20:00", now=clock())
    made = call(
        client, admin, "POST", "/admin/kiosks",
        {"name": "Kiosk-A", "location": "Building A", "schedule": "office"},
    )  # fmt: skip
    assert (made.status_code, made.json["schedule"]) == (201, "office")
    path = f"/admin/kiosks/{made.json['kiosk_id']}"
    clock.advance(60)
    changed = call(
        client, admin, "PATCH", path, {"name": "Kiosk-B", "location": "Annex", "schedule": None}
    )
    assert (changed.status_code, changed.json["schedule"]) == (200, None)
    call(client, admin, "POST", path + "/deactivate")
    call(client, admin, "POST", path + "/rotate-key")
    code = call(client, admin, "POST", path + "/rotate-key").json["enrollment"]["code"]
    client.simulate_post("/kiosk/enroll", json={"code": code, "device_info": "Tab A9"})
    events = [(e.kind, e.actor) for e in store.kiosk_events(made.json["kiosk_id"])]
    assert events == [
        ("created", "ops-admin"),
        ("schedule_assigned", "ops-admin"),
        ("schedule_assigned", "ops-admin"),
        ("renamed", "ops-admin"),
        ("moved", "ops-admin"),
        ("deactivated", "ops-admin"),
        ("key_rotated", "ops-admin"),
        ("key_rotated", "ops-admin"),
        ("enrolled", None),
    ]
    renamed = store.kiosk_events(made.json["kiosk_id"])[3]
    assert renamed.detail == {"from": "Kiosk-A", "to": "Kiosk-B"}


@pytest.mark.parametrize("backend", ["sqlite"])  # validation: the database adds nothing
@pytest.mark.parametrize(("schedule", "status"), [("nights", 400), (7, 400), ("always", 201)])
def test_a_schedule_is_a_known_name_or_always(client, admin, schedule, status):
    reply = call(
        client, admin, "POST", "/admin/kiosks",
        {"name": "Kiosk-A", "location": "Building A", "schedule": schedule},
    )  # fmt: skip
    assert reply.status_code == status
    if status == 400:
        assert reply.json["field"] == "schedule"
