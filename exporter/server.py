"""Run waitress until SIGTERM/SIGINT, then stop without dropping what was received.

waitress's own run() turns a signal into close(), which cancels every request still queued
for a worker thread and closes connections whose answers are not yet written: heartbeats
committed but never answered, requests never answered at all. Here a signal only sets a
flag; the main loop then
1. keeps serving for `shutdown_grace_seconds` while /readyz answers 503, so that a load
   balancer stops sending before the port closes;
2. closes the listening socket and each idle connection, and keeps the loop turning until
   every request already received is answered and flushed (at most DRAIN_TIMEOUT_SECONDS);
3. runs the caller's clean-up: end the worker threads (<= 5 s), close the connections and
   commit what the heartbeat writer holds (<= 10 s).

This uses waitress internals that its own run() and close() use (the socket map, each
channel's `requests`, `request` and `total_outbufs_len`); tests/test_server.py and
tests/test_drain.py hold the behaviour to them. `server` is what waitress.create_server
returns: one listening server, or a MultiSocketServer when the host name resolves to
several addresses (localhost as 127.0.0.1 and ::1).

create_http_server() also sets waitress up against floods of idle and half-sent connections (poll()
instead of select(), which cannot watch descriptors past 1,023; a connection limit within
the process's file limit; idle connections closed after `idle_connection_timeout_seconds`)
and against a waitress quirk with `Expect: 100-continue` (GuardedChannel).
"""

from __future__ import annotations

import functools
import logging
import mmap
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from waitress import create_server, wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer, MultiSocketServer

from .config import Settings

log = logging.getLogger(__name__)

# Longer than the heartbeat writer's own wait (database_timeout_seconds + 1 s, 6 s by
# default): a request waiting on the database still gets its answer (200 or 503) before
# the connection closes.
DRAIN_TIMEOUT_SECONDS = 15.0


# With waitress's default of 1, a response written while its task still runs makes the main
# loop spin on a socket it may not flush yet: measured 60-200 loop turns per heartbeat and a
# tenth of the throughput once commits wake threads in groups.
WAITRESS_SEND_BYTES = 18000
# How often waitress looks for idle connections: one is closed between the idle timeout and
# the timeout plus this.
CLEANUP_INTERVAL_SECONDS = 2.0
# Connections accepted per turn of the loop (waitress accepts one): during a flood of new
# connections a tablet's waited behind the whole listen backlog, one loop turn each.
ACCEPT_BATCH = 64
# `serve --workers`: a worker accepts while it holds at most this many connections more than
# the fewest of the others; one whose count is older than SHARE_STALE_SECONDS (its loop turns
# at least once a second) is gone or being replaced and does not count.
SHARE_SLACK = 2
SHARE_STALE_SECONDS = 3.0
# A worker that left the listener out looks again this often: each look is a turn of its
# loop over all its connections, so not much more often than events turn it anyway.
SHARE_RECHECK_SECONDS = 0.1
# Descriptors beside the connections: the database, log and listening sockets, SQLite's files.
RESERVED_DESCRIPTORS = 64


class _Parser(HTTPRequestParser):
    """waitress sends "100 Continue" to an `Expect: 100-continue` request it has already
    refused (a Content-Length that is not a number or too large, an unsupported
    Transfer-Encoding), then waits for a body the client will not send: the connection hung
    until the idle timeout. A refused request expects nothing: its 400 goes out at once."""

    def received(self, data: bytes) -> int:
        consumed: int = super().received(data)
        if self.error is not None:
            self.expect_continue = False
        return consumed


class GuardedChannel(HTTPChannel):
    parser_class = _Parser


class AcceptShares:
    """How many connections each worker of `serve --workers` holds, in memory shared across
    the fork, so that the workers on one listening socket take turns at it.

    Left to the kernel, whichever worker wakes first takes what is queued: of 64 connections
    opened at once, one worker held 47-49 and the other 15-17, and at a start or restart the
    worker up first took all of them. Tablets keep their connections open, so the split
    lasts. Each worker publishes its count and the time at every turn of its loop; it polls
    the listener only while it holds no more than the fewest of the others plus
    SHARE_SLACK, and accepts at most up to that. A worker not heard of for
    SHARE_STALE_SECONDS (dead, being replaced) does not count.
    """

    def __init__(self, workers: int) -> None:
        # Anonymous mmap: shared with the children forked after it. Two doubles per worker
        # (count, monotonic time); 8-byte aligned stores are whole on every platform we run.
        self._memory = mmap.mmap(-1, 16 * workers)
        self._cells = memoryview(self._memory).cast("d")
        self.workers = workers

    def slot(self, slot: int) -> WorkerShare:
        return WorkerShare(self._cells, slot, self.workers)


