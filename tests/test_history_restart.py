"""A `kill -9` and a stop of the real service, each followed by a restart, charge the kiosks
nothing: the time no replica listened is unknown, not downtime, and the kiosk's gap across it
is no outage. A real outage while the service runs is still recorded (the control). On
SQLite, PostgreSQL and MariaDB; the service's threshold is shortened to 10 s, above the 5-s
liveness period as in production (300 s), so the test runs in about a minute. (At 6 s, on a
machine loaded with other work, pings and ticks delayed by the load made real outages by
the rules, and the test failed now and then.)
"""

from __future__ import annotations

import signal
import time

from exporter.outages import EARLIEST, LATEST
from exporter.store import open_store
from tests.support.http import request
from tests.support.service import RunningService

THRESHOLD = 10
DOWN_SECONDS = 13  # the kiosk's gap across it (with the restart) passes the threshold
SETTINGS = {
    "min_heartbeat_interval_seconds": 0,
    "heartbeat_interval_seconds": 2,
    "online_threshold_seconds": THRESHOLD,
}


def keep_pinging(service: RunningService, key: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        assert service.heartbeat(key).status == 200
        if time.monotonic() >= deadline:
            return
        time.sleep(1)


def history(service: RunningService, token: str, path: str) -> dict:
    reply = request("GET", f"{service.url}{path}", headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 200, reply.body
    return reply.json


def stored_facts(database_url: str) -> tuple[list, dict]:
    """The liveness intervals and outage rows, to explain a failure."""
    store = open_store(database_url)
    try:
        liveness = store.liveness_intervals()
        return liveness, store.outages_between(EARLIEST, LATEST)
    finally:
        store.close()


def counters(service: RunningService, kiosk_id: int) -> tuple[float, float]:
    """kiosk_offline_seconds_total and kiosk_outages_total."""
    values = {}
    for line in service.metrics().body.decode().splitlines():
        for name in ("kiosk_offline_seconds_total", "kiosk_outages_total"):
            if line.startswith(name + "{") and f'kiosk_id="{kiosk_id}"' in line:
                values[name] = float(line.rsplit(" ", 1)[1])
    return values["kiosk_offline_seconds_total"], values["kiosk_outages_total"]


def test_a_killed_or_stopped_service_charges_no_kiosk_and_a_real_outage_still_counts(
    database_url, tmp_path
):
    service = RunningService(tmp_path, SETTINGS, database=database_url)
    kiosk_id, key = service.add_kiosk("Kiosk-Entrance", "Building A")
    token = service.add_token()
    try:
        for stop in (signal.SIGKILL, signal.SIGTERM):
            service.start()
            keep_pinging(service, key, 2)
            service.stop(stop)
            time.sleep(DOWN_SECONDS)
        service.start()
        keep_pinging(service, key, 2)  # pings at once after the restart: inside its grace
        outages = history(service, token, f"/kiosk/{kiosk_id}/outages")
        assert outages["outages"] == []
        row = history(service, token, f"/kiosk/{kiosk_id}/availability")
        assert row["downtime_seconds"] == 0 and row["availability_ratio"] == 1.0
        # Each absence: DOWN_SECONDS minus the last record's 5-s grace, at least.
        assert row["unknown_seconds"] >= 2 * (DOWN_SECONDS - 5)
        assert row["observed_seconds"] > 0
        assert counters(service, kiosk_id) == (0.0, 0.0)

        # The control: the tablet goes quiet while the service runs.
        time.sleep(THRESHOLD + 3)
        keep_pinging(service, key, 0)
        listed = history(service, token, f"/kiosk/{kiosk_id}/outages")
        assert len(listed["outages"]) == 1, (listed, stored_facts(database_url))
        (outage,) = listed["outages"]
        assert outage["downtime_seconds"] >= 2 and not outage["ongoing"]
        # Once a liveness record passes the outage's end, the counters hold all of it.
        whole = (outage["downtime_seconds"], 1.0)
        assert service.wait_until(
            lambda: (int(counters(service, kiosk_id)[0]), counters(service, kiosk_id)[1]) == whole,
            timeout=12,
        )
    finally:
        service.stop(signal.SIGKILL)
