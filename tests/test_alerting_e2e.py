"""End to end: the real service, scraped by a real Prometheus, paging through a real Alertmanager.

Issue 4's "one live page": the shipped prometheus.yml (rewritten only for ports and 1 s
intervals), the shipped rules/*.yml byte for byte, and the shipped alertmanager.yml (every
receiver pointed at a webhook run by this test, 2 s group waits). Speed comes from the data,
never from the rules: a kiosk is seeded with a heartbeat already 31 minutes old, so both
KioskOffline thresholds are crossed at the first evaluation.

One stack per module: Prometheus 2.42 waits ~5 s before its first scrape. The tests share it,
so each one filters notifications by kiosk_id or alertname instead of expecting a clean slate.
"""

from __future__ import annotations

import contextlib
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from exporter.store import open_store
from tests.promstack import (
    KIOSK_JOB,
    AlertmanagerProcess,
    PrometheusProcess,
    ToolMissing,
    WebhookReceiver,
    alertmanager_config_for_test,
    prometheus_config_for_test,
)
from tests.support.http import request
from tests.support.service import RunningService

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = ROOT / "docs" / "runbook.md"
WAIT = 45.0  # seconds: alerts normally arrive in ~1 s; generous for a loaded CI machine
# What Prometheus 2.42 sends when it scrapes (scrape/scrape.go, scrapeAcceptHeader).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@dataclass(frozen=True)
class Kiosk:
    id: str  # as the kiosk_id label spells it
    name: str
    location: str
    key: str


@dataclass
class Fleet:
    """Who is who: each role is one way a kiosk can look to the rules."""

    silent: Kiosk  # active, last heartbeat 31 min ago: pages, then comes back
    long_silent: Kiosk  # active, last heartbeat 45 min ago: stays offline all module long
    healthy: list[Kiosk]  # active, heartbeat sent over HTTP when the module starts
    retired: Kiosk  # deactivated, silent for 2 h: must never page
    brand_new: Kiosk  # active, never connected (still being installed): must never page

    @property
    def never_paging(self) -> list[Kiosk]:
        return [*self.healthy, self.retired, self.brand_new]

    @property
    def everyone(self) -> list[Kiosk]:
        return [self.silent, self.long_silent, *self.never_paging]


@dataclass
class Stack:
    service: RunningService
    fleet: Fleet
    hook: WebhookReceiver
    alertmanager: AlertmanagerProcess
    prometheus: PrometheusProcess

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.service.port}"

    def prometheus_alerts(self, **labels: str) -> list[dict[str, Any]]:
        """Prometheus' pending and firing alerts whose labels include `labels`."""
        return [
            a
            for a in self.prometheus.alerts()
            if all(a["labels"].get(k) == v for k, v in labels.items())
        ]

    def kiosk_target(self) -> dict[str, Any]:
        [target] = [t for t in self.prometheus.targets() if t["labels"]["job"] == KIOSK_JOB]
        return target


def seed_fleet(database: str) -> Fleet:
    """Write the fleet straight into the database, with heartbeats already in the past."""
    now = datetime.now(timezone.utc)
    store = open_store(database)
    try:

        def add(name: str, location: str, silent_for: timedelta | None = None) -> Kiosk:
            record, key = store.add_kiosk(name, location)
            if silent_for is not None:
                store.record_heartbeat(
                    record.id,
                    received_at=now - silent_for,
                    app_version="1.4.2",
                    device_info="Galaxy Tab A8",
                )
            return Kiosk(str(record.id), name, location, key)

        fleet = Fleet(
            silent=add("Lobby Kiosk 2", "Building A", timedelta(minutes=31)),
            long_silent=add("Garage Kiosk", "Car Park", timedelta(minutes=45)),
            healthy=[
                add("Lobby Kiosk 1", "Building A"),
                add("Cafe Kiosk", "Building B"),
                add("Library Kiosk", "Building B"),
            ],
            retired=add("Old Kiosk", "Building B", timedelta(hours=2)),
            brand_new=add("New Kiosk", "Building C"),
        )
        store.set_active(int(fleet.retired.id), False)
        return fleet
    finally:
        store.close()


