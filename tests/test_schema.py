"""Schema migrations on each database: what they build, upgrades from every version, locking.

The list of migrations is read from the package, so a new migration is covered by every
test here without touching them.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from pony.orm import Database
from yoyo.migrations import MigrationList

from exporter import models, schema
from exporter.config import DatabaseUrl, parse_database_url
from exporter.errors import SchemaBehind
from exporter.store import open_store
from tests.support import databases
from tests.support.http import request
from tests.support.process import Command
from tests.support.service import COMMAND, RunningService, run_cli

MIGRATIONS = Path(schema.__file__).with_name("migrations")
SQLITE = DatabaseUrl("sqlite", {"filename": "unused"})
MIGRATION_IDS = schema.migration_ids(SQLITE)


def create_with_pony(url: str) -> None:
    """The tables exactly as Pony's own create_tables makes them from the entities."""
    parsed = parse_database_url(url)
    db = Database()
    models.define_entities(db)
    if parsed.provider == "sqlite":
        db.bind(provider="sqlite", filename=parsed.params["filename"], create_db=True)
    else:
        db.bind(provider=parsed.provider, **models.server_params(parsed, 5.0))
    db.generate_mapping(create_tables=True)
    db.disconnect()


def create_before_migrations(url: str) -> None:
    """The tables of the release before migrations existed (0001's), with no yoyo record."""
    parsed = parse_database_url(url)
    first = next(iter(schema.migrations_for(parsed)))
    with schema.connect(parsed, timeout_seconds=10) as backend:
        backend.apply_migrations_only(MigrationList([first]))


def entity_tables() -> tuple[str, ...]:
    db = Database()
    models.define_entities(db)
    return tuple(sorted(entity._table_ for entity in db.entities.values()))


def apply_first(url: str, count: int) -> None:
    parsed = parse_database_url(url)
    first = MigrationList(list(schema.migrations_for(parsed))[:count])
    schema.upgrade(parsed, timeout_seconds=10, migrations=first)


def other_database(backend: str, tmp_path: Path, stack: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'pony.db'}"
    url = databases.create(backend)
    stack.addfinalizer(lambda: databases.drop(backend, url))
    return url


# -- the migrations themselves --------------------------------------------------------------------


def test_every_dialect_has_the_same_migrations_in_order():
    names = {
        folder.name: sorted(p.stem for p in folder.glob("*.sql"))
        for folder in MIGRATIONS.iterdir()
        if folder.is_dir() and folder.name != "__pycache__"
    }
    assert set(names) == set(schema.DIALECTS.values())
    assert all(ids == MIGRATION_IDS for ids in names.values()), names
    assert all(re.fullmatch(r"\d{4}_[a-z0-9_]+", name) for name in MIGRATION_IDS)
    # Numbers are handed out per issue in advance, so one may land before a lower one.
    numbers = [int(name[:4]) for name in MIGRATION_IDS]
    assert numbers[0] == 1 and numbers == sorted(set(numbers)), numbers


def test_the_migrations_ship_in_the_package():
    pyproject = (MIGRATIONS.parents[1] / "pyproject.toml").read_text()
    package_data = pyproject.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    assert '"*" = ["*.sql"]' in package_data
    assert '"yoyo-migrations' in pyproject


def test_the_migrated_schema_is_what_pony_expects(empty_database_url, backend, tmp_path, request):
    """Pony's table check passes (open_store runs it), and every column's type, nullability
    and key equals what Pony's create_tables makes: check_tables alone only sees names."""
    schema.upgrade(parse_database_url(empty_database_url), timeout_seconds=10)
    open_store(empty_database_url).close()
    reference = other_database(backend, tmp_path, request)
    create_with_pony(reference)
    tables = entity_tables()
    assert databases.describe_tables(empty_database_url, tables) == databases.describe_tables(
        reference, tables
    )
    if backend == "mysql":
        assert databases.collations(empty_database_url) == {"utf8mb4_bin"}


@pytest.mark.parametrize("version", range(len(MIGRATION_IDS)), ids=lambda n: f"from-{n:04d}")
def test_upgrade_from_every_earlier_version_keeps_the_data(empty_database_url, version):
    url = parse_database_url(empty_database_url)
    apply_first(empty_database_url, version)
    if version >= 1:
        seed_kiosk_at(empty_database_url)
    applied = schema.upgrade(url, timeout_seconds=10)
    assert applied == MIGRATION_IDS[version:]
    assert schema.status(url, timeout_seconds=10).current
    if version >= 1:
        store = open_store(url)
        assert [k.name for k in store.list_kiosks()] == ["Kiosk-Entrance"]
        store.close()


def seed_kiosk_at(url: str) -> None:
    """Raw SQL with 0001's columns: the code of today may not run on an old schema."""
    parsed = parse_database_url(url)
    with schema.connect(parsed, timeout_seconds=10) as backend, backend.transaction():
        backend.execute(
            "INSERT INTO kiosks (kiosk_name, location, is_active, created_at, api_key_hash,"
            " key_prefix) VALUES ('Kiosk-Entrance', 'Building A', :yes, :now, :hash, 'kk_x')",
            {"yes": True, "now": "2026-11-26 10:00:00", "hash": "0" * 64},
        )


