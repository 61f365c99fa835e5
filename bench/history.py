"""Outage history at scale: the availability documents over a year of outages, through HTTP.

    .venv/bin/python bench/history.py [--kiosks 10000] [--days 365] [--backend sqlite|postgresql]
                                      [--scheduled 0.5]
    .venv/bin/python bench/history.py --scrape-cost [--kiosks 10000 100000]

Seeds `kiosks` kiosks with one outage each per day for `days` days (10,000 x 365 = 3.65 M
rows), puts a share of them (--scheduled) on office hours (Mon-Fri 07:00-20:00, Paris) from
the first day, and records the service's liveness with a 2-minute restart every night, so
every document judges not-expected and unknown time (the general path of outages.py, not
its shortcut for kiosks expected throughout). Then it starts the real service on that
database, and times (median of --repeat requests):
the 30-day fleet availability document, one kiosk's 30-day outage list and its 30-day day
strip; beside them, the hello-world ceiling: one trivial request to a bare Falcon app on the
same waitress settings, sequential.

--scrape-cost: what the history counters (kiosk_offline_seconds_total and co) add to a
/metrics render of the same fleet, in one process: CPU of the whole page, and of the
counters' share computed alone, in alternating rounds (best of --repeat each).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

from common import fleet_database, provision, start_exporter, start_hello

from exporter.clock import utc_now
from exporter.store import open_store

THRESHOLD = timedelta(seconds=300)
DOWN = timedelta(minutes=10)
OFFICE = "Mon-Fri 07:00-20:00"


def seed(database: str, kiosks: int, days: int, scheduled: float) -> tuple[str, int]:
    """Kiosks, their observation start, a year of closed outages, office hours for a share
    of them, nightly restarts of the service; returns a token and an id."""
    store = open_store(database, upgrade=True)
    created = store.import_kiosks([(f"kiosk-{n:06d}", f"Building {n % 40}") for n in range(kiosks)])
    token = store.add_token("bench")[1]
    now = utc_now()
    first = now - timedelta(days=days)
    load(store, first, [kiosk.id for kiosk, _ in created], days)
    store.add_schedule("office", timezone="Europe/Paris", hours=OFFICE, now=first)
    for kiosk, _ in created[: int(len(created) * scheduled)]:
        store.assign_schedule(kiosk.id, "office", now=first)
    for day in range(days + 1):
        # Up from 03:02 to 03:00 the next night, then a 2-minute restart.
        start = first + timedelta(days=day, minutes=2)
        interval = store.start_liveness("bench", now=start)
        store.touch_liveness(interval, now=min(start + timedelta(hours=23, minutes=58), now))
    store.close()
    return token, created[0][0].id


def load(store, first, ids: list[int], days: int) -> None:
    """Bulk load through the driver's executemany, not one ORM object per row."""
    from pony.orm import db_session

    db, to_db = store._db, store._to_db
    mark = "?" if db.provider.paramstyle == "qmark" else "%s"
    with db_session:
        cursor = db.get_connection().cursor()
        cursor.executemany(
            f"INSERT INTO kiosk_history (kiosk_id, observed_since, downtime_us, observed_us,"
            f" outages) VALUES ({mark}, {mark}, 0, 0, 0)",
            [(kiosk_id, to_db(first)) for kiosk_id in ids],
        )
        cursor.executemany(
            f"UPDATE kiosks SET last_heartbeat_at = {mark} WHERE id = {mark}",
            [(to_db(utc_now()), kiosk_id) for kiosk_id in ids],
        )
    for day in range(days):
        rows = []
        for kiosk_id in ids:
            started = first + timedelta(days=day, minutes=kiosk_id % 1380)
            offline = started + THRESHOLD
            rows.append((kiosk_id, to_db(started), to_db(offline), to_db(offline + DOWN)))
        with db_session:
            cursor = db.get_connection().cursor()
            sql = "INSERT INTO outages (kiosk_id, started_at, offline_at, ended_at) VALUES "
            if db.provider.dialect == "PostgreSQL":
                # psycopg2's executemany sends one statement per row: 16 minutes for a year.
                from psycopg2.extras import execute_values

                execute_values(cursor, sql + "%s", rows, page_size=5000)
            else:
                cursor.executemany(sql + f"({mark}, {mark}, {mark}, {mark})", rows)
        if day % 50 == 0:
            print(f"  day {day}/{days}", flush=True)


def settle(database: str) -> tuple[int, int]:
    """What serve's hourly job keeps done: the counters' totals folded, and every ended
    outage judged, up to about now. Left to the service, a year of seeded history would be
    settled by its first tick, in the background of the timed requests (a real deployment
    settles an hour at a time, and judges a year of history once, after the upgrade)."""
    from exporter.config import Settings
    from exporter.history import SETTLED, HistoryService

    store = open_store(database, upgrade=True)
    try:
        return HistoryService(store, Settings(), utc_now).settle(utc_now() - SETTLED)
    finally:
        store.close()


