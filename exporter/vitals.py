"""Device vitals: what each optional heartbeat field may hold, and the snapshot they make.

Vitals are diagnostic fields (see payload.py): an invalid value is dropped and named in the
reply, never a 400, because a heartbeat is a liveness signal first. The checks here raise
ValueError with a reason a tablet developer can act on; payload.py turns it into a rejection.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, MutableMapping
from datetime import datetime
from typing import Any

from .clock import format_utc
from .records import Vitals

NETWORKS = ("wifi", "ethernet", "cellular", "other")
# Beyond 2**53 a float (JSON numbers in JavaScript, Prometheus samples) is no longer exact;
# 8 PiB of storage is far past any tablet, and the bound keeps the value inside BIGINT.
MAX_BYTES = 2**53
# A boot time is received time - uptime, so it moves with network delay and retries. It is
# replaced only when it moves by more than this: a reboot (uptime lower than the time since
# the stored boot) moves it forward by the time the tablet ran, jitter by seconds.
BOOT_TIME_TOLERANCE_SECONDS = 120
# Pairs checked when both are sent: a free figure above its total is not believable.
PAIRS = (
    ("storage_free_bytes", "storage_total_bytes"),
    ("memory_free_bytes", "memory_total_bytes"),
)


def _number(value: object) -> float:
    # JSON true is a Python int: a boolean is not a number here.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number")
    try:
        number = float(value)  # a JSON integer of 400 digits does not fit a float
    except OverflowError:
        raise ValueError("must be a finite number") from None
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


def _percent(value: object) -> float:
    number = _number(value)
    if not 0 <= number <= 100:
        raise ValueError("must be between 0 and 100 (a 0..1 level times 100)")
    return number


def _seconds(value: object) -> float:
    number = _number(value)
    if number < 0:
        raise ValueError("must be a number of seconds >= 0")
    return number


def _bytes(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer number of bytes")
    if not 0 <= value <= MAX_BYTES:
        raise ValueError(f"must be between 0 and {MAX_BYTES}")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _network(value: object) -> str:
    if value not in NETWORKS:
        raise ValueError(f"must be one of {', '.join(NETWORKS)}")
    return str(value)


def _dbm(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -127 <= value <= 0:
        raise ValueError("must be an integer between -127 and 0 (dBm)")
    return value


# Field name -> check, in the order of the Vitals record.
VITAL_CHECKS: Mapping[str, Callable[[object], Any]] = {
    "battery_percent": _percent,
    "battery_charging": _boolean,
    "storage_free_bytes": _bytes,
    "storage_total_bytes": _bytes,
    "memory_free_bytes": _bytes,
    "memory_total_bytes": _bytes,
    "uptime_seconds": _seconds,
    "network": _network,
    "wifi_signal_dbm": _dbm,
    "app_in_foreground": _boolean,
    "screen_on": _boolean,
}
VITAL_FIELDS = tuple(VITAL_CHECKS)


def cross_check(values: MutableMapping[str, Any]) -> dict[str, str]:
    """Drop the valid-alone values that contradict each other; return {field: reason}."""
    rejected: dict[str, str] = {}
    for free, total in PAIRS:
        if free in values and total in values and values[free] > values[total]:
            reason = f"{free} above {total}"
            rejected[free] = rejected[total] = reason
            del values[free], values[total]
    if "wifi_signal_dbm" in values and values.get("network") != "wifi":
        rejected["wifi_signal_dbm"] = 'only counts with network "wifi"'
        del values["wifi_signal_dbm"]
    return rejected


def snapshot(values: Mapping[str, Any], received_at: datetime) -> Vitals | None:
    """The snapshot a heartbeat carries, or None when it carries no vital (the stored one
    stays). Fields it leaves out are unknown in it: an old reading never passes for new."""
    known = {name: values[name] for name in VITAL_FIELDS if values.get(name) is not None}
    if not known:
        return None
    uptime = known.get("uptime_seconds")
    boot_time = None if uptime is None else received_at.timestamp() - uptime
    return Vitals(reported_at=received_at, boot_time=boot_time, **known)


def is_fresh(vitals: Vitals | None, now: datetime, threshold_seconds: float) -> bool:
    """A snapshot older than the online threshold is not the tablet's state now (a dead
    tablet's last battery reading is not its battery): it is not exported."""
    return vitals is not None and (now - vitals.reported_at).total_seconds() < threshold_seconds


def vitals_document(vitals: Vitals | None) -> dict[str, Any]:
    """The status object's "vitals": the known fields and reported_at; {} when none came."""
    if vitals is None:
        return {}
    document: dict[str, Any] = {
        name: value
        for name, value in zip(VITAL_FIELDS, vitals[1 : 1 + len(VITAL_FIELDS)], strict=True)
        if value is not None
    }
    document["reported_at"] = format_utc(vitals.reported_at)
    return document
