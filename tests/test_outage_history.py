"""Outage rows as the store writes them: in the heartbeat batch when a gap ends, opened by
the liveness tick, on SQLite, PostgreSQL and MariaDB, with the clock injected."""

from __future__ import annotations

from datetime import timedelta

from exporter import schema
from exporter.config import parse_database_url
from exporter.keys import hash_secret
from exporter.outages import Outage
from exporter.records import HeartbeatWrite, Outcome
from exporter.store import open_store
from tests.conftest import T0
from tests.support.service import run_cli
from tests.test_schema import apply_first, seed_kiosk_at

THRESHOLD = 300
FAR = T0 + timedelta(days=1)


def beat(store, kiosk, key, seconds, threshold=THRESHOLD):
    write = HeartbeatWrite(kiosk.id, hash_secret(key), T0 + timedelta(seconds=seconds), None, None)
    (result,) = store.record_heartbeats(
        [write], min_interval_seconds=0, online_threshold_seconds=threshold
    )
    assert result.outcome is Outcome.ACCEPTED
    return write.received_at


def outages_of(store, kiosk):
    return store.outages_between(T0 - timedelta(days=1), FAR).get(kiosk.id, [])


def test_a_heartbeat_after_a_gap_records_the_outage_it_ends(store):
    kiosk, key = store.add_kiosk("Kiosk-Entrance", "Building A", now=T0)
    beat(store, kiosk, key, 0)
    beat(store, kiosk, key, THRESHOLD - 0.000001)  # one microsecond short: online throughout
    assert outages_of(store, kiosk) == []
    last = beat(store, kiosk, key, 400)
    ended = beat(store, kiosk, key, 400 + THRESHOLD)  # exactly the threshold: an outage
    assert outages_of(store, kiosk) == [Outage(last, ended, ended)]
    assert store.kiosk_histories([kiosk.id])[kiosk.id].observed_since == T0


def test_the_liveness_tick_opens_an_outage_and_the_next_heartbeat_closes_it(store):
    kiosk, key = store.add_kiosk("Kiosk-Entrance", "Building A", now=T0)
    last = beat(store, kiosk, key, 0)
    tick = T0 + timedelta(seconds=THRESHOLD - 1)
    assert store.open_outages(now=tick, online_threshold_seconds=THRESHOLD) == 0
    tick = T0 + timedelta(seconds=THRESHOLD)
    assert store.open_outages(now=tick, online_threshold_seconds=THRESHOLD) == 1
    assert store.open_outages(now=tick, online_threshold_seconds=THRESHOLD) == 0  # once
    opened = Outage(last, tick, None)
    assert outages_of(store, kiosk) == [opened]
    # A later threshold of 600 s does not rewrite when status turned offline.
    ended = beat(store, kiosk, key, 900, threshold=600)
    assert outages_of(store, kiosk) == [Outage(last, tick, ended)]


def test_two_stores_opening_the_same_outage_write_one_row(database_url):
    first, second = open_store(database_url), open_store(database_url)
    kiosk, key = first.add_kiosk("Kiosk-Entrance", "Building A", now=T0)
    beat(first, kiosk, key, 0)
    now = T0 + timedelta(hours=1)
    opened = [s.open_outages(now=now, online_threshold_seconds=THRESHOLD) for s in (first, second)]
    assert opened == [1, 0]
    beat(second, kiosk, key, 3600)
    assert len(outages_of(first, kiosk)) == 1
    first.close()
    second.close()


def test_deactivated_and_never_connected_kiosks_get_no_outage(store):
    silent, _ = store.add_kiosk("Kiosk-New", "Building A", now=T0)
    off, key = store.add_kiosk("Kiosk-Off", "Building A", now=T0)
    beat(store, off, key, 0)
    store.set_active(off.id, False)
    assert store.open_outages(now=FAR, online_threshold_seconds=THRESHOLD) == 0
    assert store.outages_between(T0, FAR) == {}
    assert silent.id not in store.kiosk_histories()


