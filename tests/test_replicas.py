"""Two service processes on one server database, as replicas behind a load balancer run.

A heartbeat answered by one replica is what the other reports, in JSON and in /metrics;
heartbeats from a whole fleet spread over both, in parallel, lose nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.http import Reply, request
from tests.support.service import RunningService

FLEET = 200
SETTINGS = {"min_heartbeat_interval_seconds": 0, "threads": 8}


@pytest.fixture
def replicas(server_database_url: str, tmp_path: Path) -> Iterator[list[RunningService]]:
    services = [RunningService(tmp_path / n, SETTINGS, database=server_database_url) for n in "ab"]
    try:
        yield [service.start() for service in services]
    finally:
        for service in services:
            service.stop()


def own_status(service: RunningService, key: str) -> Reply:
    return request("GET", service.url + "/kiosk/status", headers={"X-Kiosk-API-Key": key})


def metric_values(service: RunningService, name: str) -> dict[str, float]:
    """{kiosk_id: value} of one per-kiosk family in the replica's /metrics."""
    text = service.metrics().body.decode()
    return {
        sample.labels["kiosk_id"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def import_fleet(service: RunningService, size: int) -> list[tuple[int, str]]:
    rows = "name,location\n" + "".join(f"Kiosk-{n:03d},Hall {n % 7}\n" for n in range(size))
    result = service.cli("kiosk", "import", "-", "--json", input_text=rows)
    assert result.returncode == 0, result.stderr
    return [(k["id"], k["api_key"]) for k in json.loads(result.stdout)]


def test_a_heartbeat_sent_to_one_replica_is_seen_by_the_other(replicas):
    a, b = replicas
    kiosk_id, key = a.add_kiosk("Kiosk-Entrance", "Building A")
    token = b.add_token()
    assert own_status(b, key).json["status"] == "never_connected"
    sent = a.heartbeat(key, {"app_version": "1.2.3", "device_info": "Android/11"})
    assert sent.status == 200
    seen = own_status(b, key).json
    assert (seen["status"], seen["last_heartbeat_at"]) == ("online", sent.json["received_at"])
    (listed,) = b.all_status(token).json
    assert (listed["app_version"], listed["device_info"]) == ("1.2.3", "Android/11")
    assert metric_values(b, "kiosk_online") == {str(kiosk_id): 1.0}
    assert metric_values(b, "kiosk_last_heartbeat_timestamp_seconds") == metric_values(
        a, "kiosk_last_heartbeat_timestamp_seconds"
    )


def test_heartbeats_from_a_fleet_spread_over_both_replicas_lose_nothing(replicas):
    """Two rounds, each kiosk to one replica in the first and to the other in the second,
    all in parallel: every kiosk ends with its second-round version on both replicas."""
    fleet = import_fleet(replicas[0], FLEET)
    token = replicas[0].add_token()

    def beat(round_: int, n: int, key: str) -> int:
        replica = replicas[(n + round_) % 2]
        body = {"app_version": f"{round_}.0.{n}", "device_info": f"tablet {n}"}
        return replica.heartbeat(key, body, timeout=30).status

    with ThreadPoolExecutor(max_workers=32) as pool:
        for round_ in (1, 2):
            statuses = list(
                pool.map(beat, [round_] * FLEET, range(FLEET), [key for _, key in fleet])
            )
            assert statuses == [200] * FLEET, f"round {round_}: {sorted(set(statuses))}"
    expected = {kiosk_id: f"2.0.{n}" for n, (kiosk_id, _) in enumerate(fleet)}
    for replica in replicas:
        kiosks = replica.all_status(token).json
        assert {k["kiosk_id"]: k["app_version"] for k in kiosks} == expected
        assert {k["status"] for k in kiosks} == {"online"}
        online = metric_values(replica, "kiosk_online")
        assert online == {str(kiosk_id): 1.0 for kiosk_id in expected}


def test_kiosks_imported_through_one_replica_work_on_the_other(replicas):
    """Import on one, heartbeat and rotate keys through the other: no replica caches a
    fact the other can change (a rotated key stops working on both at once)."""
    a, b = replicas
    ((kiosk_id, key),) = import_fleet(a, 1)
    assert b.heartbeat(key).status == 200
    rotated = a.cli("kiosk", "rotate-key", str(kiosk_id), "--json")
    new_key = json.loads(rotated.stdout)["api_key"]
    assert [r.heartbeat(key).status for r in replicas] == [401, 401]
    assert [r.heartbeat(new_key).status for r in replicas] == [200, 200]
