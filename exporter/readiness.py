"""Readiness: can this replica commit a heartbeat now? Judged from a real commit.

A transaction that changes nothing succeeds on a full disk or a read-only filesystem while
every heartbeat fails, so /readyz commits a real row, bounded in time: while commits fail
(heartbeats get 503) /readyz answers 503, and as soon as one succeeds again it answers 200,
so a replica that a load balancer took out of rotation comes back by itself once the
database does.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import ExporterError, StorageUnavailable

log = logging.getLogger(__name__)

# A load balancer's check must not wait on a hanging database longer than this.
PROBE_TIMEOUT_SECONDS = 1.0


@dataclass(eq=False)
class _Flight:
    done: threading.Event = field(default_factory=threading.Event)
    error: ExporterError | None = None


class ReadinessProbe:
    """Runs `write` (a real row, committed) in a thread of its own, so that /readyz waits
    at most `timeout` even when the database hangs; a write still running is joined, never
    doubled. `finish` runs in that thread when it ends (to close its connection)."""

    def __init__(
        self,
        write: Callable[[], None],
        *,
        finish: Callable[[], None] = lambda: None,
        timeout: float = PROBE_TIMEOUT_SECONDS,
    ) -> None:
        self._write = write
        self._finish = finish
        self._timeout = timeout
        self._lock = threading.Lock()
        self._flight: _Flight | None = None
        self._requests: queue.SimpleQueue[_Flight | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="readiness-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._requests.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def check(self) -> None:
        """Return when the probe's write commits within the timeout; raise
        StorageUnavailable otherwise."""
        with self._lock:
            if self._flight is None or self._flight.done.is_set():
                self._flight = _Flight()
                self._requests.put(self._flight)
            flight = self._flight
        if not flight.done.wait(self._timeout):
            raise StorageUnavailable(f"the database did not commit within {self._timeout:g} s")
        if flight.error is not None:
            raise flight.error

    def _run(self) -> None:
        try:
            while (flight := self._requests.get()) is not None:
                try:
                    self._write()
                except ExporterError as exc:
                    flight.error = exc
                except Exception:
                    log.exception("readiness probe failed")
                    flight.error = StorageUnavailable("unexpected storage failure")
                flight.done.set()
        finally:
            self._finish()
