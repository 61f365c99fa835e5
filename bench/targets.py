"""Issue #17's four targets, side by side in one run (interleaved rounds: the machine is shared).

    .venv/bin/python bench/targets.py [--kiosks 100000] [--scrapes 50] [--skip workers] [--root DIR]
                                      [--vitals]

`--vitals`: every kiosk's heartbeat carries every device vital (12 more per-kiosk series).

1. heartbeat p99 at a steady Poisson rate: without scrapes vs while /metrics is scraped
   back to back (gzip, as Prometheus asks) -> at most 2x, or under 50 ms;
2. GET /metrics vs prometheus_client's generate_latest over the same fleet, in this run
   -> at most 0.1x, with a page no larger;
3. saturated heartbeats with `serve --workers 2` vs 1 on PostgreSQL (and SQLite)
   -> at least 1.3x on PostgreSQL;
4. RSS of the service (serving process + renderer) after 50 scrapes vs after the first
   -> at most 1.5x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from collections import Counter
from pathlib import Path

from common import ROOT, Server, fleet_database, provision, start_exporter, wrk
from prometheus_client import CollectorRegistry, generate_latest

from exporter.clock import utc_now
from exporter.collector import FleetCollector
from exporter.config import Settings
from exporter.exposition import gc_paused
from exporter.store import open_store


def scrape(url: str, gzip: bool = False) -> tuple[float, int]:
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    request = urllib.request.Request(url + "/metrics", headers=headers)
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        size = len(response.read())
    return time.perf_counter() - started, size


def service_pids(server: Server) -> list[int]:
    """The serving process, then its children (the renderer)."""
    pids = [server.process.pid]
    for task in Path(f"/proc/{server.process.pid}/task").iterdir():
        pids += [int(c) for c in (task / "children").read_text().split()]
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_rss_mb(server: Server) -> float:
    """RSS of the serving process and its children (the renderer), in MiB."""
    total = 0
    for pid in set(service_pids(server)):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def poisson(url: str, keys: Path, rate: float, seconds: float, offset: int) -> dict:
    command = [sys.executable, str(ROOT / "bench" / "poisson.py"), url, str(keys)]
    command += ["--rate", str(rate), "--seconds", str(seconds), "--offset", str(offset)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output)


def scrape_until(url: str, stop: threading.Event, seconds: list[float]) -> None:
    while not stop.is_set():
        seconds.append(scrape(url, gzip=True)[0])


def target_latency(url: str, keys: Path, args: argparse.Namespace) -> None:
    """Quiet and busy rounds alternate, so both see the same machine."""
    quiet, busy, scrapes = [], [], []
    for round_ in range(args.rounds):
        offset = round_ * 2 * int(args.rate * args.seconds)
        quiet.append(poisson(url, keys, args.rate, args.seconds, offset))
        stop = threading.Event()
        thread = threading.Thread(target=scrape_until, args=(url, stop, scrapes))
        thread.start()
        time.sleep(0.5)
        busy.append(poisson(url, keys, args.rate, args.seconds, offset + len(quiet) * 7919))
        stop.set()
        thread.join()
    q = max(r["p99_ms"] for r in quiet)
    b = max(r["p99_ms"] for r in busy)
    errors = sum(r["errors"] for r in quiet + busy)
    met = b <= 2 * q or b < 50
    print(
        f"1. heartbeat p99 at {args.rate:g}/s Poisson, worst of {args.rounds} rounds: "
        f"{q:.1f} ms without scrapes, {b:.1f} ms during {len(scrapes)} back-to-back gzip "
        f"scrapes (median {statistics.median(scrapes):.2f} s) -> {b / q:.2f}x, "
        f"{errors} errors  [{'met' if met else 'NOT met'}: <= 2x or < 50 ms]"
    )
    for r in quiet + busy:
        print(f"     {json.dumps(r)}")


def timed_scrape(url: str, pids: list[int], gzip: bool = False) -> tuple[float, int, float]:
    """(wall seconds, bytes, CPU seconds of the service's processes) for one scrape."""
    before = sum(map(cpu_seconds, pids))
    seconds, size = scrape(url, gzip)
    return seconds, size, sum(map(cpu_seconds, pids)) - before


def target_render(url: str, server: Server, database: str, args: argparse.Namespace) -> None:
    """Wall time, and CPU time (less noisy on a shared machine): the service's processes
    (serving process + renderer) for a scrape vs this process for generate_latest."""
    store = open_store(database)
    registry = CollectorRegistry()
    collector = FleetCollector(store, Settings(), utc_now)
    registry.register(collector)
    pids = service_pids(server)
    served, generic, zipped, served_cpu, generic_cpu, floor = [], [], [], [], [], []
    states: list[Counter[str]] = []  # the fleet as each round found it
    size = generic_size = zipped_size = 0
    for _ in range(args.rounds):
        seconds, size, cpu = timed_scrape(url, pids)
        served.append(seconds)
        served_cpu.append(cpu)
        seconds, zipped_size, _ = timed_scrape(url, pids, gzip=True)
        zipped.append(seconds)
        started, cpu_started = time.perf_counter(), time.process_time()
        generic_size = len(generate_latest(registry))
        generic.append(time.perf_counter() - started)
        generic_cpu.append(time.process_time() - cpu_started)
        cpu_started = time.process_time()
        with gc_paused():  # as the renderer reads
            snapshot = collector.snapshot()
        floor.append(time.process_time() - cpu_started)
        states.append(Counter(judged.status.value for judged in snapshot.kiosks))
        del snapshot
    store.close()
    median = statistics.median
    ratio = median(served) / median(generic)
    cpu_ratio = median(served_cpu) / median(generic_cpu)
    met = ratio <= 0.1 and size <= generic_size + 64 * 1024  # + the service's own metrics
    print(
        f"2. GET /metrics median {median(served):.2f} s ({size / 1e6:.1f} MB; gzip "
        f"{median(zipped):.2f} s, {zipped_size / 1e6:.1f} MB) vs generate_latest "
        f"{median(generic):.2f} s ({generic_size / 1e6:.1f} MB) -> {ratio:.3f}x wall; CPU "
        f"{median(served_cpu):.2f} s vs {median(generic_cpu):.2f} s -> {cpu_ratio:.3f}x  "
        f"[{'met' if met else 'NOT met'}: <= 0.1x, page no larger]"
    )
    print(f"     wall: served {_rounded(served)}, gzip {_rounded(zipped)}, ", end="")
    print(f"generate_latest {_rounded(generic)}")
    print(f"     CPU: served {_rounded(served_cpu)}, generate_latest {_rounded(generic_cpu)}")
    print(
        f"     of which both sides read and judge the fleet (FleetCollector.snapshot, in this "
        f"process): {_rounded(floor)} s CPU -> {median(floor) / median(generic_cpu):.3f}x "
        "generate_latest's CPU, the floor of the ratio without a cheaper read or judgement"
    )
    # A kiosk offline has an outage open, which the history's counters judge at every
    # scrape (both sides): the floor depends on how much of the fleet is offline.
    print(f"     the fleet in each round: {'; '.join(_states(found) for found in states)}")
    page = urllib.request.urlopen(url + "/metrics", timeout=120).read()
    costs = []
    for level in (1, 6, 9):
        started = time.process_time()
        packed = zlib.compress(page, level)
        costs.append(
            f"level {level}: {time.process_time() - started:.2f} s CPU, {len(packed) / 1e6:.1f} MB"
        )
    print(f"     gzip of the {len(page) / 1e6:.1f} MB page (served at level 1): {'; '.join(costs)}")


def _states(found: Counter[str]) -> str:
    return ", ".join(f"{count:,} {state}" for state, count in sorted(found.items()))


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 3) for v in values]


