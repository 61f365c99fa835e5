"""The heartbeat agent: pure scheduling and formatting, then the real agent on the real server."""

from __future__ import annotations

import argparse
import ast
import itertools
import logging
import signal
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from exporter import agent
from exporter.agent import (
    AgentSettings,
    HeartbeatAgent,
    HeartbeatResult,
    Outcome,
    Schedule,
    build_payload,
    classify,
    collect_device_info,
    parse_retry_after,
    read_api_key,
)
from tests.support.process import Command
from tests.support.service import RunningService

NOW = datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=timezone.utc)
FAST = {"heartbeat_interval_seconds": 1, "min_heartbeat_interval_seconds": 0}


# -- pure parts -----------------------------------------------------------------------------------


def test_agent_module_imports_only_the_standard_library():
    tree = ast.parse(Path(agent.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "agent.py must not import from the exporter package"
            imported.add((node.module or "").split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


def result(outcome: Outcome, **fields) -> HeartbeatResult:
    return HeartbeatResult(outcome, **fields)


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([result(Outcome.SENT)], [60]),
        ([result(Outcome.SENT, next_interval=30)], [30]),
        ([result(Outcome.SENT, next_interval=0.01)], [1]),  # never a burst
        ([result(Outcome.NETWORK_ERROR)] * 8, [1, 2, 4, 8, 16, 32, 60, 60]),
        ([result(Outcome.SERVER_ERROR, status=503, retry_after=5)], [5]),
        ([result(Outcome.SERVER_ERROR, status=503, retry_after=500)], [500]),  # past interval
        (
            [result(Outcome.NETWORK_ERROR)] * 5 + [result(Outcome.SERVER_ERROR, retry_after=3)],
            [1, 2, 4, 8, 16, 32],
        ),
        ([result(Outcome.NETWORK_ERROR)] * 3 + [result(Outcome.SENT)], [1, 2, 4, 60]),
        (
            [result(Outcome.NETWORK_ERROR)] * 2
            + [result(Outcome.SENT), result(Outcome.NETWORK_ERROR)],
            [1, 2, 60, 1],
        ),
        ([result(Outcome.RATE_LIMITED, retry_after=7)], [7]),
        ([result(Outcome.RATE_LIMITED, retry_after=90)], [90]),  # honoured past the interval
        ([result(Outcome.RATE_LIMITED)], [60]),
        ([result(Outcome.UNAUTHORIZED)] * 3, [60, 60, 60]),  # normal pace, no backoff
        ([result(Outcome.FORBIDDEN)] * 3, [60, 60, 60]),
        ([result(Outcome.REJECTED, status=400)], [60]),
    ],
)
def test_schedule_without_jitter(outcomes, expected):
    schedule = Schedule(interval=60, jitter=0)
    assert [schedule.next_delay(r) for r in outcomes] == pytest.approx(expected)


@pytest.mark.parametrize("draw", [0.0, 0.999])
def test_jitter_stays_within_ten_percent_and_backoff_never_exceeds_the_interval(draw):
    schedule = Schedule(interval=60, jitter=0.1, rand=lambda: draw)
    assert 54 <= schedule.next_delay(result(Outcome.SENT)) <= 66
    for _ in range(10):
        assert schedule.next_delay(result(Outcome.NETWORK_ERROR)) <= 60
    assert schedule.next_delay(result(Outcome.RATE_LIMITED, retry_after=10)) >= 10


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999])
@pytest.mark.parametrize(
    "outcome", [Outcome.SERVER_ERROR, Outcome.RATE_LIMITED], ids=["503", "429"]
)
def test_retry_after_is_honoured_exactly_and_jitter_only_adds(draw, outcome):
    schedule = Schedule(interval=60, jitter=0.1, rand=lambda: draw)
    delay = schedule.next_delay(result(outcome, status=503, retry_after=5))
    assert 5 <= delay <= 5.5
    assert delay == pytest.approx(5 * (1 + 0.1 * draw))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("Thu, 26 Nov 2026 10:00:30 GMT", 29.876544),
        ("Thu, 26 Nov 2026 09:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header, expected):
    value = parse_retry_after(header, NOW)
    assert value == (pytest.approx(expected) if expected is not None else None)


def test_payload_carries_sent_at_in_milliseconds_and_fits_the_server_limits():
    payload = build_payload("1.0.0\n" + "x" * 100, "Linux/6.1\x00 - Pi\t4 " + "y" * 300, NOW)
    assert payload["sent_at"] == "2026-11-26T10:00:00.123Z"
    assert len(payload["app_version"]) == 64
    assert payload["app_version"].startswith("1.0.0 xxx")
    assert len(payload["device_info"]) == 256
    assert payload["device_info"].startswith("Linux/6.1 - Pi 4 yyy")
    assert build_payload(None, None, NOW) == {"sent_at": "2026-11-26T10:00:00.123Z"}


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (
            200,
            b'{"kiosk_id": 3, "received_at": "x", "next_heartbeat_in_seconds": 60}',
            Outcome.SENT,
        ),
        (200, b"<html>Welcome to the hotel wifi</html>", Outcome.SERVER_ERROR),
        (401, b'{"title": "Missing or unknown X-Kiosk-API-Key"}', Outcome.UNAUTHORIZED),
        (403, b"", Outcome.FORBIDDEN),
        (400, b'{"title": "Invalid", "description": "device_info: too long"}', Outcome.REJECTED),
        (413, b"", Outcome.REJECTED),
        (415, b"", Outcome.REJECTED),
        (429, b"", Outcome.RATE_LIMITED),
        (502, b"Bad gateway", Outcome.SERVER_ERROR),
        (503, b'{"title": "Database unavailable"}', Outcome.SERVER_ERROR),
    ],
)
def test_every_reply_is_classified_without_raising(status, body, outcome):
    assert classify(status, body, None).outcome is outcome


