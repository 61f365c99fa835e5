"""The service's own 5-s loop: record this replica's liveness, and run the periodic jobs.

Every consumer tells "the kiosk was silent" from "we were not listening" by these records
(expected.listening_since, and the history). One loop for every periodic job of the
service: add jobs with add_job() rather than starting another thread. The jobs run in a
thread of their own beside the liveness writes, so a slow job never delays a write.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from .clock import Clock
from .errors import ExporterError
from .expected import LIVENESS_PERIOD_SECONDS

log = logging.getLogger(__name__)
Job = Callable[[datetime], None]


class LivenessSink(Protocol):
    def start_liveness(self, replica: str, *, now: datetime) -> int: ...

    def touch_liveness(self, interval_id: int, *, now: datetime) -> None: ...

    def close(self) -> None: ...


def replica_name() -> str:
    """Host and process: two replicas on one host, or a restart, are told apart."""
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


class LivenessLoop:
    """Writes this replica's liveness interval every period, from a thread of its own.

    A write that follows a failed stretch longer than two periods (database down, process
    frozen) opens a new interval: the time in between was not listened to.
    """

    def __init__(
        self,
        store: LivenessSink,
        clock: Clock,
        *,
        replica: str,
        period_seconds: float = LIVENESS_PERIOD_SECONDS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._replica = replica
        self._period = period_seconds
        self._jobs: list[Job] = []
        self._interval: int | None = None
        self._last_recorded: datetime | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="liveness", daemon=True)
        # The jobs have a thread of their own: the hourly fold of the history's counters
        # over a fleet in an outage took 12 s, and liveness written after it would have
        # opened a new interval, as if the service had not been listening meanwhile.
        self._jobs_thread = threading.Thread(target=self._run_jobs, name="jobs", daemon=True)

    def add_job(self, job: Job) -> None:
        """Run `job(now)` every period, in the jobs' thread, from the first liveness write
        on (add before start())."""
        self._jobs.append(job)

    def record(self) -> None:
        """One liveness write now; raises StorageUnavailable when the database refuses it."""
        now = self._clock()
        with self._lock:
            stale = self._last_recorded is None or now - self._last_recorded > timedelta(
                seconds=2 * self._period
            )
            if self._interval is None or stale:
                self._interval = self._store.start_liveness(self._replica, now=now)
            else:
                self._store.touch_liveness(self._interval, now=now)
            self._last_recorded = now

    def tick(self) -> None:
        """One turn of both threads' work, in order (tests drive the loop by it)."""
        self._record_or_warn()
        self._run_jobs_once()

    def _record_or_warn(self) -> None:
        try:
            self.record()
        except ExporterError as exc:
            log.warning("cannot record the service's liveness: %s", exc)

    def _run_jobs_once(self) -> None:
        """Failures are logged, the loop goes on."""
        for job in self._jobs:
            try:
                job(self._clock())
            except Exception:
                log.exception("periodic job %s failed", getattr(job, "__name__", job))

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Record a last time (a clean stop leaves no gap shorter than the restart) and end;
        a job under way is given the same time to finish."""
        self._stopping.set()
        for thread in (self._thread, self._jobs_thread):
            if thread.is_alive():
                thread.join(timeout)

    def _run_jobs(self) -> None:
        try:
            self._run_jobs_once()
            while not self._stopping.wait(self._period):
                self._run_jobs_once()
        finally:
            self._store.close()

    def _run(self) -> None:
        try:
            self._record_or_warn()
            self._jobs_thread.start()  # the jobs see this first record
            while not self._stopping.wait(self._period):
                self._record_or_warn()
            try:
                self.record()
            except ExporterError as exc:
                log.warning("cannot record the service's last liveness: %s", exc)
        finally:
            self._store.close()
