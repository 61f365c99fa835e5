"""/metrics: the fleet judged by the same rule as the JSON API, in both exposition formats."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.collector import FleetCollector
from exporter.config import Settings
from exporter.exposition import negotiate

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def samples(text: str, parser=parse_text) -> dict[tuple[str, tuple], float]:
    """Every sample as {(name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parser(text)
        for s in family.samples
    }


def kiosk_value(parsed, name, kiosk_id):
    matches = [
        v
        for (n, labels), v in parsed.items()
        if n == name and ("kiosk_id", str(kiosk_id)) in labels
    ]
    assert len(matches) <= 1
    return matches[0] if matches else None


@pytest.fixture
def fleet(make_client, store, clock, token):
    """Online, offline, never-connected, inactive and outdated kiosks, as the design sketches."""
    client = make_client(latest_app_version="1.10.0")
    ids = {}
    for name, location, version, minutes_ago in (
        ("Kiosk-Entrance", "Building A - Main Entrance", "1.10.0", 0.75),
        ("Kiosk-Cafeteria", "Building B - Floor 1", "1.9.2", 2),
        ("Kiosk-Floor2", "Building C - Floor 2", "1.10.0", 15),
        ("Kiosk-Old", "Building A", "1.0.0", 1),
    ):
        kiosk, _ = store.add_kiosk(name, location, now=clock())
        store.record_heartbeat(
            kiosk.id,
            received_at=clock() - timedelta(minutes=minutes_ago),
            app_version=version,
            device_info="Android/11",
        )
        ids[name] = kiosk.id
    ids["Kiosk-Exit"] = store.add_kiosk("Kiosk-Exit", "Building A", now=clock())[0].id
    store.set_active(ids["Kiosk-Old"], False)
    return client, ids


def test_fleet_metrics_agree_with_the_json_api_at_the_same_instant(fleet, token):
    client, _ids = fleet
    parsed = samples(client.simulate_get("/metrics").text)
    documents = client.simulate_get(
        "/kiosk/all-status", headers={"Authorization": f"Bearer {token}"}
    ).json
    assert len(documents) == 5
    for document in documents:
        kiosk_id = document["kiosk_id"]
        assert kiosk_value(parsed, "kiosk_online", kiosk_id) == (
            1.0 if document["is_online"] else 0.0
        )
        assert kiosk_value(parsed, "kiosk_active", kiosk_id) == (
            1.0 if document["is_active"] else 0.0
        )
        if document["offline_duration_seconds"] is not None:
            age = kiosk_value(parsed, "kiosk_heartbeat_age_seconds", kiosk_id)
            assert int(age) == document["offline_duration_seconds"]
    counts = {
        dict(labels)["status"]: v for (n, labels), v in parsed.items() if n == "kiosk_fleet_kiosks"
    }
    assert counts == {"online": 2.0, "offline": 1.0, "never_connected": 1.0, "inactive": 1.0}


def test_per_kiosk_values(fleet, clock):
    client, ids = fleet
    parsed = samples(client.simulate_get("/metrics").text)
    entrance, exit_, floor2 = ids["Kiosk-Entrance"], ids["Kiosk-Exit"], ids["Kiosk-Floor2"]
    expected_ts = (clock() - timedelta(minutes=15)).timestamp()
    assert kiosk_value(parsed, "kiosk_last_heartbeat_timestamp_seconds", floor2) == pytest.approx(
        expected_ts
    )
    assert kiosk_value(parsed, "kiosk_heartbeat_age_seconds", floor2) == pytest.approx(900)
    assert kiosk_value(parsed, "kiosk_heartbeat_age_seconds", entrance) == pytest.approx(45)
    # never connected: no timestamp (0 would read as offline for 56 years), but online/active
    assert kiosk_value(parsed, "kiosk_last_heartbeat_timestamp_seconds", exit_) is None
    assert kiosk_value(parsed, "kiosk_heartbeat_age_seconds", exit_) is None
    assert kiosk_value(parsed, "kiosk_online", exit_) == 0.0
    assert kiosk_value(parsed, "kiosk_app_version_outdated", ids["Kiosk-Cafeteria"]) == 1.0
    assert kiosk_value(parsed, "kiosk_app_version_outdated", entrance) == 0.0
    assert kiosk_value(parsed, "kiosk_app_version_outdated", exit_) is None
    info = [
        labels
        for (n, labels), _ in parsed.items()
        if n == "kiosk_info" and ("kiosk_id", str(entrance)) in labels
    ]
    assert dict(info[0]) == {
        "kiosk_id": str(entrance),
        "kiosk_name": "Kiosk-Entrance",
        "location": "Building A - Main Entrance",
        "app_version": "1.10.0",
        "device_info": "Android/11",
    }


def test_identity_labels_only_on_per_kiosk_series(fleet):
    client, _ = fleet
    for family in parse_text(client.simulate_get("/metrics").text):
        if family.name.startswith("kiosk_") and not family.name.startswith(
            ("kiosk_fleet", "kiosk_exporter")
        ):
            for sample in family.samples:
                extra = set(sample.labels) - {"kiosk_id", "kiosk_name", "location"}
                assert extra == (
                    set() if family.name != "kiosk_info" else {"app_version", "device_info"}
                )


def test_outdated_series_only_when_a_latest_version_is_configured(make_client, store, clock):
    client = make_client(latest_app_version=None)
    kiosk, _ = store.add_kiosk("Kiosk-Entrance", "Building A", now=clock())
    store.record_heartbeat(kiosk.id, received_at=clock(), app_version="0.1.0")
    assert "kiosk_app_version_outdated" not in client.simulate_get("/metrics").text


def test_a_removed_or_renamed_kiosk_is_gone_from_the_next_scrape(fleet, store):
    client, ids = fleet
    store.remove_kiosk(ids["Kiosk-Exit"])
    store.update_kiosk(ids["Kiosk-Floor2"], name="Kiosk-Floor3", location="Building C - Floor 3")
    text = client.simulate_get("/metrics").text
    assert "Kiosk-Exit" not in text
    assert "Kiosk-Floor2" not in text
    assert 'kiosk_name="Kiosk-Floor3",location="Building C - Floor 3"' in text


def test_label_values_are_escaped(make_client, store, clock):
    client = make_client()
    name = 'Kiosk "A"\\B\nline two – café 東京'
    store.add_kiosk(name, 'Hall "1"', now=clock())
    for accept, parser in ((None, parse_text), (OPENMETRICS, parse_openmetrics)):
        headers = {"Accept": accept} if accept else {}
        parsed = samples(client.simulate_get("/metrics", headers=headers).text, parser)
        names = {
            dict(labels).get("kiosk_name")
            for (n, labels), _ in parsed.items()
            if n == "kiosk_online"
        }
        assert names == {name}


def test_openmetrics_when_the_scraper_asks_for_it(fleet):
    client, ids = fleet
    reply = client.simulate_get("/metrics", headers={"Accept": OPENMETRICS + ",text/plain;q=0.5"})
    assert reply.headers["content-type"].startswith("application/openmetrics-text")
    assert reply.text.endswith("# EOF\n")
    parsed = samples(reply.text, parse_openmetrics)
    assert kiosk_value(parsed, "kiosk_online", ids["Kiosk-Entrance"]) == 1.0
    assert ("kiosk_exporter_heartbeats_total", ()) in parsed


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [(None, False), ("text/plain", False), ("*/*", False), (OPENMETRICS, True)],
)
def test_content_negotiation(accept, openmetrics):
    assert negotiate(accept).openmetrics is openmetrics


