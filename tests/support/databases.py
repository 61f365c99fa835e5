"""Throwaway databases on the local PostgreSQL and MariaDB servers, one per test.

Each test gets `kx_<random>`, created through the server's `test` database and dropped
afterwards, so tests never see each other's rows and may run beside other suites. The
servers default to DEVELOPERS.md's (127.0.0.1, trust auth); KIOSK_TEST_POSTGRESQL_URL and
KIOSK_TEST_MYSQL_URL point elsewhere (a URL of the database to connect through).
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exporter.config import parse_database_url

SERVER_BACKENDS = ("postgresql", "mysql")
ADMIN_URLS = {
    "postgresql": os.environ.get(
        "KIOSK_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test"
    ),
    "mysql": os.environ.get("KIOSK_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}
CONNECT_TIMEOUT_SECONDS = 3


def _connect(backend: str, database: str | None = None, *, autocommit: bool = True) -> Any:
    """A plain driver connection; autocommit because CREATE/DROP DATABASE refuse to run
    in a transaction."""
    params = dict(parse_database_url(ADMIN_URLS[backend]).params)
    params["database"] = database or params["database"]
    if backend == "postgresql":
        import psycopg2

        connection = psycopg2.connect(**params, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        connection.autocommit = autocommit
        return connection
    import pymysql

    return pymysql.connect(**params, connect_timeout=CONNECT_TIMEOUT_SECONDS, autocommit=autocommit)


@functools.cache
def unavailable_reason(backend: str) -> str | None:
    """Why the server cannot be used (None when it can); asked once per test session."""
    try:
        _connect(backend).close()
    except ImportError as exc:
        return f"{backend}: driver missing ({exc}); pip install -e '.[test]'"
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"{backend} server at {_describe(backend)} unreachable: {first}"
    return None


def _describe(backend: str) -> str:
    return parse_database_url(ADMIN_URLS[backend]).describe()


def url_of(backend: str, name: str) -> str:
    """The admin URL with its database replaced by `name`."""
    base, _, _ = ADMIN_URLS[backend].rpartition("/")
    return f"{base}/{name}"


def create(backend: str) -> str:
    """A new empty database with the server's defaults (so migrations must set what matters,
    e.g. MariaDB's case-insensitive default collation); returns its URL."""
    name = f"kx_{secrets.token_hex(6)}"
    with contextlib.closing(_connect(backend)) as connection:
        connection.cursor().execute(f"CREATE DATABASE {name}")
    return url_of(backend, name)


def drop(backend: str, url: str) -> None:
    name = url.rpartition("/")[2]
    assert name.startswith("kx_"), name
    # WITH (FORCE): a service process a failed test left behind must not keep it alive.
    force = " WITH (FORCE)" if backend == "postgresql" else ""
    with contextlib.closing(_connect(backend)) as connection:
        connection.cursor().execute(f"DROP DATABASE IF EXISTS {name}{force}")


@contextlib.contextmanager
def fresh(backend: str) -> Iterator[str]:
    """An empty database for the duration of the block."""
    url = create(backend)
    try:
        yield url
    finally:
        drop(backend, url)


def stored_bytes(url: str) -> bytes:
    """Everything the database holds, as bytes to search: a key must never be in it.

    SQLite: the file and its WAL, as an attacker with a copy would read them; a server:
    every value of every row of the service's tables.
    """
    parsed = parse_database_url(url)
    if parsed.provider == "sqlite":
        filename = parsed.params["filename"]
        files = (Path(filename), Path(filename + "-wal"))
        return b"".join(path.read_bytes() for path in files if path.exists())
    backend = "postgresql" if parsed.provider == "postgres" else "mysql"
    name = parsed.params["database"]
    with contextlib.closing(_connect(backend, name)) as connection:
        cursor = connection.cursor()
        rows = []
        for table in ("kiosks", "backoffice_tokens"):
            cursor.execute(f"SELECT * FROM {table}")
            rows.extend(cursor.fetchall())
    return repr(rows).encode()


# A column as the database describes it: what must match between a migrated schema and
# the one Pony's create_tables would make from the entities.
Column = tuple[str, ...]


