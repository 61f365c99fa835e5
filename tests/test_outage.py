"""A database server that goes away: 503 with Retry-After within the timeout, readyz 503,
and the service recovers by itself when the server is back (no restart)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from exporter.errors import StorageUnavailable
from exporter.store import open_store
from tests.support import databases
from tests.support.http import request
from tests.support.service import RunningService
from tests.support.tcpproxy import TcpProxy

TIMEOUT_SECONDS = 1
# Pony retries a lost connection once, so a request may wait for two connect timeouts
# (libpq's shortest is 2 s) before its 503; the writer gives up after 10 s regardless.
ANSWER_WITHIN_SECONDS = 12
SETTINGS = {"min_heartbeat_interval_seconds": 0, "database_timeout_seconds": TIMEOUT_SECONDS}


@pytest.fixture
def outage(server_database_url: str, tmp_path: Path) -> Iterator[tuple[RunningService, TcpProxy]]:
    """The service reaching its database through a proxy the test controls."""
    parts = urlsplit(server_database_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 0)).start()
    through_proxy = server_database_url.replace(f":{parts.port}/", f":{proxy.port}/")
    service = RunningService(tmp_path, SETTINGS, database=through_proxy)
    try:
        yield service.start(), proxy
    finally:
        service.stop()
        proxy.close()


def timed(call):
    started = time.monotonic()
    reply = call()
    return reply, time.monotonic() - started


def ready(service: RunningService):
    return request("GET", service.url + "/readyz", timeout=30)


@pytest.mark.parametrize("failure", ["cut", "black_hole"])
def test_a_lost_database_is_503_with_retry_after_and_the_service_recovers(outage, failure):
    service, proxy = outage
    _, key = service.add_kiosk("Kiosk-Entrance", "Building A")
    assert service.heartbeat(key).status == 200
    getattr(proxy, failure)()

    refused, seconds = timed(lambda: service.heartbeat(key, timeout=30))
    assert refused.status == 503, refused.body
    assert int(refused.headers["retry-after"]) > 0
    assert "Traceback" not in refused.body.decode()
    assert seconds < ANSWER_WITHIN_SECONDS
    not_ready, seconds = timed(lambda: ready(service))
    assert not_ready.status == 503 and seconds < ANSWER_WITHIN_SECONDS

    proxy.restore()
    assert service.wait_until(lambda: ready(service).status == 200, timeout=30)
    assert service.wait_until(lambda: service.heartbeat(key).status == 200, timeout=30)
    status = request("GET", service.url + "/kiosk/status", headers={"X-Kiosk-API-Key": key})
    assert status.json["status"] == "online"


def test_a_row_locked_elsewhere_costs_a_bounded_wait_then_storage_unavailable(
    server_database_url,
):
    """The statement (PostgreSQL) or lock-wait (MariaDB) timeout comes from
    database_timeout_seconds, on every connection: also on one back from Pony's pool."""
    store = open_store(server_database_url, timeout_seconds=TIMEOUT_SECONDS)
    kiosk, _ = store.add_kiosk("Kiosk-Entrance", "Building A")
    with databases.locked_row(server_database_url, "kiosks", kiosk.id):
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(StorageUnavailable):
                store.set_active(kiosk.id, False)
            assert time.monotonic() - started < 4 * TIMEOUT_SECONDS + 1
    store.set_active(kiosk.id, False)
    assert store.get_kiosk(kiosk.id).is_active is False
    store.close()