def test_a_captive_portal_200_is_not_taken_for_a_delivered_heartbeat():
    assert classify(200, b"<html>login</html>", None).detail == "200 without a heartbeat reply"


def _fake_root(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {
                "sys/firmware/devicetree/base/model": "Raspberry Pi 4 Model B Rev 1.4\x00",
                "etc/os-release": 'PRETTY_NAME="Debian 12"\nNAME="Debian GNU/Linux"\n'
                'VERSION_ID="12"\n',
            },
            "Linux/6.1.0-rpi7 (Debian GNU/Linux 12) - Raspberry Pi 4 Model B Rev 1.4",
        ),
        (
            {
                "sys/class/dmi/id/product_name": "OptiPlex 3000\n",
                "sys/class/dmi/id/sys_vendor": "Dell Inc.\n",
                "usr/lib/os-release": "NAME=Ubuntu\nVERSION_ID=24.04\n",
            },
            "Linux/6.1.0-rpi7 (Ubuntu 24.04) - Dell Inc. OptiPlex 3000",
        ),
        (
            {"sys/class/dmi/id/product_name": "To be filled by O.E.M.\n"},
            "Linux/6.1.0-rpi7",
        ),
        ({}, "Linux/6.1.0-rpi7"),
    ],
)
def test_device_info_names_the_os_and_the_machine_model_where_exposed(tmp_path, files, expected):
    root = _fake_root(tmp_path, files)
    assert collect_device_info(root, system="Linux", release="6.1.0-rpi7") == expected


def test_device_info_of_this_machine_fits_the_protocol():
    info = collect_device_info()
    assert info.startswith(f"{__import__('platform').system()}/")
    assert 0 < len(info) <= 256 and info.isprintable()


def test_the_key_file_trailing_newline_is_ignored_and_the_environment_is_a_fallback(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("kk_secret\n", encoding="utf-8")
    assert read_api_key(str(key_file), {}) == "kk_secret"
    assert read_api_key(None, {"KIOSK_EXPORTER_API_KEY": "kk_env"}) == "kk_env"
    with pytest.raises(ValueError, match="no API key"):
        read_api_key(None, {})
    with pytest.raises(ValueError, match="cannot read"):
        read_api_key(str(tmp_path / "missing"), {})


def test_the_agent_command_refuses_to_start_without_a_key_or_with_a_bad_url(capsys):
    parser = argparse.ArgumentParser()
    agent.add_arguments(parser)
    assert agent.main_from_args(parser.parse_args(["--url", "http://x:1"]), environ={}) == 2
    assert "no API key" in capsys.readouterr().err
    args = parser.parse_args(["--url", "ftp://x"])
    assert agent.main_from_args(args, environ={"KIOSK_EXPORTER_API_KEY": "k"}) == 2
    assert "not an http(s) URL" in capsys.readouterr().err


def test_the_settings_repr_never_shows_the_key():
    assert "kk_secret" not in repr(AgentSettings("http://x", "kk_secret"))


# -- the real agent against the real server --------------------------------------------------------


class Recorder:
    """Collects (monotonic time, result, delay) from an agent's on_result hook."""

    def __init__(self) -> None:
        self.events: list[tuple[float, HeartbeatResult, float]] = []
        self._changed = threading.Condition()

    def __call__(self, result: HeartbeatResult, delay: float) -> None:
        with self._changed:
            self.events.append((time.monotonic(), result, delay))
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Outcome]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.events) >= count, timeout)
            assert len(self.events) >= count, self.outcomes()
            return self.outcomes()[:count]

    def outcomes(self) -> list[Outcome]:
        return [r.outcome for _, r, _ in self.events]

    def gaps(self) -> list[float]:
        times = [t for t, _, _ in self.events]
        return [b - a for a, b in itertools.pairwise(times)]


