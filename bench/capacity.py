"""The capacity model's inputs on PostgreSQL, and a simulation to check it against.

    .venv/bin/python bench/capacity.py [--kiosks 100000] [--rate 1000] [--seconds 30]

On a PostgreSQL of its own (KIOSK_TEST_POSTGRESQL_URL=postgresql://postgres@127.0.0.1:PORT/test)
the "whole server" figures (WAL, the server's own processes) are this run's alone.

1. per heartbeat, at a paced rate through wrk: the service's CPU (its whole process tree),
   the database's CPU (the backends of this database; the server's shared writers are shown
   apart, since other databases on the server use them too), WAL bytes and table size;
2. the simulation: `--replicas` serving processes and the fleet simulator (the agent's own
   protocol, one simulator per replica) at the same rate, then the CPU the model predicts
   from (1) beside the CPU measured.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, Server, counter, fleet_database, paced_wrk, provision, start_exporter

TICKS = os.sysconf("SC_CLK_TCK")


def tree_pids(pid: int) -> list[int]:
    pids = [pid]
    for p in pids:
        for task in Path(f"/proc/{p}/task").iterdir():
            with contextlib.suppress(OSError):
                pids += [int(c) for c in (task / "children").read_text().split()]
    return pids


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICKS


class Postgres:
    """Figures from the server: our backends' CPU, WAL position, the table's size."""

    def __init__(self, url: str) -> None:
        import psycopg2

        from exporter.config import parse_database_url

        self.conn = psycopg2.connect(**parse_database_url(url).params)
        self.conn.autocommit = True

    def one(self, sql: str) -> object:
        with self.conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()[0]

    def backends(self) -> list[int]:
        with self.conn.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            return [row[0] for row in cursor.fetchall()]

    def shared(self) -> list[int]:
        with self.conn.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'"
            )
            return [row[0] for row in cursor.fetchall()]

    def sample(self) -> dict[str, float]:
        return {
            "backends": cpu_seconds(self.backends()),
            "shared": cpu_seconds(self.shared()),
            "wal": float(self.one("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")),  # type: ignore[arg-type]
            "table": float(self.one("SELECT pg_total_relation_size('kiosks')")),  # type: ignore[arg-type]
            "database": float(self.one("SELECT pg_database_size(current_database())")),  # type: ignore[arg-type]
        }


def committed(servers: list[Server]) -> float:
    return sum(counter(s.url, "kiosk_exporter_heartbeats_total") for s in servers)


def measure(servers: list[Server], db: Postgres, run) -> dict[str, float]:
    pids = [p for s in servers for p in tree_pids(s.process.pid)]
    before_db, before_cpu, before_n = db.sample(), cpu_seconds(pids), committed(servers)
    started = time.monotonic()
    run()
    seconds = time.monotonic() - started
    after_db, after_cpu, after_n = db.sample(), cpu_seconds(pids), committed(servers)
    n = after_n - before_n
    return {
        "heartbeats": n,
        "rate": n / seconds,
        "service_cpu_s": after_cpu - before_cpu,
        "db_cpu_s": after_db["backends"] - before_db["backends"],
        "shared_cpu_s": after_db["shared"] - before_db["shared"],
        "wal_bytes": after_db["wal"] - before_db["wal"],
        "table_bytes": after_db["table"],
        "database_bytes": after_db["database"],
        "seconds": seconds,
    }


def per_heartbeat(m: dict[str, float]) -> str:
    n = max(m["heartbeats"], 1)
    return (
        f"{m['heartbeats']:.0f} heartbeats at {m['rate']:,.0f}/s: service "
        f"{m['service_cpu_s'] / n * 1e6:.0f} us CPU, database backends "
        f"{m['db_cpu_s'] / n * 1e6:.0f} us, PostgreSQL shared processes "
        f"{m['shared_cpu_s'] / n * 1e6:.0f} us (whole server), WAL {m['wal_bytes'] / n:.0f} B "
        f"(whole server); kiosks table {m['table_bytes'] / 1e6:.1f} MB, database "
        f"{m['database_bytes'] / 1e6:.1f} MB"
    )


def simulate(servers: list[Server], database: str, kiosks: int, interval: float, seconds: float):
    """One simulator per replica, each with its share of the fleet; returns a runner."""

    def run() -> None:
        share = kiosks // len(servers)
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "exporter.cli",
                    "--database",
                    database,
                    "simulate",
                    "--url",
                    server.url,
                    "--kiosks",
                    str(share),
                    "--interval",
                    str(interval),
                    "--duration",
                    str(seconds),
                    "--ramp-up",
                    str(interval),
                    "--concurrency",
                    "32",
                    "--name-prefix",
                    f"Sim{n}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=ROOT,
            )
            for n, server in enumerate(servers)
        ]
        for process in processes:
            process.wait(seconds + 600)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kiosks", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--sim-kiosks", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fleet_database("postgresql", Path(tmp)) as url:
        workdir = Path(tmp)
        keys = provision(url, workdir, args.kiosks, heartbeats=True)
        db = Postgres(url)
        env = {"KIOSK_EXPORTER_HEARTBEAT_INTERVAL_SECONDS": "60"}
        server = start_exporter(url, workdir, 16, env)
        try:
            paced_wrk(server.url, keys, seconds=5, connections=64, rate=args.rate)  # warm-up
            m = measure(
                [server],
                db,
                lambda: paced_wrk(
                    server.url, keys, seconds=args.seconds, connections=64, rate=args.rate
                ),
            )
        finally:
            server.stop()
        print(f"1. one process, wrk paced at {args.rate}/s: {per_heartbeat(m)}")
        interval = args.sim_kiosks / args.rate  # the simulated fleet sends `rate` per second
        servers = [
            start_exporter(
                url,
                workdir,
                16,
                {
                    "KIOSK_EXPORTER_HEARTBEAT_INTERVAL_SECONDS": str(max(1, round(interval))),
                    "KIOSK_EXPORTER_ONLINE_THRESHOLD_SECONDS": str(5 * max(1, round(interval))),
                },
            )
            for _ in range(args.replicas)
        ]
        try:
            sim = measure(
                servers,
                db,
                simulate(servers, url, args.sim_kiosks, interval, args.seconds + interval),
            )
        finally:
            for server in servers:
                server.stop()
        n = sim["heartbeats"]
        print(
            f"2. simulation: {args.replicas} replicas, {args.sim_kiosks:,} simulated tablets "
            f"every {interval:g} s: {per_heartbeat(sim)}"
        )
        for m_ in (m, sim):
            m_["db_total_cpu_s"] = m_["db_cpu_s"] + m_["shared_cpu_s"]
        for what, key in (
            ("service", "service_cpu_s"),
            ("database backends", "db_cpu_s"),
            ("database, its own writers included", "db_total_cpu_s"),
        ):
            predicted = m[key] / max(m["heartbeats"], 1) * n
            print(
                f"   {what} CPU: model {predicted:.1f} s, measured {sim[key]:.1f} s "
                f"({sim[key] / predicted:.2f}x the model)"
            )


if __name__ == "__main__":
    main()
