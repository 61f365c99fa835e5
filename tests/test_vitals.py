"""Device vitals: the checks of each field, the snapshot the store keeps (three databases),
the boot-time rule, the status object's "vitals" and the per-kiosk metrics."""

from __future__ import annotations

import pytest

from exporter import keys, vitals
from exporter.config import load_settings
from exporter.errors import ConfigError
from exporter.records import HeartbeatWrite, Outcome
from tests.test_metrics import kiosk_value, samples

FULL = {
    "battery_percent": 87.5,
    "battery_charging": False,
    "storage_free_bytes": 12_000_000_000,
    "storage_total_bytes": 64_000_000_000,
    "memory_free_bytes": 1_500_000_000,
    "memory_total_bytes": 4_000_000_000,
    "uptime_seconds": 3600,
    "network": "wifi",
    "wifi_signal_dbm": -61,
    "app_in_foreground": True,
    "screen_on": True,
}


# -- the checks of each field (pure) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("battery_percent", 0),
        ("battery_percent", 100),
        ("battery_percent", 42.5),
        ("battery_charging", False),
        ("storage_free_bytes", 0),
        ("storage_total_bytes", vitals.MAX_BYTES),
        ("uptime_seconds", 0),
        ("uptime_seconds", 12.5),
        ("network", "cellular"),
        ("wifi_signal_dbm", -127),
        ("wifi_signal_dbm", 0),
        ("app_in_foreground", True),
    ],
)
def test_a_value_in_range_is_kept(field, value):
    assert vitals.VITAL_CHECKS[field](value) == value


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("battery_percent", 100.5, "between 0 and 100"),
        ("battery_percent", -1, "between 0 and 100"),
        ("battery_percent", True, "must be a number"),
        ("battery_percent", "87", "must be a number"),
        ("battery_percent", float("nan"), "finite"),
        ("battery_charging", 1, "true or false"),
        ("storage_free_bytes", -1, "between 0 and"),
        ("storage_free_bytes", 1.5, "integer"),
        ("storage_total_bytes", vitals.MAX_BYTES + 1, "between 0 and"),
        ("memory_total_bytes", False, "integer"),
        ("uptime_seconds", -0.5, ">= 0"),
        ("uptime_seconds", float("inf"), "finite"),
        ("uptime_seconds", 10**400, "finite"),  # JSON integers have no size limit
        ("battery_percent", -(10**400), "finite"),
        ("network", ["wifi"], "one of"),
        ("network", "WiFi", "one of wifi, ethernet, cellular, other"),
        ("network", 3, "one of"),
        ("wifi_signal_dbm", 1, "-127 and 0"),
        ("wifi_signal_dbm", -128, "-127 and 0"),
        ("wifi_signal_dbm", -60.5, "-127 and 0"),
        ("screen_on", "yes", "true or false"),
    ],
)
def test_a_value_out_of_type_or_range_names_why(field, value, reason):
    with pytest.raises(ValueError, match=reason):
        vitals.VITAL_CHECKS[field](value)


@pytest.mark.parametrize(
    ("values", "kept", "rejected"),
    [
        ({"storage_free_bytes": 5, "storage_total_bytes": 5}, {"storage_free_bytes"}, set()),
        (
            {"storage_free_bytes": 6, "storage_total_bytes": 5, "battery_percent": 50},
            {"battery_percent"},
            {"storage_free_bytes", "storage_total_bytes"},
        ),
        (
            {"memory_free_bytes": 9, "memory_total_bytes": 8},
            set(),
            {"memory_free_bytes", "memory_total_bytes"},
        ),
        ({"memory_free_bytes": 9}, {"memory_free_bytes"}, set()),  # a pair needs both
        ({"wifi_signal_dbm": -50, "network": "wifi"}, {"wifi_signal_dbm"}, set()),
        ({"wifi_signal_dbm": -50, "network": "ethernet"}, set(), {"wifi_signal_dbm"}),
        ({"wifi_signal_dbm": -50}, set(), {"wifi_signal_dbm"}),
    ],
)
def test_cross_checks_drop_what_contradicts(values, kept, rejected):
    values = dict(values)
    reasons = vitals.cross_check(values)
    assert set(reasons) == rejected
    assert kept <= set(values) and not rejected & set(values)


def test_a_snapshot_holds_the_known_fields_and_the_boot_time_they_imply(clock):
    assert vitals.snapshot({}, clock()) is None
    assert vitals.snapshot({"battery_percent": None, "sent_at": "x"}, clock()) is None
    snap = vitals.snapshot({"battery_percent": 50, "uptime_seconds": 60}, clock())
    assert snap.reported_at == clock() and snap.battery_percent == 50
    assert snap.boot_time == clock().timestamp() - 60 and snap.network is None
    document = vitals.vitals_document(snap)
    assert document == {
        "battery_percent": 50,
        "uptime_seconds": 60,
        "reported_at": "2026-11-26T10:00:00.000000Z",
    }
    assert vitals.vitals_document(None) == {}


