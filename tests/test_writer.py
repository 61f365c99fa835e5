"""Group commit: many requests, one transaction, each answered only after its commit."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from exporter.errors import StorageUnavailable
from exporter.keys import hash_secret
from exporter.records import HeartbeatWrite, Outcome
from exporter.writer import HeartbeatWriter
from tests.conftest import T0


def write_for(kiosk, key, seconds=0.0, version="1.0.0"):
    return HeartbeatWrite(
        kiosk.id, hash_secret(key), T0 + timedelta(seconds=seconds), version, "dev"
    )


@pytest.fixture
def fleet(store):
    return store.import_kiosks([(f"k{n}", "Hall") for n in range(40)])


def test_one_batch_judges_each_write_on_its_own(store, fleet):
    (ok, ok_key), (other, _other_key), (off, off_key), (limited, limited_key) = fleet[:4]
    store.set_active(off.id, False)
    store.record_heartbeat(limited.id, received_at=T0 - timedelta(seconds=3))
    results = store.record_heartbeats(
        [
            write_for(ok, ok_key),
            write_for(other, "kk_wrong"),
            write_for(off, off_key),
            write_for(limited, limited_key),
        ],
        min_interval_seconds=10,
    )
    assert [r.outcome for r in results] == [
        Outcome.ACCEPTED,
        Outcome.UNKNOWN_KEY,
        Outcome.INACTIVE,
        Outcome.RATE_LIMITED,
    ]
    assert results[3].previous_at == T0 - timedelta(seconds=3)
    assert store.get_kiosk(ok.id).last_heartbeat_at == T0
    assert store.get_kiosk(other.id).last_heartbeat_at is None
    assert store.get_kiosk(off.id).last_heartbeat_at is None
    assert store.get_kiosk(limited.id).last_heartbeat_at == T0 - timedelta(seconds=3)


def test_a_batch_with_two_writes_for_one_kiosk_is_refused(store, fleet):
    kiosk, key = fleet[0]
    with pytest.raises(ValueError):
        store.record_heartbeats(
            [write_for(kiosk, key), write_for(kiosk, key, 1)], min_interval_seconds=0
        )


def test_concurrent_submits_share_commits_and_lose_nothing(store, fleet):
    commits = []
    original = store.record_heartbeats

    def counting(writes, **kwargs):
        commits.append(len(writes))
        return original(writes, **kwargs)

    store.record_heartbeats = counting
    writer = HeartbeatWriter(store, min_interval_seconds=0)
    writer.start()
    try:
        with ThreadPoolExecutor(max_workers=40) as pool:
            results = list(pool.map(lambda pair: writer.submit(write_for(*pair)), fleet * 3))
    finally:
        writer.stop()
    assert all(r.outcome is Outcome.ACCEPTED for r in results)
    assert sum(commits) == len(fleet) * 3
    assert len(commits) < len(fleet) * 3  # some requests shared a commit
    assert all(k.last_heartbeat_at == T0 for k in store.list_kiosks())


def test_the_same_kiosk_twice_in_flight_is_judged_in_order(store, fleet):
    kiosk, key = fleet[0]
    release = threading.Event()
    original = store.record_heartbeats

    def slow(writes, **kwargs):
        release.wait(5)
        return original(writes, **kwargs)

    store.record_heartbeats = slow
    writer = HeartbeatWriter(store, min_interval_seconds=10)
    writer.start()
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(writer.submit, write_for(kiosk, key, 0, "1"))
            second = pool.submit(writer.submit, write_for(kiosk, key, 1, "2"))
            release.set()
            outcomes = sorted([first.result(10).outcome, second.result(10).outcome])
    finally:
        writer.stop()
    assert outcomes == sorted([Outcome.ACCEPTED, Outcome.RATE_LIMITED])


def test_a_failed_commit_fails_every_request_in_it(store, fleet):
    def broken(writes, **kwargs):
        raise StorageUnavailable("database unavailable: OperationalError")

    store.record_heartbeats = broken
    writer = HeartbeatWriter(store, min_interval_seconds=0)
    writer.start()
    try:
        with pytest.raises(StorageUnavailable):
            writer.submit(write_for(*fleet[0]))
    finally:
        writer.stop()


def test_stop_commits_what_was_queued_then_refuses_new_heartbeats(store, fleet):
    writer = HeartbeatWriter(store, min_interval_seconds=0)
    writer.start()
    assert writer.submit(write_for(*fleet[0])).outcome is Outcome.ACCEPTED
    writer.stop()
    with pytest.raises(StorageUnavailable):
        writer.submit(write_for(*fleet[1]))
    assert store.get_kiosk(fleet[0][0].id).last_heartbeat_at == T0
