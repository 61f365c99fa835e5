"""What "online" means, judged in one place."""

from __future__ import annotations

from datetime import timedelta

import pytest

from exporter.status import KioskStatus, is_outdated, judge, retry_after_seconds
from tests.conftest import T0


@pytest.mark.parametrize(
    ("is_active", "age", "expected", "offline_for"),
    [
        (True, None, KioskStatus.NEVER_CONNECTED, None),
        (True, 0, KioskStatus.ONLINE, None),
        (True, 299.999, KioskStatus.ONLINE, None),
        (True, 300, KioskStatus.OFFLINE, 300),
        (True, 900.7, KioskStatus.OFFLINE, 900),
        (False, 10, KioskStatus.INACTIVE, 10),
        (False, None, KioskStatus.INACTIVE, None),
        (True, -5, KioskStatus.ONLINE, None),  # a replica's clock slightly behind
    ],
)
def test_status_follows_the_threshold(is_active, age, expected, offline_for):
    last = None if age is None else T0 - timedelta(seconds=age)
    state = judge(is_active=is_active, last_heartbeat_at=last, now=T0, online_threshold_seconds=300)
    assert state.status is expected
    assert state.is_online == (expected is KioskStatus.ONLINE)
    assert state.offline_duration_seconds == offline_for


@pytest.mark.parametrize(
    ("version", "latest", "outdated"),
    [
        ("1.9.2", "1.10.0", True),
        ("1.10.0", "1.9.2", False),
        ("1.10.0", "1.10.0", False),
        ("1.10", "1.10.0", False),
        ("v1.2.3", "1.2.4", True),
        ("1.2.0-beta.1", "1.2.0", True),
        ("1.2.0", "1.2.0-beta.1", False),
        ("2.0.0+build7", "2.0.0", False),
        ("nightly", "1.0.0", None),
        (None, "1.0.0", None),
    ],
)
def test_versions_compare_as_versions_not_strings(version, latest, outdated):
    assert is_outdated(version, latest) is outdated


@pytest.mark.parametrize(("remaining", "header"), [(0.2, 1), (3.0, 3), (3.01, 4), (-1, 1)])
def test_retry_after_is_never_too_early(remaining, header):
    assert retry_after_seconds(remaining) == header
