"""Heartbeat throughput and latency of the real server vs a hello-world Falcon app, one run.

    .venv/bin/python bench/heartbeats.py [--kiosks 10000 100000] [--seconds 15]
    .venv/bin/python bench/heartbeats.py --vitals --kiosks 10000 --seconds 10 --rounds 3
    .venv/bin/python bench/heartbeats.py --against /tmp/old --kiosks 10000 --seconds 8 --rounds 5

Every 200 is a committed heartbeat: the script checks the service's own counter of
committed heartbeats against wrk's count of 2xx answers after each run.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import (
    FULL_VITALS,
    PLAIN_BODY,
    ROOT,
    Server,
    counter,
    fleet_database,
    paced_wrk,
    provision,
    provision_checkout,
    split_keys,
    start_exporter,
    start_hello,
    wrk,
)

TARGET_RATE = 1667  # 100,000 kiosks at one heartbeat a minute
# wrk paces each connection with delay() between answer and next request, so the rate it
# reaches is connections / (delay + latency): many slow connections keep it near the target.
PACED_CONNECTIONS = 64


def load(url: str, keys_file: Path, rate: int | None, seconds: int, args, start: int = 0) -> dict:
    if rate:
        return paced_wrk(url, keys_file, seconds=seconds, connections=PACED_CONNECTIONS, rate=rate)
    return wrk(url, keys_file, seconds=seconds, connections=args.connections, start=start)


def load_replicas(
    servers: list, key_files: list[Path], rate: int | None, seconds: int, args, start: int = 0
) -> dict:
    """Drive every replica at once, each with its share of the fleet and of the rate; the
    result also holds how many heartbeats the services committed meanwhile."""
    share = rate // len(servers) if rate else None
    before = sum(counter(s.url, "kiosk_exporter_heartbeats_total") for s in servers)
    with ThreadPoolExecutor(len(servers)) as pool:
        results = list(
            pool.map(
                lambda pair: load(pair[0].url, pair[1], share, seconds, args, start),
                zip(servers, key_files, strict=True),
            )
        )
    after = sum(counter(s.url, "kiosk_exporter_heartbeats_total") for s in servers)
    total = {k: sum(r[k] for r in results) for k in ("requests", "rps", "errors")}
    worst = {k: max(r[k] for r in results) for k in ("p50_us", "p99_us", "max_us")}
    rss = max(s.rss_mb()[0] for s in servers)
    return {**total, **worst, "committed": after - before, "rss_mb": rss}


def first_contact(servers: list, key_files: list[Path], kiosks: int, args) -> dict:
    """Saturated until every kiosk has sent a heartbeat: the minute after a restart, when
    each key costs one lookup before the key cache knows it. Later runs are steady state.
    wrk's two threads walk the key file from its start and its middle, each run carrying on
    where the last stopped, so `kiosks` heartbeats reach every kiosk once. Latencies: the
    worst 5-second window."""
    runs: list[dict] = []
    while sum(r["committed"] for r in runs) < kiosks and len(runs) < 60:
        walked = sum(r["requests"] for r in runs) // (2 * len(servers))  # per wrk thread
        runs.append(load_replicas(servers, key_files, None, 5, args, start=walked))
    total = {k: sum(r[k] for r in runs) for k in ("requests", "errors", "committed")}
    seconds = sum(r["requests"] / r["rps"] for r in runs)
    worst = {k: max(r[k] for r in runs) for k in ("p50_us", "p99_us", "max_us", "rss_mb")}
    return {**total, **worst, "rps": total["requests"] / seconds}


def run_exporter(kiosks: int, args: argparse.Namespace) -> list[tuple[str, dict]]:
    with tempfile.TemporaryDirectory() as tmp, fleet_database(args.backend, Path(tmp)) as database:
        workdir = Path(tmp)
        started = time.monotonic()
        keys_file = provision(database, workdir, kiosks)
        print(f"  provisioned {kiosks} kiosks in {time.monotonic() - started:.1f} s", flush=True)
        servers = [start_exporter(database, workdir, args.threads) for _ in range(args.replicas)]
        key_files = split_keys(keys_file, args.replicas)
        name = f"{args.backend} x{args.replicas}" if args.replicas > 1 else args.backend
        label = f"{name} {kiosks:>6} kiosks"
        try:
            rows = [(f"{label}, first contact", first_contact(servers, key_files, kiosks, args))]
            for load_name, rate in ((f"fixed {TARGET_RATE}/s", TARGET_RATE), ("saturated", None)):
                result = load_replicas(servers, key_files, rate, args.seconds, args)
                rows.append((f"{label}, {load_name}", result))
        finally:
            for server in servers:
                server.stop()
        return rows


def run_peer(keys_file_kiosks: int, args: argparse.Namespace) -> list[tuple[str, dict]]:
    with tempfile.TemporaryDirectory() as tmp:
        keys_file = Path(tmp) / "keys.txt"
        keys_file.write_text("".join(f"kk_{n}\n" for n in range(keys_file_kiosks)))
        server = start_hello(args.threads)
        rows = []
        try:
            wrk(server.url, keys_file, seconds=3, connections=args.connections)
            for label, rate in ((f"fixed {TARGET_RATE}/s", TARGET_RATE), ("saturated", None)):
                result = load(server.url, keys_file, rate, args.seconds, args)
                result["rss_mb"], result["peak_rss_mb"] = server.rss_mb()
                rows.append((f"hello-world falcon, {label}", result))
        finally:
            server.stop()
        return rows


def run_vitals(kiosks: int, args: argparse.Namespace) -> None:
    """Saturated ingest with and without device vitals in the body, against the peer, in
    interleaved rounds of one run. Each round runs peer, exporter without vitals, exporter
    with every vital, peer again (each its body): the machine's load drifts by tens of
    percent within a minute today, so each ratio uses the mean of its round's two peer runs."""
    bodies = {"without vitals": PLAIN_BODY, "with every vital": {**PLAIN_BODY, **FULL_VITALS}}
    with tempfile.TemporaryDirectory() as tmp, fleet_database(args.backend, Path(tmp)) as database:
        workdir = Path(tmp)
        keys_file = provision(database, workdir, kiosks, heartbeats=True)
        exporter, peer = start_exporter(database, workdir, args.threads), start_hello(args.threads)

        def saturate(server: object, body: dict) -> dict:
            return wrk(
                server.url, keys_file, seconds=args.seconds, connections=args.connections, body=body
            )

        ratios: dict[str, list[float]] = {name: [] for name in bodies}
        try:
            for body in bodies.values():  # warm-up: every key cached, both bodies seen
                wrk(exporter.url, keys_file, seconds=3, connections=args.connections, body=body)
            for round_ in range(1, args.rounds + 1):
                peers = [saturate(peer, PLAIN_BODY)["rps"]]
                ours = {}
                for name, body in bodies.items():
                    before = counter(exporter.url, "kiosk_exporter_heartbeats_total")
                    ours[name] = result = saturate(exporter, body)
                    committed = counter(exporter.url, "kiosk_exporter_heartbeats_total") - before
                    if committed < result["requests"] - result["errors"]:
                        raise SystemExit(f"{name}: a 2xx answer without a committed heartbeat")
                peers.append(saturate(peer, bodies["with every vital"])["rps"])
                reference = statistics.mean(peers)
                line = []
                for name, result in ours.items():
                    ratios[name].append(result["rps"] / reference)
                    line.append(
                        f"{name} {result['rps']:.0f}/s (p99 {result['p99_us'] / 1000:.0f} ms) "
                        f"{ratios[name][-1]:.2f} x"
                    )
                print(
                    f"  round {round_}: peer {peers[0]:.0f}/{peers[1]:.0f}/s; " + "; ".join(line),
                    flush=True,
                )
        finally:
            exporter.stop()
            peer.stop()
    plain, full = (statistics.median(ratios[name]) for name in bodies)
    print(
        f"{args.backend} {kiosks} kiosks, saturated, median of {args.rounds} rounds "
        f"(every 2xx committed): {plain:.2f} x the peer without vitals, {full:.2f} x with "
        f"every vital ({(full / plain - 1) * 100:+.1f} %)"
    )


