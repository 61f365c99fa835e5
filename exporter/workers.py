"""`serve --workers N`: N pre-forked serving processes on listening sockets they share.

Why pre-forked on one socket rather than SO_REUSEPORT: with SO_REUSEPORT each process has
its own accept queue, and closing one process's socket during its drain resets the
connections queued there. Here there is one queue; a stopping worker accepts what is in it
before closing its descriptor, and the socket itself closes only with the last descriptor.

The supervisor (this module, in the process `serve` started) never serves, never starts a
thread and never opens the database, so forking from it is safe. It replaces a worker that
dies, and on SIGTERM/SIGINT it closes its own descriptors and passes the signal on: each
worker then runs the same drain as a single process (grace with /readyz 503, every request
already received answered and committed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# A worker that exits with an error this soon after its start, twice in a row, is not worth
# replacing again.
CRASH_LOOP_SECONDS = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_workers(count: int, sockets: list[socket.socket], serve: Callable[[int], int]) -> int:
    """Fork `count` workers running `serve(slot)` (their exit code); return the worst code."""
    workers: dict[int, tuple[int, float]] = {}  # pid -> (slot, started)
    stopping: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        if not stopping:
            for sock in sockets:
                sock.close()  # the workers' descriptors keep the socket; the last one closes it
        stopping.append(signum)
        for pid in workers:
            _send(pid, signum)

    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    try:
        for slot in range(count):
            workers[_fork(slot, serve, previous)] = (slot, time.monotonic())
        return _supervise(workers, stopping, serve, previous)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _supervise(
    workers: dict[int, tuple[int, float]],
    stopping: list[int],
    serve: Callable[[int], int],
    previous: dict[signal.Signals, object],
) -> int:
    worst, quick_deaths = 0, 0
    while workers:
        pid, status = os.wait()  # PEP 475: a signal handled meanwhile does not end the wait
        if pid not in workers:
            continue
        slot, started = workers.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        if stopping:  # a worker replaced earlier does not make a clean stop a failure
            worst = max(worst, code if code >= 0 else 128 - code)
            continue
        # A worker killed by a signal (the OOM killer, an operator) did not fail its start-up:
        # only a quick exit of its own counts towards giving up.
        crashed = code > 0 and time.monotonic() - started < CRASH_LOOP_SECONDS
        quick_deaths = quick_deaths + 1 if crashed else 0
        if quick_deaths >= 2:
            log.error("worker %d keeps dying at start-up (exit %d): stopping", slot, code)
            for other in workers:
                _send(other, signal.SIGTERM)
            stopping.append(signal.SIGTERM)
            worst = max(worst, 1)
            continue
        log.warning("worker %d (pid %d) ended with %d: starting another", slot, pid, code)
        workers[_fork(slot, serve, previous)] = (slot, time.monotonic())
    return worst


def _fork(slot: int, serve: Callable[[int], int], previous: dict[signal.Signals, object]) -> int:
    # The child starts with the stop signals blocked (the mask is inherited at fork): one
    # that arrives during its start-up waits until its server handles it (serve_until_
    # signalled unblocks them) instead of killing it half-started.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    pid = os.fork()
    if pid:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return pid
    code = 1
    try:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        code = serve(slot)
    except BaseException:
        log.exception("worker %d failed", slot)
    finally:
        logging.shutdown()
        os._exit(code)


def _send(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
