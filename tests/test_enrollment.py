"""Enrollment: one-time codes, their exchange for an API key, guess limits, the agent's flow."""

from __future__ import annotations

import json
import stat
import threading

import pytest

from exporter import keys
from exporter.cli import main
from exporter.enrollment import GuessLimiter
from exporter.errors import TooManyGuesses
from tests.support.http import request
from tests.support.process import Command
from tests.support.service import RunningService

REFUSED = {
    "title": "Unknown, used or expired enrollment code",
    "description": "unknown, used or expired enrollment code",
}


@pytest.fixture
def admin(store, clock) -> str:
    return store.add_token("ops-admin", scope="admin", now=clock())[1]


def new_kiosk(client, admin, name="Kiosk-Entrance", location="Building A"):
    reply = client.simulate_post(
        "/admin/kiosks",
        json={"name": name, "location": location},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert reply.status_code == 201, reply.text
    return reply.json["kiosk_id"], reply.json["enrollment"]["code"]


def enroll(client, code, **more):
    return client.simulate_post("/kiosk/enroll", json={"code": code, **more})


def beat(client, key):
    return client.simulate_post("/kiosk/heartbeat", json={}, headers={"X-Kiosk-API-Key": key})


# -- codes ----------------------------------------------------------------------------------------


def test_codes_are_grouped_typeable_and_random():
    codes = {keys.generate_enrollment_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        groups = code.split("-")
        assert [len(g) for g in groups] == [5, 5]
        assert not set("".join(groups)) & set("01OIL")  # no look-alikes
        assert keys.normalize_enrollment_code(code) == "".join(groups)


@pytest.mark.parametrize(
    ("typed", "normalized"),
    [
        ("k7qx2-m9pdf", "K7QX2M9PDF"),
        (" K7QX2 M9PDF ", "K7QX2M9PDF"),
        ("K7QX2M9PDF", "K7QX2M9PDF"),
        ("K7QX2-M9PD", None),
        ("K7QX2-M9PD0", None),  # 0 is not in the alphabet
        ("K7QX2-M9PDFF", None),
        ("", None),
    ],
)
def test_typed_codes_are_normalized_before_hashing(typed, normalized):
    assert keys.normalize_enrollment_code(typed) == normalized


def test_the_guess_limiter_counts_failures_per_address_in_a_window():
    limiter = GuessLimiter(max_failures=3, window_seconds=60, max_addresses=2)
    for second in range(3):
        limiter.check("10.0.0.1", second)
        limiter.failed("10.0.0.1", second)
    with pytest.raises(TooManyGuesses) as refused:
        limiter.check("10.0.0.1", 10)
    assert refused.value.retry_after == 50  # the first failure leaves the window at 60
    limiter.check("10.0.0.2", 10)  # another address is not concerned
    limiter.check("10.0.0.1", 60.5)  # the oldest failure has left the window


# -- the exchange -----------------------------------------------------------------------------


def test_a_code_is_exchanged_once_for_a_working_key(client, admin, store, clock):
    kiosk_id, code = new_kiosk(client, admin)
    reply = enroll(client, code.lower().replace("-", " "), device_info="Android/14 - Tab A9")
    assert reply.status_code == 200
    assert reply.headers["cache-control"] == "no-store"
    assert set(reply.json) == {"kiosk_id", "api_key", "next_heartbeat_in_seconds"}
    assert (reply.json["kiosk_id"], reply.json["next_heartbeat_in_seconds"]) == (kiosk_id, 60)
    assert beat(client, reply.json["api_key"]).status_code == 200
    assert store.get_kiosk(kiosk_id).device_info == "Android/14 - Tab A9"
    again = enroll(client, code)
    assert (again.status_code, again.json) == (401, REFUSED)
    assert beat(client, reply.json["api_key"]).status_code != 401  # a failed reuse changes nothing


def test_used_expired_unknown_and_malformed_codes_get_the_same_401(make_client, admin, clock):
    client = make_client(enrollment_code_ttl_seconds=600)
    _, expiring = new_kiosk(client, admin)
    clock.advance(600)
    for code in (expiring, "ABCDE-FGHJK", "not a code", "x" * 64):
        reply = enroll(client, code)
        assert (reply.status_code, reply.json) == (401, REFUSED), code


@pytest.mark.parametrize("backend", ["sqlite"])  # validation: the database adds nothing
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "code"),
        ({"code": 12345}, "code"),
        ({"code": "x" * 65}, "code"),
        ({"code": "ABCDE-FGHJK", "device_info": 7}, "device_info"),
        ({"code": "ABCDE-FGHJK", "device_info": "a\nb"}, "device_info"),
        ({"code": "ABCDE-FGHJK", "api_key": "kk_x"}, "api_key"),
    ],
)
def test_a_malformed_request_is_a_400_naming_the_field(client, body, field):
    reply = client.simulate_post("/kiosk/enroll", json=body)
    assert (reply.status_code, reply.json["field"]) == (400, field)