def measured(server: Server, run: Callable[[], dict]) -> dict:
    """One wrk run against the service, with its CPU per answer and the commit check."""
    committed = counter(server.url, "kiosk_exporter_heartbeats_total")
    cpu, switches = server.cpu_seconds(), server.context_switches()
    result = run()
    requests = max(result["requests"], 1)
    result["cpu_us"] = (server.cpu_seconds() - cpu) / requests * 1e6
    result["switches"] = (server.context_switches() - switches) / requests
    committed = counter(server.url, "kiosk_exporter_heartbeats_total") - committed
    if committed < result["requests"] - result["errors"]:
        raise SystemExit(f"{server.url}: a 2xx answer without a committed heartbeat")
    return result


def run_against(kiosks: int, args: argparse.Namespace) -> None:
    """This checkout and others (`--against`, e.g. `git worktree`s of older commits) side
    by side against the peer, in interleaved rounds of one run, with the same venv, peer and
    wrk. Each checkout provisions its own database with its own code and runs its service
    from its own tree. Each round: peer, every service saturated (the order rotates from
    round to round), peer again, then every service paced (unless --no-paced); a ratio uses
    the mean of its round's two peer runs, because the machine's load drifts within a
    minute. Per heartbeat, the server process's CPU time and its threads' voluntary context
    switches (from /proc) move far less with the machine's load than the rates do."""
    roots = {"this checkout": ROOT, **{str(path): path.resolve() for path in args.against}}
    figures: dict[str, dict[str, list[float]]] = {
        name: {"ratio": [], "cpu": [], "switches": [], "p99": []} for name in roots
    }
    with contextlib.ExitStack() as stack:
        servers, keys = {}, {}
        for name, root in roots.items():
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            database = stack.enter_context(fleet_database(args.backend, tmp))
            keys[name] = provision_checkout(root, database, tmp, kiosks, heartbeats=True)
            servers[name] = start_exporter(database, tmp, args.threads, root=root)
            stack.callback(servers[name].stop)
            first_contact([servers[name]], [keys[name]], kiosks, args)  # every key cached
        peer = start_hello(args.threads)
        stack.callback(peer.stop)

        def saturate(name: str | None) -> dict:
            server = servers[name] if name else peer
            run = lambda: wrk(  # noqa: E731
                server.url,
                keys[name or "this checkout"],
                seconds=args.seconds,
                connections=args.connections,
            )
            return measured(server, run) if name else run()

        saturate(None)  # warm-up
        for round_ in range(args.rounds):
            order = list(roots)[round_ % len(roots) :] + list(roots)[: round_ % len(roots)]
            peers = [saturate(None)["rps"]]
            results = {name: saturate(name) for name in order}
            peers.append(saturate(None)["rps"])
            line = {}
            for name in order:  # paced in the same rotated order
                ratio = results[name]["rps"] / statistics.mean(peers)
                figures[name]["ratio"].append(ratio)
                figures[name]["cpu"].append(results[name]["cpu_us"])
                figures[name]["switches"].append(results[name]["switches"])
                result = results[name]
                text = (
                    f"{result['rps']:.0f}/s {ratio:.2f} x, {result['cpu_us']:.0f} us CPU, "
                    f"{result['switches']:.2f} switches"
                )
                if not args.no_paced:
                    paced = measured(
                        servers[name],
                        lambda name=name: paced_wrk(
                            servers[name].url,
                            keys[name],
                            seconds=args.seconds,
                            connections=PACED_CONNECTIONS,
                            rate=TARGET_RATE,
                        ),
                    )
                    figures[name]["p99"].append(paced["p99_us"] / 1000)
                    text += f", paced {paced['rps']:.0f}/s p99 {paced['p99_us'] / 1000:.1f} ms"
                line[name] = f"{name}: {text}"
            print(
                f"  round {round_ + 1}: peer {peers[0]:.0f}/{peers[1]:.0f}/s; "
                + "; ".join(line[name] for name in roots),
                flush=True,
            )
    print(f"{args.backend} {kiosks} kiosks, {args.rounds} rounds (every 2xx committed):")
    for name, values in figures.items():
        spread = {
            k: f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"
            for k, v in values.items()
            if v
        }
        paced = f"; paced {TARGET_RATE}/s p99 ms {spread['p99']}" if "p99" in spread else ""
        print(
            f"  {name}: saturated {spread['ratio']} x the peer; "
            f"CPU us/heartbeat {spread['cpu']}; voluntary context switches/heartbeat "
            f"{spread['switches']}{paced}"
        )