def send_heartbeat(service: RunningService, kiosk: Kiosk) -> None:
    reply = service.heartbeat(kiosk.key, {"app_version": "1.4.2", "device_info": "Galaxy Tab A8"})
    assert 200 <= reply.status < 300, (kiosk, reply.status, reply.body)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Service (temp SQLite) -> Prometheus (shipped config and rules) -> Alertmanager -> webhook."""
    tmp = tmp_path_factory.mktemp("alerting-e2e")
    database = f"sqlite:///{tmp / 'kiosks.db'}"
    fleet = seed_fleet(database)
    with contextlib.ExitStack() as cleanup:
        # Default settings: 300 s online threshold, 10 s rate limit, as users run it.
        service = cleanup.enter_context(RunningService(tmp, database=database))
        for kiosk in fleet.healthy:
            send_heartbeat(service, kiosk)  # online for the next 5 minutes: the whole module
        hook = cleanup.enter_context(WebhookReceiver())
        am_text = alertmanager_config_for_test((ROOT / "alertmanager.yml").read_text(), hook.url)
        rules = {p.name: p.read_text() for p in sorted((ROOT / "rules").glob("*.yml"))}
        assert rules, "no rules/*.yml shipped"
        try:
            alertmanager = cleanup.enter_context(AlertmanagerProcess(am_text, tmp / "am"))
            prom_text = prometheus_config_for_test(
                (ROOT / "prometheus.yml").read_text(),
                exporter_target=f"127.0.0.1:{service.port}",
                alertmanager_address=alertmanager.address,
                # What an operator sets: the service's public address, for runbook_url.
                external_labels={"kiosk_exporter_url": service.url},
            )
            prometheus = cleanup.enter_context(PrometheusProcess(prom_text, rules, tmp / "prom"))
        except ToolMissing as exc:
            pytest.fail(str(exc))  # a missing binary is a broken set-up, not a skipped test
        yield Stack(service, fleet, hook, alertmanager, prometheus)


def runbook_anchors() -> set[str]:
    """GitHub's anchors for the runbook's headings (lower case, spaces to hyphens)."""
    return {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text("utf-8").splitlines()
        if line.startswith("#")
    }


def test_prometheus_scrapes_the_service_with_openmetrics_and_no_errors(stack: Stack) -> None:
    """Prometheus 2.42 asks for OpenMetrics first; a format slip there fails every scrape
    and, through KioskExporterDown, pages for the exporter instead of the kiosks."""
    prom = stack.prometheus
    target = prom.wait_for(
        lambda: (t := stack.kiosk_target())["health"] == "up" and t, WAIT, "kiosk target up"
    )
    assert target["lastError"] == ""
    assert target["scrapeUrl"] == f"http://{stack.target}/metrics"
    assert prom.query_value(f'up{{job="{KIOSK_JOB}"}}') == 1
    assert prom.query_value(f'scrape_samples_scraped{{job="{KIOSK_JOB}"}}') > 0

    # The same request Prometheus makes is answered in OpenMetrics...
    reply = stack.service.metrics(accept=PROMETHEUS_ACCEPT)
    assert reply.headers["content-type"].startswith("application/openmetrics-text")
    # ...and Prometheus parsed it as such: only OpenMetrics has an `info` type (in the text
    # format kiosk_info is a plain gauge).
    metadata = prom.get("/api/v1/targets/metadata", match_target=f'{{job="{KIOSK_JOB}"}}')
    types = {m["metric"]: m["type"] for m in metadata["data"]}
    assert types.get("kiosk") == "info", types

    # Samples Prometheus dropped while ingesting (duplicates, bad timestamps) are counted
    # in its own metrics, not in the target's lastError.
    with urllib.request.urlopen(f"{prom.url}/metrics", timeout=5) as resp:
        own = resp.read().decode()
    for counter in (
        "prometheus_target_scrapes_sample_duplicate_timestamp_total",
        "prometheus_target_scrapes_sample_out_of_order_total",
        "prometheus_target_scrapes_sample_out_of_bounds_total",
        "prometheus_target_scrapes_exceeded_sample_limit_total",
    ):
        assert re.search(rf"^{counter} 0$", own, re.MULTILINE), counter

    # Every kiosk the service knows reached Prometheus, deactivated and never-connected too.
    ids = {s["metric"]["kiosk_id"] for s in prom.query(f'kiosk_active{{job="{KIOSK_JOB}"}}')}
    assert ids == {k.id for k in stack.fleet.everyone}
    unhealthy = [
        (rule["name"], rule.get("lastError"))
        for group in prom.rule_groups()
        for rule in group["rules"]
        if rule["health"] != "ok"
    ]
    assert unhealthy == []


def test_prometheus_sees_every_metric_with_the_values_the_json_api_reports(stack: Stack) -> None:
    """Issue 3's acceptance: what a real Prometheus stores agrees with /kiosk/all-status."""
    prom, job = stack.prometheus, f'job="{KIOSK_JOB}"'
    token = stack.service.add_token("e2e-metrics")
    documents = {str(d["kiosk_id"]): d for d in stack.service.all_status(token).json}
    prom.wait_for(lambda: prom.query(f"kiosk_online{{{job}}}"), WAIT, "kiosk series")

    def by_kiosk(metric: str) -> dict[str, float]:
        return {
            s["metric"]["kiosk_id"]: float(s["value"][1]) for s in prom.query(f"{metric}{{{job}}}")
        }

    connected = {k for k, d in documents.items() if d["last_heartbeat_at"] is not None}
    assert by_kiosk("kiosk_online") == {
        k: 1.0 if d["is_online"] else 0.0 for k, d in documents.items()
    }
    assert by_kiosk("kiosk_active") == {
        k: 1.0 if d["is_active"] else 0.0 for k, d in documents.items()
    }
    stamps = by_kiosk("kiosk_last_heartbeat_timestamp_seconds")
    assert set(stamps) == connected == set(by_kiosk("kiosk_heartbeat_age_seconds"))
    for kiosk_id, stamp in stamps.items():
        sent = datetime.fromisoformat(
            documents[kiosk_id]["last_heartbeat_at"].replace("Z", "+00:00")
        )
        assert stamp == pytest.approx(sent.timestamp(), abs=1e-3)
    for sample in prom.query(f"kiosk_info{{{job}}}"):
        document = documents[sample["metric"]["kiosk_id"]]
        # Prometheus stores an empty label value as no label at all.
        assert sample["metric"].get("app_version", "") == (document["app_version"] or "")
        assert sample["metric"]["kiosk_name"] == document["kiosk_name"]
        assert sample["metric"]["location"] == document["location"]
    fleet = {
        s["metric"]["status"]: float(s["value"][1])
        for s in prom.query(f"kiosk_fleet_kiosks{{{job}}}")
    }
    statuses = [d["status"] for d in documents.values()]
    assert fleet == {
        s: float(statuses.count(s)) for s in ("online", "offline", "never_connected", "inactive")
    }
    reasons = {
        s["metric"]["reason"]
        for s in prom.query(f"kiosk_exporter_heartbeats_rejected_total{{{job}}}")
    }
    assert reasons == {"auth", "inactive", "invalid", "rate_limited", "unavailable"}
    assert prom.query_value(f"kiosk_exporter_heartbeats_total{{{job}}}") >= len(stack.fleet.healthy)
    assert prom.query(f"kiosk_exporter_heartbeat_delay_seconds_count{{{job}}}")
    assert prom.query(
        f'kiosk_exporter_request_duration_seconds_count{{{job},route="/kiosk/heartbeat"}}'
    )
    assert prom.query(f"kiosk_exporter_build_info{{{job}}}")
    assert prom.query(f"process_resident_memory_bytes{{{job}}}")


