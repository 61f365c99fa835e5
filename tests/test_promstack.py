"""tests/promstack.py against the real binaries, with the shipped configs and rules.

A tiny HTTP server stands in for the service (it serves a fixed fleet in the public metric
format), so the stack, the recording rules and the alert routing and inhibition are proven
live without depending on the service. One stack per module: Prometheus 2.42 waits ~5 s
before its first scrape.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.promstack import (
    AlertmanagerProcess,
    PrometheusProcess,
    ToolMissing,
    WebhookReceiver,
    alertmanager_config_for_test,
    find_tool,
    prometheus_config_for_test,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30.0  # seconds; generous for a loaded CI machine, never unbounded


def render_fleet(heartbeats: dict[str, float | None], now: float) -> str:
    """Exposition for a small fleet; `heartbeats` maps kiosk_id to its last heartbeat time.

    Kiosks 1 and 2 are in the Lobby, 3-5 in the Hall; 4 never connected, 5 is deactivated.
    Online follows the service's rule: active and heartbeat younger than 300 s; every kiosk
    is on `always`, so an active kiosk is expected online and its offline-while-expected
    figure is its heartbeat age once offline.
    """
    kiosks = [("1", "Lobby 1", "Lobby"), ("2", "Lobby 2", "Lobby"), ("3", "Hall 1", "Hall")]
    kiosks += [("4", "New", "Hall"), ("5", "Old", "Hall")]
    metrics = ("kiosk_active", "kiosk_online", "kiosk_expected_online")
    lines = [f"# TYPE {m} gauge" for m in (*metrics, "kiosk_offline_while_expected_seconds")]
    lines += ["# TYPE kiosk_last_heartbeat_timestamp_seconds gauge"]
    for kiosk_id, name, location in kiosks:
        labels = f'kiosk_id="{kiosk_id}",kiosk_name="{name}",location="{location}"'
        active = kiosk_id != "5"
        seen = heartbeats.get(kiosk_id)
        online = active and seen is not None and now - seen < 300
        lines.append(f"kiosk_active{{{labels}}} {int(active)}")
        lines.append(f"kiosk_online{{{labels}}} {int(online)}")
        lines.append(f"kiosk_expected_online{{{labels}}} {int(active)}")
        if seen is not None:
            lines.append(f"kiosk_last_heartbeat_timestamp_seconds{{{labels}}} {seen}")
            waiting = now - seen if active and not online else 0
            lines.append(f"kiosk_offline_while_expected_seconds{{{labels}}} {waiting}")
    lines.append("# TYPE kiosk_fleet_kiosks gauge")
    lines.append('kiosk_fleet_kiosks{status="online"} 2')
    lines.append('kiosk_exporter_build_info{version="0.0.0-test"} 1')
    return "\n".join(lines) + "\n"


class FakeExporter:
    """Serves `render_fleet` on a free loopback port; tests change `heartbeats` to move kiosks."""

    def __init__(self, heartbeats: dict[str, float | None]) -> None:
        self.heartbeats = heartbeats

        def render() -> bytes:
            return render_fleet(self.heartbeats, time.time()).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = render()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@dataclass
class Stack:
    exporter: FakeExporter
    hook: WebhookReceiver
    alertmanager: AlertmanagerProcess
    prometheus: PrometheusProcess


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Fake exporter -> Prometheus (shipped config and rules, 1 s) -> Alertmanager -> webhook."""
    tmp = tmp_path_factory.mktemp("promstack")
    now = time.time()
    with contextlib.ExitStack() as cleanup:
        exporter = FakeExporter({"1": now, "2": now - 31 * 60, "3": now, "5": now - 3600})
        cleanup.callback(exporter.close)
        hook = cleanup.enter_context(WebhookReceiver())
        am_text = alertmanager_config_for_test((ROOT / "alertmanager.yml").read_text(), hook.url)
        try:
            alertmanager = cleanup.enter_context(AlertmanagerProcess(am_text, tmp / "am"))
            prom_text = prometheus_config_for_test(
                (ROOT / "prometheus.yml").read_text(),
                exporter_target=exporter.address,
                alertmanager_address=alertmanager.address,
            )
            rules = {p.name: p.read_text() for p in sorted((ROOT / "rules").glob("*.yml"))}
            prometheus = cleanup.enter_context(PrometheusProcess(prom_text, rules, tmp / "prom"))
        except ToolMissing as exc:
            pytest.fail(str(exc))
        yield Stack(exporter, hook, alertmanager, prometheus)


