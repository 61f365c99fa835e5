"""One consistent command line: --json, --config and --database everywhere, no silent new
database, clear answers where a traceback or silence used to be."""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import subprocess
from datetime import timedelta

import pytest
from pony.orm import db_session

from exporter import __version__
from exporter.cli import build_parser
from exporter.clock import utc_now
from exporter.config import parse_database_url
from exporter.store import open_store
from tests.support.process import Command
from tests.support.service import COMMAND, run_cli


def operator_commands() -> dict[str, argparse.ArgumentParser]:
    """Every `kiosk-exporter GROUP ACTION` parser (kiosk, token, db)."""
    parser = build_parser()
    groups = parser._subparsers._group_actions[0].choices
    found = {}
    for group in ("kiosk", "token", "db"):
        actions = groups[group]._subparsers._group_actions[0].choices
        found.update({f"{group} {name}": sub for name, sub in actions.items()})
    return found


def test_every_operator_command_takes_json_config_and_database():
    commands = operator_commands()
    assert len(commands) >= 14  # kiosk x8, token x3, db x3, and whatever comes next
    for name, parser in commands.items():
        flags = {flag for action in parser._actions for flag in action.option_strings}
        assert {"--json", "--config", "--database"} <= flags, name


def test_version():
    result = subprocess.run(
        [*COMMAND, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout.strip()) == (0, f"kiosk-exporter {__version__}")


def test_the_commands_that_only_spoke_on_stderr_answer_json(cli):
    kiosk_id = json.loads(cli("kiosk", "add", "--name", "A", "--location", "L", "--json")[1])["id"]
    token_id = json.loads(cli("token", "add", "--name", "bo", "--json")[1])["id"]
    expected = {
        ("kiosk", "deactivate"): {"id": kiosk_id, "is_active": False},
        ("kiosk", "activate"): {"id": kiosk_id, "is_active": True},
        ("token", "revoke"): {"id": token_id, "revoked": True},
        ("kiosk", "remove"): {"id": kiosk_id, "removed": True},
    }
    for (group, action), answer in expected.items():
        ident = token_id if group == "token" else kiosk_id
        extra = ["--yes"] if action == "remove" else []
        code, out, _ = cli(group, action, str(ident), *extra, "--json")
        assert (code, json.loads(out)) == (0, answer)
    code, out, _ = cli("db", "upgrade", "--json")
    upgraded = json.loads(out)
    assert (code, upgraded["applied_now"]) == (0, [])
    assert parse_database_url(upgraded["database"]) is not None
    code, out, _ = cli("db", "break-lock", "--json")
    assert (code, json.loads(out)["lock_removed"]) == (0, False)


def test_break_lock_says_whether_there_was_a_lock(tmp_path):
    database = f"sqlite:///{tmp_path / 'k.db'}"
    assert run_cli("db", "upgrade", database=database).returncode == 0
    none = run_cli("db", "break-lock", database=database)
    assert (none.returncode, none.stderr.strip()) == (0, "there was no migration lock")
    with sqlite3.connect(tmp_path / "k.db") as connection:
        connection.execute("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, '2026-11-26', 9)")
    broken = run_cli("db", "break-lock", database=database)
    assert (broken.returncode, broken.stderr.strip()) == (0, "migration lock removed")


@pytest.mark.parametrize(
    "args",
    [
        ("kiosk", "add", "--name", "A", "--location", "L"),
        ("kiosk", "list"),
        ("kiosk", "remove", "1", "--yes"),
        ("token", "add", "--name", "bo"),
        ("token", "list"),
        ("db", "status"),
        ("db", "break-lock"),
    ],
)
def test_only_serve_demo_and_db_upgrade_create_a_sqlite_database(tmp_path, args):
    path = tmp_path / "kiosk-heartbeat.db"
    result = run_cli(*args, database=f"sqlite:///{path}")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"kiosk-exporter: no database at sqlite:///{path}; pass --database (or --config) to "
        "use the service's, or create it with "
        f"`kiosk-exporter db upgrade --database sqlite:///{path}`"
    ]
    assert not path.exists()


