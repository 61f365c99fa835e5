"""Pony entities and the one place a Database is bound to a URL."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pony.orm import Database, Optional, PrimaryKey, Required

from .config import DatabaseUrl

_DRIVERS = {"postgres": ("psycopg2", "postgresql"), "mysql": ("pymysql", "mysql")}


@dataclass(frozen=True)
class Schema:
    """A bound database with its entity classes (new per app, CLI call and test)."""

    db: Database
    Kiosk: Any
    Token: Any


def define_entities(db: Database) -> tuple[Any, Any]:
    """Table and column names match the original design (`SELECT kiosk_name … FROM kiosks`)."""

    class Kiosk(db.Entity):  # type: ignore[name-defined,misc]
        _table_ = "kiosks"
        id = PrimaryKey(int, auto=True)
        name = Required(str, 128, unique=True, column="kiosk_name")
        location = Required(str, 256)
        is_active = Required(bool, default=True)
        created_at = Required(datetime, precision=6)
        last_heartbeat_at = Optional(datetime, precision=6, nullable=True)
        app_version = Optional(str, 64, nullable=True)
        device_info = Optional(str, 256, nullable=True)
        api_key_hash = Required(str, 64, unique=True)
        key_prefix = Required(str, 16)

    class Token(db.Entity):  # type: ignore[name-defined,misc]
        _table_ = "backoffice_tokens"
        id = PrimaryKey(int, auto=True)
        name = Required(str, 128)
        token_hash = Required(str, 64, unique=True)
        key_prefix = Required(str, 16)
        created_at = Required(datetime, precision=6)
        last_used_at = Optional(datetime, precision=6, nullable=True)
        revoked = Required(bool, default=False)

    return Kiosk, Token


def open_database(url: DatabaseUrl, *, timeout_seconds: float) -> Schema:
    """Bind a fresh Database; SQLite gets WAL so readers never wait for the heartbeat writer."""
    db = Database()
    kiosk, token = define_entities(db)
    if url.provider == "sqlite":
        filename = url.params["filename"]
        _enable_wal(filename, timeout_seconds)
        db.bind(provider="sqlite", filename=filename, create_db=True, timeout=timeout_seconds)
    else:
        module, extra = _DRIVERS[url.provider]
        try:
            __import__(module)
        except ImportError:
            raise RuntimeError(
                f"the {url.provider} driver is not installed: "
                f"pip install 'kiosk-heartbeat-exporter[{extra}]'"
            ) from None
        db.bind(provider=url.provider, **_server_params(url, timeout_seconds))
    db.generate_mapping(create_tables=True)
    return Schema(db=db, Kiosk=kiosk, Token=token)


def _enable_wal(filename: str, timeout_seconds: float) -> None:
    # journal_mode is stored in the file, but cannot change inside Pony's transactions.
    connection = sqlite3.connect(filename, timeout=timeout_seconds)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def _server_params(url: DatabaseUrl, timeout_seconds: float) -> dict[str, Any]:
    params = dict(url.params)
    params["connect_timeout"] = max(1, round(timeout_seconds))
    return params
