"""The expected-hours commands: schedules, kiosk schedule, maintenance, events, import."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from exporter.clock import parse_utc
from exporter.store import open_store

OFFICE = "Mon-Fri 07:00-20:00, Sat 08:00-12:00"


def add(cli, name="Kiosk-Entrance", location="Building A"):
    code, out, err = cli("kiosk", "add", "--name", name, "--location", location, "--json")
    assert code == 0, err
    return json.loads(out)["id"]


def test_schedules_add_list_update_remove_and_kiosks_on_them(cli):
    kiosk_id = add(cli)
    code, out, err = cli(
        "schedule",
        "add",
        "--name",
        "office",
        "--timezone",
        "Europe/Paris",
        "--hours",
        OFFICE,
        "--json",
    )
    assert code == 0, err
    assert {k: json.loads(out)[k] for k in ("name", "timezone", "hours", "kiosks")} == {
        "name": "office",
        "timezone": "Europe/Paris",
        "hours": OFFICE,
        "kiosks": 0,
    }
    assert cli("kiosk", "update", str(kiosk_id), "--schedule", "office")[0] == 0
    listed = json.loads(cli("schedule", "list", "--json")[1])
    assert [(s["name"], s["kiosks"]) for s in listed] == [("office", 1)]
    code, out, _ = cli("schedule", "list")
    assert "Europe/Paris" in out and OFFICE in out
    code, _, err = cli("schedule", "remove", "office")
    assert code == 1 and "used by 1 kiosk" in err
    code, out, _ = cli("schedule", "update", "office", "--hours", "Mon-Fri 08:00-18:00", "--json")
    assert (code, json.loads(out)["hours"]) == (0, "Mon-Fri 08:00-18:00")
    assert cli("kiosk", "update", str(kiosk_id), "--schedule", "always")[0] == 0
    assert cli("schedule", "remove", "office")[0] == 0
    assert json.loads(cli("schedule", "list", "--json")[1]) == []
    code, out, _ = cli("kiosk", "events", str(kiosk_id), "--json")
    created, *events = json.loads(out)
    assert (created["kind"], created["actor"]) == ("created", "cli")  # kiosk add, #18
    assert [(e["kind"], e["actor"], e["detail"]["schedule"]) for e in events] == [
        ("schedule_assigned", "cli", "office"),
        ("schedule_assigned", "cli", None),
    ]
    code, out, _ = cli("kiosk", "events", str(kiosk_id))
    assert "schedule_assigned" in out and "schedule=office" in out


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (
            ("schedule", "add", "--name", "x", "--timezone", "Mars/Base", "--hours", OFFICE),
            "--timezone",
        ),
        (("schedule", "add", "--name", "x", "--timezone", "UTC", "--hours", "Mon 7-8"), "--hours"),
        (("schedule", "add", "--name", "always", "--timezone", "UTC", "--hours", OFFICE), "--name"),
        (("schedule", "update", "x"), "--timezone/--hours"),
        (("kiosk", "maintenance", "1", "--for", "soon"), "--for"),
        (("kiosk", "maintenance", "1", "--for", "0m"), "--for"),
        (("kiosk", "maintenance", "1", "--until", "yesterday"), "--until"),
        (("kiosk", "maintenance", "1", "--until", "2020-01-01T00:00:00Z"), "--until"),
        (("kiosk", "maintenance", "1"), "--for/--until"),
        (("kiosk", "maintenance", "--for", "1h"), "ID/--location"),
        (("kiosk", "maintenance", "1", "--location", "A", "--for", "1h"), "ID/--location"),
        (("kiosk", "maintenance", "1", "--end", "--for", "1h"), "--end"),
    ],
)
def test_bad_expected_hours_input_is_a_usage_error_naming_the_flag(tmp_path, capsys, args, flag):
    from exporter.cli import main

    code = main(["--database", f"sqlite:///{tmp_path / 'k.db'}", *args], {})
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"kiosk-exporter: {flag}: ")
    assert "Traceback" not in err


def test_maintenance_on_a_kiosk_or_a_location_and_its_early_end(cli, database_url):
    first = add(cli, "K1", "Hall")
    second = add(cli, "K2", "Hall")
    other = add(cli, "K3", "Annex")
    before = datetime.now(timezone.utc)
    code, out, err = cli(
        "kiosk", "maintenance", str(first), "--for", "2h", "--reason", "screen", "--json"
    )
    assert code == 0, err
    (window,) = json.loads(out)
    ends = parse_utc(window["ends_at"])
    assert timedelta(hours=2) <= ends - before < timedelta(hours=2, minutes=1)
    assert window["reason"] == "screen"
    code, out, _ = cli("kiosk", "maintenance", "--location", "Hall", "--for", "1h", "--json")
    assert sorted(w["kiosk_id"] for w in json.loads(out)) == [first, second]
    until = (before + timedelta(days=1)).replace(microsecond=0)
    code, out, _ = cli("kiosk", "maintenance", str(other), "--until", until.isoformat(), "--json")
    assert parse_utc(json.loads(out)[0]["ends_at"]) == until
    assert cli("kiosk", "maintenance", str(first), "--end")[0] == 0
    code, _, err = cli("kiosk", "maintenance", str(first), "--end")
    assert code == 1 and "not in maintenance" in err
    assert cli("kiosk", "maintenance", "--location", "Nowhere", "--for", "1h")[0] == 2
    assert cli("kiosk", "maintenance", "999", "--for", "1h")[0] == 1
    kinds = [e["kind"] for e in json.loads(cli("kiosk", "events", str(first), "--json")[1])]
    # --end ends every window in progress on the kiosk (its own and its location's).
    assert kinds == ["created"] + ["maintenance_started"] * 2 + ["maintenance_ended"] * 2
    store = open_store(database_url)
    try:
        now = datetime.now(timezone.utc)
        facts = store.expectation_facts(now, offline_before=now)
        assert first not in facts.open_windows
        assert sorted(facts.open_windows) == [second, other]
    finally:
        store.close()


def test_import_takes_an_optional_schedule_column_all_or_nothing(cli, tmp_path, database_url):
    cli("schedule", "add", "--name", "office", "--timezone", "Europe/Paris", "--hours", OFFICE)
    fleet = tmp_path / "fleet.csv"
    fleet.write_text("name,location,schedule\nK1,Hall,office\nK2,Hall,\nK3,Hall,always\n")
    code, _, err = cli("kiosk", "import", str(fleet), "--json")
    assert code == 0, err
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {name: K4, location: Hall, schedule: nights}\n")
    code, _, err = cli("kiosk", "import", str(bad))
    assert code == 1 and "no schedule named 'nights'" in err
    store = open_store(database_url)
    try:
        kiosks = {k.name: k.schedule_id for k in store.list_kiosks()}
        office_id = store.list_schedules()[0].id
        assert kiosks == {"K1": office_id, "K2": None, "K3": None}
        (event,) = store.events_since(datetime(2000, 1, 1, tzinfo=timezone.utc))[1]
        assert (event.kind, event.actor) == ("schedule_assigned", "cli")
    finally:
        store.close()