@pytest.mark.parametrize(
    ("url", "printed"),
    [
        (
            "postgresql://kiosk:s3cret@db.example:5432/fleet",
            "postgresql://kiosk@db.example:5432/fleet",
        ),
        ("postgres://db/fleet", "postgresql://db/fleet"),
        ("mysql://app:pw@[::1]:3306/fleet", "mysql://app@[::1]:3306/fleet"),
        ("mysql://db/fleet", "mysql://root@db/fleet"),
        ("sqlite:////var/lib/k.db", "sqlite:////var/lib/k.db"),
    ],
)
def test_database_urls_are_printed_as_accepted_and_without_password(url, printed):
    described = parse_database_url(url).describe()
    assert described == printed
    parsed, again = parse_database_url(url), parse_database_url(described)
    assert {**parsed.params, "password": ""} == {**again.params, "password": ""}


def test_kiosk_list_shows_status_and_last_heartbeat_and_filters(cli, database_url):
    store = open_store(database_url)
    now = utc_now()
    ids = {}
    for name, location in (("On", "Hall"), ("Off", "Hall"), ("Never", "Hall"), ("Out", "Yard")):
        ids[name] = store.add_kiosk(name, location, now=now - timedelta(hours=1))[0].id
    store.record_heartbeat(ids["On"], received_at=now - timedelta(seconds=5))
    store.record_heartbeat(ids["Off"], received_at=now - timedelta(hours=1))
    store.set_active(ids["Out"], False)
    store.close()
    _, out, _ = cli("kiosk", "list", "--json")
    listed = {k["name"]: k for k in json.loads(out)}
    assert {n: k["status"] for n, k in listed.items()} == {
        "On": "online",
        "Off": "offline",
        "Never": "never_connected",
        "Out": "inactive",
    }
    assert listed["On"]["last_heartbeat_at"].endswith("Z")
    assert listed["Never"]["last_heartbeat_at"] is None
    _, out, _ = cli("kiosk", "list", "--status", "online", "--status", "offline", "--json")
    assert sorted(k["name"] for k in json.loads(out)) == ["Off", "On"]
    _, out, _ = cli("kiosk", "list", "--location", "Yard", "--json")
    assert [k["name"] for k in json.loads(out)] == ["Out"]
    _, out, _ = cli("kiosk", "list", "--status", "offline")
    header, row = out.splitlines()
    assert header.split()[:5] == ["id", "name", "location", "status", "last_heartbeat_at"]
    assert row.split()[1:4] == ["Off", "Hall", "offline"]


def test_token_names_are_unique_and_old_duplicates_keep_working(cli, database_url):
    first = json.loads(cli("token", "add", "--name", "back-office", "--json")[1])
    code, _, err = cli("token", "add", "--name", "back-office")
    assert code == 1 and "a back-office token named 'back-office' already exists" in err
    second = json.loads(cli("token", "add", "--name", "reports", "--json")[1])
    store = open_store(database_url)
    with db_session:  # a database from before the rule: one name twice
        store._db.execute("UPDATE backoffice_tokens SET name = 'back-office'")
    code, out, err = cli("token", "list", "--json")
    assert [t["name"] for t in json.loads(out)] == ["back-office", "back-office"]
    assert f"warning: tokens {first['id']}, {second['id']} share the name 'back-office'" in err
    for token in (first, second):
        assert store.authenticate_token(token["token"], now=utc_now()) is not None
    store.close()
    assert cli("token", "revoke", str(first["id"]))[0] == 0
    assert "warning" not in cli("token", "list")[2]


def test_demo_refuses_database_instead_of_ignoring_it(tmp_path):
    result = run_cli("demo", "--port", "0", database=f"sqlite:///{tmp_path / 'mine.db'}")
    assert result.returncode == 2
    assert "--database: demo always runs on a temporary database" in result.stderr
    assert not (tmp_path / "mine.db").exists()


def test_demo_on_a_busy_port_binds_first_and_sends_nothing_there():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken.setblocking(False)
        port = taken.getsockname()[1]
        with Command(["demo", "--port", str(port)]) as demo:
            assert demo.process.wait(60) == 1
        assert "cannot listen on 127.0.0.1" in demo.stderr.text()
        assert "Service:" not in demo.stdout.text()
        with pytest.raises(BlockingIOError):
            taken.accept()  # no agent ever connected to the other service