def target_memory(url: str, server: Server, args: argparse.Namespace) -> None:
    scrape(url)
    first = service_rss_mb(server)
    curve = []
    for n in range(2, args.scrapes + 1):
        scrape(url, gzip=n % 2 == 0)
        if n % 10 == 0:
            curve.append(f"{n}: {service_rss_mb(server):.0f}")
    last = service_rss_mb(server)
    met = last <= 1.5 * first
    print(
        f"4. RSS (serving process + renderer) after 1 scrape {first:.0f} MiB, after "
        f"{args.scrapes} {last:.0f} MiB -> {last / first:.2f}x  [{'met' if met else 'NOT met'}: "
        f"<= 1.5x]; by scrape: {', '.join(curve)}"
    )


def machine_idle() -> tuple[int, int]:
    """(all, idle + iowait) jiffies of every core so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values), values[3] + values[4]


def target_workers(backend: str, args: argparse.Namespace) -> None:
    """Also prints how idle the whole machine stayed during each run: wrk, the database and
    the kernel's loopback share the cores with the service, so a second worker can only add
    what one worker leaves idle (at the same CPU per heartbeat)."""
    with tempfile.TemporaryDirectory() as tmp, fleet_database(backend, Path(tmp)) as database:
        keys = provision(database, Path(tmp), args.worker_kiosks, heartbeats=True)
        rates: dict[int, list[float]] = {1: [], 2: []}
        idle: dict[int, list[float]] = {1: [], 2: []}
        for round_ in range(args.rounds):
            for workers in (1, 2):
                server = start_exporter(
                    database, Path(tmp), 16, serve_args=["--workers", str(workers)], root=args.root
                )
                try:
                    wrk(server.url, keys, seconds=3, connections=64)  # warm every worker
                    total, spare = machine_idle()
                    result = wrk(
                        server.url, keys, seconds=args.seconds, connections=64, start=round_ * 997
                    )
                    total_after, spare_after = machine_idle()
                finally:
                    server.stop()
                rates[workers].append(result["rps"])
                idle[workers].append((spare_after - spare) / (total_after - total))
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    wanted = " [met: >= 1.3x]" if two >= 1.3 * one else " [NOT met: >= 1.3x]"
    print(
        f"3. saturated heartbeats on {backend}, {args.worker_kiosks} kiosks, median of "
        f"{args.rounds}: 1 worker {one:,.0f}/s, 2 workers {two:,.0f}/s -> {two / one:.2f}x"
        + (wanted if backend == "postgresql" else "")
    )
    print(f"     1 worker {[round(r) for r in rates[1]]}, 2 workers {[round(r) for r in rates[2]]}")
    spare = statistics.median(idle[1])
    print(
        f"     machine idle ({os.cpu_count()} cores): 1 worker {_percent(idle[1])}, 2 workers "
        f"{_percent(idle[2])}; at one worker's CPU per heartbeat, at most "
        f"{1 / (1 - spare):.2f}x on this machine"
    )


def _percent(shares: list[float]) -> str:
    return "/".join(f"{100 * share:.0f}%" for share in shares)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kiosks", type=int, default=100_000)
    parser.add_argument("--worker-kiosks", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="serve another checkout (a before/after run)"
    )
    parser.add_argument("--vitals", action="store_true", help="heartbeats carry every device vital")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["latency", "render", "memory", "workers"]
    )
    args = parser.parse_args()
    vitals = ", every heartbeat with every vital" if args.vitals else ""
    print(f"issue #17 targets, {args.kiosks:,} kiosks on SQLite{vitals} ({time.strftime('%F %T')})")
    with tempfile.TemporaryDirectory() as tmp, fleet_database("sqlite", Path(tmp)) as database:
        keys = provision(database, Path(tmp), args.kiosks, heartbeats=True, vitals=args.vitals)
        server = start_exporter(database, Path(tmp), 16, root=args.root)
        try:
            scrape(server.url)  # the renderer's first page fills its caches
            if "latency" not in args.skip:
                target_latency(server.url, keys, args)
            if "render" not in args.skip:
                target_render(server.url, server, database, args)
        finally:
            server.stop()
        if "memory" not in args.skip:
            server = start_exporter(database, Path(tmp), 16, root=args.root)
            try:
                target_memory(server.url, server, args)
            finally:
                server.stop()
    if "workers" not in args.skip:
        for backend in ("postgresql", "sqlite"):
            target_workers(backend, args)


if __name__ == "__main__":
    main()