@pytest.fixture
def run_agent():
    """Start real agents (library form) and always stop them."""
    agents: list[HeartbeatAgent] = []

    def start(url: str, key: str, **settings) -> tuple[HeartbeatAgent, Recorder]:
        recorder = Recorder()
        heartbeat_agent = HeartbeatAgent(AgentSettings(url, key, **settings), on_result=recorder)
        agents.append(heartbeat_agent)
        heartbeat_agent.start()
        return heartbeat_agent, recorder

    yield start
    for heartbeat_agent in agents:
        heartbeat_agent.stop()


def test_the_first_heartbeat_is_sent_at_start_with_version_and_device_info(
    tmp_path, run_agent, caplog
):
    caplog.set_level(logging.INFO, logger="exporter.agent")
    with RunningService(tmp_path, FAST) as server:
        kiosk_id, key = server.add_kiosk("Kiosk-Entrance", "Building A - Main Entrance")
        token = server.add_token()
        started = time.monotonic()
        heartbeat_agent, recorder = run_agent(
            server.url, key, app_version="2.1.0", interval_seconds=30
        )
        assert recorder.wait_for(1) == [Outcome.SENT]
        assert recorder.events[0][0] - started < 1.0
        (kiosk,) = server.all_status(token).json
    assert kiosk["status"] == "online"
    assert kiosk["app_version"] == "2.1.0"
    assert kiosk["device_info"] == heartbeat_agent.device_info == collect_device_info()
    assert recorder.events[0][1].kiosk_id == kiosk_id
    assert "Heartbeat: Sent successfully" in caplog.text


def test_the_servers_interval_wins_over_the_local_setting(tmp_path, run_agent):
    with RunningService(tmp_path, FAST) as server:
        _, key = server.add_kiosk("Kiosk-Exit", "Building A")
        _, recorder = run_agent(server.url, key, interval_seconds=30)
        assert recorder.wait_for(4, timeout=8) == [Outcome.SENT] * 4
    assert recorder.events[0][1].next_interval == 1
    # The pause the agent chose after each heartbeat: one second, give or take the 10 %
    # jitter (the local setting would give 27-33 s).
    for _, _, delay in recorder.events[:4]:
        assert 0.9 <= delay <= 1.1
    # And it kept to it: each gap is that pause plus the request, which on a loaded machine
    # took up to 0.7 s once (CI, 2026-11-30), so the bound is the pause's, not the request's.
    for gap in recorder.gaps()[:3]:
        assert 0.85 <= gap <= 2.5


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_backoff_while_the_server_is_down_and_recovery_when_it_returns(tmp_path, run_agent):
    port = _free_port()
    server = RunningService(tmp_path, FAST)
    _, key = server.add_kiosk("Kiosk-Cafeteria", "Building B - Floor 1")
    _, recorder = run_agent(
        f"http://127.0.0.1:{port}", key, interval_seconds=2, backoff_base_seconds=0.2
    )
    assert recorder.wait_for(5, timeout=10) == [Outcome.NETWORK_ERROR] * 5
    delays = [delay for _, _, delay in recorder.events[:5]]
    assert [round(d / 0.2) for d in delays[:3]] == pytest.approx([1, 2, 4], abs=1)
    assert 1.6 <= delays[4] <= 2.0  # capped at the interval (minus jitter), never a burst
    with server.start(port=port):
        token = server.add_token()
        count = len(recorder.events)
        deadline = time.monotonic() + 6
        while Outcome.SENT not in recorder.outcomes()[count:] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Outcome.SENT in recorder.outcomes()[count:]
        assert server.all_status(token).json[0]["status"] == "online"


def test_a_429_is_retried_after_the_servers_retry_after(tmp_path, run_agent):
    settings = {"heartbeat_interval_seconds": 2, "min_heartbeat_interval_seconds": 2}
    with RunningService(tmp_path, settings) as server:
        _, key = server.add_kiosk("Kiosk-Floor2", "Building C - Floor 2")
        assert server.heartbeat(key).status == 200
        _, recorder = run_agent(server.url, key, interval_seconds=60)
        assert recorder.wait_for(2, timeout=8) == [Outcome.RATE_LIMITED, Outcome.SENT]
    refused = recorder.events[0][1]
    assert refused.status == 429 and refused.retry_after == 2
    assert 2.0 <= recorder.gaps()[0] <= 2.6


