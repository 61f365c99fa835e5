"""Crash safety: kill -9 in the middle of concurrent heartbeats, restart, and every
heartbeat that was answered 200 is in the database, on SQLite, PostgreSQL and MariaDB.

The durability settings that make this true (SQLite WAL + synchronous=FULL, PostgreSQL's
and InnoDB's defaults) are in docs/production.md; a process crash must lose nothing that
was acknowledged.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict
from datetime import datetime

from pony.orm import db_session

from exporter.clock import parse_utc
from exporter.store import open_store
from tests.support.service import RunningService

KIOSKS = 240
CLIENTS = 16
CYCLES = 2
ACKNOWLEDGED_BEFORE_KILL = 150


class Load:
    """CLIENTS threads, each with its own kiosks, sending heartbeats until the server dies;
    every 200 is recorded with the time the server gave it."""

    def __init__(self, service: RunningService, kiosks: list[tuple[int, str]]) -> None:
        self.service = service
        self.kiosks = kiosks
        self.acknowledged: dict[int, datetime] = {}
        self.count = 0
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._client, args=(kiosks[n::CLIENTS],), daemon=True)
            for n in range(CLIENTS)
        ]

    def start(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def _client(self, mine: list[tuple[int, str]]) -> None:
        turn = 0
        while True:
            kiosk_id, key = mine[turn % len(mine)]
            turn += 1
            try:
                reply = self.service.heartbeat(key, {"app_version": f"1.{turn}"}, timeout=10)
            except OSError:
                return  # the server is gone
            if reply.status == 200:
                with self.lock:
                    self.acknowledged[kiosk_id] = parse_utc(reply.json["received_at"])
                    self.count += 1

    def join(self) -> None:
        for thread in self.threads:
            thread.join(30)


def crash_cycles(service: RunningService) -> tuple[int, dict[int, list[datetime]]]:
    store = open_store(service.database)
    try:
        created = store.import_kiosks([(f"crash-{n:03d}", "Site C") for n in range(KIOSKS)])
    finally:
        store.close()
    kiosks = [(kiosk.id, key) for kiosk, key in created]
    total = 0
    missing: dict[int, list[datetime]] = defaultdict(list)
    for _ in range(CYCLES):
        service.start()
        load = Load(service, kiosks).start()
        deadline = time.monotonic() + 30
        while load.count < ACKNOWLEDGED_BEFORE_KILL and time.monotonic() < deadline:
            time.sleep(0.02)
        assert service.process is not None
        service.process.send_signal(signal.SIGKILL)  # mid-load: requests in every state
        service.process.wait(10)
        load.join()
        total += load.count
        store = open_store(service.database)
        try:
            stored = {k.id: k.last_heartbeat_at for k in store.list_kiosks()}
        finally:
            store.close()
        for kiosk_id, at in load.acknowledged.items():
            if stored.get(kiosk_id) is None or stored[kiosk_id] < at:
                missing[kiosk_id].append(at)
    return total, missing


def test_kill_9_under_load_loses_no_acknowledged_heartbeat(database_url, tmp_path):
    service = RunningService(tmp_path, {"min_heartbeat_interval_seconds": 0}, database=database_url)
    try:
        total, missing = crash_cycles(service)
    finally:
        service.stop(signal.SIGKILL)
    assert total >= CYCLES * ACKNOWLEDGED_BEFORE_KILL
    assert dict(missing) == {}


def test_sqlite_commits_are_durable_wal_with_synchronous_full(tmp_path):
    """docs/production.md promises it: each commit is synced before its 200."""
    store = open_store(f"sqlite:///{tmp_path / 'kiosks.db'}")
    try:
        with db_session:  # the connection Pony opens for the store, as the service uses it
            connection = store._db.get_connection()
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert connection.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    finally:
        store.close()
