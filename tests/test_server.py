"""The real server process over real HTTP: what tablets, operators and load balancers see."""

from __future__ import annotations

import http.client
import json
import signal
import sqlite3
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from exporter.store import open_store
from tests.support.http import request
from tests.support.service import RunningService


def test_the_documented_curl_heartbeat_works_as_written(server):
    _, key = server.add_kiosk("Kiosk-Entrance", "Building A - Main Entrance")
    token = server.add_token()
    command = (
        f"curl -sS -X POST {server.url}/kiosk/heartbeat "
        f'-H "X-Kiosk-API-Key: {key}" -H "Content-Type: application/json" '
        """-d '{"app_version":"1.0.0","device_info":"Test"}'"""
    )
    result = subprocess.run(
        command, shell=True, capture_output=True, text=True, timeout=30, check=True
    )
    assert json.loads(result.stdout)["next_heartbeat_in_seconds"] == 60
    (kiosk,) = server.all_status(token).json
    assert (kiosk["status"], kiosk["app_version"], kiosk["device_info"]) == (
        "online",
        "1.0.0",
        "Test",
    )


def test_tablet_scenarios_over_real_http(server):
    kiosk_id, key = server.add_kiosk("Kiosk-Cafeteria", "Building B - Floor 1")
    assert server.heartbeat("").status == 401
    assert server.heartbeat("kk_wrong").status == 401
    never = request("GET", server.url + "/kiosk/status", headers={"X-Kiosk-API-Key": key}).json
    assert never["status"] == "never_connected"
    first = server.heartbeat(key)
    assert first.status == 200
    assert first.json["kiosk_id"] == kiosk_id
    second = server.heartbeat(key)
    assert second.json["received_at"] > first.json["received_at"]
    status = request("GET", server.url + "/kiosk/status", headers={"X-Kiosk-API-Key": key}).json
    assert status["last_heartbeat_at"] == second.json["received_at"]
    assert status["status"] == "online"


def test_a_kiosk_goes_offline_after_the_threshold(tmp_path):
    settings = {
        "online_threshold_seconds": 1.5,
        "heartbeat_interval_seconds": 1,
        "min_heartbeat_interval_seconds": 0,
    }
    with RunningService(tmp_path, settings) as service:
        _, key = service.add_kiosk("Kiosk-Floor2", "Building C - Floor 2")
        token = service.add_token()
        service.heartbeat(key)
        assert service.all_status(token).json[0]["status"] == "online"
        offline = service.wait_until(
            lambda: service.all_status(token).json[0]["status"] == "offline", timeout=5
        )
        assert offline


def test_responses_keep_the_connection_alive(server):
    """Tablets reuse their connection: a 204 would make waitress close it every time."""
    import http.client

    _, key = server.add_kiosk("Kiosk-Exit", "Building A")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for _ in range(3):
            connection.request(
                "POST",
                "/kiosk/heartbeat",
                body=b"{}",
                headers={"X-Kiosk-API-Key": key, "Content-Type": "application/json"},
            )
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            assert response.getheader("Connection", "").lower() != "close"
    finally:
        connection.close()


def test_concurrent_heartbeats_from_many_kiosks_lose_no_update(server):
    store = open_store(server.database)
    created = store.import_kiosks([(f"kiosk-{n:03d}", f"Site {n % 7}") for n in range(120)])
    store.close()

    def send(item):
        (kiosk, key), round_number = item
        reply = server.heartbeat(
            key, {"app_version": f"1.0.{round_number}", "device_info": f"device {kiosk.id}"}
        )
        return reply.status

    work = [(pair, r) for r in range(5) for pair in created]
    with ThreadPoolExecutor(max_workers=32) as pool:
        for r in range(5):
            statuses = list(pool.map(send, [w for w in work if w[1] == r]))
            assert statuses == [200] * len(created)
    store = open_store(server.database)
    try:
        for kiosk in store.list_kiosks():
            assert kiosk.app_version == "1.0.4"
            assert kiosk.device_info == f"device {kiosk.id}"
            assert kiosk.last_heartbeat_at is not None
    finally:
        store.close()


