"""Fleet simulator: many tablets speaking the real protocol, for load tests and demos.

Each simulated tablet is the agent's own protocol code (HeartbeatClient + Schedule), so the
simulator exercises exactly what real kiosks send. A small thread pool serves thousands of
tablets: one thread per tablet would not scale to a 10,000-kiosk rehearsal.
"""

from __future__ import annotations

import argparse
import enum
import heapq
import json
import logging
import random
import secrets
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import schema
from .agent import HeartbeatClient, HeartbeatResult, Outcome, Schedule, build_payload, utc_now
from .config import Settings
from .devices import SCENARIO_ROLES, SimulatedDevice
from .store import open_store

log = logging.getLogger(__name__)

DEVICES = (
    "Android/11 - Samsung Galaxy Tab A8",
    "Android/10 - Lenovo Tab M10",
    "Android/12 - Samsung Galaxy Tab A7 Lite",
    "Android/13 - Lenovo Tab P11",
)
BUILDINGS = ("Building A", "Building B", "Building C", "Building D")


class Behaviour(enum.Enum):
    STEADY = "steady"  # a heartbeat every interval
    SILENT = "silent"  # one heartbeat, then nothing: shows up online, then turns offline
    FLAPPING = "flapping"  # alternately sends and keeps quiet for a flap period each


@dataclass(frozen=True)
class FleetPlan:
    kiosks: int
    silent_fraction: float = 0.0
    flap_fraction: float = 0.0
    outdated_fraction: float = 0.0
    app_version: str = "1.0.0"
    outdated_version: str = "0.9.0"
    name_prefix: str = "Sim"
    seed: int | None = None
    # "vitals": tablets send device vitals, each playing a role of devices.SCENARIO_ROLES.
    scenario: str | None = None
    speed: float = 1.0


@dataclass
class Tablet:
    kiosk_id: int
    name: str
    behaviour: Behaviour
    app_version: str
    device_info: str
    client: HeartbeatClient = field(repr=False)
    schedule: Schedule = field(repr=False)
    sent: int = 0
    device: SimulatedDevice | None = None

    def describe(self) -> dict[str, object]:
        """What is printed for operators and tests: never the key."""
        return {
            "id": self.kiosk_id,
            "name": self.name,
            "behaviour": self.behaviour.value,
            "app_version": self.app_version,
            "vitals": self.device.role.value if self.device else None,
        }


def assign_behaviours(plan: FleetPlan, rng: random.Random) -> list[tuple[Behaviour, bool]]:
    """(behaviour, outdated) per tablet: exact counts from the fractions, shuffled positions."""
    count = plan.kiosks
    silent = round(count * plan.silent_fraction)
    flapping = min(round(count * plan.flap_fraction), count - silent)
    behaviours = [Behaviour.SILENT] * silent + [Behaviour.FLAPPING] * flapping
    behaviours += [Behaviour.STEADY] * (count - len(behaviours))
    outdated = round(count * plan.outdated_fraction)
    old = [True] * outdated + [False] * (count - outdated)
    rng.shuffle(behaviours)
    rng.shuffle(old)
    return list(zip(behaviours, old, strict=True))


