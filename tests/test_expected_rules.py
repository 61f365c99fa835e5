"""The shipped alerts fed by the real expected-hours rule, judged by the real promtool.

Each scenario is a day in the life of one kiosk: the series Prometheus would scrape every
minute are computed by exporter/expected.py (the same code /metrics runs), then promtool
evaluates rules/kiosk.yml on them and checks when KioskOffline fires: at opening time,
closing time, across midnight, across a daylight-saving change, when a maintenance window
ends while the kiosk is still off, and after the service was down for 20 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from exporter.expected import ExpectationFacts, FleetExpectation
from exporter.records import KioskRecord, LivenessInterval, MaintenanceWindow, ScheduleVersion
from exporter.status import classify, heartbeat_age
from tests.test_rules import ROOT, run, tool

LABELS = {"job": "kiosk-exporter", "instance": "localhost:8000", "kiosk_id": "1"}
LABELS |= {"kiosk_name": "Hall", "location": "Site"}
RUNBOOK = "http://localhost:8000/runbook#kioskoffline"
OFFICE = "Mon-Fri 07:00-20:00"
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@dataclass
class Scenario:
    name: str
    start: datetime
    minutes: int
    last_heartbeat: datetime
    hours: str | None = None  # None: `always`
    zone: str = "Europe/Paris"
    windows: list[tuple[datetime, datetime]] = field(default_factory=list)
    # The service's liveness; minutes outside it are failed scrapes.
    liveness: list[tuple[datetime, datetime]] = field(default_factory=list)
    # UTC instant -> the severities firing then.
    checks: dict[str, set[str]] = field(default_factory=dict)


SCENARIOS = [
    Scenario(
        "dark since 20:30 pages at 07:10 the next morning (Paris, UTC+1)",
        start=utc("2026-12-01 05:50"),
        minutes=50,
        last_heartbeat=utc("2026-11-30 19:30"),
        hours=OFFICE,
        checks={
            "06:00": set(),
            "06:10": set(),
            "06:11": {"warning"},
            "06:31": {"warning", "critical"},
        },
    ),
    Scenario(
        "dark at 19:00 pages at 19:10 and 19:30, closing time at 20:00 ends it",
        start=utc("2026-11-30 17:55"),
        minutes=90,
        last_heartbeat=utc("2026-11-30 18:00"),
        hours=OFFICE,
        checks={
            "18:10": set(),
            "18:11": {"warning"},
            "18:31": {"warning", "critical"},
            "19:00": set(),
        },
    ),
    Scenario(
        "hours across midnight (Fri 18:00-02:00) page until 02:00 on Saturday",
        start=utc("2026-12-04 21:55"),
        minutes=190,
        last_heartbeat=utc("2026-12-04 22:00"),
        hours="Fri 18:00-02:00",
        checks={
            "22:11": {"warning"},
            "23:30": {"warning", "critical"},
            "00:59": {"warning", "critical"},
            "01:00": set(),
        },
    ),
    Scenario(
        "the Sunday clocks go forward, 07:00 opening is 05:00 UTC, not 06:00",
        start=utc("2026-03-29 04:50"),
        minutes=40,
        last_heartbeat=utc("2026-03-28 19:00"),
        hours="Mon-Sun 07:00-20:00",
        checks={"05:00": set(), "05:10": set(), "05:11": {"warning"}},
    ),
    Scenario(
        "a maintenance window ending while the kiosk is still off counts from its end",
        start=utc("2026-11-30 08:00"),
        minutes=140,
        last_heartbeat=utc("2026-11-30 08:00"),
        windows=[(utc("2026-11-30 08:30"), utc("2026-11-30 10:00"))],
        checks={"08:11": {"warning"}, "08:30": set(), "10:10": set(), "10:11": {"warning"}},
    ),
    Scenario(
        "after 20 minutes with the service down, kiosks get 10 minutes from its return",
        start=utc("2026-11-30 09:00"),
        minutes=75,
        last_heartbeat=utc("2026-11-30 09:00"),
        liveness=[
            (utc("2026-11-30 07:00"), utc("2026-11-30 09:30")),
            (utc("2026-11-30 09:50"), utc("2026-11-30 12:00")),
        ],
        checks={"09:11": {"warning"}, "09:55": set(), "10:00": set(), "10:01": {"warning"}},
    ),
]


def scraped(scenario: Scenario, now: datetime) -> float | None:
    """kiosk_offline_while_expected_seconds as the service would expose it at `now`."""
    versions = (
        {}
        if scenario.hours is None
        else {1: [ScheduleVersion(1, EPOCH, scenario.zone, scenario.hours)]}
    )
    windows = [MaintenanceWindow(n, 1, s, e, None) for n, (s, e) in enumerate(scenario.windows)]
    ended = [w.ends_at for w in windows if w.ends_at <= now]
    liveness = [
        LivenessInterval(n, "r", s, min(e, now))
        for n, (s, e) in enumerate(scenario.liveness)
        if s <= now
    ]
    facts = ExpectationFacts(
        schedule_names={1: "office"},
        versions=versions,
        open_windows={1: [w for w in windows if w.ends_at > now]},
        last_maintenance_end={1: max(ended)} if ended else {},
        last_change={},
        liveness=liveness,
    )
    kiosk = KioskRecord(
        1,
        "Hall",
        "Site",
        True,
        EPOCH,
        scenario.last_heartbeat,
        None,
        None,
        "kk",
        schedule_id=None if scenario.hours is None else 1,
    )
    status = classify(True, heartbeat_age(kiosk.last_heartbeat_at, now), 300)
    return FleetExpectation(facts, now).judge(kiosk, status).offline_while_expected_seconds


def listening(scenario: Scenario, now: datetime) -> bool:
    return not scenario.liveness or any(s <= now <= e for s, e in scenario.liveness)


def humanize(seconds: float) -> str:
    """Prometheus's humanizeDuration for whole seconds."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m")]
    text = [f"{v}{u}" for n, (v, u) in enumerate(parts) if v or any(p[0] for p in parts[:n])]
    return " ".join([*text, f"{secs}s"])