def test_a_locked_database_is_503_with_retry_after_and_the_service_recovers(tmp_path):
    settings = {"min_heartbeat_interval_seconds": 0, "database_timeout_seconds": 0.3}
    with RunningService(tmp_path, settings) as service:
        _, key = service.add_kiosk("Kiosk-Entrance", "Building A")
        assert service.heartbeat(key).status == 200
        locker = sqlite3.connect(str(tmp_path / "kiosks.db"), isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            refused = service.heartbeat(key)
            assert refused.status == 503
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.json["title"] == "Database unavailable"
            # a load balancer must stop sending heartbeats here while writes fail
            assert request("GET", service.url + "/readyz").status == 503
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert service.heartbeat(key).status == 200
        assert request("GET", service.url + "/readyz").status == 200


def test_sigterm_stops_cleanly_and_answered_heartbeats_are_committed(tmp_path):
    service = RunningService(tmp_path, {"min_heartbeat_interval_seconds": 0}).start()
    store = open_store(service.database)
    created = store.import_kiosks([(f"k{n}", "Site") for n in range(40)])
    answered: list[int] = []
    stop = threading.Event()

    def hammer(pair):
        kiosk, key = pair
        while not stop.is_set():
            try:
                reply = service.heartbeat(key, timeout=5)
            except OSError:
                return
            if reply.status == 200:
                answered.append(kiosk.id)
                return

    threads = [threading.Thread(target=hammer, args=(pair,)) for pair in created]
    for thread in threads:
        thread.start()
    service.wait_until(lambda: len(answered) >= 10, timeout=10)
    assert service.stop(signal.SIGTERM) == 0
    stop.set()
    for thread in threads:
        thread.join(10)
    recorded = {k.id for k in store.list_kiosks() if k.last_heartbeat_at is not None}
    store.close()
    assert set(answered) <= recorded
    assert any("stopped" in line for line in service.log_lines)


def test_sigterm_answers_every_heartbeat_already_received(tmp_path):
    """Two worker threads wait on a locked database, the other requests queue inside
    waitress: a SIGTERM now must still answer and commit every one of them."""
    settings = {"min_heartbeat_interval_seconds": 0, "threads": 2, "database_timeout_seconds": 8}
    with RunningService(tmp_path, settings) as service:
        store = open_store(service.database)
        created = store.import_kiosks([(f"k{n}", "Site") for n in range(30)])
        locker = sqlite3.connect(str(tmp_path / "kiosks.db"), isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        sent = threading.Semaphore(0)
        replies: dict[int, int] = {}

        def post(kiosk_id: int, key: str) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
            body = json.dumps({"app_version": "1.0.0"})
            headers = {"X-Kiosk-API-Key": key, "Content-Type": "application/json"}
            connection.request("POST", "/kiosk/heartbeat", body=body, headers=headers)
            sent.release()
            try:
                replies[kiosk_id] = connection.getresponse().status
            except OSError:
                replies[kiosk_id] = 0  # closed without an answer
            finally:
                connection.close()

        threads = [threading.Thread(target=post, args=(k.id, key)) for k, key in created]
        for thread in threads:
            thread.start()
        for _ in threads:
            sent.acquire(timeout=10)
        time.sleep(0.3)  # the server's loop reads what the kernel already holds
        service.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # SIGTERM arrives while every request is still waiting
        locker.execute("ROLLBACK")
        locker.close()
        for thread in threads:
            thread.join(30)
        assert service.process.wait(20) == 0
        recorded = {k.id for k in store.list_kiosks() if k.last_heartbeat_at is not None}
        store.close()
    assert sorted(replies.values()) == [200] * 30
    assert recorded == {k.id for k, _ in created}


def test_requests_that_reached_a_paused_server_are_answered_after_sigterm(tmp_path):
    """Sent while the process was stopped: one on a kept-alive connection (unread data),
    four on new connections (still in the kernel's listen backlog)."""
    with RunningService(tmp_path, {"min_heartbeat_interval_seconds": 0}) as service:
        store = open_store(service.database)
        created = store.import_kiosks([(f"k{n}", "Site") for n in range(5)])
        store.close()
        body = json.dumps({"app_version": "1.0.0"})
        connections = [http.client.HTTPConnection("127.0.0.1", service.port, timeout=20)]
        kept_alive = connections[0]
        kept_alive.request("GET", "/healthz")
        assert kept_alive.getresponse().read() == b'{"status": "ok"}'
        connections += [
            http.client.HTTPConnection("127.0.0.1", service.port, timeout=20) for _ in range(4)
        ]
        service.process.send_signal(signal.SIGSTOP)
        for connection, (_, key) in zip(connections, created, strict=True):
            headers = {"X-Kiosk-API-Key": key, "Content-Type": "application/json"}
            connection.request("POST", "/kiosk/heartbeat", body=body, headers=headers)
        service.process.send_signal(signal.SIGTERM)
        service.process.send_signal(signal.SIGCONT)
        statuses = [connection.getresponse().status for connection in connections]
        for connection in connections:
            connection.close()
        assert service.process.wait(20) == 0
    assert statuses == [200] * 5


def test_a_second_signal_cuts_the_grace_short(tmp_path):
    with RunningService(tmp_path, {"shutdown_grace_seconds": 600}) as service:
        service.process.send_signal(signal.SIGTERM)
        assert service.wait_until(
            lambda: request("GET", service.url + "/readyz").status == 503, timeout=5
        )
        service.process.send_signal(signal.SIGINT)  # Ctrl-C after a SIGTERM
        assert service.process.wait(20) == 0
    assert any("second signal" in line for line in service.log_lines)
    assert service.log_lines[-1].endswith("stopped")


def test_sigterm_grace_turns_readyz_503_while_heartbeats_are_still_served(tmp_path):
    with RunningService(tmp_path, {"shutdown_grace_seconds": 3}) as service:
        _, key = service.add_kiosk("Kiosk-Entrance", "Building A")
        service.process.send_signal(signal.SIGTERM)
        ready = service.wait_until(
            lambda: (r := request("GET", service.url + "/readyz")).status == 503 and r, timeout=3
        )
        assert ready.json["title"] == "Service is shutting down"
        assert int(ready.headers["retry-after"]) >= 1
        assert service.heartbeat(key).status == 200
        assert service.process.wait(20) == 0
    assert any("stopping" in line for line in service.log_lines)
    assert any(line.endswith("stopped") for line in service.log_lines)


def test_logs_never_contain_keys_or_tokens(server):
    _, key = server.add_kiosk("Kiosk-Entrance", "Building A")
    token = server.add_token()
    server.heartbeat(key)
    server.heartbeat("kk_wrong-key")
    server.all_status(token)
    server.all_status("kt_wrong-token")
    server.wait_until(lambda: sum("all-status" in line for line in server.log_lines) >= 2)
    text = "\n".join(server.log_lines)
    assert '"POST /kiosk/heartbeat" 200' in text
    for secret in (key, token, "kk_wrong-key", "kt_wrong-token"):
        assert secret not in text


def test_a_real_scrape_passes_promtool_check_metrics(server):
    import shutil

    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run `make tools` (Debian package prometheus)"
    _, key = server.add_kiosk('Kiosk "Entrance"', "Building A – café")
    server.add_kiosk("Kiosk-Exit", "Building A")
    server.heartbeat(
        key,
        {"app_version": "1.0.0", "device_info": "Android/11", "sent_at": "2026-11-26T10:00:00Z"},
    )
    # promtool reads the text format only; OpenMetrics is checked by the live Prometheus tests.
    page = server.metrics("text/plain")
    assert page.status == 200
    assert b'kiosk_name="Kiosk \\"Entrance\\""' in page.body
    check = subprocess.run(
        [promtool, "check", "metrics"],
        input=page.body,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
