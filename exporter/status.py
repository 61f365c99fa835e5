"""The one definition of a kiosk's state; the JSON API and /metrics both ask it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class KioskStatus(str, Enum):
    ONLINE = "online"
    OFFLINE = "offline"
    NEVER_CONNECTED = "never_connected"
    INACTIVE = "inactive"


@dataclass(frozen=True)
class KioskState:
    """A kiosk judged at one instant: everything consumers need, computed in one place."""

    status: KioskStatus
    age_seconds: float | None

    @property
    def is_online(self) -> bool:
        return self.status is KioskStatus.ONLINE

    @property
    def offline_duration_seconds(self) -> int | None:
        """Whole seconds since the last heartbeat, only when the kiosk is not online."""
        if self.is_online or self.age_seconds is None:
            return None
        return int(self.age_seconds)


def heartbeat_age(last_heartbeat_at: datetime | None, now: datetime) -> float | None:
    """Seconds since the heartbeat; never negative, since replicas' clocks can differ slightly."""
    if last_heartbeat_at is None:
        return None
    return max(0.0, (now - last_heartbeat_at).total_seconds())


def classify(is_active: bool, age_seconds: float | None, threshold: float) -> KioskStatus:
    """THE rule. Online means active with a heartbeat strictly younger than the threshold.

    Deactivated wins over everything: an operator switched it off, so it must never look
    offline (and page) or online (and hide a problem).
    """
    if not is_active:
        return KioskStatus.INACTIVE
    if age_seconds is None:
        return KioskStatus.NEVER_CONNECTED
    return KioskStatus.ONLINE if age_seconds < threshold else KioskStatus.OFFLINE


def judge(
    *,
    is_active: bool,
    last_heartbeat_at: datetime | None,
    now: datetime,
    online_threshold_seconds: float,
) -> KioskState:
    """A kiosk's state at `now`; read `now` once per request or scrape and pass it to all."""
    age = heartbeat_age(last_heartbeat_at, now)
    return KioskState(classify(is_active, age, online_threshold_seconds), age)


_RELEASE = re.compile(r"v?(\d+(?:\.\d+)*)(.*)", re.IGNORECASE)


def version_key(version: str) -> tuple[tuple[int, ...], int] | None:
    """Order versions numerically (1.10.0 > 1.9.2); a suffix such as -beta sorts before the
    release it precedes. None for a version with no leading number: unknown, not outdated."""
    match = _RELEASE.fullmatch(version.strip())
    if match is None:
        return None
    parts = tuple(int(p) for p in match.group(1).split("."))
    while len(parts) > 1 and parts[-1] == 0:
        parts = parts[:-1]
    suffix = match.group(2).lstrip("+")
    is_final = 1 if not suffix or match.group(2).startswith("+") else 0
    return parts, is_final


def is_outdated(version: str | None, latest: str) -> bool | None:
    """True when `version` is older than `latest`; None when it cannot be compared."""
    if version is None:
        return None
    mine, target = version_key(version), version_key(latest)
    if mine is None or target is None:
        return None
    return mine < target


def retry_after_seconds(remaining: float) -> int:
    """A Retry-After value that, if honoured, is never too early."""
    return max(1, math.ceil(remaining))