class WorkerShare:
    """One worker's view of the AcceptShares, taken in the worker as it is forked: it counts
    as holding nothing from then on, so a worker that is up first leaves the connections of
    a start or restart (every tablet at once) to the ones still importing, for as long as
    SHARE_STALE_SECONDS allows."""

    def __init__(self, cells: memoryview, slot: int, workers: int) -> None:
        self._cells, self._slot, self._workers = cells, slot, workers
        cells[2 * slot], cells[2 * slot + 1] = 0, time.monotonic()

    def allowance(self, held: int, now: float) -> int:
        """How many more connections this worker may accept now (0: leave them to others)."""
        cells = self._cells
        cells[2 * self._slot], cells[2 * self._slot + 1] = held, now
        others = [
            cells[2 * n]
            for n in range(self._workers)
            if n != self._slot and now - cells[2 * n + 1] < SHARE_STALE_SECONDS
        ]
        if not others:
            return ACCEPT_BATCH
        return max(0, int(min(others)) + SHARE_SLACK - held)


def create_http_server(
    app: Any,
    settings: Settings,
    *,
    sockets: Sequence[Any] = (),
    file_limit: int | None = None,
    share: WorkerShare | None = None,
) -> Any:
    """A waitress server for `app` on the settings' address, or on `sockets` already bound
    (a worker of `serve --workers`, which takes its `share` of the connections); OSError
    when it cannot listen."""
    available = raise_file_limit() if file_limit is None else file_limit
    limit = min(settings.connection_limit, max(1, available - RESERVED_DESCRIPTORS))
    if limit < settings.connection_limit:
        log.warning(
            "connection_limit lowered from %d to %d: the process may open %d files "
            "(raise it with ulimit -n or systemd's LimitNOFILE=)",
            settings.connection_limit,
            limit,
            available,
        )
    where: dict[str, Any] = (
        {"sockets": list(sockets)} if sockets else {"host": settings.host, "port": settings.port}
    )
    server = create_server(
        app,
        **where,
        threads=settings.threads,
        connection_limit=limit,
        asyncore_use_poll=True,
        channel_timeout=settings.idle_connection_timeout_seconds,
        cleanup_interval=CLEANUP_INTERVAL_SECONDS,
        ident="kiosk-exporter",
        # Heartbeats are tiny: refuse huge bodies before they are buffered.
        max_request_body_size=1024 * 1024,
        send_bytes=WAITRESS_SEND_BYTES,
        expose_tracebacks=False,
        **proxy_settings(settings),
    )
    sockets = _socket_map(server)
    listeners = _listeners(sockets)
    turns = server.accept_turns = _Turns(share, listeners)
    for listener in listeners:
        listener.channel_class = GuardedChannel
        listener.handle_accept = functools.partial(_accept_batch, listener, sockets, limit, turns)
        if share is not None:
            listener.readable = functools.partial(_readable_in_turn, listener.readable, turns)
    return server


class _Turns:
    """A worker's allowance at the listener; without a share (one process), no limit.

    `declined`: the listener was left out of the last poll. The others' counts change
    meanwhile without waking this worker, so its loop then polls for at most
    SHARE_RECHECK_SECONDS: otherwise two workers that each left the turn to the other would
    let new connections wait for the loop's 1-s timeout."""

    def __init__(self, share: WorkerShare | None, listeners: list[BaseWSGIServer]) -> None:
        self._share, self._listeners = share, listeners
        self.declined = False

    def allowance(self) -> int:
        if self._share is None:
            return ACCEPT_BATCH
        held = sum(len(listener.active_channels) for listener in self._listeners)
        return self._share.allowance(held, time.monotonic())


def _readable_in_turn(readable: Callable[[], bool], turns: _Turns) -> bool:
    """waitress's own test (which also runs its idle-connection cleanup), then this worker's
    turn: a worker above its share leaves the listener out of its poll set, so it does not
    wake (and spin) for connections it will not take."""
    if not readable():
        return False
    turns.declined = turns.allowance() <= 0
    return not turns.declined


def _accept_batch(
    listener: BaseWSGIServer, sockets: dict[int, Any], limit: int, turns: _Turns
) -> None:
    """What the kernel has queued, up to ACCEPT_BATCH, the connection limit and this
    worker's share."""
    batch = min(ACCEPT_BATCH, limit - len(sockets), turns.allowance())
    _accept_backlog(listener, sockets, max(1, batch))