def is_quiet(behaviour: Behaviour, sent: int, elapsed: float, flap_period: float) -> bool:
    """Whether a tablet keeps quiet now; flapping tablets start in their sending phase."""
    if behaviour is Behaviour.SILENT:
        return sent >= 1
    if behaviour is Behaviour.FLAPPING:
        return int(elapsed // flap_period) % 2 == 1
    return False


def provision(
    database_url: str,
    plan: FleetPlan,
    url: str,
    *,
    interval: float,
    timeout: float = 5.0,
    rng: random.Random | None = None,
) -> list[Tablet]:
    """Create the kiosks through the store, as `kiosk import` does: one all-or-nothing batch."""
    rng = rng or random.Random(plan.seed)
    rows = [
        (f"{plan.name_prefix}-{n:05d}", f"Simulated - {BUILDINGS[n % len(BUILDINGS)]}")
        for n in range(1, plan.kiosks + 1)
    ]
    store = open_store(database_url)
    try:
        created = store.import_kiosks(rows, simulated=True)
    finally:
        store.close()
    return [
        Tablet(
            kiosk_id=record.id,
            name=record.name,
            behaviour=behaviour,
            app_version=plan.outdated_version if old else plan.app_version,
            device_info=rng.choice(DEVICES),
            client=HeartbeatClient(url, key, timeout_seconds=timeout),
            schedule=Schedule(interval, rand=rng.random),
            device=_device(plan, n, rng),
        )
        for n, ((record, key), (behaviour, old)) in enumerate(
            zip(created, assign_behaviours(plan, rng), strict=True)
        )
    ]


def _device(plan: FleetPlan, n: int, rng: random.Random) -> SimulatedDevice | None:
    if plan.scenario != "vitals":
        return None
    role = SCENARIO_ROLES[n % len(SCENARIO_ROLES)]
    return SimulatedDevice(role, plan.speed, random.Random(rng.random()))


class Fleet:
    """Runs tablets from a heap of due times on a small pool; start() / stop() like the agent."""

    def __init__(
        self,
        tablets: Sequence[Tablet],
        *,
        flap_period: float,
        concurrency: int = 16,
        ramp_up: float = 0.0,
        on_result: Callable[[Tablet, HeartbeatResult], None] | None = None,
    ) -> None:
        self.tablets = list(tablets)
        self.outcomes: Counter[Outcome] = Counter()
        self._flap_period = flap_period
        self._concurrency = concurrency
        self._on_result = on_result
        self._ramp_up = ramp_up
        self._started = time.monotonic()
        self._due: list[tuple[float, int]] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._started = time.monotonic()
        count = len(self.tablets)
        # First heartbeats spread over the ramp-up; ties broken by index, never by Tablet.
        self._due = [(self._started + self._ramp_up * n / count, n) for n in range(count)]
        self._thread = threading.Thread(target=self._run, name="fleet", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="tablet") as pool:
            while (index := self._next_due()) is not None:
                pool.submit(self._beat, index)
            pool.shutdown(wait=True, cancel_futures=True)

    def _next_due(self) -> int | None:
        """Block until a tablet is due (or the fleet stops) and pop it."""
        with self._cond:
            while not self._stopping:
                wait = self._due[0][0] - time.monotonic() if self._due else None
                if wait is not None and wait <= 0:
                    return heapq.heappop(self._due)[1]
                self._cond.wait(wait)
            return None

    def _beat(self, index: int) -> None:
        tablet = self.tablets[index]
        elapsed = time.monotonic() - self._started
        device = tablet.device
        off = device is not None and device.switched_off(elapsed)
        if off or is_quiet(tablet.behaviour, tablet.sent, elapsed, self._flap_period):
            # Check again when the quiet phase may end (flapping) or an interval later.
            until_phase = self._flap_period - elapsed % self._flap_period
            self._reschedule(index, min(tablet.schedule.interval, until_phase + 0.01))
            return
        vitals = device.readings(elapsed) if device is not None else None
        payload = build_payload(tablet.app_version, tablet.device_info, utc_now(), vitals)
        result = tablet.client.send(payload)
        tablet.sent += result.outcome is Outcome.SENT
        with self._cond:
            self.outcomes[result.outcome] += 1
        if self._on_result is not None:
            self._on_result(tablet, result)
        self._reschedule(index, tablet.schedule.next_delay(result))

    def _reschedule(self, index: int, delay: float) -> None:
        with self._cond:
            heapq.heappush(self._due, (time.monotonic() + delay, index))
            self._cond.notify()

    def summary(self) -> str:
        with self._cond:
            counts = ", ".join(f"{o.value} {n}" for o, n in sorted(self.outcomes.items(), key=str))
        return f"{len(self.tablets)} tablets: {counts or 'nothing sent yet'}"


# -- command line -------------------------------------------------------------------------------


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="service root, e.g. http://127.0.0.1:8000")
    parser.add_argument("--kiosks", type=int, required=True, help="number of tablets to create")
    for name, text in (
        ("silent", "that send once, then go silent (turn offline)"),
        ("flap", "that alternate between sending and silence"),
        ("outdated", "that report --outdated-version"),
    ):
        parser.add_argument(f"--{name}-fraction", type=_fraction, default=0.0, help=text)
    parser.add_argument("--app-version", default="1.0.0")
    parser.add_argument("--outdated-version", default="0.9.0")
    parser.add_argument("--interval", type=float, default=60.0, help="until the server says")
    parser.add_argument("--flap-period", type=float, help="seconds per phase (6 x interval)")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds; 0 until Ctrl-C")
    parser.add_argument("--ramp-up", type=float, default=0.0, help="spread first heartbeats")
    parser.add_argument("--concurrency", type=int, default=16, help="parallel HTTP requests")
    parser.add_argument("--name-prefix", help="kiosk names PREFIX-00001... (default random)")
    parser.add_argument("--seed", type=int, help="for a reproducible assignment")
    parser.add_argument(
        "--scenario",
        choices=("vitals",),
        help="vitals: tablets send device vitals; in turn they unplug and drain, fill their "
        "storage, reboot in a loop, leave the app, or stay healthy",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=8.0,
        help="drains and fills run this many times faster than real life (default 8)",
    )
    parser.add_argument("--json", action="store_true", help="print the fleet as JSON")


