"""Scrape cost of /metrics at fleet sizes, and heartbeat latency while a scrape runs.

    .venv/bin/python bench/scrape.py [--kiosks 10000 100000]
    .venv/bin/python bench/scrape.py --vitals --kiosks 100000

Side by side in one run: the served page (our renderer) against prometheus_client's
generate_latest() over the same FleetCollector, in-process on the same database.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from common import fleet_database, provision, start_exporter, wrk
from prometheus_client import CollectorRegistry, generate_latest

from exporter.clock import utc_now
from exporter.collector import FleetCollector
from exporter.config import Settings
from exporter.exposition import LocalFleetPage, PageRequest
from exporter.store import open_store

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def scrape(url: str, accept: str = "text/plain") -> tuple[float, int]:
    request = urllib.request.Request(url + "/metrics", headers={"Accept": accept})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        size = len(response.read())
    return time.perf_counter() - started, size


def in_process(database: str) -> tuple[float, float]:
    """Seconds to render the fleet: our renderer vs prometheus_client's generic one."""
    store = open_store(database)
    collector = FleetCollector(store, Settings(), utc_now)
    registry = CollectorRegistry()
    started = time.perf_counter()
    LocalFleetPage(collector).page(PageRequest(False, utc_now(), b"", gzip=False))
    ours = time.perf_counter() - started
    registry.register(collector)
    started = time.perf_counter()
    generate_latest(registry)
    generic = time.perf_counter() - started
    store.close()
    return ours, generic


def vitals_cost(kiosks: int, args: argparse.Namespace) -> None:
    """The same fleet's scrape with every device vital exported vs none, in one run: a fleet
    without vitals, and one whose every kiosk sent all 11 (rendered with metrics_vitals on
    and off), rendered in turns so the machine's load drifts evenly over the three."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        plain, full = f"sqlite:///{workdir / 'plain.db'}", f"sqlite:///{workdir / 'full.db'}"
        (workdir / "plain").mkdir()
        (workdir / "full").mkdir()
        provision(plain, workdir / "plain", kiosks, heartbeats=True)
        provision(full, workdir / "full", kiosks, heartbeats=True, vitals=True)
        cases = {
            "no vitals stored": (plain, True),
            "every vital, metrics_vitals: false": (full, False),
            "every vital exported": (full, True),
        }
        stores = {name: open_store(db) for name, (db, _) in cases.items()}
        times: dict[str, list[float]] = {name: [] for name in cases}
        sizes: dict[str, int] = {}
        for _ in range(args.scrapes):
            for name, (_, exported) in cases.items():
                collector = FleetCollector(stores[name], Settings(metrics_vitals=exported), utc_now)
                # A new page each time: no line cached from the previous render (vitals
                # change at every heartbeat, so a real scrape reuses few of them).
                renderer = LocalFleetPage(collector)
                started = time.perf_counter()
                page = renderer.page(PageRequest(False, utc_now(), b"", gzip=False))
                times[name].append(time.perf_counter() - started)
                sizes[name] = len(page)
        for store in stores.values():
            store.close()
    base = statistics.median(times["no vitals stored"])
    print(f"{kiosks} kiosks on sqlite, /metrics rendered in-process, median of {args.scrapes}:")
    for name in cases:
        median = statistics.median(times[name])
        print(f"  {name:<36} {median:.3f} s ({median / base:.2f} x), {sizes[name] / 1e6:.1f} MB")


def heartbeat_p99_during_scrapes(url: str, keys: Path, seconds: int) -> tuple[float, float, int]:
    quiet = wrk(url, keys, seconds=seconds, connections=16, rate=200)
    stop = threading.Event()
    scrapes = []

    def loop() -> None:
        while not stop.is_set():
            scrapes.append(scrape(url)[0])

    thread = threading.Thread(target=loop)
    thread.start()
    busy = wrk(url, keys, seconds=seconds, connections=16, rate=200)
    stop.set()
    thread.join()
    return quiet["p99_us"] / 1000, busy["p99_us"] / 1000, len(scrapes)


def run(kiosks: int, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, fleet_database(args.backend, Path(tmp)) as database:
        workdir = Path(tmp)
        keys = provision(database, workdir, kiosks, heartbeats=True)
        ours, generic = in_process(database)
        server = start_exporter(database, workdir, 16)
        try:
            scrape(server.url)  # warm-up
            times = [scrape(server.url) for _ in range(args.scrapes)]
            om_time, om_size = scrape(server.url, OPENMETRICS)
            rss, peak = server.rss_mb()
            quiet, busy, during = heartbeat_p99_during_scrapes(server.url, keys, args.seconds)
        finally:
            server.stop()
    seconds = [t for t, _ in times]
    print(f"{kiosks} kiosks on {args.backend}:")
    print(
        f"  GET /metrics (text): median {statistics.median(seconds):.3f} s, "
        f"max {max(seconds):.3f} s over {len(seconds)}, {times[0][1] / 1e6:.1f} MB; "
        f"OpenMetrics {om_time:.3f} s, {om_size / 1e6:.1f} MB"
    )
    print(
        f"  render in-process: ours {ours:.3f} s vs "
        f"prometheus_client generate_latest {generic:.3f} s"
    )
    print(f"  server RSS after scrapes: {rss:.0f} MiB (peak {peak:.0f} MiB)")
    print(
        f"  heartbeat p99 at 200/s: {quiet:.1f} ms without scrapes, "
        f"{busy:.1f} ms with {during} back-to-back scrapes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kiosks", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "mysql"], default="sqlite")
    parser.add_argument(
        "--vitals", action="store_true", help="instead: the cost of exporting device vitals"
    )
    args = parser.parse_args()
    for kiosks in args.kiosks:
        if args.vitals:
            vitals_cost(kiosks, args)
        else:
            run(kiosks, args)


if __name__ == "__main__":
    main()
