"""The Linux agent's device vitals: read from a fake sysfs/proc tree and from this machine,
and every value it reads is one the server's checks accept."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from exporter import vitals
from exporter.agent import build_payload, read_vitals, utc_now

MEMINFO = "MemTotal:        3906448 kB\nMemFree:          201084 kB\nMemAvailable:    1893212 kB\n"
ROUTE = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n"
    "{iface}\t00000000\t0102A8C0\t0003\t0\t0\t600\t00000000\n"
    "{iface}\t0002A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\n"
)
WIRELESS = (
    "Inter-| sta-|   Quality        |   Discarded packets\n"
    " face | tus | link level noise |  nwid  crypt   frag\n"
    " wlan0: 0000   52.  -58.  -256        0      0      0\n"
)


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


LAPTOP_ON_WIFI = {
    "sys/class/power_supply/AC/type": "Mains\n",
    "sys/class/power_supply/AC/online": "0\n",
    "sys/class/power_supply/BAT0/type": "Battery\n",
    "sys/class/power_supply/BAT0/capacity": "37\n",
    "sys/class/power_supply/BAT0/status": "Discharging\n",
    "proc/meminfo": MEMINFO,
    "proc/uptime": "93784.12 180000.50\n",
    "proc/net/route": ROUTE.format(iface="wlan0"),
    "proc/net/wireless": WIRELESS,
}
LAPTOP_VITALS = {
    "battery_percent": 37.0,
    "battery_charging": False,
    "memory_total_bytes": 3906448 * 1024,
    "memory_free_bytes": 1893212 * 1024,
    "uptime_seconds": 93784.12,
    "network": "wifi",
    "wifi_signal_dbm": -58,
}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (LAPTOP_ON_WIFI, LAPTOP_VITALS),
        (  # charger plugged in while the battery reports "Not charging" (held at a limit)
            {
                **LAPTOP_ON_WIFI,
                "sys/class/power_supply/AC/online": "1\n",
                "sys/class/power_supply/BAT0/status": "Not charging\n",
            },
            {**LAPTOP_VITALS, "battery_charging": True},
        ),
        (  # a kiosk PC on a cable: no battery, no Wi-Fi, old kernel without MemAvailable
            {
                "proc/meminfo": "MemTotal: 1000 kB\nMemFree: 400 kB\n",
                "proc/net/route": ROUTE.format(iface="enp3s0"),
                "sys/class/net/enp3s0/type": "1\n",
            },
            {"memory_total_bytes": 1024000, "memory_free_bytes": 409600, "network": "ethernet"},
        ),
        (  # a modem link; Wi-Fi card known by sysfs but no level reported
            {"proc/net/route": ROUTE.format(iface="wwan0")},
            {"network": "cellular"},
        ),
        (
            {
                "proc/net/route": ROUTE.format(iface="wlp2s0"),
                "sys/class/net/wlp2s0/wireless/.keep": "",
            },
            {"network": "wifi"},
        ),
        ({"proc/uptime": "garbage\n", "sys/class/power_supply/BAT0/type": "Battery\n"}, {}),
    ],
)
def test_vitals_come_from_sysfs_and_proc_and_what_is_missing_is_left_out(tmp_path, files, expected):
    assert read_vitals(tree(tmp_path, files)) == expected


def test_storage_is_the_partition_of_the_data_folder():
    found = read_vitals(Path("/nonexistent-root"), data_dir=Path.cwd())
    usage = shutil.disk_usage(Path.cwd())
    assert set(found) == {"storage_free_bytes", "storage_total_bytes"}
    assert found["storage_total_bytes"] == usage.total
    # f_bavail (what an app may write) <= f_bfree; the disk may move between the two reads.
    assert 0 <= found["storage_free_bytes"] <= found["storage_total_bytes"]


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="needs Linux /proc")
def test_this_machine_reports_memory_and_uptime_the_server_accepts(tmp_path):
    found = read_vitals(data_dir=tmp_path)
    assert {"memory_total_bytes", "memory_free_bytes", "uptime_seconds"} <= set(found)
    assert found["memory_total_bytes"] == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < found["uptime_seconds"] < 10 * 365 * 86400
    for name, value in found.items():
        assert vitals.VITAL_CHECKS[name](value) == value, name
    payload = build_payload("1.0", "Linux", utc_now(), found)
    assert not vitals.cross_check(dict(payload)), "a pair the server would reject"