def timed_get(url: str, token: str | None, repeat: int) -> tuple[float, int]:
    """Median seconds of `repeat` sequential GETs, and the answer's size."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    seconds, size = [], 0
    for _ in range(repeat):
        request = urllib.request.Request(url, headers=headers)
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=120) as response:
            size = len(response.read())
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), size


def hello_ceiling(repeat: int) -> float:
    server = start_hello(4)
    try:
        seconds = []
        for _ in range(repeat):
            request = urllib.request.Request(
                server.url + "/kiosk/heartbeat", data=b"{}", method="POST"
            )
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
            seconds.append(time.perf_counter() - started)
        return statistics.median(seconds)
    finally:
        server.stop()


def scrape_cost(kiosks: int, backend: str, repeat: int) -> None:
    from exporter.collector import FleetCollector
    from exporter.config import Settings
    from exporter.exposition import LocalFleetPage, PageRequest
    from exporter.history import HistoryService

    with tempfile.TemporaryDirectory() as tmp, fleet_database(backend, Path(tmp)) as database:
        provision(database, Path(tmp), kiosks, heartbeats=True)
        store = open_store(database)
        collector = FleetCollector(store, Settings(), utc_now)
        history = HistoryService(store, Settings(), utc_now)
        pages, counters = [], []
        for _ in range(repeat):
            started = time.process_time()
            LocalFleetPage(collector).page(PageRequest(False, utc_now(), b"", gzip=False))
            pages.append(time.process_time() - started)
            fleet = store.list_kiosks()
            started = time.process_time()
            history.counters(fleet)
            counters.append(time.process_time() - started)
        store.close()
    page, share = min(pages), min(counters)
    print(
        f"{backend}, {kiosks:,} kiosks: /metrics render {page * 1000:.0f} ms CPU, of which the"
        f" history counters {share * 1000:.0f} ms: +{share / (page - share) * 100:.0f} % over"
        " the page without them (budget 15 %)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kiosks", type=int, nargs="+", default=[10_000])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "mysql"], default="sqlite")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--scheduled", type=float, default=0.5, help="share of kiosks on office hours"
    )
    parser.add_argument(
        "--keep", help="SQLite file to seed once and reuse on later runs (seeding takes minutes)"
    )
    parser.add_argument("--scrape-cost", action="store_true")
    args = parser.parse_args()
    if args.scrape_cost:
        for kiosks in args.kiosks:
            scrape_cost(kiosks, args.backend, args.repeat)
        return
    args.kiosks = args.kiosks[0]
    rows = args.kiosks * args.days
    with tempfile.TemporaryDirectory() as tmp, fleet_database(args.backend, Path(tmp)) as database:
        if args.keep:
            database = f"sqlite:///{Path(args.keep).resolve()}"
        started = time.monotonic()
        if args.keep and Path(args.keep).exists():
            store = open_store(database, upgrade=True)
            name = f"bench-{int(time.time())}"  # a token of its own on each reuse
            token, kiosk_id = store.add_token(name)[1], store.list_kiosks()[0].id
            store.close()
        else:
            token, kiosk_id = seed(database, args.kiosks, args.days, args.scheduled)
            print(f"seeded {rows:,} outages in {time.monotonic() - started:.0f} s", flush=True)
        started = time.monotonic()
        folded, judged = settle(database)
        print(
            f"settled: {folded:,} kiosks' totals folded, {judged:,} outages judged, in"
            f" {time.monotonic() - started:.0f} s",
            flush=True,
        )
        server = start_exporter(database, Path(tmp), 16)
        try:
            base = server.url
            results = [
                ("fleet availability, 30 days", f"{base}/kiosk/availability", 2.0),
                ("one kiosk's outages, 30 days", f"{base}/kiosk/{kiosk_id}/outages", 0.05),
                (
                    "one kiosk's 30-day strip",
                    f"{base}/kiosk/{kiosk_id}/availability?bucket=day",
                    0.05,
                ),
            ]
            timings = [
                (label, *timed_get(url, token, args.repeat), goal) for label, url, goal in results
            ]
        finally:
            server.stop()
    ceiling = hello_ceiling(args.repeat * 4)
    print(f"\n{args.backend}, {args.kiosks:,} kiosks x {args.days} days ({rows:,} outages)")
    print(f"{'document':<32} {'median ms':>10} {'goal ms':>8} {'bytes':>10}")
    for label, seconds, size, goal in timings:
        print(f"{label:<32} {seconds * 1000:>10.1f} {goal * 1000:>8.0f} {size:>10,}")
    print(f"{'hello-world request (ceiling)':<32} {ceiling * 1000:>10.1f}")


if __name__ == "__main__":
    main()
