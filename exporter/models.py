"""Pony entities and the one place a Database is bound to a URL."""

from __future__ import annotations

import importlib
import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Any

from pony.orm import Database, Optional, PrimaryKey, Required, Set, composite_index, composite_key

from .config import DatabaseUrl
from .expected import HOURS_LIMIT, REASON_LIMIT, SCHEDULE_NAME_LIMIT
from .fleetfile import LIMITS as KIOSK_TEXT_LIMITS
from .payload import FIELD_LIMITS
from .vitals import NETWORKS

VITAL_TEXT_LIMIT = max(len(name) for name in NETWORKS) * 2

_DRIVERS = {"postgres": ("psycopg2", "postgresql"), "mysql": ("pymysql", "mysql")}


@dataclass(frozen=True)
class Schema:
    """A bound database with its entity classes (new per app, CLI call and test)."""

    db: Database
    Kiosk: Any
    Token: Any
    TokenLocation: Any
    IdempotencyKey: Any


def define_entities(db: Database) -> tuple[Any, Any, Any, Any]:
    """Table and column names match the original design (`SELECT kiosk_name … FROM kiosks`)."""

    class Kiosk(db.Entity):  # type: ignore[misc]
        _table_ = "kiosks"
        id = PrimaryKey(int, auto=True)
        name = Required(str, KIOSK_TEXT_LIMITS["name"], unique=True, column="kiosk_name")
        location = Required(str, KIOSK_TEXT_LIMITS["location"])
        is_active = Required(bool, default=True)
        created_at = Required(datetime, precision=6)
        last_heartbeat_at = Optional(datetime, precision=6, nullable=True)
        app_version = Optional(str, FIELD_LIMITS["app_version"], nullable=True)
        device_info = Optional(str, FIELD_LIMITS["device_info"], nullable=True)
        api_key_hash = Required(str, 64, unique=True)
        key_prefix = Required(str, 16)
        # The pending enrollment code (one per kiosk, as a hash) and when it stops working.
        enrollment_code_hash = Optional(str, 64, unique=True, nullable=True)
        enrollment_expires_at = Optional(datetime, precision=6, nullable=True)
        # The latest vitals snapshot (migration 0005); the heartbeat batch UPDATE writes it.
        vitals_reported_at = Optional(datetime, precision=6, nullable=True)
        battery_percent = Optional(float, nullable=True)
        battery_charging = Optional(bool, nullable=True)
        storage_free_bytes = Optional(int, size=64, nullable=True)
        storage_total_bytes = Optional(int, size=64, nullable=True)
        memory_free_bytes = Optional(int, size=64, nullable=True)
        memory_total_bytes = Optional(int, size=64, nullable=True)
        uptime_seconds = Optional(float, nullable=True)
        network = Optional(str, VITAL_TEXT_LIMIT, nullable=True)
        wifi_signal_dbm = Optional(int, nullable=True)
        app_in_foreground = Optional(bool, nullable=True)
        screen_on = Optional(bool, nullable=True)
        # Kept apart from the snapshot: Unix seconds, compared arithmetically in SQL.
        boot_time = Optional(float, nullable=True)
        # Created by `simulate` (migration 0002): `kiosk remove --simulated` removes these.
        is_simulated = Required(bool, default=False)
        # None: the built-in `always` schedule (expected all the time).
        schedule_id = Optional(int, nullable=True)

    class Token(db.Entity):  # type: ignore[misc]
        _table_ = "backoffice_tokens"
        id = PrimaryKey(int, auto=True)
        name = Required(str, 128)
        token_hash = Required(str, 64, unique=True)
        key_prefix = Required(str, 16)
        created_at = Required(datetime, precision=6)
        # Two requests may touch it at once: the later write wins, no optimistic check (which
        # turned the first concurrent use of a token into a 503).
        last_used_at = Optional(datetime, precision=6, nullable=True, optimistic=False)
        revoked = Required(bool, default=False)
        # "read" or "admin" (exporter/access.py); no location rows = every location.
        scope = Required(str, 16, default="read")
        locations = Set("TokenLocation")

    class TokenLocation(db.Entity):  # type: ignore[misc]
        _table_ = "backoffice_token_locations"
        id = PrimaryKey(int, auto=True)
        token = Required(Token, column="token_id")
        location = Required(str, KIOSK_TEXT_LIMITS["location"])

    class IdempotencyKey(db.Entity):  # type: ignore[misc]
        """A management request already carried out: its retry returns the same kiosk."""

        _table_ = "admin_idempotency_keys"
        id = PrimaryKey(int, auto=True)
        token_id = Required(int)
        idempotency_key = Required(str, 128)
        request_hash = Required(str, 64)
        kiosk_id = Required(int)
        created_at = Required(datetime, precision=6)
        composite_key(token_id, idempotency_key)

    define_expectation_entities(db)
    define_history_entities(db)
    return Kiosk, Token, TokenLocation, IdempotencyKey