def test_a_new_code_replaces_the_previous_one(client, admin, database_url, capsys):
    kiosk_id, first = new_kiosk(client, admin)
    assert main(["--database", database_url, "kiosk", "enroll-code", str(kiosk_id)], {}) == 0
    out = capsys.readouterr().out
    second = out.splitlines()[0]
    assert second != first and "█" in out  # the code, then its QR code for the terminal
    assert enroll(client, first).status_code == 401
    assert enroll(client, second).status_code == 200


def test_rotation_revokes_the_key_and_the_new_code_enrolls_again(client, admin):
    kiosk_id, code = new_kiosk(client, admin)
    key = enroll(client, code).json["api_key"]
    rotated = client.simulate_post(
        f"/admin/kiosks/{kiosk_id}/rotate-key", headers={"Authorization": f"Bearer {admin}"}
    )
    assert beat(client, key).status_code == 401
    fresh = enroll(client, rotated.json["enrollment"]["code"])
    assert beat(client, fresh.json["api_key"]).status_code == 200


def test_guesses_are_limited_per_address_and_counted(client, admin):
    _, code = new_kiosk(client, admin)
    for n in range(10):
        assert enroll(client, f"ABCDE-{n + 2}FGHJ"[:11]).status_code == 401
    limited = enroll(client, code)  # even the right code waits: it may be a lucky guess
    assert limited.status_code == 429
    assert 500 <= int(limited.headers["retry-after"]) <= 600
    registry = client.application.registry
    count = {
        outcome: registry.get_sample_value(
            "kiosk_exporter_enrollment_attempts_total", {"outcome": outcome}
        )
        for outcome in ("enrolled", "refused", "rate_limited")
    }
    assert count == {"enrolled": 0, "refused": 10, "rate_limited": 1}
    other = client.simulate_post("/kiosk/enroll", json={"code": code}, remote_addr="10.9.9.9")
    assert other.status_code == 200


def test_the_command_writes_an_svg_and_prints_json(client, admin, database_url, tmp_path, capsys):
    kiosk_id, _ = new_kiosk(client, admin)
    svg = tmp_path / "qr.svg"
    args = ["--database", database_url, "kiosk", "enroll-code", str(kiosk_id)]
    assert main([*args, "--svg", str(svg), "--json"], {}) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"id", "code", "expires_at", "qr_svg"}
    assert svg.read_text().startswith("<?xml") and "<svg" in printed["qr_svg"]
    assert f"Enrollment code {printed['code']}" in svg.read_text()
    assert main([*args[:-1], "9999"], {}) == 1


# -- on the real server ---------------------------------------------------------------------------


def test_two_tablets_racing_with_one_code_get_one_key(database_url, store, tmp_path):
    with RunningService(tmp_path, database=database_url) as service:
        _, admin = store.add_token("ops-admin", scope="admin")
        made = request(
            "POST",
            service.url + "/admin/kiosks",
            headers={"Authorization": f"Bearer {admin}"},
            json_body={"name": "Kiosk-Entrance", "location": "Building A"},
        )
        code = made.json["enrollment"]["code"]
        start, statuses = threading.Barrier(3), []

        def send() -> None:
            start.wait(5)
            reply = request("POST", service.url + "/kiosk/enroll", json_body={"code": code})
            statuses.append(reply.status)

        threads = [threading.Thread(target=send) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert sorted(statuses) == [200, 401, 401]


def test_the_agent_enrolls_with_a_code_then_sends_heartbeats(tmp_path):
    with RunningService(tmp_path, {"min_heartbeat_interval_seconds": 0}) as service:
        created = service.cli(
            "kiosk", "add", "--name", "Kiosk-Entrance", "--location", "Building A", "--json"
        )
        code = json.loads(created.stdout)["enrollment"]["code"]
        key_file = tmp_path / "secrets" / "kiosk.key"
        key_file.parent.mkdir()
        args = ["agent", "--url", service.url, "--api-key-file", str(key_file)]
        with Command([*args, "--enroll", code, "--interval", "1"]) as agent:
            agent.stderr.wait_for(r"Heartbeat: Sent successfully \(kiosk 1,")
            assert agent.stop() == 0
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        assert key.startswith("kk_") and key not in agent.stderr.text()
        # Restarted with the same command line (a service manager): the file's key is kept.
        with Command([*args, "--enroll", code, "--interval", "1"]) as again:
            again.stderr.wait_for(r"already holds a key")
            again.stderr.wait_for(r"Heartbeat: Sent successfully")
            assert again.stop() == 0
        assert key_file.read_text().strip() == key
        with Command(["agent", "--url", service.url, "--api-key-file", str(tmp_path / "new.key"),
                      "--enroll", code]) as spent:  # fmt: skip
            assert spent.process.wait(30) == 1
        assert "unknown, used or expired" in spent.stderr.text()
        assert not (tmp_path / "new.key").exists()
