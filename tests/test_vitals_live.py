"""Issue 16's "done when": `simulate --scenario vitals` against the real service, scraped by a
real Prometheus loading rules/*.yml: the unplugged kiosk's battery falls in the dashboard's
query, and KioskBatteryLow fires while the service still says the kiosk is online.

Speed comes from the simulator (`--speed`: the battery drains 300 times faster) and from the
`for:` durations, the only thing rewritten in the rules (minutes become seconds / 2: the rule
texts, thresholds and joins stay as shipped). Prometheus scrapes and evaluates every second.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.promstack import PrometheusProcess, prometheus_config_for_test
from tests.support.process import Command
from tests.support.service import RunningService
from tests.test_dashboard import load_dashboard
from tests.test_dashboard_queries import interpolate

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parent.parent
WAIT = 60.0  # seconds; the battery crosses 20 % after ~12 s, the alert waits 5 s more


def short_for(rules_text: str) -> str:
    """`for: 10m` -> `for: 5s`: the pending time shrinks, nothing else in the rule changes."""
    return re.sub(r"for: (\d+)m\b", lambda m: f"for: {max(1, int(m.group(1)) // 2)}s", rules_text)


def test_short_for_rewrites_only_durations():
    text = "for: 10m\nexpr: x[5m] > 600\nfor: 1h"
    assert short_for(text) == "for: 5s\nexpr: x[5m] > 600\nfor: 1h"


def test_an_unplugged_kiosk_pages_battery_low_before_it_goes_offline(tmp_path):
    settings = {
        "heartbeat_interval_seconds": 1,
        "online_threshold_seconds": 4,
        "min_heartbeat_interval_seconds": 0,
    }
    rules = {p.name: short_for(p.read_text("utf-8")) for p in (ROOT / "rules").glob("*.yml")}
    with RunningService(tmp_path, settings) as service:
        token = service.add_token()
        args = ["--database", service.database, "simulate", "--url", service.url]
        options = ["--kiosks", "5", "--scenario", "vitals", "--speed", "300", "--interval", "1"]
        with Command([*args, *options, "--json"]) as simulator:
            simulator.stdout.wait_for(r"^\]$", timeout=20)
            fleet = json.loads(simulator.stdout.text())
            (unplugged,) = [row for row in fleet if row["vitals"] == "unplugged"]
            kiosk_id = str(unplugged["id"])
            config = prometheus_config_for_test(
                (ROOT / "prometheus.yml").read_text("utf-8"),
                exporter_target=f"127.0.0.1:{service.port}",
                interval="1s",
            )
            with PrometheusProcess(config, rules, tmp_path / "prometheus") as prometheus:
                alert_query = f'ALERTS{{alertname="KioskBatteryLow", kiosk_id="{kiosk_id}"}}'
                firing = prometheus.wait_for_query(
                    alert_query.replace("}", ', alertstate="firing"}'), timeout=WAIT
                )
                # At that moment the service itself still says online: the page came first.
                status = {k["kiosk_id"]: k for k in service.all_status(token).json}
                assert status[unplugged["id"]]["status"] == "online", status[unplugged["id"]]
                assert 0 < status[unplugged["id"]]["vitals"]["battery_percent"] < 20
                assert firing[0]["metric"]["severity"] == "warning"
                (alert,) = [
                    a
                    for a in prometheus.alerts()
                    if a["labels"]["alertname"] == "KioskBatteryLow"
                    and a["labels"]["kiosk_id"] == kiosk_id
                ]
                assert "will go offline in about" in alert["annotations"]["description"]
                # The dashboard's battery graph shows it falling.
                (graph,) = [p for p in load_dashboard()["panels"] if p["title"] == "Battery"]
                expr = interpolate(graph["targets"][0]["expr"])
                expr = expr.replace("}", f', kiosk_id="{kiosk_id}"}}', 1)
                trend = prometheus.query(f"deriv({expr}[10s])")
                assert float(trend[0]["value"][1]) < 0, trend
                # The others are healthy or page for their own reasons, never for the battery.
                batteries = prometheus.query('ALERTS{alertname="KioskBatteryLow"}')
                assert {s["metric"]["kiosk_id"] for s in batteries} == {kiosk_id}
            assert simulator.stop() == 0
