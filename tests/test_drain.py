"""The SIGTERM drain on waitress itself, in this process: several listening addresses
(a host name that resolves to 127.0.0.1 and ::1 gives waitress a MultiSocketServer)."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time

from waitress import create_server

from exporter.server import addresses, serve_until_signalled


def slow_app(environ, start_response):
    time.sleep(0.2)  # two worker threads: most requests wait in waitress's queue
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def test_every_address_is_drained_and_every_received_request_answered():
    server = create_server(slow_app, listen="127.0.0.1:0 127.0.0.1:0", threads=2)
    ports = [port for _, port in server.effective_listen]
    assert addresses(server) == [f"http://127.0.0.1:{port}" for port in ports]
    statuses: list[int] = []
    sent = threading.Semaphore(0)

    def get(port: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/")
        sent.release()
        try:
            statuses.append(connection.getresponse().status)
        except OSError:
            statuses.append(0)  # closed without an answer
        finally:
            connection.close()

    def clients_then_sigterm() -> None:
        threads = [threading.Thread(target=get, args=(ports[n % 2],)) for n in range(8)]
        for thread in threads:
            thread.start()
        for _ in threads:
            sent.acquire(timeout=10)
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)
        for thread in threads:
            thread.join(10)

    signalled: list[bool] = []
    driver = threading.Thread(target=clients_then_sigterm)
    driver.start()
    serve_until_signalled(
        server,
        grace_seconds=0,
        on_signal=lambda: signalled.append(True),
        cleanup=lambda: (server.task_dispatcher.shutdown(), server.close()),
    )
    driver.join(10)
    assert signalled == [True]
    assert statuses == [200] * 8
    for port in ports:  # both listening sockets are closed
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            probe.request("GET", "/")
            refused = False
        except ConnectionRefusedError:
            refused = True
        finally:
            probe.close()
        assert refused