def test_a_deactivated_kiosk_keeps_its_normal_pace_and_recovers_when_reactivated(
    tmp_path, run_agent, caplog
):
    caplog.set_level(logging.INFO, logger="exporter.agent")
    with RunningService(tmp_path, FAST) as server:
        kiosk_id, key = server.add_kiosk("Kiosk-Exit", "Building A")
        assert server.cli("kiosk", "deactivate", str(kiosk_id)).returncode == 0
        _, recorder = run_agent(server.url, key, interval_seconds=1, backoff_base_seconds=0.05)
        assert recorder.wait_for(3) == [Outcome.FORBIDDEN] * 3
        assert all(0.85 <= gap <= 1.3 for gap in recorder.gaps()[:2])
        assert server.cli("kiosk", "activate", str(kiosk_id)).returncode == 0
        assert server.wait_until(lambda: Outcome.SENT in recorder.outcomes(), timeout=5)
    assert "kiosk is deactivated (403)" in caplog.text


def test_an_unknown_key_is_logged_clearly_and_retried_at_the_normal_pace(
    tmp_path, run_agent, caplog
):
    caplog.set_level(logging.INFO, logger="exporter.agent")
    with RunningService(tmp_path, FAST) as server:
        _, recorder = run_agent(server.url, "kk_not-a-key", interval_seconds=1)
        assert recorder.wait_for(2) == [Outcome.UNAUTHORIZED] * 2
    assert 0.85 <= recorder.gaps()[0] <= 1.3
    assert "API key unknown or missing (401)" in caplog.text
    assert "kk_not-a-key" not in caplog.text


def test_stop_cuts_a_request_the_server_never_answers_within_a_second():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts the connection; nobody ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        heartbeat_agent = HeartbeatAgent(AgentSettings(url, "kk_x", timeout_seconds=30))
        heartbeat_agent.start()
        time.sleep(0.3)
        started = time.monotonic()
        heartbeat_agent.stop(timeout=1.0)
        assert time.monotonic() - started < 1.1
        assert not heartbeat_agent.running


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_agent_command_stops_within_a_second_on_a_signal(tmp_path, sig):
    with RunningService(tmp_path, FAST) as server:
        _, key = server.add_kiosk("Kiosk-Entrance", "Building A - Main Entrance")
        key_file = tmp_path / "kiosk.key"
        key_file.write_text(key + "\n", encoding="utf-8")
        args = ["agent", "--url", server.url, "--api-key-file", str(key_file), "--interval", "1"]
        with Command([*args, "--app-version", "3.0.0"]) as command:
            command.stderr.wait_for(r"Heartbeat: Sent successfully \(kiosk 1, next in")
            started = time.monotonic()
            assert command.stop(sig) == 0
            elapsed = time.monotonic() - started
        token = server.add_token()
        (kiosk,) = server.all_status(token).json
    assert elapsed < 1.0, elapsed
    assert command.stderr.wait_for("Heartbeat: Stopped", timeout=1)
    assert "Traceback" not in command.stderr.text()
    assert key not in command.stderr.text()
    assert (kiosk["status"], kiosk["app_version"]) == ("online", "3.0.0")


def test_the_agent_command_takes_the_key_from_the_environment(tmp_path):
    with RunningService(tmp_path, FAST) as server:
        _, key = server.add_kiosk("Kiosk-Exit", "Building A")
        command_args = ["agent", "--url", server.url, "--interval", "1"]
        with Command(command_args, env={"KIOSK_EXPORTER_API_KEY": key}) as command:
            command.stderr.wait_for(r"Heartbeat: Sent successfully")
            assert command.stop() == 0


def test_a_real_agent_keeps_its_kiosk_online_across_a_server_restart(tmp_path):
    settings = {**FAST, "online_threshold_seconds": 3}
    server = RunningService(tmp_path, settings)
    _, key = server.add_kiosk("Kiosk-Entrance", "Building A - Main Entrance")
    token = server.add_token()
    port = _free_port()
    with RunningService(tmp_path, settings).start(port=port) as first:
        (tmp_path / "key").write_text(key, encoding="utf-8")
        args = ["agent", "--url", first.url, "--api-key-file", str(tmp_path / "key")]
        with Command([*args, "--interval", "1"]) as command:
            command.stderr.wait_for(r"Sent successfully")
            first.stop()
            command.stderr.wait_for(r"Heartbeat: Network error")
            with RunningService(tmp_path, settings).start(port=port) as second:
                sent_before = command.stderr.text().count("Sent successfully")
                assert second.wait_until(
                    lambda: command.stderr.text().count("Sent successfully") > sent_before,
                    timeout=5,
                )
                assert second.all_status(token).json[0]["status"] == "online"
            assert command.stop() == 0
