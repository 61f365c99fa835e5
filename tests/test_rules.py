"""The shipped prometheus.yml, rules and alertmanager.yml, checked with the real tools.

promtool and amtool are the only judges of what Prometheus and Alertmanager accept, so these
tests run them (never a re-implementation) and fail, rather than skip, when they are missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = sorted((ROOT / "rules").glob("*.yml"))
UNIT_TESTS = sorted((ROOT / "tests" / "rules").glob("*.test.yml"))
# What `metrics_per_kiosk: attention` exports (kiosks that need attention, roll-ups); the
# other files hold what `all` exports.
ATTENTION_TESTS = ROOT / "tests" / "rules" / "attention_mode.test.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"

PUBLIC_ALERTS = {
    ("KioskOffline", "warning"),
    ("KioskOffline", "critical"),
    ("NoKioskOnline", "critical"),
    ("KioskFleetAvailabilityLow", "warning"),
    ("KioskFleetAvailabilityLow", "critical"),
    ("KioskAppVersionOutdated", "warning"),
    ("KioskExporterDown", "critical"),
    ("KioskBatteryLow", "warning"),
    ("KioskBatteryCritical", "critical"),
    ("KioskStorageLow", "warning"),
    ("KioskRebootLoop", "warning"),
    ("KioskAppNotInForeground", "warning"),
    ("KioskFlapping", "warning"),
}
PUBLIC_RECORDS = {
    "kiosk:fleet_availability:ratio",
    "location:kiosk_availability:ratio",
    "location:kiosk_history_availability:ratio1d",
    "kiosk:fleet_history_availability:ratio1d",
    "kiosk:outages:count1h",
}
# The service's address from one external label, with the default address as the fallback.
RUNBOOK_BASE = (
    "{{ with $externalLabels.kiosk_exporter_url }}{{ . }}{{ else }}http://localhost:8000{{ end }}"
)
# Thresholds that already are durations (or a debounced state): a `for:` would only delay.
NO_FOR = {"KioskOffline", "NoKioskOnline", "KioskFleetAvailabilityLow"}


def tool(name: str) -> str:
    """Path of a Prometheus tool, or a test failure that says how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} not found on PATH: install the Debian packages with "
            "`apt-get install -y --no-install-recommends prometheus prometheus-alertmanager`"
        )
    return path


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a tool with a bounded time; stdout and stderr merged for assertion messages."""
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=False,
    )


def rules() -> list[dict[str, Any]]:
    """Every rule of every shipped rule file, each with its group name under "group"."""
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [{**rule, "group": group["name"]} for rule in group["rules"]]
    return found


def alertmanager_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "alertmanager.yml").read_text())
    return config


def matchers(items: list[str]) -> dict[str, tuple[str, str]]:
    """Parse Alertmanager matcher strings like 'alertname=~"A|B"' into {label: (op, value)}."""
    parsed = {}
    for item in items:
        match = re.fullmatch(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"(.*)"\s*', item)
        assert match, f"unparsable matcher {item!r}"
        parsed[match[1]] = (match[2], match[3])
    return parsed


def test_prometheus_config_is_valid_and_finds_the_rule_files() -> None:
    result = run(tool("promtool"), "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout
    # An empty rule_files glob passes silently: count what promtool actually loaded.
    found = re.search(r"SUCCESS: (\d+) rule files found", result.stdout)
    assert found, result.stdout
    assert RULE_FILES, "no rules/*.yml shipped"
    assert int(found[1]) == len(RULE_FILES), result.stdout
    assert re.search(r"SUCCESS: ([1-9]\d*) rules found", result.stdout), result.stdout


def test_prometheus_config_scrapes_the_service_and_alerts_alertmanager() -> None:
    text = (ROOT / "prometheus.yml").read_text()
    config = yaml.safe_load(text)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["kiosk-exporter"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["localhost:8000"]}]
    assert config["rule_files"] == ["rules/*.yml"]
    alerting = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alerting == ["localhost:9093"]
    # The optional bearer token for metrics_token is shown, commented out.
    assert re.search(r"#\s*authorization:\s*\n\s*#.*\n\s*#\s*credentials_file:", text), text


@pytest.mark.parametrize("interval", ["5s", "15s", "2m"])
def test_any_scrape_interval_is_valid_because_the_timeout_follows_it(
    interval: str, tmp_path: Path
) -> None:
    config = (
        (ROOT / "prometheus.yml")
        .read_text()
        .replace("scrape_interval: 30s", f"scrape_interval: {interval}")
    )
    assert f"scrape_interval: {interval}" in config
    (tmp_path / "prometheus.yml").write_text(config)
    result = run(
        tool("promtool"), "check", "config", "--syntax-only", "prometheus.yml", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout


def test_the_runbook_url_label_is_set_in_the_shipped_config() -> None:
    config = yaml.safe_load((ROOT / "prometheus.yml").read_text())
    assert config["global"]["external_labels"]["kiosk_exporter_url"] == "http://localhost:8000"


def test_the_runbook_shows_the_queries_its_promtool_tests_check() -> None:
    tested = yaml.safe_load((ROOT / "tests" / "rules" / "runbook_queries.test.yml").read_text())
    expressions = [check["expr"] for case in tested["tests"] for check in case["promql_expr_test"]]
    shown = RUNBOOK.read_text()
    assert expressions and all(f"\n{expr}\n" in shown for expr in expressions)


def test_rule_unit_tests_live_outside_the_rule_glob() -> None:
    assert UNIT_TESTS, "no tests/rules/*.test.yml"
    assert not [p for p in RULE_FILES if p.name.endswith(".test.yml")]


def test_rules_pass_promtool_lint() -> None:
    result = run(tool("promtool"), "check", "rules", "--lint-fatal", *RULE_FILES)
    assert result.returncode == 0, result.stdout


def test_public_recording_rules_and_alerts_exist_with_their_severities() -> None:
    all_rules = rules()
    records = {r["record"] for r in all_rules if "record" in r}
    assert records >= PUBLIC_RECORDS
    alerts = {(r["alert"], r["labels"]["severity"]) for r in all_rules if "alert" in r}
    assert alerts == PUBLIC_ALERTS


def test_every_alert_has_summary_description_and_a_runbook_section() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    for rule in (r for r in rules() if "alert" in r):
        annotations = rule["annotations"]
        assert annotations.get("summary") and annotations.get("description"), rule["alert"]
        url = annotations["runbook_url"]
        base, _, anchor = url.partition("#")
        assert base == RUNBOOK_BASE + "/runbook", url
        assert anchor == rule["alert"].lower() in anchors, (url, anchors)


def test_duration_thresholds_carry_no_extra_for() -> None:
    stacked = [r["alert"] for r in rules() if r.get("alert") in NO_FOR and "for" in r]
    assert stacked == []


def firing_in(paths: list[Path]) -> set[tuple[str, str]]:
    """(alert, severity) pairs some promtool unit test of these files expects firing."""
    tested = set()
    for path in paths:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                for alert in check.get("exp_alerts") or []:
                    tested.add((check["alertname"], alert["exp_labels"]["severity"]))
    return tested


def test_every_alert_and_severity_is_unit_tested_firing() -> None:
    """Each public alert appears firing (with its severity) in some promtool unit test."""
    assert firing_in(UNIT_TESTS) == PUBLIC_ALERTS


def test_every_kiosk_alert_is_unit_tested_firing_in_attention_mode() -> None:
    """On attention mode's page too. KioskExporterDown reads `up` and kiosk_fleet_kiosks
    only, which both modes export alike."""
    assert firing_in([ATTENTION_TESTS]) == {
        (name, severity) for name, severity in PUBLIC_ALERTS if name != "KioskExporterDown"
    }


@pytest.mark.parametrize("test_file", UNIT_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    result = run(tool("promtool"), "test", "rules", test_file, cwd=test_file.parent)
    assert result.returncode == 0, result.stdout
    assert "SUCCESS" in result.stdout


# Each mutation breaks one promise of the rules; each named unit test file must notice it.
MUTATIONS = {
    "no staleness guard": (
        r"last_over_time\((\w+)\[5m\]\)",
        r"\1",
        "kiosk_offline fleet_availability no_kiosk_online app_version",
    ),
    "warning offline threshold": (r"> 600\b", "> 590", "kiosk_offline"),
    "critical offline threshold": (r"> 1800\b", "> 1790", "kiosk_offline"),
    "deactivated kiosks page": (
        r"last_over_time\(kiosk_active\[5m\]\) == 1",
        "kiosk_active >= 0",
        "vitals",
    ),
    "kiosks not expected online are counted or page": (
        r"last_over_time\(kiosk_expected_online\[5m\]\) == 1",
        "kiosk_expected_online >= 0",
        "app_version",
    ),
    "offline counted from the last heartbeat": (
        r"last_over_time\(kiosk_offline_while_expected_seconds\[5m\]\) > (\d+)",
        r"(time() - last_over_time(kiosk_last_heartbeat_timestamp_seconds[5m])) > \1",
        "kiosk_offline",
    ),
    "90% boundary": (r"< 0\.9\b", "<= 0.9", "fleet_availability"),
    "50% boundary": (r"< 0\.5\b", "<= 0.5", "fleet_availability"),
    "kiosks just past opening count as down": (r">= 300\b", ">= 0", "fleet_availability"),
    "outdated for": (r"for: 1h", "for: 50m", "app_version"),
    "exporter down for": (r"for: 2m", "for: 1m", "exporter_down"),
    "battery 20% boundary": (
        r"battery_ratio\[5m\]\) < 0\.2\b",
        "battery_ratio[5m]) < 0.21",
        "vitals",
    ),
    "battery low for": (r"for: 10m", "for: 9m", "vitals"),
    "battery 5% boundary": (r"< 0\.05\b", "< 0.051", "vitals"),
    "charging kiosks page": (
        r"unless on \(job, instance, kiosk_id\)\n\s*"
        r"last_over_time\(kiosk_battery_charging\[5m\]\) == 1\n\s*",
        "",
        "vitals",
    ),
    "kiosks not expected online page": (
        r"\s*unless on \(job, instance, kiosk_id\) "
        r"last_over_time\(kiosk_expected_online\[5m\]\) == 0",
        "",
        "vitals",
    ),
    "storage 10% boundary": (r"< 0\.1\b", "<= 0.1", "vitals"),
    "three reboots": (r">= 3\b", ">= 4", "vitals"),
    "app in foreground for": (r"for: 5m", "for: 4m", "vitals"),
    "battery of an offline kiosk": (r"\[3d\]", "[5m]", "vitals"),
    "flapping threshold": (r"count1h >= 3\b", "count1h >= 2", "kiosk_flapping"),
    "flapping window": (
        r"min_over_time\(kiosk_outages_total\[1h\]\)",
        "min_over_time(kiosk_outages_total[2h])",
        "kiosk_flapping",
    ),
    "history availability": (
        r"1 - location:kiosk_offline_seconds:increase1d",
        "location:kiosk_offline_seconds:increase1d",
        "kiosk_flapping attention_mode",
    ),
    # Attention mode: the roll-ups and the service's figures must be what the rules read.
    "attention: eligible kiosks per location": (
        r"kiosk_location_eligible_kiosks\b",
        "kiosk_location_eligible_gone",
        "attention_mode",
    ),
    "attention: eligible kiosks online per location": (
        r"kiosk_location_eligible_online_kiosks",
        "kiosk_location_eligible_online_gone",
        "attention_mode",
    ),
    "attention: a location without eligible kiosks has a count": (
        r"(kiosk_location_eligible_kiosks\[5m\]\)\)) > 0",
        r"\1",
        "attention_mode",
    ),
    "attention: downtime from the location sums": (
        r"kiosk_location_offline_seconds_total",
        "kiosk_location_offline_gone",
        "attention_mode",
    ),
    "attention: outages counted by the service": (
        r"kiosk_outages_last_hour",
        "kiosk_outages_gone",
        "attention_mode",
    ),
    "a boot within the hour that begins the series": (
        r"> bool \(time\(\) - 3600\)",
        "> bool time()",
        "attention_mode",
    ),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_unit_tests_catch_a_broken_rule(mutation: str, tmp_path: Path) -> None:
    pattern, replacement, test_names = MUTATIONS[mutation]
    (tmp_path / "rules").mkdir()
    for path in RULE_FILES:
        text, count = re.subn(pattern, replacement, path.read_text())
        (tmp_path / "rules" / path.name).write_text(text)
    assert count, f"mutation {mutation!r} matched nothing: update MUTATIONS"
    test_dir = tmp_path / "tests" / "rules"
    shutil.copytree(ROOT / "tests" / "rules", test_dir)
    for name in test_names.split():
        result = run(tool("promtool"), "test", "rules", f"{name}.test.yml", cwd=test_dir)
        assert result.returncode != 0, f"{name} still passes with {mutation!r}"
        assert "FAILED" in result.stdout, result.stdout


def test_alertmanager_config_is_valid() -> None:
    result = run(tool("amtool"), "check-config", "alertmanager.yml")
    assert result.returncode == 0, result.stdout
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=KioskOffline", "severity=critical", "location=Lobby"], "kiosk-pager"),
        (["alertname=KioskExporterDown", "severity=critical"], "kiosk-pager"),
        (["alertname=KioskOffline", "severity=warning", "location=Lobby"], "kiosk-email"),
        (["alertname=KioskAppVersionOutdated", "severity=warning"], "kiosk-email"),
    ],
)
def test_alerts_route_by_severity(labels: list[str], receiver: str) -> None:
    result = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        "--config.file=alertmanager.yml",
        f"--verify.receivers={receiver}",
        *labels,
    )
    assert result.returncode == 0, result.stdout


def test_route_verification_can_fail() -> None:
    """Guards the routing test itself: a critical alert must not be accepted as email."""
    result = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        "--config.file=alertmanager.yml",
        "--verify.receivers=kiosk-email",
        "severity=critical",
    )
    assert result.returncode != 0, result.stdout


def test_a_site_outage_is_one_group_per_alert_and_location() -> None:
    assert set(alertmanager_config()["route"]["group_by"]) == {"alertname", "location"}


def test_inhibition_rules_suppress_what_the_issue_says() -> None:
    inhibit = [
        (matchers(r["source_matchers"]), matchers(r["target_matchers"]), r.get("equal", []))
        for r in alertmanager_config()["inhibit_rules"]
    ]
    assert ({"severity": ("=", "critical")}, {"severity": ("=", "warning")}) in [
        (s, t) for s, t, equal in inhibit if {"alertname", "kiosk_id"} <= set(equal)
    ]
    for source, suppressed in [
        ("NoKioskOnline", {"KioskOffline", "KioskFleetAvailabilityLow"}),
        ("KioskExporterDown", {"KioskOffline", "NoKioskOnline", "KioskAppVersionOutdated"}),
        ("KioskBatteryCritical", {"KioskBatteryLow"}),
    ]:
        targets = [t for s, t, _ in inhibit if s == {"alertname": ("=", source)}]
        assert len(targets) == 1, source
        op, regex = targets[0]["alertname"]
        assert op == "=~"
        assert all(re.fullmatch(regex, name) for name in suppressed), (source, regex)
        assert not re.fullmatch(regex, source)
