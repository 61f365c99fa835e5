"""Shared benchmark plumbing: provision a fleet, run servers as real processes, drive wrk."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.clock import utc_now  # noqa: E402
from exporter.devices import Role, SimulatedDevice  # noqa: E402
from exporter.keys import hash_secret  # noqa: E402
from exporter.records import HeartbeatWrite  # noqa: E402
from exporter.store import open_store  # noqa: E402
from exporter.vitals import snapshot  # noqa: E402

# Every device vital set, as a healthy simulated tablet sends them (issue 16).
FULL_VITALS = SimulatedDevice(Role.HEALTHY).readings(0)
PLAIN_BODY = {"app_version": "1.0.0", "device_info": "Android/11 - Samsung Galaxy Tab A8"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def fleet_database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh database URL: a SQLite file, or a throwaway database on the local server."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    from tests.support.databases import fresh

    with fresh(backend) as url:
        yield url


def provision(
    database: str,
    workdir: Path,
    kiosks: int,
    *,
    heartbeats: bool = False,
    vitals: bool = False,
    at: datetime | None = None,
) -> Path:
    """Create `kiosks` kiosks through the store (one transaction); write their keys to a file.
    `vitals`: each heartbeat carries every device vital; `at`: when they were sent (now)."""
    store = open_store(database, upgrade=True)
    created = store.import_kiosks([(f"kiosk-{n:06d}", f"Building {n % 40}") for n in range(kiosks)])
    if heartbeats:
        now = utc_now() if at is None else at
        writes = [
            HeartbeatWrite(
                k.id,
                hash_secret(key),
                now,
                "1.0.0",
                "Android/11 - Samsung Galaxy Tab A8",
                snapshot(FULL_VITALS, now) if vitals else None,
            )
            for k, key in created
        ]
        for start in range(0, len(writes), 500):
            store.record_heartbeats(writes[start : start + 500], min_interval_seconds=0)
    store.close()
    keys_file = workdir / "keys.txt"
    keys_file.write_text("".join(key + "\n" for _, key in created))
    return keys_file


def provision_checkout(
    root: Path, database: str, workdir: Path, kiosks: int, *, heartbeats: bool = False
) -> Path:
    """provision() run by another checkout's own code (its migrations, its store), in a
    process whose imports come from that checkout: a before/after comparison."""
    if root == ROOT:
        return provision(database, workdir, kiosks, heartbeats=heartbeats)
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
        "from common import provision; "
        "provision(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), heartbeats=sys.argv[5] == '1')"
    )
    arguments = [str(root / "bench"), database, str(workdir), str(kiosks), str(int(heartbeats))]
    environment = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run(
        [sys.executable, "-c", script, *arguments], cwd=root, env=environment, check=True
    )
    return workdir / "keys.txt"


def split_keys(keys_file: Path, parts: int) -> list[Path]:
    """One key file per replica, so each wrk drives its own share of the fleet."""
    keys = keys_file.read_text().splitlines()
    files = []
    for part in range(parts):
        path = keys_file.with_name(f"keys-{part}.txt")
        path.write_text("".join(k + "\n" for k in keys[part::parts]))
        files.append(path)
    return files


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> tuple[float, float]:
        """(current RSS, peak RSS) in MiB, from /proc."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        values = {
            k: int(v.split()[0]) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(.+)$", status, re.M)
        }
        return values["VmRSS"] / 1024, values["VmHWM"] / 1024

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the server process so far, from /proc: per request,
        it moves far less with the machine's load than requests/s does."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def context_switches(self) -> int:
        """Voluntary context switches of all the server's threads so far: a thread that
        blocks (a lock, a Condition, a pipe) and is woken again. Per request it moves with
        the code's hand-offs between threads, hardly with the machine's load."""
        total = 0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that just ended
                status = (task / "status").read_text()
                total += int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M)[1])
        return total

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def start_exporter(
    database: str,
    workdir: Path,
    threads: int,
    env: dict[str, str] | None = None,
    serve_args: list[str] | None = None,
    root: Path = ROOT,
) -> Server:
    """The service as a process; `root` another checkout of it (a before/after comparison)."""
    port = free_port()
    log = (workdir / "server.log").open("ab")
    variables = {
        **os.environ,
        "KIOSK_EXPORTER_MIN_HEARTBEAT_INTERVAL_SECONDS": "0",
        "KIOSK_EXPORTER_THREADS": str(threads),
        "KIOSK_EXPORTER_CONNECTION_LIMIT": "2000",
        **({} if root == ROOT else {"PYTHONPATH": str(root)}),
        **(env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "exporter.cli",
        "--database",
        database,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *(serve_args or []),
    ]
    process = subprocess.Popen(command, stdout=log, stderr=log, env=variables, cwd=root)
    try:
        return _ready(Server(process, port))
    except RuntimeError as exc:
        tail = (workdir / "server.log").read_text(errors="replace").splitlines()[-5:]
        raise RuntimeError(f"{exc} ({root}): " + " | ".join(tail)) from None


def start_hello(threads: int) -> Server:
    port = free_port()
    command = [
        sys.executable,
        str(ROOT / "bench" / "hello_app.py"),
        "--port",
        str(port),
        "--threads",
        str(threads),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
    )
    return _ready(Server(process, port))


def _ready(server: Server, timeout: float = 30) -> Server:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                return server
        except OSError:
            if server.process.poll() is not None:
                raise RuntimeError("server exited during start-up") from None
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def paced_wrk(url: str, keys_file: Path, *, seconds: int, connections: int, rate: int) -> dict:
    """wrk at about `rate` requests/s: a short calibration run measures the latency that
    the pacing delay must leave room for."""
    probe = wrk(url, keys_file, seconds=3, connections=connections, rate=rate)
    return wrk(
        url,
        keys_file,
        seconds=seconds,
        connections=connections,
        rate=rate,
        latency_ms=probe["p50_us"] / 1000,
    )


def wrk(
    url: str,
    keys_file: Path,
    *,
    seconds: int,
    connections: int,
    rate: int | None = None,
    latency_ms: float = 0.0,
    start: int = 0,
    body: dict[str, object] | None = None,
) -> dict[str, float]:
    """Run wrk with the heartbeat script; returns its WRK_RESULT figures plus requests/s."""
    threads = 2
    env = {
        **os.environ,
        "BODY": json.dumps(body or PLAIN_BODY),
        "KEYS_FILE": str(keys_file),
        "WRK_THREADS": str(threads),
        "CONNECTIONS": str(connections),
        "RATE": str(rate or 0),
        "LATENCY_MS": str(latency_ms),
        "START": str(start),
    }
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(ROOT / "bench" / "heartbeat.lua"),
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    result = json.loads(output.split("WRK_RESULT ", 1)[1].splitlines()[0])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = sum(
        result[k]
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return result


def counter(url: str, name: str) -> float:
    """A counter from the service's own /metrics (text format)."""
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=60) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise KeyError(name)
