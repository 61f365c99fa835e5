"""Enrollment: a tablet exchanges a one-time code for its API key, once.

A code is short enough to type, so guessing is what to defend against: every refusal looks
the same (used, expired, unknown or malformed: one 401), failed guesses are limited per
client address, and codes are looked up by hash and compared in constant time.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import keys
from .clock import Clock
from .config import Settings
from .errors import EnrollmentRefused, InvalidInput, TooManyGuesses
from .fleetfile import text_problem
from .metrics import ServiceMetrics
from .payload import FIELD_LIMITS, parse_json_request
from .records import EventKind
from .store import Store

_FIELDS = ("code", "device_info")
_MAX_CODE_LENGTH = 64


class GuessLimiter:
    """At most `max_failures` failed codes per client address in a sliding window.

    Memory is bounded: past `max_addresses` remembered addresses, the table starts over (an
    attacker spreading over that many addresses is not stopped by a per-address limit anyway).
    """

    def __init__(
        self, max_failures: int = 10, window_seconds: float = 600.0, max_addresses: int = 50_000
    ) -> None:
        self._max_failures = max_failures
        self._window = window_seconds
        self._max_addresses = max_addresses
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, address: str, now: float) -> None:
        """Raise TooManyGuesses (with the seconds until the oldest failure expires)."""
        with self._lock:
            recent = self._recent(address, now)
            if recent is not None and len(recent) >= self._max_failures:
                raise TooManyGuesses(max(1, int(recent[0] + self._window - now + 0.999)))

    def failed(self, address: str, now: float) -> None:
        with self._lock:
            recent = self._recent(address, now)
            if recent is None:
                if len(self._failures) >= self._max_addresses:
                    self._failures.clear()
                recent = self._failures[address] = deque()
            recent.append(now)

    def _recent(self, address: str, now: float) -> deque[float] | None:
        recent = self._failures.get(address)
        while recent and recent[0] <= now - self._window:
            recent.popleft()
        return recent


def parse_enroll_request(document: Any) -> tuple[str, str | None]:
    """(code, device_info) from `{"code", "device_info"?}`; a 400 names the culprit."""
    if not isinstance(document, dict):
        raise InvalidInput("body", "must be a JSON object")
    unknown = sorted(set(document) - set(_FIELDS))
    if unknown:
        raise InvalidInput(unknown[0], f"unknown field; the fields are {', '.join(_FIELDS)}")
    code = document.get("code")
    if not isinstance(code, str) or not code.strip():
        raise InvalidInput("code", "is required: the enrollment code, e.g. K7QX2-M9PDF")
    if len(code) > _MAX_CODE_LENGTH:
        raise InvalidInput("code", f"longer than {_MAX_CODE_LENGTH} characters")
    device_info = document.get("device_info")
    if device_info is not None:
        if not isinstance(device_info, str):
            raise InvalidInput("device_info", "must be a string")
        problem = text_problem(device_info, FIELD_LIMITS["device_info"])
        if problem:
            raise InvalidInput("device_info", problem)
    return code, device_info


@dataclass
class Enroller:
    store: Store
    settings: Settings
    clock: Clock
    metrics: ServiceMetrics
    limiter: GuessLimiter = field(default_factory=GuessLimiter)

    def enroll(self, address: str, content_type: str | None, body: bytes) -> dict[str, Any]:
        """The kiosk's id and new API key, for a valid code; the code is spent."""
        now = self.clock()
        try:
            self.limiter.check(address, now.timestamp())
        except TooManyGuesses:
            self.metrics.enrollment_attempt("rate_limited")
            raise
        code, device_info = parse_enroll_request(parse_json_request(content_type, body))
        enrolled = self._exchange(code, now, device_info)
        if enrolled is None:
            self.limiter.failed(address, now.timestamp())
            self.metrics.enrollment_attempt("refused")
            raise EnrollmentRefused("unknown, used or expired enrollment code")
        self.metrics.enrollment_attempt("enrolled")
        kiosk_id, api_key = enrolled
        # Actor None: the tablet itself, known only by the code it spent.
        detail = {"device_info": device_info} if device_info else None
        self.store.append_event(kiosk_id, EventKind.ENROLLED, at=now, detail=detail)
        return {
            "kiosk_id": kiosk_id,
            "api_key": api_key,
            "next_heartbeat_in_seconds": self.settings.heartbeat_interval_seconds,
        }

    def _exchange(
        self, code: str, now: datetime, device_info: str | None
    ) -> tuple[int, str] | None:
        normalized = keys.normalize_enrollment_code(code)
        if normalized is None:
            return None
        return self.store.enroll(keys.hash_secret(normalized), now=now, device_info=device_info)
