"""`serve --workers 2`: a real pre-forked server, its counters summed, its drain per worker."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.store import open_store
from tests.support.http import request
from tests.support.service import RunningService


def workers_of(service: RunningService) -> list[int]:
    assert service.process is not None
    pid = service.process.pid
    return sorted(int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())


def wait_for(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.05)
    return None


def start(tmp_path: Path, **settings) -> RunningService:
    service = RunningService(
        tmp_path, {"min_heartbeat_interval_seconds": 0, **settings}, serve_args=["--workers", "2"]
    ).start(timeout=40)
    assert wait_for(lambda: len(workers_of(service)) == 2)
    # Each worker logs its own start-up line once it listens.
    assert wait_for(lambda: sum("serving on" in line for line in service.log_lines) == 2)
    return service


def scrape(service: RunningService) -> dict[str, list]:
    page = request("GET", service.url + "/metrics").body.decode()
    return {f.name: f.samples for f in parse_text(page)}


def test_workers_share_one_port_and_one_page_sums_their_counters(tmp_path):
    service = start(tmp_path)
    try:
        _, key = service.add_kiosk("Kiosk-Entrance", "Building A")
        first, second = workers_of(service)
        # Each worker in turn is the only one running: the heartbeats reach both.
        for paused, count in ((second, 3), (first, 2)):
            os.kill(paused, signal.SIGSTOP)
            try:
                for _ in range(count):
                    assert service.heartbeat(key).status == 200
            finally:
                os.kill(paused, signal.SIGCONT)
        for _ in range(4):  # whichever worker answers, the page is the same
            families = scrape(service)
            assert families["kiosk_exporter_heartbeats"][0].value == 5
            assert len(families["kiosk_exporter_build_info"]) == 1
            assert [s.value for s in families["kiosk_online"]] == [1.0]
        assert request("GET", service.url + "/readyz").status == 200
    finally:
        assert service.stop() == 0


def test_sigterm_answers_what_every_worker_had_received(tmp_path):
    """Sent while both workers were stopped, so every request is in a kernel queue: the
    shared listen backlog or a kept-alive connection. All are answered after SIGTERM."""
    service = start(tmp_path)
    store = open_store(service.database)
    created = store.import_kiosks([(f"k{n}", "Site") for n in range(6)])
    store.close()
    body = json.dumps({"app_version": "1.0.0"})
    kept = [http.client.HTTPConnection("127.0.0.1", service.port, timeout=30) for _ in range(2)]
    for connection in kept:
        connection.request("GET", "/healthz")
        assert connection.getresponse().read() == b'{"status": "ok"}'
    connections = kept + [
        http.client.HTTPConnection("127.0.0.1", service.port, timeout=30) for _ in range(4)
    ]
    workers = workers_of(service)
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    for connection, (_, key) in zip(connections, created, strict=True):
        headers = {"X-Kiosk-API-Key": key, "Content-Type": "application/json"}
        connection.request("POST", "/kiosk/heartbeat", body=body, headers=headers)
    service.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)  # the supervisor passes SIGTERM on to the stopped workers
    for pid in workers:
        os.kill(pid, signal.SIGCONT)
    statuses = [connection.getresponse().status for connection in connections]
    for connection in connections:
        connection.close()
    assert service.process.wait(30) == 0
    assert statuses == [200] * 6
    store = open_store(service.database)
    assert all(k.last_heartbeat_at is not None for k in store.list_kiosks())
    store.close()


def test_a_worker_that_dies_is_replaced(tmp_path):
    service = start(tmp_path)
    try:
        _, key = service.add_kiosk("Kiosk-Entrance", "Building A")
        victim = workers_of(service)[0]
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: len(w := workers_of(service)) == 2 and victim not in w)
        for _ in range(4):
            assert service.heartbeat(key).status == 200
    finally:
        assert service.stop() == 0
