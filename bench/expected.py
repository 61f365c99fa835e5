"""Scrape cost of expected hours: the same fleet on `always` and on schedules, in one run.

    .venv/bin/python bench/expected.py [--kiosks 100000] [--rounds 5] [--backend sqlite]

Two databases with the same kiosks and heartbeats (a tenth offline): one with every kiosk on
`always`, one with the kiosks spread over ten schedules in ten time zones, each kiosk's
assignment in the event log, and a maintenance window on one kiosk in a hundred. The full
/metrics page (our renderer, in-process) is rendered in interleaved rounds on both; the
figure is the ratio of the medians. The issue's bound: at most 10 % more with schedules.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from common import fleet_database

from exporter.clock import utc_now
from exporter.collector import FleetCollector
from exporter.config import Settings
from exporter.exposition import LocalFleetPage, PageRequest
from exporter.keys import hash_secret
from exporter.records import HeartbeatWrite
from exporter.store import Store, open_store

ZONES = (
    "Europe/Paris",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Africa/Johannesburg",
    "Pacific/Auckland",
)


def provision(store: Store, kiosks: int, *, scheduled: bool) -> None:
    now = utc_now()
    names = []
    if scheduled:
        for n, zone in enumerate(ZONES):
            hours = "Mon-Fri 07:00-20:00, Sat 08:00-12:00" if n % 2 else "Mon-Sun 06:00-23:00"
            store.add_schedule(f"site-{n}", timezone=zone, hours=hours, now=now)
            names.append(f"site-{n}")
    rows = [(f"kiosk-{n:06d}", f"Building {n % 40}") for n in range(kiosks)]
    schedules = [names[n % len(names)] for n in range(kiosks)] if scheduled else None
    created = store.import_kiosks(rows, schedules=schedules, now=now)
    writes = [
        HeartbeatWrite(
            k.id,
            hash_secret(key),
            now - timedelta(minutes=30 if n % 10 == 0 else 0),
            "1.0.0",
            "Android/11",
        )
        for n, (k, key) in enumerate(created)
    ]
    for start in range(0, len(writes), 500):
        store.record_heartbeats(writes[start : start + 500], min_interval_seconds=0)
    if scheduled:
        in_maintenance = [k.id for n, (k, _) in enumerate(created) if n % 100 == 0]
        store.start_maintenance(in_maintenance, starts_at=now, ends_at=now + timedelta(hours=2))


def render_seconds(store: Store) -> tuple[float, float]:
    """(wall, CPU) seconds of one render: CPU time is what a busy machine distorts least."""
    page = LocalFleetPage(FleetCollector(store, Settings(), utc_now))
    started, cpu = time.perf_counter(), time.process_time()
    page.page(PageRequest(False, utc_now(), b"", gzip=False))
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kiosks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "mysql"], default="sqlite")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        stores = {}
        for label, scheduled in (("always", False), ("schedules", True)):
            (tmp / label).mkdir()
            url = stack.enter_context(fleet_database(args.backend, tmp / label))
            store = open_store(url, upgrade=True)
            stack.callback(store.close)
            provision(store, args.kiosks, scheduled=scheduled)
            stores[label] = store
        times: dict[str, list[tuple[float, float]]] = {label: [] for label in stores}
        for store in stores.values():
            render_seconds(store)  # warm-up: caches, zone files
        for _ in range(args.rounds):
            for label, store in stores.items():
                times[label].append(render_seconds(store))
    print(f"{args.kiosks} kiosks on {args.backend}, {args.rounds} interleaved rounds:")
    for column, what in ((0, "wall"), (1, "CPU")):
        medians = {label: statistics.median(t[column] for t in ts) for label, ts in times.items()}
        for label, seconds in times.items():
            shown = ", ".join(f"{s[column]:.3f}" for s in seconds)
            print(f"  /metrics render {what}, {label:9}: median {medians[label]:.3f} s ({shown})")
        ratio = medians["schedules"] / medians["always"]
        print(f"  {what}: with schedules / without {ratio:.3f} ({(ratio - 1) * 100:+.1f} %)")
    print("  bound: +10 %")


if __name__ == "__main__":
    main()