def test_the_fast_renderer_matches_prometheus_client(fleet, store, clock):
    """The page is rendered by our own writer for speed; prometheus_client must read the same."""
    client, _ = fleet
    collector = FleetCollector(store, Settings(latest_app_version="1.10.0"), clock)
    registry = CollectorRegistry()
    registry.register(collector)
    reference = samples(generate_latest(registry).decode())
    served = samples(client.simulate_get("/metrics").text)
    assert reference
    assert {k: v for k, v in served.items() if k in reference} == reference
    assert {
        k for k in served if k[0].startswith("kiosk_") and not k[0].startswith("kiosk_exporter")
    } == set(reference)


def test_describing_the_collector_reads_no_database(clock):
    class NoDatabase:
        def __getattr__(self, name):
            raise AssertionError(f"describe() used the store ({name})")

    collector = FleetCollector(NoDatabase(), Settings(), clock)
    registry = CollectorRegistry()
    registry.register(collector)  # registering calls describe()
    assert "kiosk_online" in {m.name for m in collector.describe()}


def test_service_counters_by_outcome(make_client, store, clock):
    client = make_client()
    kiosk, key = store.add_kiosk("Kiosk-Entrance", "Building A", now=clock())
    headers = {"X-Kiosk-API-Key": key}
    client.simulate_post(
        "/kiosk/heartbeat", json={"sent_at": "2026-11-26T09:59:58.5Z"}, headers=headers
    )
    client.simulate_post("/kiosk/heartbeat", json={}, headers=headers)  # rate limited
    client.simulate_post("/kiosk/heartbeat", json={}, headers={"X-Kiosk-API-Key": "nope"})
    client.simulate_post("/kiosk/heartbeat", json={"app_version": 1}, headers=headers)
    clock.advance(60)
    # a tablet clock ahead of the server must not break anything: the delay counts as 0
    client.simulate_post(
        "/kiosk/heartbeat", json={"sent_at": "2026-11-26T11:00:00Z"}, headers=headers
    )
    store.set_active(kiosk.id, False)
    clock.advance(60)
    client.simulate_post("/kiosk/heartbeat", json={}, headers=headers)
    registry = client.application.registry
    value = registry.get_sample_value
    assert value("kiosk_exporter_heartbeats_total") == 2
    for reason, count in (
        ("auth", 1),
        ("rate_limited", 1),
        ("invalid", 1),
        ("inactive", 1),
        ("unavailable", 0),
    ):
        assert value("kiosk_exporter_heartbeats_rejected_total", {"reason": reason}) == count
    assert value("kiosk_exporter_heartbeat_delay_seconds_count") == 2
    assert value("kiosk_exporter_heartbeat_delay_seconds_sum") == pytest.approx(1.5)
    assert value("kiosk_exporter_heartbeat_delay_seconds_bucket", {"le": "0.05"}) == 1
    labels = {"route": "/kiosk/heartbeat", "method": "POST", "status": "429"}
    assert value("kiosk_exporter_request_duration_seconds_count", labels) == 1


@pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")
def test_request_durations_are_labelled_by_route_template_not_raw_path(client):
    client.simulate_get("/kiosk/nothing/12345")
    client.simulate_request("BREW", "/healthz")
    text = client.simulate_get("/metrics").text
    assert "/kiosk/nothing/12345" not in text
    assert 'route="unmatched"' in text
    assert "BREW" not in text


def test_build_info_and_process_metrics(client):
    parsed = samples(client.simulate_get("/metrics").text)
    from exporter import __version__

    assert parsed[("kiosk_exporter_build_info", (("version", __version__),))] == 1.0
    assert any(name == "process_resident_memory_bytes" for name, _ in parsed)
    assert any(name == "python_info" for name, _ in parsed)


def test_an_optional_bearer_token_protects_metrics(make_client):
    client = make_client(metrics_token="s3cret")
    assert client.simulate_get("/metrics").status_code == 401
    assert (
        client.simulate_get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    assert (
        client.simulate_get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code
        == 200
    )


def test_the_scrapes_fleet_read_gives_the_same_kiosks_as_list_kiosks(fleet, store, clock):
    """A scrape reads the fleet by a connection of its own on SQLite: same records, vitals
    and times included."""
    from exporter.devices import Role, SimulatedDevice
    from exporter.vitals import snapshot

    _, ids = fleet
    readings = snapshot(SimulatedDevice(Role.HEALTHY).readings(0), clock())
    store.record_heartbeat(ids["Kiosk-Entrance"], received_at=clock(), vitals=readings)
    listed = store.list_kiosks()
    assert any(k.vitals is not None for k in listed)
    assert store.fleet_kiosks() == listed


def test_a_name_that_is_not_utf8_is_scraped_with_a_replacement_character(
    make_client, store, clock, database_url
):
    """Written by another tool straight into the SQLite file: the scrape still answers."""
    if not database_url.startswith("sqlite"):
        pytest.skip("only SQLite stores text that is not valid in its encoding")
    import sqlite3

    kiosk, _ = store.add_kiosk("Kiosk-Lobby", "Building A", now=clock())
    connection = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    with connection:
        connection.execute(
            "UPDATE kiosks SET kiosk_name = CAST(X'4b696f736bff' AS TEXT) WHERE id = ?",
            (kiosk.id,),
        )
    connection.close()
    reply = make_client().simulate_get("/metrics")
    assert reply.status_code == 200
    assert 'kiosk_name="Kiosk\ufffd"' in reply.text
