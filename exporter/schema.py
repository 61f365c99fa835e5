"""Schema versions: the yoyo migrations in exporter/migrations, applied, reported, required.

Pony has no migration tool, so the schema belongs to versioned SQL files applied by
yoyo-migrations, which records them in the database (`_yoyo_migration`) and serialises
concurrent upgrades with its lock table: two replicas may run `db upgrade` at once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yoyo import read_migrations
from yoyo.backends import DatabaseBackend
from yoyo.backends.core import MySQLBackend, PostgresqlBackend, SQLiteBackend
from yoyo.connections import DatabaseURI
from yoyo.exceptions import LockTimeout
from yoyo.migrations import MigrationList, default_migration_table

from .config import DatabaseUrl
from .errors import DatabaseMissing, MigrationFailed, SchemaBehind, StorageUnavailable
from .models import require_driver

log = logging.getLogger(__name__)

# Pony's provider name -> the folder of exporter/migrations written in its dialect.
DIALECTS = {"sqlite": "sqlite", "postgres": "postgresql", "mysql": "mysql"}
LOCK_TIMEOUT_SECONDS = 60.0
UPGRADE_COMMAND = "kiosk-exporter db upgrade"


@dataclass(frozen=True)
class SchemaStatus:
    """Which of this release's migrations a database has, and which it lacks."""

    applied: tuple[str, ...]
    pending: tuple[str, ...]
    # Applied by a newer release (a rollback of the code, or a replica still on the old one).
    unknown: int = 0
    # No table at all besides yoyo's own: nothing to lose by migrating it unasked.
    empty: bool = False

    @property
    def current(self) -> bool:
        return not self.pending


class _SQLiteBackend(SQLiteBackend):  # type: ignore[misc]
    """yoyo's SQLite backend opens `file:PATH?cache=shared`, which breaks on paths holding
    `?`, `#` or `%` and waits for no lock; a plain connection with a busy timeout does not."""

    def connect(self, dburi: DatabaseURI) -> sqlite3.Connection:
        return sqlite3.connect(
            dburi.database,
            timeout=float(dburi.args.get("timeout", 5.0)),
            detect_types=sqlite3.PARSE_DECLTYPES,
            isolation_level=None,
        )


class _MySQLBackend(MySQLBackend):  # type: ignore[misc]
    """utf8mb4 (MySQL's `utf8` cannot hold every kiosk name) and PyMySQL's current argument
    names (yoyo still passes the deprecated `db` and `passwd`)."""

    def connect(self, dburi: DatabaseURI) -> Any:
        optional = {"host": dburi.hostname, "port": dburi.port, "password": dburi.password}
        return self.driver.connect(
            database=dburi.database,
            user=dburi.username,
            charset="utf8mb4",
            **{k: v for k, v in optional.items() if v is not None},
            **dburi.args,
        )


def migrations_for(url: DatabaseUrl) -> MigrationList:
    """This release's migrations for the URL's dialect, in file name order."""
    return read_migrations(f"package:exporter:migrations/{DIALECTS[url.provider]}")


def migration_ids(url: DatabaseUrl) -> list[str]:
    return [migration.id for migration in migrations_for(url)]


@contextlib.contextmanager
def connect(url: DatabaseUrl, *, timeout_seconds: float) -> Iterator[DatabaseBackend]:
    """A yoyo backend on the database. An unreachable database or a held lock becomes
    StorageUnavailable and a failing migration MigrationFailed: one line, no traceback."""
    driver = require_driver(url) or sqlite3
    backend_class, uri = _backend_uri(url, timeout_seconds)
    try:
        backend = backend_class(uri, default_migration_table)
        try:
            backend.init_database()
            yield backend
        finally:
            backend.connection.close()
    except LockTimeout as exc:
        raise StorageUnavailable(
            f"another upgrade holds the migration lock ({exc}); if none is running, "
            "remove a stale lock with `kiosk-exporter db break-lock`",
            retry_after=int(LOCK_TIMEOUT_SECONDS),
        ) from None
    except driver.OperationalError as exc:
        raise StorageUnavailable(f"database {url.describe()} unavailable: {_first(exc)}") from exc
    except driver.Error as exc:
        raise MigrationFailed(f"database {url.describe()}: {_first(exc)}") from exc


def status(url: DatabaseUrl, *, timeout_seconds: float) -> SchemaStatus:
    with connect(url, timeout_seconds=timeout_seconds) as backend:
        return _status(backend, migrations_for(url))


