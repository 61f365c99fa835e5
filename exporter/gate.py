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

import collections
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

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
    """At most `limit` slots. A free slot is taken and given back without a lock (a deque's
    pop and append are atomic); only a request that finds none takes the Condition and
    waits, and only then does a leaving holder notify. A heartbeat, which only waits for the
    writer thread's commit, need not wait for a slot at all (`try_enter`, `require_answering`;
    see KioskService.heartbeat): at saturation every worker thread carries one, and making
    the last two wait here and be woken one by one cost a context switch per heartbeat."""

    def __init__(
        self,
        limit: int,
        calls: CallsInFlight,
        *,
        max_wait_seconds: float,
        stuck_seconds: float = STUCK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._calls = calls
        self._max_wait = max_wait_seconds
        self._stuck = stuck_seconds
        self._clock = clock
        self._free: collections.deque[None] = collections.deque([None] * max(1, limit))
        self._waiting = 0  # changed under _changed's lock only
        self._changed = threading.Condition(threading.Lock())
        self._slot = _Slot(self)

    def slot(self) -> AbstractContextManager[None]:
        """Hold one of the `limit` slots for the block; StorageUnavailable if the database
        is stuck while none is free, or none frees within `max_wait_seconds`."""
        return self._slot

    def try_enter(self) -> bool:
        """Take a free slot if there is one and nobody waits for one; never blocks."""
        if self._waiting:
            return False
        try:
            self._free.pop()
        except IndexError:
            return False
        return True

    def require_answering(self) -> None:
        """StorageUnavailable if a database call has been running longer than `stuck_seconds`:
        the rule a request past the limit is held to, whether it waits here or elsewhere."""
        if self._calls.longest_seconds() > self._stuck:
            raise StorageUnavailable("the database is not answering")

    def enter(self) -> None:
        if self._waiting:  # first come, first served: no overtaking those who wait
            self._wait_for_slot()
            return
        try:
            self._free.pop()
        except IndexError:
            self._wait_for_slot()

    def leave(self) -> None:
        self._free.append(None)
        # Read without the lock: a waiter counts itself, then looks for a slot, both under
        # the lock, so it either finds the one just given back or is waiting when we notify.
        if self._waiting:
            with self._changed:
                self._changed.notify()

    def _wait_for_slot(self) -> None:
        deadline = self._clock() + self._max_wait
        with self._changed:
            self._waiting += 1
            try:
                while True:
                    try:
                        self._free.pop()
                        return
                    except IndexError:
                        pass
                    self.require_answering()
                    left = deadline - self._clock()
                    if left <= 0:
                        raise StorageUnavailable("every database slot stayed busy")
                    self._changed.wait(min(left, RECHECK_SECONDS))
            finally:
                self._waiting -= 1


class _Slot:
    """`with gate.slot():` without a generator per use (contextlib's costs ~1.5 us)."""

    __slots__ = ("_gate",)

    def __init__(self, gate: DatabaseGate) -> None:
        self._gate = gate

    def __enter__(self) -> None:
        self._gate.enter()

    def __exit__(self, *exc_info: object) -> None:
        self._gate.leave()


def reserved_threads(threads: int) -> int:
    """Worker threads the database may never hold: 2 of 16, none of a handful."""
    return min(2, threads // 4)
