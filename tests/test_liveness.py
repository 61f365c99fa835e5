"""The service's liveness: intervals per replica, written by the 5-s loop that `serve` runs."""

from __future__ import annotations

import os
import time
from datetime import timedelta

from exporter.clock import utc_now
from exporter.liveness import LivenessLoop, replica_name
from exporter.store import open_store
from tests.conftest import T0, MovableClock
from tests.support.service import RunningService


def test_the_loop_extends_its_interval_and_opens_a_new_one_after_a_silence(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'k.db'}")
    clock = MovableClock()
    loop = LivenessLoop(store, clock, replica="host:1", period_seconds=5)
    ran = []
    loop.add_job(ran.append)
    loop.tick()
    clock.advance(5)
    loop.tick()
    clock.advance(11)  # more than two periods without a record: not listening meanwhile
    loop.tick()
    intervals = store.liveness_intervals()
    assert [(i.replica, i.started_at, i.last_seen_at) for i in intervals] == [
        ("host:1", T0, T0 + timedelta(seconds=5)),
        ("host:1", T0 + timedelta(seconds=16), T0 + timedelta(seconds=16)),
    ]
    assert ran == [T0, T0 + timedelta(seconds=5), T0 + timedelta(seconds=16)]
    store.close()


def test_replica_names_tell_processes_apart():
    assert replica_name().endswith(f":{os.getpid()}")


def test_serve_records_its_liveness_every_five_seconds(tmp_path):
    with RunningService(tmp_path) as service:
        store = open_store(service.database)
        try:

            def extended():
                rows = store.liveness_intervals()
                return len(rows) == 1 and rows[0].last_seen_at > rows[0].started_at

            assert service.wait_until(extended, timeout=20, interval=0.5), (
                store.liveness_intervals()
            )
            (interval,) = store.liveness_intervals()
            assert (interval.last_seen_at - interval.started_at).total_seconds() >= 4
        finally:
            store.close()


def test_a_slow_periodic_job_never_interrupts_the_liveness_record(tmp_path):
    """The hourly fold of the history over a large fleet in an outage can take longer than
    two periods: liveness must still be written meanwhile, in one interval, or the history
    would count that time as not listened to."""
    store = open_store(f"sqlite:///{tmp_path / 'k.db'}")
    loop = LivenessLoop(store, utc_now, replica="host:1", period_seconds=0.5)
    finished = []
    loop.add_job(lambda now: (time.sleep(2.5), finished.append(now)))
    loop.start()
    time.sleep(3.5)
    loop.stop()
    intervals = store.liveness_intervals()
    assert finished, "the job ran"
    assert len(intervals) == 1, intervals
    assert (intervals[0].last_seen_at - intervals[0].started_at).total_seconds() >= 3.0
    store.close()
