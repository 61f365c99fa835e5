"""The fleet simulator: exact behaviour counts, then a real fleet against the real server."""

from __future__ import annotations

import json
import random
import signal
from collections import Counter

import pytest

from exporter.simulate import Behaviour, FleetPlan, assign_behaviours, is_quiet
from tests.support.process import Command
from tests.support.service import RunningService, run_cli
from tests.support.terminal import on_a_terminal

_FAST = {"heartbeat_interval_seconds": 1, "min_heartbeat_interval_seconds": 0}


@pytest.mark.parametrize(
    ("kiosks", "silent", "flap", "outdated", "expected"),
    [
        (10, 0.3, 0.2, 0.5, (3, 2, 5, 5)),
        (4, 0.25, 0.0, 0.0, (1, 0, 3, 0)),
        (3, 1.0, 0.5, 1.0, (3, 0, 0, 3)),  # fractions past the fleet size never overlap
        (1000, 0.05, 0.1, 0.2, (50, 100, 850, 200)),
    ],
)
def test_fractions_become_exact_counts(kiosks, silent, flap, outdated, expected):
    plan = FleetPlan(kiosks, silent, flap, outdated)
    assigned = assign_behaviours(plan, random.Random(1))
    counts = Counter(behaviour for behaviour, _ in assigned)
    old = sum(1 for _, is_old in assigned if is_old)
    assert (
        counts[Behaviour.SILENT],
        counts[Behaviour.FLAPPING],
        counts[Behaviour.STEADY],
        old,
    ) == (expected)


@pytest.mark.parametrize(
    ("behaviour", "sent", "elapsed", "quiet"),
    [
        (Behaviour.STEADY, 100, 1000.0, False),
        (Behaviour.SILENT, 0, 50.0, False),  # not yet heard: keeps trying until it is
        (Behaviour.SILENT, 1, 0.5, True),
        (Behaviour.FLAPPING, 3, 5.0, False),
        (Behaviour.FLAPPING, 3, 15.0, True),
        (Behaviour.FLAPPING, 3, 25.0, False),
    ],
)
def test_who_keeps_quiet_when(behaviour, sent, elapsed, quiet):
    assert is_quiet(behaviour, sent, elapsed, flap_period=10.0) is quiet


def _read_fleet(command: Command) -> list[dict[str, object]]:
    command.stdout.wait_for(r"^\]$", timeout=20)
    return json.loads(command.stdout.text())  # type: ignore[no-any-return]


def test_the_silent_fraction_turns_offline_and_the_rest_stays_online(tmp_path):
    settings = {**_FAST, "online_threshold_seconds": 2}
    with RunningService(tmp_path, settings) as server:
        token = server.add_token()
        args = ["--database", server.database, "simulate", "--url", server.url, "--kiosks", "10"]
        options = ["--silent-fraction", "0.3", "--outdated-fraction", "0.2", "--interval", "1"]
        with Command([*args, *options, "--seed", "7", "--json"]) as command:
            fleet = {row["id"]: row for row in _read_fleet(command)}
            silent = {i for i, row in fleet.items() if row["behaviour"] == "silent"}

            def settled() -> list[dict[str, object]] | None:
                kiosks = server.all_status(token).json
                offline = {k["kiosk_id"] for k in kiosks if k["status"] == "offline"}
                online = {k["kiosk_id"] for k in kiosks if k["status"] == "online"}
                return kiosks if offline == silent and online == set(fleet) - silent else None

            kiosks = server.wait_until(settled, timeout=10, interval=0.2)
            assert kiosks, server.all_status(token).json
            assert command.stop(signal.SIGINT) == 0
    assert len(silent) == 3
    versions = Counter(k["app_version"] for k in kiosks)
    assert versions == {"1.0.0": 8, "0.9.0": 2}
    assert all(k["device_info"].startswith("Android/") for k in kiosks)
    assert "simulation stopped: 10 tablets: sent" in command.stderr.text()