def test_a_kiosk_silent_for_31_minutes_pages_and_resolves_when_it_comes_back(
    stack: Stack,
) -> None:
    """The whole chain for one tablet: stored heartbeat -> metric -> rule -> route -> webhook,
    with the labels and annotations the on-call person reads, then the all-clear."""
    hook, kiosk = stack.hook, stack.fleet.silent
    mine = {"alertname": "KioskOffline", "kiosk_id": kiosk.id}
    page = hook.wait_for(
        lambda: hook.alerts(**mine, severity="critical", status="firing"), WAIT, "the page"
    )[0]
    assert page["receiver"] == "kiosk-pager"
    assert page["labels"] == {
        **mine,
        "severity": "critical",
        "kiosk_name": kiosk.name,
        "location": kiosk.location,
        "job": KIOSK_JOB,
        "instance": stack.target,
        "kiosk_exporter_url": stack.service.url,  # the external label
    }
    notes = page["annotations"]
    # humanizeDuration of ~1860 s: "31m 2s" (the seconds depend on when it fired).
    assert re.fullmatch(
        rf"Kiosk {kiosk.name} \({kiosk.location}\) offline while expected for 31m \d+s",
        notes["summary"],
    ), notes["summary"]
    assert kiosk.name in notes["description"] and kiosk.location in notes["description"]
    assert re.search(r"\b31m \d+s\b", notes["description"]), notes["description"]
    assert notes["runbook_url"] == f"{stack.service.url}/runbook#kioskoffline"
    runbook = request("GET", notes["runbook_url"].partition("#")[0])
    assert runbook.status == 200 and runbook.headers["content-type"].startswith("text/html")
    assert b'<h2 id="kioskoffline">KioskOffline</h2>' in runbook.body
    assert "kioskoffline" in runbook_anchors()

    # The 10-minute warning for the same kiosk fires too, but the critical one inhibits it:
    # Alertmanager holds it as suppressed and never mails it.
    warning = stack.alertmanager.wait_for(
        lambda: [
            a
            for a in stack.alertmanager.alerts()
            if a["labels"].items() >= {**mine, "severity": "warning"}.items()
        ],
        WAIT,
        "the warning in Alertmanager",
    )[0]
    assert warning["status"]["state"] == "suppressed", warning["status"]
    assert warning["status"]["inhibitedBy"]

    send_heartbeat(stack.service, kiosk)
    resolved = hook.wait_for(
        lambda: hook.alerts(**mine, severity="critical", status="resolved"), WAIT, "the all-clear"
    )[0]
    assert resolved["receiver"] == "kiosk-pager"
    assert resolved["labels"] == page["labels"]
    assert hook.alerts(**mine, severity="warning") == []
    assert not stack.prometheus_alerts(**mine)