def report(rows: list[tuple[str, dict]]) -> None:
    print(
        f"\n{'run':<42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'2xx=commit':>10} {'RSS MiB':>8}"
    )
    for label, r in rows:
        committed = r.get("committed")
        answered = r["requests"] - r["errors"]
        check = (
            "-"
            if committed is None
            else ("yes" if committed >= answered else f"NO {committed:.0f}/{answered}")
        )
        print(
            f"{label:<42} {r['rps']:>8.0f} {r['p50_us'] / 1000:>8.1f} {r['p99_us'] / 1000:>8.1f} "
            f"{r['errors']:>7} {check:>10} {r['rss_mb']:>8.0f}"
        )
    peer = next(
        (r["rps"] for label, r in rows if label.startswith("hello") and "saturated" in label), None
    )
    for label, r in rows:
        if peer and not label.startswith("hello") and "saturated" in label:
            print(f"{label}: {r['rps'] / peer:.2f} x the hello-world ceiling ({peer:.0f} req/s)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kiosks", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--threads",
        type=int,
        default=16,
        help="waitress threads for both servers (service default)",
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "mysql"], default="sqlite")
    parser.add_argument("--replicas", type=int, default=1, help="service processes (server DBs)")
    parser.add_argument("--no-peer", action="store_true", help="skip the hello-world peer")
    parser.add_argument(
        "--vitals",
        action="store_true",
        help="instead: saturated ingest with and without device vitals vs the peer, interleaved",
    )
    parser.add_argument(
        "--against",
        type=Path,
        nargs="+",
        help="instead: this checkout vs other checkouts' services (e.g. git worktrees of older "
        "commits) vs the peer, saturated and paced, interleaved",
    )
    parser.add_argument("--no-paced", action="store_true", help="--against: saturated only")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --vitals / --against")
    args = parser.parse_args()
    if args.against:
        for kiosks in args.kiosks:
            run_against(kiosks, args)
        return
    if args.vitals:
        for kiosks in args.kiosks:
            run_vitals(kiosks, args)
        return
    rows = []
    for kiosks in args.kiosks:
        print(f"exporter on {args.backend} with {kiosks} kiosks", flush=True)
        rows += run_exporter(kiosks, args)
    if not args.no_peer:
        print("peer: hello-world falcon on the same waitress settings", flush=True)
        rows += run_peer(max(args.kiosks), args)
    report(rows)


if __name__ == "__main__":
    main()
