"""The database gate with real threads: its limit, its waiters, and its stuck rule; the
heartbeat path past the limit (KioskService._submit) is held to the same rule."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from exporter.errors import StorageUnavailable
from exporter.gate import CallsInFlight, DatabaseGate
from exporter.keys import hash_secret
from exporter.records import HeartbeatWrite
from exporter.writer import HeartbeatWriter
from tests.conftest import T0


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stuck_call(calls: CallsInFlight, started: threading.Event, release: threading.Event):
    """A database call, in a thread of its own, that runs until `release`."""

    def run() -> None:
        with calls.call():
            started.set()
            release.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(5)
    return thread


def test_no_more_than_limit_holders_and_a_waiter_gets_the_slot_given_back():
    gate = DatabaseGate(2, CallsInFlight(), max_wait_seconds=10)
    gate.enter()
    assert gate.try_enter()
    assert not gate.try_enter()  # full
    entered = threading.Event()

    def third() -> None:
        with gate.slot():
            entered.set()

    waiter = threading.Thread(target=third)
    waiter.start()
    assert not entered.wait(0.3)  # waits while both slots are held
    assert not gate.try_enter()  # a newcomer does not overtake the waiter...
    gate.leave()
    assert entered.wait(5)  # ...who gets the slot given back
    waiter.join(5)
    assert gate.try_enter()  # the waiter gave it back in turn
    gate.leave()
    gate.leave()
    assert gate.try_enter() and gate.try_enter() and not gate.try_enter()


def test_many_threads_never_hold_more_than_the_limit():
    gate = DatabaseGate(3, CallsInFlight(), max_wait_seconds=30)
    inside, most = 0, 0
    lock = threading.Lock()

    def use(_: int) -> None:
        nonlocal inside, most
        with gate.slot():
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.001)
            with lock:
                inside -= 1

    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(use, range(600)))
    assert most == 3
    assert [gate.try_enter() for _ in range(4)] == [True, True, True, False]


def test_past_the_limit_a_stuck_call_refuses_at_once_and_a_slow_one_is_waited_for():
    clock = ManualClock()
    calls = CallsInFlight(clock)
    gate = DatabaseGate(1, calls, max_wait_seconds=5, stuck_seconds=1.0, clock=clock)
    started, release = threading.Event(), threading.Event()
    thread = stuck_call(calls, started, release)
    try:
        assert gate.try_enter()
        clock.now += 0.5  # slow, not stuck
        gate.require_answering()
        clock.now += 0.6  # now stuck
        with pytest.raises(StorageUnavailable, match="not answering"):
            gate.require_answering()
        begun = time.monotonic()
        with pytest.raises(StorageUnavailable, match="not answering"):
            gate.enter()
        assert time.monotonic() - begun < 0.5
    finally:
        release.set()
        thread.join(5)
    gate.require_answering()  # the call ended


def test_a_waiter_is_refused_once_no_slot_frees_in_time():
    clock = ManualClock()
    gate = DatabaseGate(1, CallsInFlight(clock), max_wait_seconds=2, clock=clock)
    gate.enter()
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            gate.enter()
        except StorageUnavailable as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.2)
    clock.now += 3  # the waiter's next recheck finds its deadline past
    waiter.join(5)
    assert outcome and "stayed busy" in str(outcome[0])


def test_a_heartbeat_past_the_limit_stops_waiting_for_its_commit_once_a_call_is_stuck(store, fleet):
    """KioskService._submit's path without a slot: the writer's commit hangs; the wait ends
    with a 503 once the gate's rule says the database is stuck, not at the writer's timeout."""
    release = threading.Event()
    original = store.record_heartbeats
    stuck = threading.Event()

    def hanging(writes, **kwargs):
        release.wait(10)
        return original(writes, **kwargs)

    store.record_heartbeats = hanging
    writer = HeartbeatWriter(store, min_interval_seconds=0, wait_timeout_seconds=8)
    writer.start()

    def keep_waiting() -> None:
        if stuck.is_set():
            raise StorageUnavailable("the database is not answering")

    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            kiosk, key = fleet[0]
            write = HeartbeatWrite(kiosk.id, hash_secret(key), T0, "1.0.0", "dev")
            answer = pool.submit(writer.submit, write, keep_waiting=keep_waiting)
            time.sleep(0.3)
            assert not answer.done()  # slow: still waiting
            stuck.set()
            begun = time.monotonic()
            with pytest.raises(StorageUnavailable, match="not answering"):
                answer.result(5)
            assert time.monotonic() - begun < 1.0
    finally:
        release.set()
        writer.stop()
    # The write itself was committed once the database answered: a 503 never claims otherwise.
    assert store.get_kiosk(fleet[0][0].id).last_heartbeat_at is not None


@pytest.fixture
def fleet(store):
    return store.import_kiosks([(f"k{n}", "Hall") for n in range(3)])
