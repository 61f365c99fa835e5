"""`metrics_per_kiosk: attention` (issue 17): which kiosks keep per-kiosk series, the hold,
the per-location roll-ups, on both renderers and on the page a real server serves."""

from __future__ import annotations

import gzip
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from exporter import attention
from exporter.attention import AttentionMemory, needs_attention
from exporter.collector import FleetCollector
from exporter.config import Settings, load_settings
from exporter.errors import ConfigError
from exporter.expected import Expectation, KioskExpectation
from exporter.records import Vitals
from exporter.status import KioskStatus
from tests.support.http import request
from tests.support.service import RunningService
from tests.test_metrics import samples

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
ATTENTION = {"metrics_per_kiosk": "attention", "min_heartbeat_interval_seconds": 0}
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def expected(online: bool, offline_seconds: int | None = None) -> KioskExpectation:
    return KioskExpectation(Expectation(online, not online, None, None), None, offline_seconds)


def fresh(**values: object) -> Vitals:
    return Vitals(reported_at=NOW, **values)  # type: ignore[arg-type]


HOUR_AGO = NOW.timestamp() - 3600


@pytest.mark.parametrize(
    ("status", "expectation", "outdated", "vitals", "recent", "wanted"),
    [
        (KioskStatus.ONLINE, expected(True, 0), False, None, 0, False),
        (KioskStatus.ONLINE, expected(True, 0), None, fresh(battery_percent=20.0), 0, False),
        (KioskStatus.OFFLINE, expected(True, 30), False, None, 0, True),
        # Dark outside its hours or in maintenance: no alert reads it.
        (KioskStatus.OFFLINE, expected(False, 0), False, None, 0, False),
        (KioskStatus.NEVER_CONNECTED, expected(True), None, None, 0, True),
        (KioskStatus.INACTIVE, expected(False), True, fresh(battery_percent=1.0), 5, False),
        (KioskStatus.ONLINE, expected(True, 0), True, None, 0, True),
        (KioskStatus.ONLINE, expected(False, 0), True, None, 0, True),
        (KioskStatus.ONLINE, expected(True, 0), False, None, 2, False),
        (KioskStatus.ONLINE, expected(True, 0), False, None, 3, True),
        (KioskStatus.ONLINE, expected(True, 0), False, fresh(battery_percent=19.9), 0, True),
        (
            KioskStatus.ONLINE,
            expected(True, 0),
            False,
            fresh(battery_percent=19.9, battery_charging=True),
            0,
            True,
        ),
        (
            KioskStatus.ONLINE,
            expected(True, 0),
            False,
            fresh(storage_free_bytes=99, storage_total_bytes=1000),
            0,
            True,
        ),
        (
            KioskStatus.ONLINE,
            expected(True, 0),
            False,
            fresh(storage_free_bytes=100, storage_total_bytes=1000),
            0,
            False,
        ),
        (KioskStatus.ONLINE, expected(True, 0), False, fresh(app_in_foreground=False), 0, True),
        (KioskStatus.ONLINE, expected(True, 0), False, fresh(app_in_foreground=True), 0, False),
        (KioskStatus.ONLINE, expected(True, 0), False, fresh(boot_time=HOUR_AGO + 1), 0, True),
        (KioskStatus.ONLINE, expected(True, 0), False, fresh(boot_time=HOUR_AGO), 0, False),
    ],
    ids=[
        "online",
        "battery-at-20%",
        "offline-while-expected",
        "offline-outside-hours",
        "never-connected",
        "deactivated",
        "outdated",
        "outdated-outside-hours",
        "two-outages",
        "flapping",
        "battery-low",
        "battery-low-charging",
        "storage-low",
        "storage-at-10%",
        "app-not-in-foreground",
        "app-in-foreground",
        "booted-within-the-hour",
        "booted-an-hour-ago",
    ],
)
def test_which_kiosks_need_attention(status, expectation, outdated, vitals, recent, wanted):
    verdict = needs_attention(
        status=status,
        expected=expectation,
        outdated=outdated,
        vitals=vitals,
        recent_outages=recent,
        now=NOW,
    )
    assert verdict is wanted