def test_a_database_made_before_migrations_existed_is_adopted(empty_database_url):
    create_before_migrations(empty_database_url)
    url = parse_database_url(empty_database_url)
    store = open_store(url, upgrade=True)
    store.add_kiosk("Kiosk-Entrance", "Building A")
    assert schema.status(url, timeout_seconds=10).applied == tuple(MIGRATION_IDS)
    store.close()


def test_upgrading_twice_changes_nothing(empty_database_url):
    url = parse_database_url(empty_database_url)
    assert schema.upgrade(url, timeout_seconds=10) == MIGRATION_IDS
    assert schema.upgrade(url, timeout_seconds=10) == []


# -- the commands ---------------------------------------------------------------------------------


def test_db_status_and_upgrade_commands(empty_database_url, backend):
    before = run_cli("db", "status", "--json", database=empty_database_url)
    if backend == "sqlite":  # no file yet: only serve, demo and db upgrade create one
        assert before.returncode == 1 and "no database at sqlite:///" in before.stderr
    else:
        assert before.returncode == 0, before.stderr
        assert json.loads(before.stdout)["pending"] == MIGRATION_IDS
    upgraded = run_cli("db", "upgrade", database=empty_database_url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.split() == MIGRATION_IDS
    again = run_cli("db", "upgrade", database=empty_database_url)
    assert (again.returncode, again.stdout) == (0, "")
    after = json.loads(run_cli("db", "status", "--json", database=empty_database_url).stdout)
    assert (after["current"], after["applied"], after["pending"]) == (True, MIGRATION_IDS, [])


def test_two_upgrades_at_once_apply_each_migration_once(empty_database_url):
    """Both wait on yoyo's lock, held here until both are running; the one that gets it
    second finds nothing pending. Each migration is printed by exactly one of them."""
    url = parse_database_url(empty_database_url)
    with schema.connect(url, timeout_seconds=10) as backend, backend.lock():
        upgrades = [Command(["--database", empty_database_url, "db", "upgrade"]) for _ in "ab"]
        time.sleep(1.5)
        assert all(u.process.poll() is None for u in upgrades), "they must wait for the lock"
    try:
        codes = [u.process.wait(60) for u in upgrades]
    finally:
        for upgrade in upgrades:
            upgrade.__exit__()
    assert codes == [0, 0], [u.stderr.text() for u in upgrades]
    printed = [line for u in upgrades for line in u.stdout.lines]
    assert sorted(printed) == MIGRATION_IDS
    assert schema.status(url, timeout_seconds=10).current


def test_serve_refuses_a_schema_that_is_behind_and_says_what_to_run(empty_database_url, backend):
    if backend == "sqlite":
        create_before_migrations(empty_database_url)  # a database from before this release
    served = subprocess.run(
        [*COMMAND, "--database", empty_database_url, "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert served.returncode == 1
    assert "run `kiosk-exporter db upgrade`" in served.stderr
    assert "Traceback" not in served.stderr
    listed = run_cli("kiosk", "list", database=empty_database_url)
    assert listed.returncode == 1 and "db upgrade" in listed.stderr


def test_serve_upgrade_applies_pending_migrations_first(empty_database_url, tmp_path):
    with RunningService(tmp_path, database=empty_database_url, serve_args=["--upgrade"]) as service:
        assert service.add_kiosk("Kiosk-Entrance", "Building A")[0] == 1
        assert request("GET", service.url + "/readyz").status == 200


def test_a_new_sqlite_file_is_created_by_db_upgrade_with_no_other_step(tmp_path):
    url = f"sqlite:///{tmp_path / 'new' / 'kiosks.db'}"
    (tmp_path / "new").mkdir()
    assert run_cli("db", "upgrade", database=url).returncode == 0
    listed = run_cli("kiosk", "list", "--json", database=url)
    assert (listed.returncode, json.loads(listed.stdout)) == (0, [])
    status = json.loads(run_cli("db", "status", "--json", database=url).stdout)
    assert status["applied"] == MIGRATION_IDS


def test_an_unreachable_server_is_one_line_exit_1():
    url = "postgresql://nobody@127.0.0.1:9/kiosks"  # the discard port: nothing listens
    for args in (("db", "upgrade"), ("db", "status"), ("kiosk", "list"), ("serve", "--port", "0")):
        result = run_cli(*args, database=url)
        assert result.returncode == 1, result
        assert result.stderr.startswith(
            "kiosk-exporter: database postgresql://nobody@127.0.0.1:9/kiosks"
        )
        assert "Traceback" not in result.stderr


def test_schema_behind_names_the_pending_migrations():
    error = SchemaBehind("db", ["0002_x", "0003_y"], "kiosk-exporter db upgrade")
    assert "2 migration(s) pending (0002_x, 0003_y)" in str(error)
