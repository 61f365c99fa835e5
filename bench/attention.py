"""Series per exposition mode (`metrics_per_kiosk: all | attention`) at a fleet size.

    .venv/bin/python bench/attention.py [--kiosks 100000] [--renders 5]

One fleet (every kiosk sent every device vital, 40 locations), most of it healthy and a
stated share in each state that needs attention or that must not (dark outside its hours);
its page rendered in-process in both modes, in turns, in the same run: series, bytes,
render time. The shares are assumptions of a bad day, printed with the figures; series in
attention mode scale with the kiosks that need attention, not with the fleet.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from common import FULL_VITALS, provision

from exporter.clock import utc_now
from exporter.collector import FleetCollector
from exporter.config import Settings
from exporter.exposition import LocalFleetPage, PageRequest
from exporter.store import Store, open_store
from exporter.vitals import snapshot

# Share of the fleet in each state (kiosks are picked by id, in disjoint stripes).
SHARES = {
    "offline while expected": 0.01,
    "dark outside its hours": 0.02,
    "battery under 20%": 0.01,
    "outdated app": 0.005,
}
LATEST = "1.0.0"  # what provision() gives every kiosk


def spoil(store: Store, kiosks: int) -> dict[str, int]:
    """Move a share of the healthy fleet into each state; returns how many per state."""
    now = utc_now()
    long_ago = now - timedelta(minutes=30)
    closed_day = (now + timedelta(days=2)).strftime("%a")
    store.add_schedule("closed", timezone="UTC", hours=f"{closed_day} 00:00-01:00", now=now)
    low = snapshot({**FULL_VITALS, "battery_percent": 12.0, "battery_charging": False}, now)
    counts, first = {}, 1
    for state, share in SHARES.items():
        ids = range(first, first + int(kiosks * share))
        for kiosk_id in ids:
            if state == "offline while expected":
                store.record_heartbeat(kiosk_id, received_at=long_ago)
            elif state == "dark outside its hours":
                store.assign_schedule(kiosk_id, "closed", now=now)
                store.record_heartbeat(kiosk_id, received_at=long_ago)
            elif state == "battery under 20%":
                store.record_heartbeat(kiosk_id, received_at=now, vitals=low)
            else:
                store.record_heartbeat(kiosk_id, received_at=now, app_version="0.9.0")
        counts[state] = len(ids)
        first += len(ids)
    return counts


def series(page: bytes) -> int:
    return sum(1 for line in page.splitlines() if line and not line.startswith(b"#"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kiosks", type=int, default=100_000)
    parser.add_argument("--renders", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database = f"sqlite:///{Path(tmp) / 'bench.db'}"
        provision(database, Path(tmp), args.kiosks, heartbeats=True, vitals=True)
        store = open_store(database)
        counts = spoil(store, args.kiosks)
        modes = ("all", "attention")
        pages = {
            mode: LocalFleetPage(
                FleetCollector(
                    store, Settings(metrics_per_kiosk=mode, latest_app_version=LATEST), utc_now
                )
            )
            for mode in modes
        }
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        sizes: dict[str, tuple[int, int]] = {}
        for _ in range(args.renders):
            for mode in modes:
                started = time.perf_counter()
                page = pages[mode].page(PageRequest(False, utc_now(), b"", gzip=False)).data
                times[mode].append(time.perf_counter() - started)
                sizes[mode] = (series(page), len(page))
        store.close()
    print(f"{args.kiosks} kiosks on sqlite (40 locations, every vital), fleet page in-process:")
    print("  " + ", ".join(f"{state}: {n}" for state, n in counts.items()))
    for mode in modes:
        count, size = sizes[mode]
        median = statistics.median(times[mode])
        print(
            f"  metrics_per_kiosk: {mode:<9} {count:>9,} series  {size / 1e6:6.1f} MB  "
            f"render median {median:.3f} s of {args.renders}"
        )
    ratio = sizes["attention"][0] / sizes["all"][0]
    print(f"  attention / all: {ratio:.3f} of the series")


if __name__ == "__main__":
    main()
