"""`serve --workers 2`: a real pre-forked server, its counters summed, its drain per worker."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.server import ACCEPT_BATCH, SHARE_SLACK, SHARE_STALE_SECONDS, AcceptShares
from exporter.store import open_store
from tests.support.http import request
from tests.support.process import open_files
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


def connections_held(service: RunningService) -> dict[int, int]:
    """Established connections to the service's port held by each worker, from /proc."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == service.port:
                established.add(f"socket:[{fields[9]}]")
    held = {}
    for pid in workers_of(service):
        held[pid] = sum(link in established for link in open_files(pid))
    return held


def test_connections_opened_at_start_up_are_shared_between_the_workers(tmp_path):
    """Every tablet reconnects at once when the service (re)starts and then keeps its
    connection: the worker up first must not take them all. Opened as soon as the port
    answers, while the second worker may still be starting; each gets its answer."""
    service = RunningService(
        tmp_path, {"min_heartbeat_interval_seconds": 0}, serve_args=["--workers", "2"]
    ).start(timeout=40)
    try:
        tablets = [socket.create_connection(("127.0.0.1", service.port)) for _ in range(40)]
        for tablet in tablets:
            tablet.sendall(b"GET /healthz HTTP/1.1\r\nHost: kiosk\r\n\r\n")
        for tablet in tablets:
            tablet.settimeout(30)
            assert tablet.recv(4096).startswith(b"HTTP/1.1 200")
        held = connections_held(service)
        assert sum(held.values()) == 40, held
        assert max(held.values()) - min(held.values()) <= SHARE_SLACK + 1, held
        for tablet in tablets:
            tablet.close()
    finally:
        assert service.stop() == 0


def test_a_worker_accepts_while_it_holds_no_more_than_the_fewest_of_the_others():
    shares = AcceptShares(3)
    first, second, third = (shares.slot(n) for n in range(3))  # each counts as holding 0
    now = time.monotonic()
    assert first.allowance(0, now) == SHARE_SLACK
    assert second.allowance(SHARE_SLACK, now) == 0  # the others hold nothing yet
    assert third.allowance(1, now) == SHARE_SLACK - 1
    assert first.allowance(SHARE_SLACK + 5, now) == 0
    # The fewest of the others is now second's SHARE_SLACK.
    assert third.allowance(1, now) == 2 * SHARE_SLACK - 1
    # A worker not heard of for SHARE_STALE_SECONDS (dead, stopped) no longer counts.
    later = now + SHARE_STALE_SECONDS + 1
    assert second.allowance(40, later) == ACCEPT_BATCH
    # Its replacement counts as holding nothing from its fork on.
    replacement = shares.slot(0)
    assert second.allowance(40, time.monotonic()) == 0
    assert replacement.allowance(0, time.monotonic()) == 1 + SHARE_SLACK  # third holds 1