def alert_expr(name: str) -> str:
    for group in yaml.safe_load((ROOT / "rules" / "kiosk.yml").read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                return str(rule["expr"])
    raise AssertionError(f"no alert {name}")


def test_the_thresholds_are_the_shipped_alerts_thresholds():
    """attention.py keeps a kiosk exactly while the rules could fire on it."""
    assert f"battery_ratio[5m]) < {attention.BATTERY_LOW_RATIO}\n" in alert_expr("KioskBatteryLow")
    storage = alert_expr("KioskStorageLow")
    assert f"storage_size_bytes[5m]) < {attention.STORAGE_LOW_RATIO}\n" in storage
    assert f"count1h >= {attention.FLAPPING_OUTAGES}\n" in alert_expr("KioskFlapping")
    window = int(attention.REBOOT_WINDOW.total_seconds())
    reboots = alert_expr("KioskRebootLoop")
    assert f"[{window // 3600}h]" in reboots and f"time() - {window}" in reboots
    assert re.search(r"offline_while_expected_seconds\[5m\]\) > \d+", alert_expr("KioskOffline"))
    # The hold outlasts the rules' staleness guard, or a recovery would not show in time.
    assert timedelta(minutes=5) < attention.HOLD


def test_a_kiosk_stays_shown_for_the_hold_after_it_last_needed_attention():
    memory = AttentionMemory()
    assert memory.shown([1, 2], NOW) == {1, 2}
    assert memory.shown([2], NOW + timedelta(minutes=9, seconds=59)) == {1, 2}
    assert memory.shown([], NOW + timedelta(minutes=10)) == {2}
    assert memory.shown([], NOW + timedelta(minutes=20)) == set()


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, "all"),
        ({"KIOSK_EXPORTER_METRICS_PER_KIOSK": "attention"}, "attention"),
        ({"KIOSK_EXPORTER_METRICS_PER_KIOSK": " Attention "}, "attention"),
        ({"KIOSK_EXPORTER_METRICS_PER_KIOSK": "ALL"}, "all"),
    ],
)
def test_metrics_per_kiosk_from_the_environment(environ, wanted):
    assert load_settings(environ=environ).metrics_per_kiosk == wanted


