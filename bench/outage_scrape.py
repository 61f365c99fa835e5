"""A scrape's read and judgement while the whole fleet is in an outage (a night, a site's
network down), this checkout against another in one run.

    .venv/bin/python bench/outage_scrape.py [--kiosks 100000] [--restarts 0] [--rounds 4]
                                            [--unfolded] [--against DIR]

Every kiosk's last heartbeat is an hour old and its outage is open, as serve's liveness tick
leaves it; the service listened throughout, or restarted `--restarts` times during the
outage (10 s away each: a deploy at night). The counters' totals are folded up to a little
before now, as serve does when it starts and every hour (`--unfolded`: never, the whole
outage is then judged at every scrape). Each kiosk's outage is then judged at every
scrape by the history's counters (kiosk_offline_seconds_total and co), on both the renderer
and prometheus_client's side. Prints the CPU of FleetCollector.snapshot() and of the
counters alone, rounds alternating between the checkouts, each in a process of its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve()
OUTAGE_AGE = timedelta(hours=1)


def measure(database: str, root: str, repeats: int) -> dict[str, list[float]]:
    """In a process of its own: `root`'s exporter package, imported first."""
    sys.path.insert(0, root)
    from exporter.clock import utc_now
    from exporter.collector import FleetCollector
    from exporter.config import Settings
    from exporter.exposition import gc_paused
    from exporter.history import HistoryService
    from exporter.store import open_store

    store = open_store(database)
    collector = FleetCollector(store, Settings(), utc_now)
    history = HistoryService(store, Settings(), utc_now)  # the counters, as snapshot() asks
    kiosks = store.fleet_kiosks()
    found: dict[str, list[float]] = {"snapshot": [], "counters": []}
    collector.snapshot()  # caches and the page cache warm, as after a first scrape
    for _ in range(repeats):
        with gc_paused():  # as the renderer reads
            started = time.process_time()
            collector.snapshot()
            found["snapshot"].append(time.process_time() - started)
            started = time.process_time()
            history.counters(kiosks)
            found["counters"].append(time.process_time() - started)
    store.close()
    return found


def build(database: str, workdir: Path, kiosks: int, restarts: int, fold: bool) -> None:
    """The fleet, its outages open and the service's liveness, with this checkout's store."""
    from common import provision

    from exporter.clock import utc_now
    from exporter.config import Settings
    from exporter.history import SETTLED, HistoryService
    from exporter.store import open_store

    now = utc_now()
    last = now - OUTAGE_AGE
    provision(database, workdir, kiosks, heartbeats=True, at=last)
    store = open_store(database)
    # Listening since before the heartbeats, away 10 s `restarts` times during the outage.
    begin, step = last - timedelta(minutes=1), OUTAGE_AGE / (restarts + 1)
    for n in range(restarts + 1):
        interval = store.start_liveness(f"bench:{n}", now=begin)
        begin = last + step * (n + 1)
        store.touch_liveness(interval, now=begin - timedelta(seconds=10) if n < restarts else now)
    store.open_outages(now=now, online_threshold_seconds=300)
    if fold:
        HistoryService(store, Settings(), utc_now).advance_totals(now - SETTLED)
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kiosks", type=int, default=100_000)
    parser.add_argument("--restarts", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--unfolded", action="store_true", help="never fold the totals")
    parser.add_argument("--against", type=Path, help="another checkout, measured alternately")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)  # database, root
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1], 2)))
        return
    sys.path.insert(0, str(HERE.parent))
    roots = [HERE.parent.parent] + ([args.against.resolve()] if args.against else [])
    results = {root: {"snapshot": [], "counters": []} for root in roots}
    with tempfile.TemporaryDirectory() as tmp:
        database = f"sqlite:///{Path(tmp) / 'outage.db'}"
        build(database, Path(tmp), args.kiosks, args.restarts, not args.unfolded)
        for _ in range(args.rounds):
            for root in roots:
                command = [sys.executable, str(HERE), "--measure", database, str(root)]
                output = subprocess.run(command, capture_output=True, text=True, check=True)
                for name, values in json.loads(output.stdout).items():
                    results[root][name] += values
    print(
        f"{args.kiosks:,} kiosks, every one in an open outage for {OUTAGE_AGE}, the service "
        f"away {args.restarts} time(s) meanwhile, totals "
        f"{'never folded' if args.unfolded else 'folded'}; CPU seconds, median of "
        f"{2 * args.rounds}:"
    )
    for root, found in results.items():
        snapshot, counters = found["snapshot"], found["counters"]
        print(
            f"  {root}: snapshot {statistics.median(snapshot):.2f} s "
            f"({min(snapshot):.2f}-{max(snapshot):.2f}), of which counters "
            f"{statistics.median(counters):.2f} s ({min(counters):.2f}-{max(counters):.2f})"
        )


if __name__ == "__main__":
    main()
