"""Back-office token scopes and location limits: the CLI that makes them, the rule, the routes."""

from __future__ import annotations

import json

import pytest
from yoyo.migrations import MigrationList

from exporter import schema
from exporter.access import Caller, Scope
from exporter.config import parse_database_url
from exporter.errors import LocationForbidden, MissingScope
from exporter.store import open_store
from tests.support.http import request
from tests.support.service import RunningService


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "needed", "allowed"),
    [
        (Scope.READ, Scope.READ, True),
        (Scope.READ, Scope.ADMIN, False),
        (Scope.ADMIN, Scope.READ, True),
        (Scope.ADMIN, Scope.ADMIN, True),
    ],
)
def test_a_scope_grants_itself_and_admin_grants_read(held, needed, allowed):
    caller = Caller(1, "ops", held)
    if allowed:
        caller.require(needed)
    else:
        with pytest.raises(MissingScope, match="'admin'"):
            caller.require(needed)


@pytest.mark.parametrize(
    ("locations", "location", "seen"),
    [
        (frozenset(), "Building A", True),
        (frozenset({"Building A"}), "Building A", True),
        (frozenset({"Building A"}), "Building B", False),
        (frozenset({"Building A"}), "building a", False),
        (frozenset({"Building A", "Building B"}), "Building B", True),
    ],
)
def test_a_token_without_locations_sees_every_location(locations, location, seen):
    caller = Caller(1, "ops", Scope.ADMIN, locations)
    assert caller.sees(location) is seen
    if not seen:
        with pytest.raises(LocationForbidden, match="Building A"):
            caller.require_location(location)


# -- the command line ---------------------------------------------------------------------------


def test_token_add_with_scope_and_locations_shows_in_token_list(cli):
    code, out, _ = cli(
        "token", "add", "--name", "facility-b", "--location", "Building B",
        "--location", "Annex", "--json",
    )  # fmt: skip
    assert code == 0
    created = json.loads(out)
    assert (created["scope"], created["locations"]) == ("read", ["Annex", "Building B"])
    assert cli("token", "add", "--name", "ops", "--scope", "admin")[0] == 0
    _, out, _ = cli("token", "list", "--json")
    assert [(t["name"], t["scope"], t["locations"]) for t in json.loads(out)] == [
        ("facility-b", "read", ["Annex", "Building B"]),
        ("ops", "admin", []),
    ]
    _, table, _ = cli("token", "list")
    header, first, second = table.splitlines()
    assert header.split()[:4] == ["id", "name", "scope", "locations"]
    assert "Annex, Building B" in first and "(all)" in second


def test_an_unknown_scope_is_a_usage_error(cli, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli("token", "add", "--name", "x", "--scope", "root")
    assert exit_.value.code == 2
    assert "--scope" in capsys.readouterr().err


def test_existing_tokens_become_read_tokens_on_upgrade(empty_database_url):
    """A token made before scopes existed gains no right by the upgrade."""
    url = parse_database_url(empty_database_url)
    before = [m for m in schema.migrations_for(url) if m.id < "0006"]
    schema.upgrade(url, timeout_seconds=10, migrations=MigrationList(before))
    with schema.connect(url, timeout_seconds=10) as backend, backend.transaction():
        backend.execute(
            "INSERT INTO backoffice_tokens (name, token_hash, key_prefix, created_at, revoked)"
            " VALUES ('old', :hash, 'kt_x', :now, :no)",
            {"hash": "1" * 64, "now": "2026-11-26 10:00:00", "no": False},
        )
    schema.upgrade(url, timeout_seconds=10)
    store = open_store(url)
    try:
        [token] = store.list_tokens()
        assert (token.name, token.scope, token.locations) == ("old", "read", ())
    finally:
        store.close()


# -- the routes ---------------------------------------------------------------------------------


def test_a_location_limited_token_sees_only_its_locations(client, store, add_kiosk, clock):
    a1 = add_kiosk("Kiosk-A1", "Building A")[0]
    add_kiosk("Kiosk-B1", "Building B")
    a2 = add_kiosk("Kiosk-A2", "Building A")[0]
    _, limited = store.add_token("facility-a", locations=["Building A"], now=clock())
    _, everything = store.add_token("ops", now=clock())

    def ids(token, query=""):
        reply = client.simulate_get("/kiosk/all-status", query_string=query, headers=bearer(token))
        assert reply.status_code == 200
        return [k["kiosk_id"] for k in reply.json]

    assert ids(limited) == [a1, a2]
    assert ids(limited, "location=Building B") == []
    assert ids(limited, "status=never_connected") == [a1, a2]
    assert len(ids(everything)) == 3


def test_scoped_tokens_over_http_on_the_real_server(database_url, store, tmp_path):
    store.add_kiosk("Kiosk-A1", "Building A")
    store.add_kiosk("Kiosk-B1", "Building B")
    record, limited = store.add_token("facility-b", locations=["Building B"])
    with RunningService(tmp_path, database=database_url) as service:
        reply = request("GET", service.url + "/kiosk/all-status", headers=bearer(limited))
        assert reply.status == 200
        assert [k["kiosk_name"] for k in reply.json] == ["Kiosk-B1"]
        store.revoke_token(record.id)
        reply = request("GET", service.url + "/kiosk/all-status", headers=bearer(limited))
        assert reply.status == 401


def test_one_kiosk_of_another_location_is_404_as_if_it_did_not_exist(
    client, store, add_kiosk, clock
):
    mine = add_kiosk("Kiosk-A1", "Building A")[0]
    theirs = add_kiosk("Kiosk-B1", "Building B")[0]
    _, limited = store.add_token("facility-a", locations=["Building A"], now=clock())
    assert client.simulate_get(f"/kiosk/{mine}", headers=bearer(limited)).status_code == 200
    hidden = client.simulate_get(f"/kiosk/{theirs}", headers=bearer(limited))
    missing = client.simulate_get("/kiosk/9999", headers=bearer(limited))
    assert (hidden.status_code, missing.status_code) == (404, 404)
    assert hidden.json["title"] == missing.json["title"]
