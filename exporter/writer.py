"""Group commit for heartbeats: concurrent requests share one transaction."""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .errors import ExporterError, StorageUnavailable
from .gate import RECHECK_SECONDS
from .records import HeartbeatResult, HeartbeatWrite

log = logging.getLogger(__name__)


def writer_wait_seconds(database_timeout_seconds: float) -> float:
    """How long a request waits for its commit: the database's own bound on a lock or a
    statement, plus a second for the commit itself and the batch ahead of it."""
    return database_timeout_seconds + 1.0


class HeartbeatSink(Protocol):
    def record_heartbeats(
        self,
        writes: Sequence[HeartbeatWrite],
        *,
        min_interval_seconds: float,
        online_threshold_seconds: float,
    ) -> list[HeartbeatResult]: ...

    def close(self) -> None: ...


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(eq=False, slots=True)
class _Pending:
    """One request waiting for its batch. `done` is a lock the writer releases once: an
    Event costs a Condition per request and a notify_all under its lock, which made
    waking the threads of a batch 8 % of the writer thread's time."""

    write: HeartbeatWrite
    done: threading.Lock = field(default_factory=_held_lock)
    result: HeartbeatResult | None = None
    error: ExporterError | None = None


class HeartbeatWriter:
    """One thread owns every heartbeat write.

    One commit per request caps SQLite at ~1,000 heartbeats/s; one commit per batch of
    whatever arrived meanwhile keeps each request's latency at about one commit while
    throughput grows with load. A request is answered only after its batch committed.

    When the database hangs (a frozen disk, a stopped server), a request waits at most
    `wait_timeout_seconds`; once the current commit has taken longer than that, new
    requests are refused at once (503) instead of queueing behind it.
    """

    def __init__(
        self,
        sink: HeartbeatSink,
        *,
        min_interval_seconds: float,
        online_threshold_seconds: float = 300.0,
        max_batch: int = 500,
        wait_timeout_seconds: float = 10.0,
    ) -> None:
        self._sink = sink
        self._min_interval = min_interval_seconds
        # Gaps at least this long are outages, recorded in the batch's transaction.
        self._threshold = online_threshold_seconds
        self._max_batch = max_batch
        self._wait_timeout = wait_timeout_seconds
        # Set while a batch is in the database: since when.
        self._busy_since: float | None = None
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="heartbeat-writer", daemon=True)
        self._stopping = threading.Event()
        self._deferred: collections.deque[_Pending] = collections.deque()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then end the thread; later submits are refused."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(
        self, write: HeartbeatWrite, *, keep_waiting: Callable[[], None] | None = None
    ) -> HeartbeatResult:
        """Block until the heartbeat's batch is committed (or failed). `keep_waiting`, if
        given, is called every RECHECK_SECONDS while the batch is not committed, and ends the
        wait by raising (the database gate's rule for a request past its limit)."""
        if self._stopping.is_set():
            raise StorageUnavailable("the service is shutting down")
        self._refuse_while_stuck()
        pending = _Pending(write)
        self._queue.put(pending)
        if not self._wait(pending, keep_waiting):
            raise StorageUnavailable("the database did not answer in time")
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _wait(self, pending: _Pending, keep_waiting: Callable[[], None] | None) -> bool:
        if keep_waiting is None:
            return pending.done.acquire(timeout=self._wait_timeout)
        deadline = time.monotonic() + self._wait_timeout
        # A healthy commit takes milliseconds: the first wait nearly always ends the loop.
        while not pending.done.acquire(timeout=min(RECHECK_SECONDS, self._wait_timeout)):
            keep_waiting()
            if time.monotonic() >= deadline:
                return False
        return True

    def _refuse_while_stuck(self) -> None:
        since = self._busy_since
        if since is None:
            return
        busy = time.monotonic() - since
        if busy > self._wait_timeout:
            raise StorageUnavailable(f"the database has not answered for {busy:.0f} s")

    def _run(self) -> None:
        try:
            stop = False
            while not stop or self._deferred:
                batch, stopping = self._next_batch(block=not stop)
                stop = stop or stopping
                if batch:
                    self._commit(batch)
            # Anything that slipped in after the stop signal is refused, not left hanging.
            late, _ = self._next_batch(block=False)
            self._fail(late + list(self._deferred), StorageUnavailable("shutting down"))
        finally:
            self._sink.close()

    def _next_batch(self, *, block: bool) -> tuple[list[_Pending], bool]:
        """What is queued now, at most one write per kiosk: a second heartbeat from the
        same kiosk waits for the next batch, where the rate limit judges it."""
        stop = False
        pending = list(self._deferred)
        self._deferred.clear()
        if not pending and block:
            first = self._queue.get()
            stop = first is None
            pending.extend([] if first is None else [first])
        while len(pending) < 2 * self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            stop = stop or item is None
            pending.extend([] if item is None else [item])
        batch: list[_Pending] = []
        kiosks: set[int] = set()
        for item in pending:
            if item.write.kiosk_id in kiosks or len(batch) >= self._max_batch:
                self._deferred.append(item)
            else:
                kiosks.add(item.write.kiosk_id)
                batch.append(item)
        return batch, stop

    def _commit(self, batch: list[_Pending]) -> None:
        self._busy_since = time.monotonic()
        try:
            results = self._sink.record_heartbeats(
                [p.write for p in batch],
                min_interval_seconds=self._min_interval,
                online_threshold_seconds=self._threshold,
            )
        except ExporterError as exc:
            self._fail(batch, exc)
            return
        except Exception:
            log.exception("heartbeat batch of %d failed", len(batch))
            self._fail(batch, StorageUnavailable("unexpected storage failure"))
            return
        finally:
            self._busy_since = None
        for pending, result in zip(batch, results, strict=True):
            pending.result = result
            pending.done.release()

    @staticmethod
    def _fail(batch: list[_Pending], error: ExporterError) -> None:
        for pending in batch:
            pending.error = error
            pending.done.release()
