"""One-command demo: the real service on a throwaway SQLite file with the original four kiosks.

Three kiosks are kept online by in-process agents (the real protocol over real HTTP);
Kiosk-Floor2 is seeded with a heartbeat 15 minutes old and stays silent, so the back office
and /metrics show 3 of 4 online, as in the original design's mock-up.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from .agent import AgentSettings, HeartbeatAgent, utc_now
from .config import Settings
from .devices import Role, SimulatedDevice
from .store import open_store
from .vitals import snapshot

log = logging.getLogger(__name__)

# (name, location, device) from the original design; the last one is the silent kiosk.
DEMO_KIOSKS = (
    ("Kiosk-Entrance", "Building A - Main Entrance", "Android/11 - Samsung Galaxy Tab A8"),
    ("Kiosk-Cafeteria", "Building B - Floor 1", "Android/10 - Lenovo Tab M10"),
    ("Kiosk-Exit", "Building A", "Android/11 - Samsung Galaxy Tab A8"),
    ("Kiosk-Floor2", "Building C - Floor 2", "Android/10 - Lenovo Tab M10"),
)
SILENT_KIOSK = "Kiosk-Floor2"
SILENT_FOR = timedelta(minutes=15)
APP_VERSION = "1.0.0"

# serve(settings, on_listening): runs until a signal; calls on_listening once the port is bound.
Serve = Callable[[Settings, Callable[[], None]], int]


@dataclass(frozen=True)
class DemoKiosk:
    id: int
    name: str
    location: str
    device_info: str
    api_key: str = field(repr=False)

    @property
    def silent(self) -> bool:
        return self.name == SILENT_KIOSK


def provision(database_url: str, now: datetime) -> tuple[list[DemoKiosk], str]:
    """Create the four kiosks and a back-office token through the store, as operators do."""
    store = open_store(database_url)
    try:
        kiosks = []
        for name, location, device in DEMO_KIOSKS:
            record, key = store.add_kiosk(name, location, now=now - 2 * SILENT_FOR)
            kiosks.append(DemoKiosk(record.id, name, location, device, key))
            if name == SILENT_KIOSK:
                store.record_heartbeat(
                    record.id,
                    received_at=now - SILENT_FOR,
                    app_version=APP_VERSION,
                    device_info=device,
                    vitals=snapshot(SimulatedDevice(Role.HEALTHY).readings(0), now - SILENT_FOR),
                )
        _, token = store.add_token("demo back office", now=now)
    finally:
        store.close()
    return kiosks, token


def demo_settings(settings: Settings, directory: Path, host: str, port: int) -> Settings:
    """The caller's settings (thresholds, intervals) on a fresh database and a local address."""
    return replace(
        settings,
        database=f"sqlite:///{directory / 'demo.db'}",
        host=host,
        port=port or free_port(host),
        workers=1,  # one process: the demo's agents run beside the service it starts
    )


def free_port(host: str) -> int:
    """The demo must know its port before serving, to print it and point the agents at it."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def base_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "", "::") else settings.host
    return f"http://{host}:{settings.port}"


def run(
    settings: Settings,
    serve: Serve,
    *,
    host: str,
    as_json: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Provision, serve in the foreground with `serve` until SIGINT/SIGTERM, then clean up."""
    with tempfile.TemporaryDirectory(prefix="kiosk-demo-") as directory:
        demo = demo_settings(settings, Path(directory), host, settings.port)
        kiosks, token = provision(demo.database, utc_now())
        agents = [_agent(demo, kiosk) for kiosk in kiosks if not kiosk.silent]

        def start_agents() -> None:
            # Only once our own socket is bound: on a busy port serve() fails before this,
            # so no agent ever posts to whatever else listens there.
            for agent in agents:
                agent.start()
            if as_json:
                print_json(demo, kiosks, token, out)
            else:
                print_banner(demo, kiosks, token, out)

        try:
            return serve(demo, start_agents)
        except KeyboardInterrupt:
            return 0
        finally:
            for agent in agents:
                agent.stop()


def _agent(settings: Settings, kiosk: DemoKiosk) -> HeartbeatAgent:
    """An agent whose tablet reports healthy vitals (charging, storage to spare, app on
    screen): the demo shows the vitals without firing their alerts."""
    device, started = SimulatedDevice(Role.HEALTHY), time.monotonic()
    return HeartbeatAgent(
        AgentSettings(
            url=base_url(settings),
            api_key=kiosk.api_key,
            app_version=APP_VERSION,
            device_info=kiosk.device_info,
            interval_seconds=settings.heartbeat_interval_seconds,
        ),
        vitals=lambda: device.readings(time.monotonic() - started),
    )


def print_json(settings: Settings, kiosks: list[DemoKiosk], token: str, out: TextIO) -> None:
    """The banner's facts as one JSON line, for scripts that drive the demo."""
    document = {
        "service": base_url(settings),
        "token": token,
        "kiosks": [
            {
                "id": k.id,
                "name": k.name,
                "location": k.location,
                "api_key": k.api_key,
                "silent": k.silent,
            }
            for k in kiosks
        ],
    }
    out.write(json.dumps(document) + "\n")
    out.flush()


def print_banner(settings: Settings, kiosks: list[DemoKiosk], token: str, out: TextIO) -> None:
    url = base_url(settings)
    silent = next(k for k in kiosks if k.silent)
    lines = [
        "",
        "Kiosk heartbeat demo: the real service on a temporary SQLite database",
        "(deleted on exit).",
        "",
        f"  Service:            {url}",
        *(
            [f"  Status page:        {url}/ui/   (sign in with the token below)"]
            if settings.ui_enabled
            else []
        ),
        f"  Back-office status: {url}/kiosk/all-status",
        f"  Prometheus metrics: {url}/metrics",
        f"  Back-office token:  {token}",
        "",
        f"Kiosks: {', '.join(k.name for k in kiosks if not k.silent)} send a heartbeat every "
        f"{settings.heartbeat_interval_seconds}s from in-process agents;",
        f"{silent.name} has been silent for {int(SILENT_FOR.total_seconds() // 60)} minutes.",
        "",
        "Try:",
        f'  curl -H "Authorization: Bearer {token}" {url}/kiosk/all-status',
        f"  curl -s {url}/metrics | grep '^kiosk_online'",
        f"Bring {silent.name} back online with the original troubleshooting command:",
        f"  curl -X POST {url}/kiosk/heartbeat -H 'X-Kiosk-API-Key: {silent.api_key}' "
        """-H "Content-Type: application/json" -d '{"app_version":"1.0.0","device_info":"Test"}'""",
        "",
        "Stop with Ctrl-C.",
        "",
    ]
    out.write("\n".join(lines) + "\n")
    out.flush()