def upgrade(
    url: DatabaseUrl,
    *,
    timeout_seconds: float,
    lock_timeout_seconds: float = LOCK_TIMEOUT_SECONDS,
    migrations: MigrationList | None = None,
) -> list[str]:
    """Apply what is pending under yoyo's lock; returns the ids applied now (none if current).

    What is pending is decided after the lock is taken, so a second upgrade that waited for
    the first finds nothing left to do.
    """
    migrations = migrations_for(url) if migrations is None else migrations
    with (
        connect(url, timeout_seconds=timeout_seconds) as backend,
        backend.lock(timeout=lock_timeout_seconds),
    ):
        pending = backend.to_apply(migrations)
        for migration in pending:
            log.info("applying migration %s to %s", migration.id, url.describe())
        backend.apply_migrations(pending)
        return [migration.id for migration in pending]


def require_existing(url: DatabaseUrl) -> None:
    """Only `serve`, `demo` and `db upgrade` may create a SQLite database; other commands
    call this first. (A server database is created by its administrator, never by us.)"""
    if url.provider == "sqlite" and not Path(url.params["filename"]).exists():
        raise DatabaseMissing(url.describe(), f"{UPGRADE_COMMAND} --database {url.describe()}")


def break_lock(url: DatabaseUrl, *, timeout_seconds: float) -> bool:
    """Remove the lock row left by an upgrade that was killed mid-way; False if none was."""
    with connect(url, timeout_seconds=timeout_seconds) as backend, backend.transaction():
        cursor = backend.execute(f"DELETE FROM {backend.lock_table_quoted}")
        return bool(cursor.rowcount and cursor.rowcount > 0)


def require_current(
    url: DatabaseUrl, *, timeout_seconds: float, upgrade_pending: bool = False
) -> SchemaStatus:
    """Refuse (SchemaBehind) a schema this release cannot use, unless it may be upgraded.

    A brand-new SQLite file is always migrated: the embedded default needs no set-up step,
    and an empty file has no data to back up first. Anything else is upgraded only when
    asked (`serve --upgrade`), because on a shared server migrations are a deploy step.
    """
    found = status(url, timeout_seconds=timeout_seconds)
    if found.pending and not found.empty and not upgrade_pending:
        # Maybe another process is migrating it right now (`serve --workers` on a new SQLite
        # file: one worker's upgrade is half done when the next looks): judge again once
        # yoyo's lock, held for a whole upgrade, is free.
        with (
            connect(url, timeout_seconds=timeout_seconds) as backend,
            backend.lock(timeout=LOCK_TIMEOUT_SECONDS),
        ):
            found = _status(backend, migrations_for(url))
    if found.pending and (upgrade_pending or (url.provider == "sqlite" and found.empty)):
        if url.provider == "sqlite" and found.empty and not upgrade_pending:
            # A mistyped path would otherwise serve an empty fleet without a word.
            log.warning("new empty database created at %s", url.describe())
        upgrade(url, timeout_seconds=timeout_seconds)
        found = status(url, timeout_seconds=timeout_seconds)
    if found.pending:
        raise SchemaBehind(url.describe(), list(found.pending), UPGRADE_COMMAND)
    if found.unknown:
        log.warning(
            "%s has %d migration(s) newer than this release; running anyway",
            url.describe(),
            found.unknown,
        )
    return found


def _status(backend: DatabaseBackend, migrations: MigrationList) -> SchemaStatus:
    applied_hashes = set(backend.get_applied_migration_hashes())
    ours = {migration.hash for migration in migrations}
    tables = [
        name for name in backend.list_tables() if not name.startswith(("_yoyo", "yoyo", "sqlite_"))
    ]
    return SchemaStatus(
        applied=tuple(m.id for m in migrations if m.hash in applied_hashes),
        pending=tuple(m.id for m in migrations if m.hash not in applied_hashes),
        unknown=len(applied_hashes - ours),
        empty=not tables and not applied_hashes,
    )


def _backend_uri(url: DatabaseUrl, timeout_seconds: float) -> tuple[type[Any], DatabaseURI]:
    """yoyo's backend class and connection arguments, with the store's connect timeout."""
    params = url.params
    if url.provider == "sqlite":
        args = {"timeout": timeout_seconds}
        return _SQLiteBackend, DatabaseURI("sqlite", *[None] * 4, params["filename"], args)
    backend = PostgresqlBackend if url.provider == "postgres" else _MySQLBackend
    args = {"connect_timeout": max(2, math.ceil(timeout_seconds))}
    return backend, DatabaseURI(
        url.provider,
        params.get("user"),
        params.get("password") or None,
        params.get("host"),
        params.get("port"),
        params["database"],
        args,
    )


def _first(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
