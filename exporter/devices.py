"""Simulated tablets' device vitals, for `simulate --scenario vitals` and the demo.

Each role plays one way a kiosk announces an outage (see the vitals alerts in rules/). Drains
and fills run `speed` times faster than real life so that the alerts fire within minutes;
uptime stays real, so the only reboots are the simulated ones. Stdlib only, like the agent.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from typing import Any

# A tablet with its screen on all day loses about this much charge per hour off the charger.
DRAIN_PERCENT_PER_HOUR = 10.0
# An app whose cache and logs grow unchecked.
FILL_PERCENT_PER_HOUR = 5.0
# Longer than the service's 2-minute boot-time tolerance, so each one counts as a reboot.
REBOOT_EVERY_SECONDS = 150.0
LEAVES_APP_AFTER_SECONDS = 60.0
GIB = 1024**3


class Role(enum.Enum):
    HEALTHY = "healthy"  # on its charger, plenty of storage, app on screen
    UNPLUGGED = "unplugged"  # charger pulled at start: drains from 30 %, switches off at 0
    STORAGE = "storage"  # storage fills from 11 % free to 2 %
    REBOOTS = "reboots"  # reboots every REBOOT_EVERY_SECONDS
    LEAVES_APP = "leaves_app"  # someone leaves the kiosk app after a minute


# The order roles are handed out in `simulate --scenario vitals` (tablet n gets n mod 5).
SCENARIO_ROLES = (Role.UNPLUGGED, Role.STORAGE, Role.REBOOTS, Role.LEAVES_APP, Role.HEALTHY)


@dataclass
class SimulatedDevice:
    """A tablet's vitals as a function of the seconds since the simulation started."""

    role: Role
    speed: float = 1.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    uptime_at_start: float = 0.0
    storage_total: int = 32 * GIB
    memory_total: int = 4 * GIB
    wifi_dbm: int = -55

    def __post_init__(self) -> None:
        # Booted some hours ago: real tablets are not all started with the simulator.
        self.uptime_at_start = self.rng.uniform(3_600, 72 * 3_600)
        self.wifi_dbm = self.rng.randint(-67, -45)

    def battery(self, elapsed: float) -> float:
        if self.role is not Role.UNPLUGGED:
            return 100.0
        return max(0.0, 30.0 - DRAIN_PERCENT_PER_HOUR * self.speed * elapsed / 3_600)

    def switched_off(self, elapsed: float) -> bool:
        """An empty battery: the tablet stops sending (and goes offline)."""
        return self.battery(elapsed) <= 0

    def readings(self, elapsed: float) -> dict[str, Any]:
        """The heartbeat fields of one snapshot, as a tablet app would send them."""
        free_percent = 60.0
        if self.role is Role.STORAGE:
            free_percent = max(2.0, 11.0 - FILL_PERCENT_PER_HOUR * self.speed * elapsed / 3_600)
        uptime = self.uptime_at_start + elapsed
        if self.role is Role.REBOOTS:
            uptime = elapsed % REBOOT_EVERY_SECONDS
        return {
            "battery_percent": round(self.battery(elapsed), 2),
            "battery_charging": self.role is not Role.UNPLUGGED,
            "storage_free_bytes": int(self.storage_total * free_percent / 100),
            "storage_total_bytes": self.storage_total,
            "memory_free_bytes": self.memory_total // 2,
            "memory_total_bytes": self.memory_total,
            "uptime_seconds": round(uptime, 3),
            "network": "wifi",
            "wifi_signal_dbm": self.wifi_dbm + self.rng.randint(-2, 2),
            "app_in_foreground": not (
                self.role is Role.LEAVES_APP and elapsed >= LEAVES_APP_AFTER_SECONDS
            ),
            "screen_on": True,
        }