# -- the store: one snapshot per kiosk, written by the heartbeat batch (three databases) ----


@pytest.fixture
def beat(store, add_kiosk, clock):
    """Send a heartbeat through the store's batch write; returns (kiosk id, writer)."""
    kiosk_id, key = add_kiosk()

    def send(seconds_later: float = 0, **values):
        at = clock.advance(seconds_later)
        write = HeartbeatWrite(
            kiosk_id, keys.hash_secret(key), at, None, None, vitals.snapshot(values, at)
        )
        [result] = store.record_heartbeats([write], min_interval_seconds=10)
        return result.outcome

    return kiosk_id, send


def test_a_snapshot_replaces_the_last_and_a_beat_without_vitals_keeps_it(store, beat, clock):
    kiosk_id, send = beat
    assert store.get_kiosk(kiosk_id).vitals is None
    assert send(**FULL) is Outcome.ACCEPTED
    first = clock()
    stored = store.get_kiosk(kiosk_id).vitals
    assert stored.reported_at == first
    assert {k: getattr(stored, k) for k in FULL} == FULL
    assert isinstance(stored.battery_charging, bool) and isinstance(stored.screen_on, bool)
    assert send(60) is Outcome.ACCEPTED  # no vital: the snapshot stays, reported_at too
    assert store.get_kiosk(kiosk_id).vitals == stored
    assert send(60, battery_percent=40) is Outcome.ACCEPTED
    replaced = store.get_kiosk(kiosk_id).vitals
    # Everything it left out is unknown now, but the boot time is kept apart.
    assert replaced.battery_percent == 40 and replaced.storage_free_bytes is None
    assert replaced.network is None and replaced.reported_at == clock()
    assert replaced.boot_time == stored.boot_time
    assert send(1, battery_percent=10) is Outcome.RATE_LIMITED  # refused: nothing written
    assert store.get_kiosk(kiosk_id).vitals == replaced


def test_boot_time_moves_only_on_a_reboot_or_more_than_two_minutes(store, beat, clock):
    kiosk_id, send = beat
    send(uptime_seconds=1000)
    booted = clock().timestamp() - 1000
    assert store.get_kiosk(kiosk_id).vitals.boot_time == booted
    send(60, uptime_seconds=1060 - 30)  # 30 s of delivery delay: jitter, kept
    send(60, uptime_seconds=1120 + 90)  # 90 s the other way: kept
    assert store.get_kiosk(kiosk_id).vitals.boot_time == booted
    send(60, uptime_seconds=45)  # rebooted 45 s ago
    rebooted = store.get_kiosk(kiosk_id).vitals.boot_time
    assert rebooted == clock().timestamp() - 45
    send(60, uptime_seconds=105 + 121)  # more than 2 min earlier: corrected
    assert store.get_kiosk(kiosk_id).vitals.boot_time == clock().timestamp() - 226


def test_a_batch_mixing_snapshots_and_plain_beats_writes_each_its_own(store, add_kiosk, clock):
    kiosks = [add_kiosk(f"Kiosk-{n}") for n in range(4)]
    at = clock()
    writes = [
        HeartbeatWrite(
            kiosk_id,
            keys.hash_secret(key),
            at,
            f"1.{n}",
            None,
            vitals.snapshot({"battery_percent": n * 10} if n % 2 else {}, at),
        )
        for n, (kiosk_id, key) in enumerate(kiosks)
    ]
    outcomes = store.record_heartbeats(writes, min_interval_seconds=10)
    assert [r.outcome for r in outcomes] == [Outcome.ACCEPTED] * 4
    stored = {k.id: k for k in store.list_kiosks()}
    for n, (kiosk_id, _) in enumerate(kiosks):
        assert stored[kiosk_id].app_version == f"1.{n}"
        battery = stored[kiosk_id].vitals and stored[kiosk_id].vitals.battery_percent
        assert battery == (n * 10 if n % 2 else None)


# -- where they show: status object and metrics -------------------------------------------------


