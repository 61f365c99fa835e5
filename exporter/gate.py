"""Load shedding while the database hangs: worker threads stay free for the health checks.

A database that hangs (a frozen disk, a stalled server: no error, no client timeout) holds
every request that touches it. With all of waitress's threads held, /healthz and /readyz
queue behind them and an orchestrator restarts a process that was fine. The gate lets at
most `limit` requests use the database at once. Past it, a request waits for a slot while
the database makes progress (a slow database is still a database), and is refused at once
(503) as soon as one database call has been running longer than `stuck_seconds`: then the
database is not answering, and waiting would only take the threads the health checks need.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import StorageUnavailable

# Healthy, even loaded, one database call (a commit of a batch, a read) takes milliseconds
# to a few hundred: one running longer than this is a database that does not answer.
STUCK_SECONDS = 1.0
# How often a request waiting for a slot looks again whether the database is stuck.
RECHECK_SECONDS = 0.1


class CallsInFlight:
    """When each thread's current database call started (the outermost, for nested calls)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started: dict[int, float] = {}

    @contextmanager
    def call(self) -> Iterator[None]:
        thread = threading.get_ident()
        if thread in self._started:  # a store method calling another: one call
            yield
            return
        self._started[thread] = self._clock()
        try:
            yield
        finally:
            del self._started[thread]

    def longest_seconds(self) -> float:
        started = list(self._started.values())  # a copy: other threads change the dict
        return self._clock() - min(started) if started else 0.0


class DatabaseGate:
    def __init__(
        self,
        limit: int,
        calls: CallsInFlight,
        *,
        max_wait_seconds: float,
        stuck_seconds: float = STUCK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = max(1, limit)
        self._calls = calls
        self._max_wait = max_wait_seconds
        self._stuck = stuck_seconds
        self._clock = clock
        self._inside = 0
        self._changed = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the `limit` slots for the block; StorageUnavailable if the database
        is stuck while none is free, or none frees within `max_wait_seconds`."""
        self._enter()
        try:
            yield
        finally:
            with self._changed:
                self._inside -= 1
                self._changed.notify()

    def _enter(self) -> None:
        deadline = self._clock() + self._max_wait
        with self._changed:
            while self._inside >= self._limit:
                if self._calls.longest_seconds() > self._stuck:
                    raise StorageUnavailable("the database is not answering")
                left = deadline - self._clock()
                if left <= 0:
                    raise StorageUnavailable("every database slot stayed busy")
                self._changed.wait(min(left, RECHECK_SECONDS))
            self._inside += 1


def reserved_threads(threads: int) -> int:
    """Worker threads the database may never hold: 2 of 16, none of a handful."""
    return min(2, threads // 4)
