"""Database faults under a running service: every one answers 503 with Retry-After, makes
/readyz 503, never answers 200 for a heartbeat it did not store, and recovers without a
restart once the database does."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support import faults
from tests.support.http import request
from tests.support.service import RunningService
from tests.support.tcpproxy import TcpProxy

TIMEOUT_SECONDS = 1
SETTINGS = {"min_heartbeat_interval_seconds": 0, "database_timeout_seconds": TIMEOUT_SECONDS}
# A refusal comes within database_timeout_seconds + 1 s (the writer's wait); the rest is
# this busy machine's slack, not a promise.
ANSWER_WITHIN_SECONDS = TIMEOUT_SECONDS + 1 + 4


def readyz(service: RunningService, timeout: float = 30):
    return request("GET", service.url + "/readyz", timeout=timeout)


def timed(call):
    started = time.monotonic()
    reply = call()
    return reply, time.monotonic() - started


def assert_refused(service: RunningService, ledger: faults.Ledger) -> None:
    """During the fault: heartbeats 503 + Retry-After in bounded time, /readyz 503."""
    kiosk_id, key = ledger.take()
    refused, seconds = timed(lambda: service.heartbeat(key, timeout=30))
    ledger.answers[kiosk_id] = (refused.status, None)
    assert refused.status == 503, refused.body
    assert int(refused.headers["retry-after"]) >= 1
    assert seconds < ANSWER_WITHIN_SECONDS
    not_ready, seconds = timed(lambda: readyz(service))
    assert not_ready.status == 503, not_ready.body
    assert int(not_ready.headers["retry-after"]) >= 1
    assert seconds < ANSWER_WITHIN_SECONDS


def assert_recovers(service: RunningService, ledger: faults.Ledger) -> None:
    """After the fault, without a restart: ready again, heartbeats stored, no lost 200."""
    assert service.wait_until(lambda: readyz(service).status == 200, timeout=30)
    assert service.wait_until(lambda: ledger.send() == 200, timeout=30)
    assert ledger.unstored() == []
    assert service.process is not None and service.process.poll() is None


# -- SQLite ------------------------------------------------------------------------------------


def test_a_full_disk_is_503_until_space_returns(tmp_path: Path):
    with faults.small_filesystem(tmp_path / "disk") as disk:
        if disk is None:
            pytest.skip("mounting a tmpfs is refused here (needs root or CAP_SYS_ADMIN)")
        database = f"sqlite:///{disk / 'kiosks.db'}"
        with RunningService(tmp_path, SETTINGS, database=database) as service:
            ledger = faults.Ledger.create(service, 60)
            assert ledger.send() == 200
            # An empty WAL: the next commit must grow it, which the full disk refuses.
            faults.checkpoint_sqlite(disk / "kiosks.db")
            filler = faults.fill(disk)
            statuses = [ledger.send() for _ in range(5)]
            assert 200 not in statuses[1:], statuses  # one may fit in the last free page
            assert_refused(service, ledger)
            filler.unlink()
            assert_recovers(service, ledger)


@pytest.mark.parametrize("removal", ["moved away, then back", "deleted"])
def test_a_removed_database_folder_is_503_with_one_log_line(tmp_path: Path, removal: str):
    folder, away = tmp_path / "data", tmp_path / "moved-away"
    folder.mkdir()
    with RunningService(tmp_path, SETTINGS, database=f"sqlite:///{folder / 'kiosks.db'}") as svc:
        ledger = faults.Ledger.create(svc, 30)
        assert ledger.send() == 200
        if removal == "deleted":
            shutil.rmtree(folder)
        else:
            folder.rename(away)  # for the serving process, the same as `rm -r`
        for _ in range(3):
            assert_refused(svc, ledger)
        assert not folder.exists(), "the service must not recreate it"
        if removal != "deleted":
            away.rename(folder)  # the same file back at its path: the service resumes
            assert_recovers(svc, ledger)
    lines = [line for line in svc.log_lines if "removed or replaced while serving" in line]
    assert len(lines) == 1, svc.log_lines
    assert str(folder / "kiosks.db") in lines[0]


def test_a_replaced_database_file_is_refused(tmp_path: Path):
    with RunningService(tmp_path, SETTINGS) as service:
        ledger = faults.Ledger.create(service, 10)
        assert ledger.send() == 200
        path = Path(service.database.removeprefix("sqlite:///"))
        shutil.copy(path, tmp_path / "copy.db")
        (tmp_path / "copy.db").replace(path)  # a restore from backup under a running service
        assert_refused(service, ledger)


def test_a_held_sqlite_lock_is_503_and_the_service_recovers(tmp_path: Path):
    with RunningService(tmp_path, SETTINGS) as service:
        ledger = faults.Ledger.create(service, 10)
        assert ledger.send() == 200
        with faults.sqlite_lock(Path(service.database.removeprefix("sqlite:///"))):
            assert_refused(service, ledger)
        assert_recovers(service, ledger)


# -- PostgreSQL and MariaDB ----------------------------------------------------------------------


def test_terminated_backends_cost_at_most_a_503_and_the_service_recovers(
    server_database_url, tmp_path
):
    with RunningService(tmp_path, SETTINGS, database=server_database_url) as service:
        ledger = faults.Ledger.create(service, 40)
        for _ in range(3):
            assert ledger.send() == 200
            readyz(service)
            assert faults.terminate_sessions(server_database_url) >= 1
            status = ledger.send()  # the dead connection: 503, or 200 after Pony's reconnect
            assert status in (200, 503)
        assert_recovers(service, ledger)


@pytest.fixture
def frozen_database(server_database_url: str) -> Iterator[tuple[str, TcpProxy]]:
    """The service's database reached through a proxy the test can freeze."""
    parts = urlsplit(server_database_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 0)).start()
    try:
        yield server_database_url.replace(f":{parts.port}/", f":{proxy.port}/"), proxy
    finally:
        proxy.close()