def plan_from_args(args: argparse.Namespace) -> FleetPlan:
    if args.kiosks < 1 or args.interval < 1 or args.concurrency < 1 or args.speed < 1:
        raise ValueError("--kiosks, --interval, --concurrency and --speed must be at least 1")
    return FleetPlan(
        kiosks=args.kiosks,
        silent_fraction=args.silent_fraction,
        flap_fraction=args.flap_fraction,
        outdated_fraction=args.outdated_fraction,
        app_version=args.app_version,
        outdated_version=args.outdated_version,
        name_prefix=args.name_prefix or f"Sim-{secrets.token_hex(3)}",
        seed=args.seed,
        scenario=args.scenario,
        speed=args.speed,
    )


def main_from_args(args: argparse.Namespace, settings: Settings) -> int:
    """Provision, print the fleet on stdout, run until --duration or a signal, summarise."""
    try:
        plan = plan_from_args(args)
        HeartbeatClient(args.url, "probe")  # a bad URL fails before any kiosk is created
        if getattr(args, "database", None) is None:
            raise ValueError(
                "name the database to create the simulated kiosks in with --database: the one "
                "the service at --url uses, a throw-away one (simulated kiosks page like real "
                "ones; `kiosk remove --simulated` removes them)"
            )
    except ValueError as exc:
        print(f"kiosk-exporter simulate: {exc}", file=sys.stderr)
        return 2
    schema.require_existing(settings.database_url)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    tablets = provision(settings.database, plan, args.url, interval=args.interval)
    _print_fleet(tablets, args.json)
    fleet = Fleet(
        tablets,
        flap_period=args.flap_period or 6 * args.interval,
        concurrency=args.concurrency,
        ramp_up=args.ramp_up,
    )
    run_until_signalled(fleet, args.duration)
    log.info("simulation stopped: %s", fleet.summary())
    return 0


def _print_fleet(tablets: Sequence[Tablet], as_json: bool) -> None:
    rows = [tablet.describe() for tablet in tablets]
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            vitals = f"\t{row['vitals']}" if row["vitals"] else ""
            print(f"{row['id']}\t{row['name']}\t{row['behaviour']}\t{row['app_version']}{vitals}")
    sys.stdout.flush()


def run_until_signalled(fleet: Fleet, duration: float, report_every: float = 30.0) -> None:
    """Run the fleet until SIGTERM/SIGINT or `duration` seconds (0: no limit)."""
    signalled = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda signum, frame: signalled.set())
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    deadline = time.monotonic() + duration if duration > 0 else None
    fleet.start()
    try:
        next_report = time.monotonic() + report_every
        while not signalled.wait(0.2):
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if now >= next_report:
                log.info("simulation: %s", fleet.summary())
                next_report = now + report_every
    finally:
        fleet.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