@pytest.mark.live
def test_recording_rules_are_computed_by_a_real_prometheus(stack: Stack) -> None:
    prom = stack.prometheus
    # Eligible: kiosks 1-3 (4 never connected, 5 deactivated); online: 1 and 3.
    ratio = prom.wait_for(
        lambda: prom.query_value("kiosk:fleet_availability:ratio"), WAIT, "fleet ratio"
    )
    assert ratio == pytest.approx(2 / 3)
    by_location = {
        s["metric"]["location"]: float(s["value"][1])
        for s in prom.query("location:kiosk_availability:ratio")
    }
    assert by_location == {"Lobby": 0.5, "Hall": 1.0}
    unhealthy = [
        (rule["name"], rule.get("lastError"))
        for group in prom.rule_groups()
        for rule in group["rules"]
        if rule["health"] != "ok"
    ]
    assert unhealthy == []


@pytest.mark.live
def test_offline_kiosk_pages_through_alertmanager_and_resolves(stack: Stack) -> None:
    hook, labels = stack.hook, {"alertname": "KioskOffline", "kiosk_id": "2"}
    critical = hook.wait_for(
        lambda: hook.alerts(**labels, severity="critical", status="firing"), WAIT, "page"
    )[0]
    assert critical["receiver"] == "kiosk-pager"
    assert critical["labels"]["kiosk_name"] == "Lobby 2"
    assert critical["labels"]["location"] == "Lobby"
    assert critical["annotations"]["summary"].startswith(
        "Kiosk Lobby 2 (Lobby) offline while expected for 31m"
    )
    # The shipped prometheus.yml's external label: the service's default address.
    assert critical["annotations"]["runbook_url"] == "http://localhost:8000/runbook#kioskoffline"
    # 2/3 online is below 90 %: the availability warning goes to email.
    mail = hook.wait_for(
        lambda: hook.alerts(alertname="KioskFleetAvailabilityLow", status="firing"), WAIT
    )
    assert {(a["labels"]["severity"], a["receiver"]) for a in mail} == {("warning", "kiosk-email")}
    # The warning for the same kiosk is inhibited by the critical, never delivered.
    warning = stack.alertmanager.wait_for(
        lambda: [
            a
            for a in stack.alertmanager.alerts()
            if a["labels"].items() >= {**labels, "severity": "warning"}.items()
        ],
        WAIT,
    )[0]
    assert warning["status"]["state"] == "suppressed"
    assert warning["status"]["inhibitedBy"]
    assert hook.alerts(**labels, severity="warning") == []

    stack.exporter.heartbeats["2"] = time.time()
    hook.wait_for(lambda: hook.alerts(**labels, severity="critical", status="resolved"), WAIT)
    hook.wait_for(
        lambda: hook.alerts(alertname="KioskFleetAvailabilityLow", status="resolved"), WAIT
    )


def test_webhook_receiver_records_alertmanager_payloads() -> None:
    payload = {
        "receiver": "kiosk-pager",
        "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "X", "kiosk_id": "7"}}],
    }
    with WebhookReceiver() as hook:
        request = urllib.request.Request(hook.url, data=json.dumps(payload).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.status == 200
        assert hook.notifications == [payload]
        assert hook.alerts(kiosk_id="7")[0]["receiver"] == "kiosk-pager"
        assert hook.alerts(kiosk_id="8") == []


def test_waits_are_bounded() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="never"):
        wait_until(lambda: False, timeout=0.3, interval=0.05, what="never")
    assert time.monotonic() - started < 2


def test_find_tool_names_the_missing_binary_and_the_fix() -> None:
    with pytest.raises(ToolMissing, match=r"no-such-tool-xyz.*apt-get install"):
        find_tool("no-such-tool-xyz")


def test_test_configs_are_still_valid_for_the_real_tools(tmp_path: Path) -> None:
    """The rewritten copies keep the shipped routing and rules and pass the real checkers."""
    try:
        promtool, amtool = find_tool("promtool"), find_tool("amtool")
    except ToolMissing as exc:
        pytest.fail(str(exc))
    prom = prometheus_config_for_test(
        (ROOT / "prometheus.yml").read_text(),
        exporter_target="127.0.0.1:18000",
        alertmanager_address="127.0.0.1:19093",
    )
    (tmp_path / "prometheus.yml").write_text(prom)
    (tmp_path / "rules").mkdir()
    for path in (ROOT / "rules").glob("*.yml"):
        (tmp_path / "rules" / path.name).write_text(path.read_text())
    (tmp_path / "alertmanager.yml").write_text(
        alertmanager_config_for_test((ROOT / "alertmanager.yml").read_text(), "http://x/")
    )
    checks = [
        [promtool, "check", "config", "prometheus.yml"],
        [amtool, "check-config", "alertmanager.yml"],
        [amtool, "config", "routes", "test", "--config.file=alertmanager.yml",
         "--verify.receivers=kiosk-pager", "severity=critical"],
    ]  # fmt: skip
    for args in checks:
        result = subprocess.run(
            args, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    assert "127.0.0.1:18000" in prom
    assert "scrape_interval: 1s" in prom