def test_status_and_metrics_show_fresh_vitals_only(make_client, store, beat, clock, token):
    kiosk_id, send = beat
    client = make_client()
    headers = {"Authorization": f"Bearer {token}"}
    [document] = client.simulate_get("/kiosk/all-status", headers=headers).json
    assert document["vitals"] == {}
    send(**{**FULL, "battery_charging": None, "screen_on": None})
    parsed = samples(client.simulate_get("/metrics").text)
    expected = {
        "kiosk_battery_ratio": 0.875,
        "kiosk_storage_free_bytes": 12e9,
        "kiosk_storage_size_bytes": 64e9,
        "kiosk_memory_free_bytes": 1.5e9,
        "kiosk_memory_size_bytes": 4e9,
        "kiosk_boot_time_seconds": clock().timestamp() - 3600,
        "kiosk_wifi_signal_dbm": -61,
        "kiosk_app_in_foreground": 1,
        "kiosk_battery_charging": None,  # unknown: no series at all
        "kiosk_screen_on": None,
    }
    for name, value in expected.items():
        assert kiosk_value(parsed, name, kiosk_id) == value, name
    labels = (("kiosk_id", str(kiosk_id)), ("kiosk_name", "Kiosk-Entrance"))
    labels += (("location", "Building A"), ("network", "wifi"))
    assert parsed[("kiosk_network_info", labels)] == 1
    [document] = client.simulate_get("/kiosk/all-status", headers=headers).json
    assert document["vitals"]["battery_percent"] == 87.5
    assert "screen_on" not in document["vitals"]
    assert document["vitals"]["reported_at"] == "2026-11-26T10:00:00.000000Z"

    clock.advance(300)  # the default online threshold: a reading that old is not exported
    parsed = samples(client.simulate_get("/metrics").text)
    assert not [key for key in parsed if key[0] in expected or key[0] == "kiosk_network_info"]
    [document] = client.simulate_get("/kiosk/all-status", headers=headers).json
    assert document["vitals"]["battery_percent"] == 87.5  # the JSON says how old it is


def test_a_snapshot_without_network_has_no_network_series(make_client, beat):
    kiosk_id, send = beat
    send(battery_percent=50)
    parsed = samples(make_client().simulate_get("/metrics").text)
    assert kiosk_value(parsed, "kiosk_battery_ratio", kiosk_id) == 0.5
    assert not [key for key in parsed if key[0] == "kiosk_network_info"]


def test_metrics_vitals_false_leaves_every_vital_out(make_client, beat):
    _, send = beat
    send(**FULL)
    text = make_client(metrics_vitals=False).simulate_get("/metrics").text
    assert "kiosk_battery" not in text and "kiosk_network_info" not in text
    assert "kiosk_online{" in text
    text = make_client().simulate_get("/metrics").text
    assert "kiosk_battery_ratio{" in text and "kiosk_network_info{" in text


@pytest.mark.parametrize(
    ("environ", "expected"),
    [({}, True), ({"KIOSK_EXPORTER_METRICS_VITALS": "false"}, False)],
)
def test_metrics_vitals_is_a_boolean_setting(environ, expected, tmp_path):
    assert load_settings(environ=environ).metrics_vitals is expected
    config = tmp_path / "config.yml"
    config.write_text("metrics_vitals: false\n")
    assert load_settings(config).metrics_vitals is False
    with pytest.raises(ConfigError, match="metrics_vitals: 'maybe' is not true or false"):
        load_settings(environ={"KIOSK_EXPORTER_METRICS_VITALS": "maybe"})


# -- over HTTP: vitals are diagnostic fields, never a 400 ----------------------------------------


def test_a_heartbeat_carries_vitals_and_invalid_ones_are_named_not_refused(
    client, add_kiosk, store
):
    kiosk_id, key = add_kiosk()
    body = {
        **FULL,
        "battery_percent": 140,  # out of range
        "memory_free_bytes": 5_000_000_000,  # above memory_total_bytes
        "network": "ethernet",  # so the Wi-Fi signal does not count
        "screen_on": None,  # not known
    }
    reply = client.simulate_post("/kiosk/heartbeat", json=body, headers={"X-Kiosk-API-Key": key})
    assert reply.status_code == 200, reply.json
    rejected = reply.json["rejected_fields"]
    assert set(rejected) == {
        "battery_percent",
        "memory_free_bytes",
        "memory_total_bytes",
        "wifi_signal_dbm",
    }
    assert "between 0 and 100" in rejected["battery_percent"]
    assert rejected["memory_free_bytes"] == "memory_free_bytes above memory_total_bytes"
    stored = store.get_kiosk(kiosk_id).vitals
    assert stored.battery_percent is None and stored.memory_total_bytes is None
    assert stored.storage_free_bytes == FULL["storage_free_bytes"]
    assert stored.network == "ethernet" and stored.wifi_signal_dbm is None
    assert stored.screen_on is None and stored.app_in_foreground is True
    registry = client.application.registry
    for field in ("battery_percent", "memory_free_bytes", "wifi_signal_dbm"):
        value = registry.get_sample_value(
            "kiosk_exporter_heartbeat_rejected_fields_total", {"field": field}
        )
        assert value == 1, field
