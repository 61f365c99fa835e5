"""Database faults a test can cause and undo (sessions killed, a held SQLite lock, a full
disk), and the ledger that proves no 200 was answered for a heartbeat that is not stored."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from exporter.config import parse_database_url
from exporter.store import open_store

from . import databases
from .service import RunningService


def _backend_of(url: str) -> str:
    return "postgresql" if parse_database_url(url).provider == "postgres" else "mysql"


def session_ids(url: str) -> list[int]:
    """The server-side sessions connected to `url`'s database (PostgreSQL backend pids,
    MariaDB connection ids), the asking one left out."""
    backend = _backend_of(url)
    name = parse_database_url(url).params["database"]
    with contextlib.closing(databases._connect(backend)) as connection:
        cursor = connection.cursor()
        if backend == "postgresql":
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
        else:
            cursor.execute(
                "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> "
                "CONNECTION_ID()",
                (name,),
            )
        return [int(row[0]) for row in cursor.fetchall()]


def terminate_sessions(url: str) -> int:
    """pg_terminate_backend / KILL every session of the service: a restarted server, a
    failover, an operator's clean-up. Returns how many were ended."""
    backend = _backend_of(url)
    ids = session_ids(url)
    with contextlib.closing(databases._connect(backend)) as connection:
        cursor = connection.cursor()
        for session in ids:
            if backend == "postgresql":
                cursor.execute("SELECT pg_terminate_backend(%s)", (session,))
            else:
                with contextlib.suppress(Exception):  # gone meanwhile
                    cursor.execute(f"KILL {session}")
    return len(ids)


@contextlib.contextmanager
def sqlite_lock(path: Path) -> Iterator[None]:
    """Another process's write transaction held on the database (a backup, a slow admin)."""
    with contextlib.closing(sqlite3.connect(str(path), isolation_level=None)) as locker:
        locker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            locker.execute("ROLLBACK")


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "4m") -> Iterator[Path | None]:
    """A tmpfs of `size` mounted at `path`; None where mounting is refused (not root, no
    CAP_SYS_ADMIN in a container): the caller skips, saying so."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def checkpoint_sqlite(path: Path) -> None:
    """Move the WAL into the database file and truncate it to 0 bytes: the next commit
    must grow the WAL again (a WAL reuses its space, so a full disk alone may not show)."""
    with contextlib.closing(sqlite3.connect(str(path), timeout=10)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def fill(directory: Path) -> Path:
    """Write a file until the filesystem is full; removing it gives the space back."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for block in (b"\0" * 65536, b"\0"):  # big blocks, then the last bytes one by one
            with contextlib.suppress(OSError):
                while os.write(descriptor, block):
                    pass
    finally:
        os.close(descriptor)
    return filler


@dataclass
class Ledger:
    """Heartbeats from kiosks used once each: a 200 says "stored", the database must agree.

    One kiosk per attempt, so a later heartbeat can never hide a lost earlier one."""

    service: RunningService
    kiosks: list[tuple[int, str]]
    answers: dict[int, tuple[int, str | None]] = field(default_factory=dict)
    _used: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, service: RunningService, count: int) -> Ledger:
        store = open_store(service.database)
        try:
            created = store.import_kiosks([(f"ledger-{n:04d}", "Site L") for n in range(count)])
        finally:
            store.close()
        return cls(service, [(kiosk.id, key) for kiosk, key in created])

    def take(self) -> tuple[int, str]:
        """The next unused kiosk (thread-safe)."""
        with self._lock:
            self._used += 1
            return self.kiosks[self._used - 1]

    def send(self, timeout: float = 30) -> int:
        """One heartbeat from the next unused kiosk; returns the status (0: no answer)."""
        kiosk_id, key = self.take()
        try:
            reply = self.service.heartbeat(key, timeout=timeout)
        except OSError:
            self.answers[kiosk_id] = (0, None)
            return 0
        received = reply.json.get("received_at") if reply.status == 200 else None
        self.answers[kiosk_id] = (reply.status, received)
        return reply.status

    def unstored(self) -> list[int]:
        """Kiosks answered 200 whose heartbeat the database does not hold."""
        store = open_store(self.service.database)
        try:
            stored = {k.id: k.last_heartbeat_at for k in store.list_kiosks()}
        finally:
            store.close()
        return [
            kiosk_id
            for kiosk_id, (status, _) in self.answers.items()
            if status == 200 and stored.get(kiosk_id) is None
        ]
