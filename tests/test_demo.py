"""`kiosk-exporter demo`: the README's run command shows the original design's 3/4 online."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest

from tests.support.http import request
from tests.support.process import Command

EXPECTED = {
    "Kiosk-Entrance": ("Building A - Main Entrance", "online"),
    "Kiosk-Cafeteria": ("Building B - Floor 1", "online"),
    "Kiosk-Exit": ("Building A", "online"),
    "Kiosk-Floor2": ("Building C - Floor 2", "offline"),
}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_demo_shows_three_of_four_kiosks_online_and_cleans_up(sig):
    with Command(["demo", "--port", "0"]) as command:
        url = command.stdout.wait_for(r"Service:\s+(http://\S+)", timeout=30).group(1)
        token = command.stdout.wait_for(r"Back-office token:\s+(\S+)").group(1)
        database = command.stderr.wait_for(r"with sqlite:///(/\S+demo\.db)").group(1)
        kiosks = _wait_for_all_status(url, token)
        metrics = request("GET", url + "/metrics").body.decode()
        assert command.stop(sig) == 0
    assert {k["kiosk_name"]: (k["location"], k["status"]) for k in kiosks} == EXPECTED
    floor2 = next(k for k in kiosks if k["kiosk_name"] == "Kiosk-Floor2")
    assert 900 <= floor2["offline_duration_seconds"] < 960
    assert floor2["device_info"].startswith("Android/")
    # Healthy vitals everywhere: on the charger, storage to spare, the app on screen.
    for kiosk in kiosks:
        vitals = kiosk["vitals"]
        assert vitals["battery_charging"] and vitals["app_in_foreground"], kiosk
        assert vitals["storage_free_bytes"] > vitals["storage_total_bytes"] / 2, kiosk
    assert re.search(r'^kiosk_battery_ratio\{[^}]*"Kiosk-Exit"[^}]*\} 1\.0$', metrics, re.M)
    online = re.findall(r'^kiosk_online\{[^}]*kiosk_name="([^"]+)"[^}]*\} (\S+)$', metrics, re.M)
    assert {name: float(value) for name, value in online} == {
        "Kiosk-Entrance": 1.0,
        "Kiosk-Cafeteria": 1.0,
        "Kiosk-Exit": 1.0,
        "Kiosk-Floor2": 0.0,
    }
    assert not Path(database).parent.exists(), "the temporary database is removed on exit"
    assert "Traceback" not in command.stderr.text()


def _wait_for_all_status(
    url: str, token: str, online: int = 3, timeout: float = 10.0
) -> list[dict]:
    """All-status once `online` kiosks are online (the agents' first heartbeats have landed)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = request(
            "GET", url + "/kiosk/all-status", headers={"Authorization": f"Bearer {token}"}
        )
        assert reply.status == 200, reply.body
        kiosks = reply.json
        if sum(k["status"] == "online" for k in kiosks) == online or time.monotonic() > deadline:
            return kiosks  # type: ignore[no-any-return]
        time.sleep(0.1)


def test_the_demo_banner_gives_a_working_heartbeat_command_for_the_silent_kiosk():
    with Command(["demo", "--port", "0"]) as command:
        url = command.stdout.wait_for(r"Service:\s+(http://\S+)", timeout=30).group(1)
        token = command.stdout.wait_for(r"Back-office token:\s+(\S+)").group(1)
        page = command.stdout.wait_for(r"Status page:\s+(http://\S+)").group(1)
        key = command.stdout.wait_for(r"X-Kiosk-API-Key: (\S+)'").group(1)
        assert page == url + "/ui/"
        assert request("GET", page).headers["content-type"].startswith("text/html")
        reply = request(
            "POST",
            url + "/kiosk/heartbeat",
            headers={"X-Kiosk-API-Key": key},
            json_body={"app_version": "1.0.0", "device_info": "Test"},
        )
        assert reply.status == 200
        kiosks = _wait_for_all_status(url, token, online=4)
        assert command.stop() == 0
    assert {k["kiosk_name"]: k["status"] for k in kiosks}["Kiosk-Floor2"] == "online"


def test_the_demo_prints_its_facts_as_json_on_request():
    with Command(["demo", "--port", "0", "--json"]) as command:
        line = command.stdout.wait_for(r"^\{.*\}$", timeout=30).group(0)
        facts = json.loads(line)
        kiosks = _wait_for_all_status(facts["service"], facts["token"])
        assert command.stop() == 0
    assert {k["name"] for k in facts["kiosks"]} == set(EXPECTED)
    assert [k["name"] for k in facts["kiosks"] if k["silent"]] == ["Kiosk-Floor2"]
    assert all(k["api_key"].startswith("kk_") for k in facts["kiosks"])
    assert sum(k["status"] == "online" for k in kiosks) == 3
    assert "Service:" not in command.stdout.text()