def expected_alert(severity: str, value: float) -> dict:
    duration = humanize(value)
    return {
        "exp_labels": {"severity": severity, **LABELS},
        "exp_annotations": {
            "summary": f"Kiosk Hall (Site) offline while expected for {duration}",
            "description": (
                f'Kiosk "Hall" (id 1) at Site has been offline while expected online for '
                f"{duration} (warning after 10m, critical after 30m; time outside its hours, "
                "in maintenance or while the service was down does not count)."
            ),
            "runbook_url": RUNBOOK,
        },
    }


def promtool_case(scenario: Scenario) -> dict:
    values, last = [], None
    checks = []
    for minute in range(scenario.minutes + 1):
        now = scenario.start + timedelta(minutes=minute)
        if listening(scenario, now):
            last = scraped(scenario, now)
            values.append("_" if last is None else str(last))
        else:
            values.append("stale")
        clock = now.strftime("%H:%M")
        if clock in scenario.checks:
            alerts = [expected_alert(s, last) for s in sorted(scenario.checks[clock], reverse=True)]
            checks.append(
                {"eval_time": f"{minute}m", "alertname": "KioskOffline", "exp_alerts": alerts}
            )
    assert len(checks) == len(scenario.checks), scenario.name
    labels = ",".join(f'{k}="{v}"' for k, v in LABELS.items())
    series = f"kiosk_offline_while_expected_seconds{{{labels}}}"
    return {
        "name": scenario.name,
        "interval": "1m",
        "input_series": [{"series": series, "values": " ".join(values)}],
        "alert_rule_test": checks,
    }


def test_kiosk_offline_fires_at_the_boundaries_the_expected_rule_draws(tmp_path: Path) -> None:
    document = {
        "rule_files": [str(p) for p in sorted((ROOT / "rules").glob("*.yml"))],
        "evaluation_interval": "1m",
        "tests": [promtool_case(s) for s in SCENARIOS],
    }
    (tmp_path / "expected.test.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    result = run(tool("promtool"), "test", "rules", "expected.test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "SUCCESS" in result.stdout


def test_each_scenario_has_a_silence_the_heartbeat_age_alone_would_break() -> None:
    """Guards the scenarios: in each, the heartbeat age exceeds 10 minutes at some time
    promtool must find quiet, so the test above fails if the rule stops applying."""
    for scenario in SCENARIOS:
        ages = []
        for minute in range(scenario.minutes + 1):
            now = scenario.start + timedelta(minutes=minute)
            if not scenario.checks.get(now.strftime("%H:%M"), {"x"}):
                ages.append((now - scenario.last_heartbeat).total_seconds())
        assert max(ages) > 600, scenario.name