def describe_tables(url: str, tables: tuple[str, ...] = ("kiosks", "backoffice_tokens")) -> dict:
    """{table: {column: (type, nullable, key)}} read from the database's own catalogue."""
    parsed = parse_database_url(url)
    if parsed.provider == "sqlite":
        return _describe_sqlite(parsed.params["filename"], tables)
    backend = "postgresql" if parsed.provider == "postgres" else "mysql"
    with contextlib.closing(_connect(backend, parsed.params["database"])) as connection:
        cursor = connection.cursor()
        describe = _describe_postgresql if backend == "postgresql" else _describe_mysql
        return {table: describe(cursor, table) for table in tables}


def _describe_sqlite(filename: str, tables: tuple[str, ...]) -> dict:
    with contextlib.closing(sqlite3.connect(filename)) as connection:
        described = {}
        for table in tables:
            unique = {
                info[2]
                for index in connection.execute(f"PRAGMA index_list({table})")
                if index[2]
                for info in connection.execute(f"PRAGMA index_info({index[1]})")
            }
            described[table] = {
                name: (kind, "null" if not notnull else "not null", _key(pk, name in unique))
                for _, name, kind, notnull, _, pk in connection.execute(
                    f"PRAGMA table_info({table})"
                )
            }
    return described


def _describe_postgresql(cursor: Any, table: str) -> dict[str, Column]:
    cursor.execute(
        "SELECT c.column_name, c.data_type, c.character_maximum_length, c.datetime_precision,"
        " c.is_nullable, c.column_default, ("
        "  SELECT string_agg(t.constraint_type, ',') FROM information_schema.key_column_usage k"
        "  JOIN information_schema.table_constraints t USING (constraint_name, table_name)"
        "  WHERE k.table_name = c.table_name AND k.column_name = c.column_name)"
        " FROM information_schema.columns c WHERE c.table_name = %s",
        (table,),
    )
    return {
        name: (
            f"{kind}({length or precision or ''})",
            "null" if nullable == "YES" else "not null",
            f"{keys or ''} {'serial' if (default or '').startswith('nextval') else ''}".strip(),
        )
        for name, kind, length, precision, nullable, default, keys in cursor.fetchall()
    }


def _describe_mysql(cursor: Any, table: str) -> dict[str, Column]:
    cursor.execute(
        "SELECT column_name, column_type, is_nullable, column_key, extra"
        " FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = %s",
        (table,),
    )
    return {
        name: (kind, "null" if nullable == "YES" else "not null", f"{key} {extra}".strip())
        for name, kind, nullable, key, extra in cursor.fetchall()
    }


def _key(primary: int, unique: bool) -> str:
    return "primary" if primary else "unique" if unique else ""


def collations(url: str) -> set[str]:
    """MySQL/MariaDB: the collations of the service's text columns."""
    name = parse_database_url(url).params["database"]
    with contextlib.closing(_connect("mysql", name)) as connection:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT DISTINCT collation_name FROM information_schema.columns"
            " WHERE table_schema = DATABASE() AND collation_name IS NOT NULL"
            " AND table_name IN ('kiosks', 'backoffice_tokens')"
        )
        return {row[0] for row in cursor.fetchall()}


@contextlib.contextmanager
def locked_row(url: str, table: str, row_id: int, *, at_most: float = 15.0) -> Iterator[None]:
    """Hold a row lock from another session, as a slow transaction elsewhere would."""
    lock = f"SELECT id FROM {table} WHERE id = %s FOR UPDATE"
    with open_transaction(url, lock, (row_id,), at_most=at_most):
        yield


@contextlib.contextmanager
def open_transaction(
    url: str, statement: str, params: tuple[Any, ...], *, at_most: float = 15.0
) -> Iterator[None]:
    """Run `statement` in a transaction of another session, left open for the block.

    It is rolled back after `at_most` seconds whatever happens, so a test whose timeout
    does not work fails on its clock instead of hanging.
    """
    parsed = parse_database_url(url)
    backend = "postgresql" if parsed.provider == "postgres" else "mysql"
    database = parsed.params["database"]
    with contextlib.closing(_connect(backend, database, autocommit=False)) as connection:
        connection.cursor().execute(statement, params)
        release = threading.Timer(at_most, connection.rollback)
        release.start()
        try:
            yield
        finally:
            release.cancel()
            connection.rollback()