def test_a_window_query_returns_what_overlaps_it(store):
    kiosk, key = store.add_kiosk("Kiosk-Entrance", "Building A", now=T0)
    beat(store, kiosk, key, 0)
    beat(store, kiosk, key, 1000)  # outage offline 300 -> 1000
    beat(store, kiosk, key, 2000)  # outage offline 1300 -> 2000
    store.open_outages(now=T0 + timedelta(seconds=3000), online_threshold_seconds=THRESHOLD)

    def window(a, b):
        found = store.outages_between(T0 + timedelta(seconds=a), T0 + timedelta(seconds=b))
        return [(o.offline_at - T0).seconds for o in found.get(kiosk.id, [])]

    assert window(0, 5000) == [300, 1300, 2300]
    assert window(1001, 1300) == []
    assert window(1000, 1301) == [300, 1300]
    assert window(2001, 2300) == []
    assert window(2300, 2301) == [2300]


def test_removing_a_kiosk_removes_its_history(store):
    kiosk, key = store.add_kiosk("Kiosk-Entrance", "Building A", now=T0)
    beat(store, kiosk, key, 0)
    beat(store, kiosk, key, 1000)
    store.remove_kiosk(kiosk.id)
    assert store.outages_between(T0, FAR) == {} and store.kiosk_histories() == {}


def test_a_remembered_recent_heartbeat_skips_the_gap_check(store):
    """The hot path: in steady state no kiosk of a batch needs reading first."""
    kiosk, key = store.add_kiosk("Kiosk-Entrance", "Building A", now=T0)
    first = HeartbeatWrite(kiosk.id, hash_secret(key), T0, None, None)
    assert store._gap_suspects([first], THRESHOLD) == [kiosk.id]
    beat(store, kiosk, key, 0)
    soon = HeartbeatWrite(kiosk.id, hash_secret(key), T0 + timedelta(seconds=60), None, None)
    late = HeartbeatWrite(kiosk.id, hash_secret(key), T0 + timedelta(seconds=300), None, None)
    assert store._gap_suspects([soon], THRESHOLD) == []
    assert store._gap_suspects([late], THRESHOLD) == [kiosk.id]


def test_upgrade_gives_a_kiosk_offline_at_that_time_an_ongoing_outage(empty_database_url):
    """From the schema before history (0001 and whatever preceded 0004), with data."""
    before = [m for m in schema.migration_ids(parse_database_url(empty_database_url)) if m < "0004"]
    apply_first(empty_database_url, len(before))
    seed_kiosk_at(empty_database_url)  # created 2026-11-26 10:00, never connected
    store = open_store(empty_database_url, upgrade=True)
    (kiosk,) = store.list_kiosks()
    store.record_heartbeat(kiosk.id, received_at=T0)
    store.close()
    # record_heartbeat started observation; to look like the old schema, drop it (and the
    # later migration that adds columns to its tables)
    url = parse_database_url(empty_database_url)
    with schema.connect(url, timeout_seconds=10) as backend, backend.transaction():
        backend.execute(
            "DELETE FROM _yoyo_migration "
            "WHERE migration_id IN ('0004_outage_history', '0007_judged_outages')"
        )
        for table in ("outages", "kiosk_history", "history_state"):
            backend.execute(f"DROP TABLE {table}")
    upgraded = run_cli("db", "upgrade", database=empty_database_url)
    assert upgraded.returncode == 0, upgraded.stderr
    store = open_store(empty_database_url)
    assert outages_of(store, kiosk) == [Outage(T0, T0 + timedelta(seconds=THRESHOLD), None)]
    state = store.history_state()
    assert store.kiosk_histories()[kiosk.id].observed_since == state.started_at > T0
    assert [k.name for k in store.list_kiosks()] == ["Kiosk-Entrance"]
    store.close()


def test_the_keeper_opens_outages_each_tick_and_purges_once_a_day(store, clock):
    from exporter.config import Settings
    from exporter.history import HistoryKeeper

    kiosk, key = store.add_kiosk("Kiosk-Entrance", "Building A", now=T0)
    beat(store, kiosk, key, 0)
    beat(store, kiosk, key, 1000)  # an outage ended at T0 + 1000 s
    keeper = HistoryKeeper(store, Settings(outage_retention_days=2), clock)
    clock.now = T0 + timedelta(days=2)  # the ended outage is exactly 2 days old: kept
    keeper.tick()
    assert len(outages_of(store, kiosk)) == 2  # and the ongoing one is now open
    clock.advance(3600)
    keeper.tick()  # an hour later: no purge yet, a day has not passed
    assert len(outages_of(store, kiosk)) == 2
    clock.advance(86400)
    keeper.tick()
    assert [o.ended_at for o in outages_of(store, kiosk)] == [None]
    assert store.history_state().purged_before == clock.now - timedelta(days=2)