def define_expectation_entities(db: Database) -> None:
    """Schedules, maintenance windows, the kiosk event log and the service's liveness
    (migration 0003). Plain id columns, no Pony relations: the store reads and writes these
    with short SQL, and an event outlives nothing it refers to."""

    class Schedule(db.Entity):  # type: ignore[misc]
        _table_ = "schedules"
        id = PrimaryKey(int, auto=True)
        name = Required(str, SCHEDULE_NAME_LIMIT, unique=True)
        created_at = Required(datetime, precision=6)

    class ScheduleVersion(db.Entity):  # type: ignore[misc]
        _table_ = "schedule_versions"
        id = PrimaryKey(int, auto=True)
        schedule_id = Required(int)
        valid_from = Required(datetime, precision=6)
        timezone = Required(str, 64)
        hours = Optional(str, HOURS_LIMIT, nullable=True)
        composite_index(schedule_id, valid_from)

    class MaintenanceWindow(db.Entity):  # type: ignore[misc]
        _table_ = "maintenance_windows"
        id = PrimaryKey(int, auto=True)
        kiosk_id = Required(int)
        starts_at = Required(datetime, precision=6)
        ends_at = Required(datetime, precision=6, index=True)
        reason = Optional(str, REASON_LIMIT, nullable=True)
        composite_index(kiosk_id, ends_at)

    class KioskEvent(db.Entity):  # type: ignore[misc]
        _table_ = "kiosk_event"
        id = PrimaryKey(int, auto=True)
        kiosk_id = Required(int)
        at = Required(datetime, precision=6)
        kind = Required(str, 32)
        actor = Optional(str, 128, nullable=True)
        detail = Optional(str, 1024, nullable=True)
        composite_index(kiosk_id, at)
        composite_index(kind, kiosk_id, at)

    class ServiceLiveness(db.Entity):  # type: ignore[misc]
        _table_ = "service_liveness"
        id = PrimaryKey(int, auto=True)
        replica = Required(str, 128)
        started_at = Required(datetime, precision=6)
        last_seen_at = Required(datetime, precision=6, index=True)


def define_history_entities(db: Database) -> tuple[Any, Any, Any]:
    """Outage history (migration 0004). `kiosk_id` is a plain column, not a Pony relation:
    the heartbeat path writes these rows with raw SQL, and removing a kiosk deletes them
    explicitly (store.remove_kiosk)."""

    class Outage(db.Entity):  # type: ignore[misc]
        _table_ = "outages"
        id = PrimaryKey(int, auto=True)
        kiosk_id = Required(int)
        # The last heartbeat before the gap; with kiosk_id, what makes two replicas
        # opening the same outage write one row.
        started_at = Required(datetime, precision=6)
        offline_at = Required(datetime, precision=6)
        ended_at = Optional(datetime, precision=6, nullable=True, index=True)
        # Its judged downtime over its whole life once settled (NULL before, -1 when it
        # was no outage at all): fleet documents sum it rather than judge it again.
        downtime_us = Optional(int, size=64, nullable=True)
        composite_key(kiosk_id, started_at)
        composite_index(kiosk_id, offline_at)

    class KioskHistory(db.Entity):  # type: ignore[misc]
        """Per kiosk: when observation began (first heartbeat, or the upgrade that brought
        history), and the counters' totals, exact up to `through_at` (microseconds)."""

        _table_ = "kiosk_history"
        kiosk_id = PrimaryKey(int, auto=False)
        observed_since = Required(datetime, precision=6)
        through_at = Optional(datetime, precision=6, nullable=True)
        downtime_us = Required(int, size=64, default=0)
        observed_us = Required(int, size=64, default=0)
        outages = Required(int, size=64, default=0)

    class HistoryState(db.Entity):  # type: ignore[misc]
        """One row: when history began (the upgrade) and up to when it was purged."""

        _table_ = "history_state"
        id = PrimaryKey(int, auto=False)
        started_at = Required(datetime, precision=6)
        purged_before = Optional(datetime, precision=6, nullable=True)
        judged_through = Optional(datetime, precision=6, nullable=True)

    return Outage, KioskHistory, HistoryState