def test_metrics_per_kiosk_from_the_file_and_its_errors(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("metrics_per_kiosk: attention\n")
    assert load_settings(config).metrics_per_kiosk == "attention"
    config.write_text("metrics_per_kiosk: some\n")
    with pytest.raises(ConfigError, match="metrics_per_kiosk: 'some' is not one of all, attention"):
        load_settings(config)
    config.write_text("metrics_per_kiosk: true\n")
    with pytest.raises(ConfigError, match="metrics_per_kiosk: expected a number or text"):
        load_settings(config)


def test_a_bad_mode_stops_serve_with_a_clear_error(tmp_path):
    service = RunningService(tmp_path, {"metrics_per_kiosk": "attentive"})
    with pytest.raises(RuntimeError):
        service.start(timeout=10)
    output = "\n".join(service.log_lines)
    assert "metrics_per_kiosk: 'attentive' is not one of all, attention" in output


# -- the page ----------------------------------------------------------------------------------


def kiosk_names(parsed: dict, metric: str) -> dict[str, float]:
    return {dict(labels)["kiosk_name"]: v for (name, labels), v in parsed.items() if name == metric}


def rollup(parsed: dict, metric: str) -> dict[tuple, float]:
    return {
        tuple(v for k, v in labels): value
        for (name, labels), value in parsed.items()
        if name == metric
    }


@sqlite_only
def test_attention_page_shows_kiosks_that_need_attention_and_counts_everyone(
    make_client, store, clock
):
    client = make_client(metrics_per_kiosk="attention", latest_app_version="2.0.0")
    fine, _ = store.add_kiosk("Fine", "Hall", now=clock())
    dark, _ = store.add_kiosk("Dark", "Hall", now=clock())
    store.add_kiosk("New", "Annex", now=clock())
    old, _ = store.add_kiosk("Old", "Annex", now=clock())
    store.record_heartbeat(dark.id, received_at=clock(), app_version="2.0.0")
    clock.advance(600)
    store.record_heartbeat(fine.id, received_at=clock(), app_version="2.0.0")
    store.record_heartbeat(old.id, received_at=clock(), app_version="1.0.0")
    parsed = samples(client.simulate_get("/metrics").text)
    assert kiosk_names(parsed, "kiosk_online") == {"Dark": 0.0, "New": 0.0, "Old": 1.0}
    assert kiosk_names(parsed, "kiosk_offline_while_expected_seconds") == {"Dark": 600.0, "Old": 0}
    assert not kiosk_names(parsed, "kiosk_offline_seconds_total"), "no per-kiosk counters"
    assert rollup(parsed, "kiosk_location_kiosks") == {
        ("Annex", "inactive"): 0,
        ("Annex", "never_connected"): 1,
        ("Annex", "offline"): 0,
        ("Annex", "online"): 1,
        ("Hall", "inactive"): 0,
        ("Hall", "never_connected"): 0,
        ("Hall", "offline"): 1,
        ("Hall", "online"): 1,
    }
    assert rollup(parsed, "kiosk_location_eligible_kiosks") == {("Annex",): 1, ("Hall",): 2}
    assert rollup(parsed, "kiosk_location_eligible_online_kiosks") == {("Annex",): 1, ("Hall",): 1}
    assert rollup(parsed, "kiosk_location_app_version_kiosks") == {
        ("", "Annex"): 1,  # (app_version, location)
        ("1.0.0", "Annex"): 1,
        ("2.0.0", "Hall"): 2,
    }
    assert rollup(parsed, "kiosk_location_observed_seconds_total") == {
        ("Annex",): 0.0,
        ("Hall",): 600.0,
    }
    fleet = rollup(parsed, "kiosk_fleet_kiosks")
    assert fleet == {("online",): 2, ("offline",): 1, ("never_connected",): 1, ("inactive",): 0}


@sqlite_only
def test_a_kiosk_back_online_shows_its_recovery_for_ten_minutes_then_goes(
    make_client, store, clock
):
    client = make_client(metrics_per_kiosk="attention")
    kiosk, _ = store.add_kiosk("Back", "Hall", now=clock())
    store.record_heartbeat(kiosk.id, received_at=clock())
    clock.advance(900)
    page = samples(client.simulate_get("/metrics").text)
    assert kiosk_names(page, "kiosk_offline_while_expected_seconds") == {"Back": 900.0}
    store.record_heartbeat(kiosk.id, received_at=clock())
    for _ in range(3):  # 0, 4 and 8 minutes after its return
        page = samples(client.simulate_get("/metrics").text)
        assert kiosk_names(page, "kiosk_online") == {"Back": 1.0}
        assert kiosk_names(page, "kiosk_offline_while_expected_seconds") == {"Back": 0.0}
        clock.advance(240)
        store.record_heartbeat(kiosk.id, received_at=clock())
    page = samples(client.simulate_get("/metrics").text)  # 12 minutes after
    assert kiosk_names(page, "kiosk_online") == {}
    assert rollup(page, "kiosk_location_eligible_online_kiosks") == {("Hall",): 1}


@sqlite_only
def test_three_outages_within_the_hour_keep_a_kiosk_shown_with_the_service_count(
    make_client, store, clock
):
    client = make_client(**ATTENTION)
    _, key = store.add_kiosk("Flaky", "Hall", now=clock())
    headers = {"X-Kiosk-API-Key": key}
    for _ in range(3):  # three gaps longer than the threshold: three outages
        assert client.simulate_post("/kiosk/heartbeat", json={}, headers=headers).status_code == 200
        clock.advance(400)
    assert client.simulate_post("/kiosk/heartbeat", json={}, headers=headers).status_code == 200
    page = samples(client.simulate_get("/metrics").text)
    assert kiosk_names(page, "kiosk_online") == {"Flaky": 1.0}
    assert kiosk_names(page, "kiosk_outages_last_hour") == {"Flaky": 3.0}
    assert rollup(page, "kiosk_location_outages_total") == {("Hall",): 3.0}
    clock.advance(3600 + 601)  # the outages leave the hour, then the hold ends
    assert client.simulate_post("/kiosk/heartbeat", json={}, headers=headers).status_code == 200
    page = samples(client.simulate_get("/metrics").text)
    assert kiosk_names(page, "kiosk_outages_last_hour") == {}


@sqlite_only
def test_both_renderers_agree_in_attention_mode(make_client, store, clock):
    settings = {"metrics_per_kiosk": "attention", "latest_app_version": "2.0.0"}
    client = make_client(**settings)
    for n in range(6):
        kiosk, _ = store.add_kiosk(f"K{n}", "Hall" if n % 2 else "Lobby", now=clock())
        if n % 3:
            store.record_heartbeat(kiosk.id, received_at=clock(), app_version=f"{n % 3}.0.0")
    clock.advance(400)
    store.record_heartbeat(1, received_at=clock())
    served = samples(client.simulate_get("/metrics").text)
    collector = FleetCollector(store, Settings(**settings), clock)
    registry = CollectorRegistry()
    registry.register(collector)
    reference = samples(generate_latest(registry).decode())
    assert reference
    assert {k: v for k, v in served.items() if k in reference} == reference
    assert {
        k for k in served if k[0].startswith("kiosk_") and not k[0].startswith("kiosk_exporter")
    } == set(reference)


@sqlite_only
def test_vitals_show_a_kiosk_only_when_they_are_exported(make_client, store, clock):
    kiosk, _ = store.add_kiosk("Low", "Hall", now=clock())
    low = Vitals(reported_at=clock(), battery_percent=10.0, battery_charging=False)
    store.record_heartbeat(kiosk.id, received_at=clock(), vitals=low)
    shown = samples(make_client(metrics_per_kiosk="attention").simulate_get("/metrics").text)
    assert kiosk_names(shown, "kiosk_battery_ratio") == {"Low": 0.1}
    client = make_client(metrics_per_kiosk="attention", metrics_vitals=False)
    assert kiosk_names(samples(client.simulate_get("/metrics").text), "kiosk_online") == {}


@sqlite_only
def test_all_mode_page_has_no_rollups(client, store, clock):
    store.add_kiosk("K", "Hall", now=clock())
    text = client.simulate_get("/metrics").text
    assert "kiosk_location_" not in text and "kiosk_outages_last_hour" not in text
    assert 'kiosk_online{kiosk_id="1",kiosk_name="K",location="Hall"} 0.0' in text


@pytest.mark.parametrize("workers", [1, 2])
def test_a_real_server_in_attention_mode_serves_only_kiosks_that_need_attention(tmp_path, workers):
    """The page comes from the renderer process(es), which must get the setting too."""
    args = ("--workers", str(workers)) if workers > 1 else ()
    with RunningService(tmp_path, ATTENTION, serve_args=args) as server:
        _, key = server.add_kiosk("Fine", "Hall")
        server.add_kiosk("New", "Hall")
        assert server.heartbeat(key).status == 200
        for _ in range(3):  # whichever worker answers
            reply = request("GET", server.url + "/metrics", headers={"Accept-Encoding": "gzip"})
            assert reply.status == 200
            parsed = samples(gzip.decompress(reply.body).decode())
            assert kiosk_names(parsed, "kiosk_online") == {"New": 0.0}
            assert rollup(parsed, "kiosk_location_kiosks")[("Hall", "online")] == 1
            assert rollup(parsed, "kiosk_location_kiosks")[("Hall", "never_connected")] == 1