def test_a_hanging_database_keeps_healthz_fast_and_bounds_every_wait(tmp_path, frozen_database):
    """Nothing comes back from the database, and no client timeout fires on a connection
    already open. Heartbeats of known kiosks are refused within database_timeout_seconds +
    1 s (most at once), /readyz within its 1-s probe, and /healthz keeps answering: requests
    waiting on the database never hold every worker thread. (A read, e.g. the key lookup of
    a kiosk the replica has not seen yet, waits as long as the driver does: forever on
    PostgreSQL, whose client has no read timeout; the gate keeps it to its slot.)"""
    url, proxy = frozen_database
    settings = {**SETTINGS, "threads": 4}
    with RunningService(tmp_path, settings, database=url) as service:
        ledger = faults.Ledger.create(service, 60)
        known = [ledger.take() for _ in range(20)]
        for _, key in known:  # each key now known to the replica: no lookup, only the write
            assert service.heartbeat(key).status == 200
        health: list[tuple[int, float]] = []
        stop = threading.Event()

        def watch_health() -> None:
            while not stop.is_set():
                reply, seconds = timed(lambda: request_healthz(service))
                health.append((reply.status, seconds))
                stop.wait(0.1)

        def beat(key: str):
            return timed(lambda: service.heartbeat(key, timeout=30).status)

        watcher = threading.Thread(target=watch_health)
        proxy.freeze()
        try:
            watcher.start()
            with ThreadPoolExecutor(max_workers=20) as pool:
                answers = list(pool.map(beat, [key for _, key in known * 2]))
            not_ready, ready_seconds = timed(lambda: readyz(service))
        finally:
            stop.set()
            watcher.join(30)
            proxy.restore()
        assert not_ready.status == 503 and ready_seconds < 1 + 3
        assert {status for status, _ in answers} == {503}, answers
        assert max(seconds for _, seconds in answers) < ANSWER_WITHIN_SECONDS
        assert health and {status for status, _ in health} == {200}
        assert max(seconds for _, seconds in health) < 1.5, health
        assert_recovers(service, ledger)


def request_healthz(service: RunningService):
    return request("GET", service.url + "/healthz", timeout=30)
