"""Run waitress until SIGTERM/SIGINT, then stop without dropping what was received.

waitress's own run() turns a signal into close(), which cancels every request still queued
for a worker thread and closes connections whose answers are not yet written: heartbeats
committed but never answered, requests never answered at all. Here a signal only sets a
flag; the main loop then
1. keeps serving for `shutdown_grace_seconds` while /readyz answers 503, so that a load
   balancer stops sending before the port closes;
2. closes the listening socket and each idle connection, and keeps the loop turning until
   every request already received is answered and flushed (at most DRAIN_TIMEOUT_SECONDS);
3. returns, and the caller closes the server and the heartbeat writer.

This uses waitress internals that its own run() and close() use (the socket map, each
channel's `requests`, `request` and `total_outbufs_len`); tests/test_server.py and
tests/test_drain.py hold the behaviour to them. `server` is what waitress.create_server
returns: one listening server, or a MultiSocketServer when the host name resolves to
several addresses (localhost as 127.0.0.1 and ::1).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer

log = logging.getLogger(__name__)

# Longer than the heartbeat writer's own wait (10 s): a request waiting on the database
# still gets its answer (200 or 503) before the connection closes.
DRAIN_TIMEOUT_SECONDS = 15.0


def serve_until_signalled(
    server: Any, *, grace_seconds: float, on_signal: Callable[[], None]
) -> None:
    """Serve; on the first SIGTERM/SIGINT call `on_signal`, drain, and return."""
    stop = threading.Event()
    sockets = _socket_map(server)
    listeners = _listeners(sockets)

    def request_stop(signum: int, frame: object) -> None:
        if not stop.is_set():
            stop.set()
            listeners[0].pull_trigger()  # wake the loop now, not at its next timeout

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _turn(server.adj, sockets, until=stop.is_set)
        log.info("stopping: %gs of grace with /readyz at 503, then draining", grace_seconds)
        on_signal()
        deadline = time.monotonic() + grace_seconds
        _turn(server.adj, sockets, until=lambda: time.monotonic() >= deadline, timeout=0.1)
        _drain(server.adj, sockets, listeners)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def addresses(server: Any) -> list[str]:
    """Where the server listens, for the start-up log line."""
    return [
        f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        for host, port in _listen(server)
    ]


def _listen(server: Any) -> list[tuple[str, int]]:
    if isinstance(server, MultiSocketServer):
        return list(server.effective_listen)
    return [(server.effective_host, server.effective_port)]


def _socket_map(server: Any) -> dict[int, Any]:
    return server.map if isinstance(server, MultiSocketServer) else server._map  # type: ignore[no-any-return]


def _listeners(sockets: dict[int, Any]) -> list[BaseWSGIServer]:
    return [d for d in sockets.values() if isinstance(d, BaseWSGIServer)]


def _turn(
    adj: Any, sockets: dict[int, Any], *, until: Callable[[], bool], timeout: float | None = None
) -> None:
    loop_timeout = adj.asyncore_loop_timeout if timeout is None else timeout
    while not until():
        wasyncore.loop(timeout=loop_timeout, map=sockets, use_poll=adj.asyncore_use_poll, count=1)


def _drain(adj: Any, sockets: dict[int, Any], listeners: list[BaseWSGIServer]) -> None:
    """Stop accepting, close idle connections, and answer every request received."""
    for listener in listeners:
        listener.accepting = False
        listener.del_channel()  # the listening socket leaves the loop, then closes
        listener.socket.close()
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while True:
        busy = 0
        for channel in list(sockets.values()):
            if not isinstance(channel, HTTPChannel):
                continue  # waitress's wake-up trigger
            if channel.requests or channel.request is not None or channel.total_outbufs_len:
                busy += 1
            else:
                channel.close()  # idle keep-alive: no new request may start on it
        if not busy:
            return
        if time.monotonic() >= deadline:
            log.warning("stopping with %d connection(s) still busy", busy)
            return
        wasyncore.loop(timeout=0.05, map=sockets, use_poll=adj.asyncore_use_poll, count=1)