def raise_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit; returns the limit.

    Most systems start services at 1,024 files: with waitress accepting up to
    `connection_limit` connections, accept() would fail with EMFILE and the loop spin."""
    try:
        import resource
    except ImportError:  # not on POSIX: leave the limit as it is
        return 1 << 30
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return hard if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard


def serve_until_signalled(
    server: Any,
    *,
    grace_seconds: float,
    on_signal: Callable[[], None],
    cleanup: Callable[[], None],
) -> None:
    """Serve; on the first SIGTERM/SIGINT call `on_signal`, drain, run `cleanup`, return.

    A second signal cuts the grace and the drain short; a third ends the process at once
    (exit 128 + signal), for an operator who has seen enough. `cleanup` (closing the
    server, committing the writer's queue) runs with these handlers still in place.
    """
    sockets = _socket_map(server)
    listeners = _listeners(sockets)
    stop, hurry = threading.Event(), threading.Event()

    def on_stop_signal(signum: int, frame: object) -> None:
        if hurry.is_set():
            os._exit(128 + signum)
        if stop.is_set():
            hurry.set()
            log.warning("second signal: stopping without waiting any longer")
        stop.set()
        listeners[0].pull_trigger()  # wake the loop now, not at its next timeout

    stop_signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, on_stop_signal) for sig in stop_signals}
    # A `--workers` worker blocks them while it starts; one that arrived meanwhile runs now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
    try:
        _turn(server, sockets, until=stop.is_set)
        log.info("stopping: %gs of grace with /readyz at 503, then draining", grace_seconds)
        on_signal()
        deadline = time.monotonic() + grace_seconds
        _turn(
            server,
            sockets,
            until=lambda: hurry.is_set() or time.monotonic() >= deadline,
            timeout=0.1,
        )
        _drain(server.adj, sockets, listeners, hurry)
    finally:
        try:
            cleanup()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address `host` resolves to, as waitress would open them,
    made before `serve --workers` forks so that every worker accepts from the same queue."""
    sockets = []
    try:
        for family, kind, proto, address in Adjustments(host=host, port=port).listen:
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(Adjustments.backlog)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


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
    server: Any, sockets: dict[int, Any], *, until: Callable[[], bool], timeout: float | None = None
) -> None:
    loop_timeout = server.adj.asyncore_loop_timeout if timeout is None else timeout
    # A server from create_http_server has its turns; one made by waitress alone has none.
    turns: _Turns | None = getattr(server, "accept_turns", None)
    while not until():
        declined = turns is not None and turns.declined
        _poll_once(
            server.adj,
            sockets,
            min(loop_timeout, SHARE_RECHECK_SECONDS) if declined else loop_timeout,
        )


def _drain(
    adj: Any, sockets: dict[int, Any], listeners: list[BaseWSGIServer], hurry: threading.Event
) -> None:
    """Close the ports, then answer every request that reached this host before that:
    connections still in the listen backlog are accepted first, and a connection is idle
    (closed) only once nothing is left unread on it."""
    for listener in listeners:
        listener.accepting = False
        _accept_backlog(listener, sockets, adj.connection_limit)
        listener.del_channel()  # the listening socket leaves the loop, then closes
        listener.socket.close()
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while True:
        busy = 0
        for channel in list(sockets.values()):
            if not isinstance(channel, HTTPChannel):
                continue  # waitress's wake-up trigger
            if (
                channel.requests
                or channel.request is not None
                or channel.total_outbufs_len
                or _has_unread(channel)
            ):
                busy += 1
            else:
                channel.close()  # idle keep-alive: no new request may start on it
        if not busy:
            return
        if hurry.is_set() or time.monotonic() >= deadline:
            log.warning("stopping with %d connection(s) still busy", busy)
            return
        _poll_once(adj, sockets, 0.05)


def _poll_once(adj: Any, sockets: dict[int, Any], timeout: float) -> None:
    """One turn of waitress's loop: wait for events (at most `timeout`), dispatch them."""
    wasyncore.loop(timeout=timeout, map=sockets, use_poll=adj.asyncore_use_poll, count=1)


def _accept_backlog(listener: BaseWSGIServer, sockets: dict[int, Any], limit: int) -> None:
    """Connections the kernel accepted but waitress has not: closing the port resets them."""
    accept_one = type(listener).handle_accept  # waitress's own (the instance's is ours)
    for _ in range(limit):
        before = len(sockets)
        accept_one(listener)  # non-blocking: adds nothing once the backlog is empty
        if len(sockets) == before:
            return


def _has_unread(channel: HTTPChannel) -> bool:
    try:
        return bool(channel.socket.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # nothing to read now, or the peer is gone: nothing to answer
        return False


def proxy_settings(settings: Settings) -> dict[str, Any]:
    """Behind a reverse proxy, waitress itself takes the client address from the proxy's
    X-Forwarded-For (and drops the header from anyone else), so the access log and every
    use of the remote address see the kiosk, not the proxy."""
    if settings.trusted_proxy is None:
        return {}
    return {
        "trusted_proxy": settings.trusted_proxy,
        "trusted_proxy_count": settings.trusted_proxy_count,
        "trusted_proxy_headers": {"x-forwarded-for"},
        "clear_untrusted_proxy_headers": True,
    }