def test_deactivated_never_connected_and_healthy_kiosks_never_page(stack: Stack) -> None:
    """Only the silent kiosks may alert; checked once the silent ones have paged, so the
    rules have had as many evaluations as it took to page for real."""
    fleet = stack.fleet
    stack.hook.wait_for(
        lambda: stack.hook.alerts(kiosk_id=fleet.long_silent.id, severity="critical"),
        WAIT,
        "the page for the long-silent kiosk",
    )
    for kiosk in fleet.never_paging:
        assert stack.prometheus_alerts(kiosk_id=kiosk.id) == [], kiosk
        assert stack.hook.alerts(kiosk_id=kiosk.id) == [], kiosk
    kiosk_alerts = {a["labels"].get("kiosk_id") for a in stack.prometheus.alerts()}
    assert kiosk_alerts - {None} <= {fleet.silent.id, fleet.long_silent.id}
    # Warnings (here the fleet availability of 3/5) go to email; the pager gets criticals only.
    paged = {a["labels"]["severity"] for a in stack.hook.alerts() if a["receiver"] == "kiosk-pager"}
    assert paged == {"critical"}


def test_stopping_the_service_raises_kiosk_exporter_down_without_resolving_kiosk_alerts(
    stack: Stack,
) -> None:
    """Without KioskExporterDown a dead exporter would look like a healthy fleet.

    The shipped rule has `for: 2m`; waiting it out would triple this file's run time, so this
    test stops at "pending" in Prometheus' /api/v1/alerts (the expression matched: the rest
    is Prometheus' own `for` bookkeeping) and checks the shipped `for` is what it waited on.
    The routing of a firing KioskExporterDown to the pager is covered by tests/test_rules.py.
    """
    prom, kiosk = stack.prometheus, stack.fleet.long_silent
    offline = {"alertname": "KioskOffline", "kiosk_id": kiosk.id, "severity": "critical"}
    stack.hook.wait_for(lambda: stack.hook.alerts(**offline, status="firing"), WAIT, "page")
    [rule] = [
        r for g in prom.rule_groups() for r in g["rules"] if r.get("name") == "KioskExporterDown"
    ]
    assert rule["duration"] == 120

    port = stack.service.port
    assert port is not None
    stack.service.stop()  # SIGTERM, as systemd or Docker would
    try:
        down = prom.wait_for(
            lambda: stack.prometheus_alerts(alertname="KioskExporterDown"),
            WAIT,
            "KioskExporterDown pending",
        )[0]
        assert down["state"] in ("pending", "firing")
        assert down["labels"] == {
            "alertname": "KioskExporterDown",
            "severity": "critical",
            "job": KIOSK_JOB,
            "instance": stack.target,
        }
        target = stack.kiosk_target()
        assert target["health"] == "down" and target["lastError"]
        # The staleness guard: the scrapes failing for several evaluations must not resolve
        # the kiosk alert (that would send an all-clear for a kiosk nobody can see).
        time.sleep(3)
        assert [a["state"] for a in stack.prometheus_alerts(**offline)] == ["firing"]
        assert stack.hook.alerts(**offline, status="resolved") == []
    finally:
        stack.service.start(port=port)  # same port: Prometheus' config names it

    prom.wait_for(
        lambda: not stack.prometheus_alerts(alertname="KioskExporterDown"),
        WAIT,
        "KioskExporterDown gone after the restart",
    )
    assert stack.hook.alerts(alertname="KioskExporterDown") == []
    assert request("GET", f"{stack.service.url}/metrics").status == 200
