"""Open-loop heartbeats with Poisson arrivals: the latency a tablet sees, not wrk's lockstep.

    .venv/bin/python bench/poisson.py URL KEYS_FILE --rate 200 --seconds 10

Arrivals are drawn up front (exponential gaps, fixed seed): each heartbeat is sent at its
instant on an idle keep-alive connection (a new one when all are busy), and its latency is
counted from that instant, so a stalled server shows as latency instead of as fewer
requests (no coordinated omission). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from urllib.parse import urlsplit

BODY = b'{"app_version":"1.0.0","device_info":"Android/11 - Samsung Galaxy Tab A8"}'


class Connections:
    """Idle keep-alive connections to the server; opened on demand."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle:
            return self.idle.pop()
        return await asyncio.open_connection(self.host, self.port)


async def heartbeat(pool: Connections, key: str) -> int:
    reader, writer = await pool.take()
    request = (
        f"POST /kiosk/heartbeat HTTP/1.1\r\nHost: {pool.host}\r\nX-Kiosk-API-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    writer.write(request)
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    pool.idle.append((reader, writer))
    return int(status_line.split()[1])


async def run(url: str, keys: list[str], rate: float, seconds: float, seed: int) -> dict:
    parts = urlsplit(url)
    pool = Connections(parts.hostname or "127.0.0.1", parts.port or 80)
    rng = random.Random(seed)
    arrivals, at = [], 0.0
    while (at := at + rng.expovariate(rate)) < seconds:
        arrivals.append(at)
    latencies: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2

    async def one(n: int, offset: float) -> None:
        nonlocal errors
        await asyncio.sleep(max(0.0, start + offset - loop.time()))
        try:
            status = await asyncio.wait_for(heartbeat(pool, keys[n % len(keys)]), 30)
        except (OSError, asyncio.TimeoutError, ValueError, IndexError):
            errors += 1
            return
        latencies.append(loop.time() - (start + offset))
        errors += status != 200

    began = time.perf_counter()
    await asyncio.gather(*(one(n, offset) for n, offset in enumerate(arrivals)))
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0
        )

    return {
        "sent": len(arrivals),
        "answered": len(latencies),
        "errors": errors,
        "rate": len(arrivals) / (time.perf_counter() - began),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] * 1000 if latencies else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("keys_file")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--offset", type=int, default=0, help="first key to use")
    args = parser.parse_args()
    with open(args.keys_file) as handle:
        keys = handle.read().split()
    keys = keys[args.offset :] + keys[: args.offset]
    result = asyncio.run(run(args.url, keys, args.rate, args.seconds, args.seed))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
