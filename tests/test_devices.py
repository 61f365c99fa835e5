"""Simulated tablets' vitals (`simulate --scenario vitals`, the demo): each role plays its
outage on time, and every reading is one the server accepts."""

from __future__ import annotations

import random

import pytest

from exporter import vitals
from exporter.devices import (
    LEAVES_APP_AFTER_SECONDS,
    REBOOT_EVERY_SECONDS,
    SCENARIO_ROLES,
    Role,
    SimulatedDevice,
)


def device(role: Role, speed: float = 1.0) -> SimulatedDevice:
    return SimulatedDevice(role, speed, random.Random(3))


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("elapsed", [0, 59, 61, 149, 151, 3_000])
def test_every_reading_passes_the_servers_checks(role, elapsed):
    readings = device(role, speed=8).readings(elapsed)
    assert set(readings) == set(vitals.VITAL_FIELDS)
    for name, value in readings.items():
        assert vitals.VITAL_CHECKS[name](value) == value, name
    assert vitals.cross_check(dict(readings)) == {}


def test_an_unplugged_tablet_drains_at_the_sped_up_rate_then_switches_off():
    tablet = device(Role.UNPLUGGED, speed=8)
    # 10 %/h x 8 = 80 %/h: 20 % after 7.5 min, empty after 22.5 min.
    assert tablet.battery(0) == 30 and tablet.readings(0)["battery_charging"] is False
    assert tablet.battery(450) == pytest.approx(20)
    assert not tablet.switched_off(1349) and tablet.switched_off(1350)


def test_the_other_roles_fill_reboot_and_leave_the_app():
    storage = device(Role.STORAGE, speed=8).readings(60 * 60)
    assert storage["storage_free_bytes"] / storage["storage_total_bytes"] == pytest.approx(0.02)
    reboots = device(Role.REBOOTS)
    assert reboots.readings(REBOOT_EVERY_SECONDS + 10)["uptime_seconds"] == 10
    leaves = device(Role.LEAVES_APP)
    assert leaves.readings(LEAVES_APP_AFTER_SECONDS - 1)["app_in_foreground"] is True
    assert leaves.readings(LEAVES_APP_AFTER_SECONDS)["app_in_foreground"] is False
    healthy = device(Role.HEALTHY).readings(10_000)
    assert healthy["battery_charging"] and healthy["app_in_foreground"]
    # Uptime is real time: a healthy tablet's boot time stays put.
    steady = device(Role.HEALTHY)
    assert steady.readings(500)["uptime_seconds"] - steady.readings(0)["uptime_seconds"] == 500


def test_the_scenario_plays_every_role():
    assert set(SCENARIO_ROLES) == set(Role)