def test_a_flapping_tablet_goes_offline_and_comes_back(tmp_path):
    settings = {**_FAST, "online_threshold_seconds": 2}
    with RunningService(tmp_path, settings) as server:
        token = server.add_token()
        args = ["--database", server.database, "simulate", "--url", server.url, "--kiosks", "1"]
        options = ["--flap-fraction", "1", "--flap-period", "3.5", "--interval", "1"]
        with Command([*args, *options, "--json", "--duration", "30"]) as command:
            _read_fleet(command)
            seen: list[str] = []

            def cycled() -> bool:
                status = server.all_status(token).json[0]["status"]
                if status != "never_connected" and (not seen or seen[-1] != status):
                    seen.append(status)
                return seen[:3] == ["online", "offline", "online"]

            assert server.wait_until(cycled, timeout=12, interval=0.2), seen
            assert command.stop() == 0


def test_provisioning_goes_through_the_store_so_kiosk_list_shows_the_fleet(tmp_path):
    with RunningService(tmp_path, _FAST) as server:
        real = server.add_kiosk("Lobby-00009", "Building A")[0]  # shares the prefix
        args = ["--database", server.database, "simulate", "--url", server.url, "--kiosks", "3"]
        with Command([*args, "--name-prefix", "Lobby", "--duration", "1"]) as command:
            assert command.process.wait(20) == 0
        listed = json.loads(server.cli("kiosk", "list", "--json").stdout)
        assert len(command.stdout.lines) == 3 and "\tsteady\t1.0.0" in command.stdout.lines[0]
        assert [k["name"] for k in listed] == [
            "Lobby-00009",
            "Lobby-00001",
            "Lobby-00002",
            "Lobby-00003",
        ]
        # Removing the simulated kiosks asks first, and needs --yes without a terminal.
        piped = server.cli("kiosk", "remove", "--simulated")
        assert piped.returncode == 2 and "pass --yes" in piped.stderr
        asked = on_a_terminal(["kiosk", "remove", "--simulated"], server.database, answer="y")
        assert "Remove all 3 simulated kiosks? [y/N]" in asked.output
        assert asked.returncode == 0 and "3 simulated kiosks removed" in asked.output
        listed = json.loads(server.cli("kiosk", "list", "--json").stdout)
        assert [k["id"] for k in listed] == [real]  # the real one, whatever its name
        again = server.cli("kiosk", "remove", "--simulated", "--json")
        assert json.loads(again.stdout) == {"simulated_removed": 0}


def test_simulate_needs_an_explicit_database_and_never_creates_one(tmp_path):
    default = tmp_path / "kiosk-heartbeat.db"
    environ = {"KIOSK_EXPORTER_DATABASE": f"sqlite:///{default}"}
    with Command(["simulate", "--url", "http://127.0.0.1:9", "--kiosks", "2"], env=environ) as cmd:
        assert cmd.process.wait(30) == 2
    assert "name the database to create the simulated kiosks in with --database" in (
        cmd.stderr.text()
    )
    missing = tmp_path / "other.db"
    args = ["--database", f"sqlite:///{missing}", "simulate", "--url", "http://127.0.0.1:9"]
    with Command([*args, "--kiosks", "2"]) as cmd:
        assert cmd.process.wait(30) == 1
    assert f"no database at sqlite:///{missing}" in cmd.stderr.text()
    assert not default.exists() and not missing.exists()


def test_remove_takes_an_id_or_simulated_not_both(tmp_path):
    result = run_cli("kiosk", "remove", "1", "--simulated", database=f"sqlite:///{tmp_path}/k.db")
    assert result.returncode == 2 and "give a kiosk ID or --simulated" in result.stderr


def test_bad_fractions_are_usage_errors(tmp_path):
    args = ["--database", f"sqlite:///{tmp_path / 'k.db'}", "simulate", "--url", "http://x:1"]
    with Command([*args, "--kiosks", "2", "--silent-fraction", "1.5"]) as command:
        assert command.process.wait(20) == 2
    assert "not a fraction between 0 and 1" in command.stderr.text()