def open_database(url: DatabaseUrl, *, timeout_seconds: float) -> Schema:
    """Bind a fresh Database to a migrated schema; SQLite gets WAL so readers never wait
    for the heartbeat writer. The tables come from exporter/migrations (see schema.py),
    never from Pony's create_tables: Pony only checks that they are there."""
    db = Database()
    kiosk, token, token_location, idempotency_key = define_entities(db)
    if url.provider == "sqlite":
        filename = url.params["filename"]
        _enable_wal(filename, timeout_seconds)
        db.on_connect(provider="sqlite")(_durable_commits)
        db.bind(provider="sqlite", filename=filename, create_db=True, timeout=timeout_seconds)
    else:
        require_driver(url)
        db.bind(provider=url.provider, **server_params(url, timeout_seconds))
    db.generate_mapping(create_tables=False, check_tables=True)
    return Schema(
        db=db,
        Kiosk=kiosk,
        Token=token,
        TokenLocation=token_location,
        IdempotencyKey=idempotency_key,
    )


def require_driver(url: DatabaseUrl) -> ModuleType | None:
    """The DB-API module for a server URL, or a message naming the extra to install."""
    if url.provider not in _DRIVERS:
        return None
    module, extra = _DRIVERS[url.provider]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise RuntimeError(
            f"the {url.provider} driver is not installed: "
            f"pip install 'kiosk-heartbeat-exporter[{extra}]'"
        ) from None


def _durable_commits(db: Database, connection: sqlite3.Connection) -> None:
    """Each commit reaches the disk before a heartbeat is answered 200: WAL with
    synchronous=FULL syncs the WAL at every commit (NORMAL would lose the last commits on
    power loss). Most builds default to FULL; said here so no build decides it."""
    connection.execute("PRAGMA synchronous = FULL")


def _enable_wal(filename: str, timeout_seconds: float) -> None:
    # journal_mode is stored in the file, but cannot change inside Pony's transactions.
    connection = sqlite3.connect(filename, timeout=timeout_seconds)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def server_params(url: DatabaseUrl, timeout_seconds: float) -> dict[str, Any]:
    """Driver arguments bounding every wait by `database_timeout_seconds`.

    A server that is down, unreachable or holding a lock then costs a request a few
    seconds and a 503, never a thread stuck for the kernel's 15-minute TCP timeout.
    """
    params = dict(url.params)
    seconds = max(1, math.ceil(timeout_seconds))
    milliseconds = max(1, round(timeout_seconds * 1000))
    if url.provider == "postgres":
        # statement_timeout also bounds lock waits; as a start-up option it survives the
        # DISCARD ALL Pony sends when a connection goes back to its pool.
        params["options"] = f"-c statement_timeout={milliseconds}"
        # libpq counts connect_timeout in whole seconds, and treats 1 as 2.
        params["connect_timeout"] = max(2, seconds)
        # Unacknowledged data (a server gone mid-query) fails after this, not 15 minutes.
        params["tcp_user_timeout"] = milliseconds + 1000
        return params
    # MySQL/MariaDB: utf8mb4, not Pony's default utf8 (3 bytes, no emoji in kiosk names).
    params["charset"] = "utf8mb4"
    params["connect_timeout"] = timeout_seconds
    params["init_command"] = f"SET SESSION innodb_lock_wait_timeout = {seconds}"
    # Client-side socket timeouts: the server's own lock timeout answers first.
    params["read_timeout"] = params["write_timeout"] = timeout_seconds + 2
    return params
