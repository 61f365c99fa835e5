"""Use cases behind the HTTP API: authenticate, validate, record, judge. No HTTP in here."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import keys
from .access import Caller, Scope
from .clock import Clock, format_utc
from .config import Settings
from .errors import (
    ExporterError,
    InvalidInput,
    KioskInactive,
    PayloadTooLarge,
    RateLimited,
    ShuttingDown,
    StorageUnavailable,
    UnknownKey,
    UnknownToken,
    UnsupportedMediaType,
)
from .expected import FleetExpectation
from .gate import DatabaseGate
from .metrics import ServiceMetrics
from .payload import (
    MAX_BODY_BYTES,
    HeartbeatPayload,
    QuerySpec,
    is_blank,
    parse_heartbeat,
    parse_query,
    status_document,
)
from .payload import is_json as _is_json
from .readiness import ReadinessProbe
from .records import HeartbeatResult, HeartbeatWrite, KioskRecord, Outcome
from .status import KioskState, KioskStatus, judge, retry_after_seconds
from .store import Store
from .vitals import snapshot
from .writer import HeartbeatWriter

log = logging.getLogger(__name__)

# Raw query parameters as the framework gives them: one value, or a list when repeated.
Query = Mapping[str, "str | list[str]"]
NO_QUERY: QuerySpec = {}
ALL_STATUS_QUERY: QuerySpec = {"status": True, "location": False, "expected": False}

_REJECTION_REASONS: dict[type[ExporterError], str] = {
    UnknownKey: "auth",
    KioskInactive: "inactive",
    InvalidInput: "invalid",
    PayloadTooLarge: "invalid",
    UnsupportedMediaType: "invalid",
    RateLimited: "rate_limited",
    StorageUnavailable: "unavailable",
}


class KeyDirectory:
    """Remembers which kiosk a key hash belongs to, so a heartbeat costs no lookup query.

    Only the hash -> id fact is cached, and it never grants anything: the heartbeat write
    re-checks hash and activity, so rotation and deactivation take effect immediately.
    """

    def __init__(self, max_entries: int = 500_000) -> None:
        self._ids: dict[str, int] = {}
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> int | None:
        return self._ids.get(key_hash)

    def remember(self, key_hash: str, kiosk_id: int) -> None:
        with self._lock:
            if len(self._ids) >= self._max_entries:
                self._ids.clear()
            self._ids[key_hash] = kiosk_id

    def forget(self, key_hash: str) -> None:
        with self._lock:
            self._ids.pop(key_hash, None)


class IgnoredFieldLog:
    """Logs each unknown heartbeat field name once, so a new app version is noticed.

    Names are client-chosen: at most `max_names` are remembered (then one line says that new
    names are no longer logged; the counter still counts them), and each is logged as a
    shortened `repr`, so a name cannot forge a log line.
    """

    def __init__(self, max_names: int = 256) -> None:
        self._seen: set[str] = set()
        self._max_names = max_names
        self._lock = threading.Lock()

    def notice(self, names: tuple[str, ...]) -> None:
        for name in names:
            if name in self._seen:  # the common case, without the lock
                continue
            with self._lock:
                if name in self._seen or len(self._seen) > self._max_names:
                    continue
                self._seen.add(name)
                full = len(self._seen) > self._max_names
            if full:
                log.warning(
                    "more than %d distinct unknown heartbeat fields; new ones are no longer "
                    "logged (kiosk_exporter_heartbeat_ignored_fields_total counts them)",
                    self._max_names,
                )
            else:
                log.info("heartbeats carry an unknown field %r: ignored", name[:64])


@dataclass
class KioskService:
    store: Store
    writer: HeartbeatWriter
    settings: Settings
    clock: Clock
    metrics: ServiceMetrics
    directory: KeyDirectory
    probe: ReadinessProbe
    gate: DatabaseGate
    # Set on SIGTERM: /readyz turns 503 so load balancers drain this replica.
    stopping: threading.Event = field(default_factory=threading.Event)
    ignored_log: IgnoredFieldLog = field(default_factory=IgnoredFieldLog)

    def heartbeat(
        self, api_key: str | None, content_type: str | None, body: bytes
    ) -> dict[str, Any]:
        """Record one heartbeat; every refusal is counted by reason before it propagates."""
        try:
            return self._heartbeat(api_key, content_type, body)
        except ExporterError as exc:
            reason = next((r for t, r in _REJECTION_REASONS.items() if isinstance(exc, t)), None)
            if reason:
                self.metrics.heartbeat_rejected(reason)
            raise

    def _heartbeat(
        self, api_key: str | None, content_type: str | None, body: bytes
    ) -> dict[str, Any]:
        key_hash = self._key_hash(api_key)
        # Authenticate before judging the body: strangers learn nothing about the format.
        kiosk_id = self.directory.get(key_hash)
        if kiosk_id is None:
            with self.gate.slot():  # a read in this thread
                kiosk_id = self._kiosk_id_for(key_hash)
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(MAX_BODY_BYTES)
        if not is_blank(body) and not _is_json(content_type):
            raise UnsupportedMediaType(content_type)
        payload = parse_heartbeat(body)
        received_at = self.clock()
        write = HeartbeatWrite(
            kiosk_id,
            key_hash,
            received_at,
            payload.app_version,
            payload.device_info,
            snapshot(payload.diagnostics, received_at),
        )
        result = self._submit(write)
        if result.outcome is Outcome.UNKNOWN_KEY:
            self.directory.forget(key_hash)
            raise UnknownKey()
        if result.outcome is Outcome.INACTIVE:
            raise KioskInactive()
        if result.outcome is Outcome.RATE_LIMITED:
            elapsed = (
                (received_at - result.previous_at).total_seconds() if result.previous_at else 0
            )
            raise RateLimited(
                retry_after_seconds(self.settings.min_heartbeat_interval_seconds - elapsed)
            )
        self.metrics.heartbeat_accepted(
            received_at, payload.sent_at, len(payload.ignored_fields), payload.rejected_fields
        )
        self.ignored_log.notice(payload.ignored_fields)
        log.debug("heartbeat from kiosk %d (app %r)", kiosk_id, payload.app_version)
        return self._heartbeat_reply(kiosk_id, received_at, payload)

    def _submit(self, write: HeartbeatWrite) -> HeartbeatResult:
        """Hand the write to the writer thread and wait for its commit, within the database
        gate's rule: a free slot is held for the wait; past the limit, the request is
        refused at once while a database call is stuck, and otherwise waits as long as none
        is (it would have waited for a slot just as long). Only the writer thread touches
        the database, so past the limit there is no call of this thread's to bound, and no
        reason to queue for a slot: at saturation, every worker thread carries a heartbeat."""
        if self.gate.try_enter():
            try:
                return self.writer.submit(write)
            finally:
                self.gate.leave()
        self.gate.require_answering()
        return self.writer.submit(write, keep_waiting=self.gate.require_answering)

    def _heartbeat_reply(
        self, kiosk_id: int, received_at: datetime, payload: HeartbeatPayload
    ) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "kiosk_id": kiosk_id,
            "received_at": format_utc(received_at),
            "next_heartbeat_in_seconds": self.settings.heartbeat_interval_seconds,
        }
        # Present only when non-empty, so the reply of a clean heartbeat is as before.
        if payload.ignored_fields:
            reply["ignored_fields"] = list(payload.ignored_fields)
        if payload.rejected_fields:
            reply["rejected_fields"] = dict(payload.rejected_fields)
        return reply

    def _kiosk_id_for(self, key_hash: str) -> int:
        kiosk = self.store.find_kiosk_by_key(key_hash)
        if kiosk is None:
            raise UnknownKey()
        self.directory.remember(key_hash, kiosk.id)
        return kiosk.id

    @staticmethod
    def _key_hash(api_key: str | None) -> str:
        if not api_key or len(api_key) > 512:
            raise UnknownKey()
        return keys.hash_secret(api_key)

    def own_status(self, api_key: str | None, query: Query | None = None) -> dict[str, Any]:
        key_hash = self._key_hash(api_key)
        with self.gate.slot():
            kiosk = self.store.find_kiosk_by_key(key_hash)
        if kiosk is None:
            raise UnknownKey()
        if not kiosk.is_active:
            raise KioskInactive()
        parse_query(query or {}, NO_QUERY)
        return self.describe(kiosk)

    def all_status(self, caller: Caller, query: Query | None = None) -> list[dict[str, Any]]:
        """Every kiosk the caller may see: a location-limited token sees only its own.
        `?status=` repeated is a union; `?location=` an exact match; `?expected=true|false`
        keeps the kiosks expected online now, or the others."""
        params = parse_query(query or {}, ALL_STATUS_QUERY)
        wanted = {_parse_status_filter(value) for value in params.get("status", []) if value}
        (location,) = params.get("location", [None])
        (expected,) = params.get("expected", [None])
        wanted_expected = _parse_bool("expected", expected)
        now = self.clock()
        documents = []
        with self.gate.slot():
            kiosks = self.store.list_kiosks(location=location or None)
            rule = self._expectation(now)
        for kiosk in kiosks:
            if not caller.sees(kiosk.location):
                continue
            state = self.judge(kiosk, now)
            if wanted and state.status not in wanted:
                continue
            judged = rule.judge(kiosk, state.status)
            if wanted_expected in (None, judged.expectation.expected_online):
                documents.append(status_document(kiosk, state, judged))
        return documents

    def kiosk_status(
        self, caller: Caller, kiosk_id: int, query: Query | None = None
    ) -> dict[str, Any]:
        """One kiosk's status object for the back office (the status page's detail view)."""
        parse_query(query or {}, NO_QUERY)
        with self.gate.slot():
            kiosk = self.store.get_kiosk(kiosk_id)
        caller.require_visible(kiosk_id, kiosk.location)
        return self.describe(kiosk)

    def authenticate_back_office(self, token: str | None, needed: Scope) -> Caller:
        """The caller behind a bearer token, refused (403 naming the scope) when its scope
        does not grant `needed`; an unknown or revoked token is a 401."""
        record = None
        if token:
            with self.gate.slot():
                record = self.store.authenticate_token(token, now=self.clock())
        if record is None:
            raise UnknownToken()
        caller = Caller(record.id, record.name, Scope(record.scope), frozenset(record.locations))
        caller.require(needed)
        return caller

    def describe(self, kiosk: KioskRecord) -> dict[str, Any]:
        now = self.clock()
        state = self.judge(kiosk, now)
        with self.gate.slot():
            rule = self._expectation(now, kiosk.id)
        return status_document(kiosk, state, rule.judge(kiosk, state.status))

    def _expectation(self, now: datetime, kiosk_id: int | None = None) -> FleetExpectation:
        offline_before = now - timedelta(seconds=self.settings.online_threshold_seconds)
        facts = self.store.expectation_facts(now, offline_before=offline_before, kiosk_id=kiosk_id)
        return FleetExpectation(facts, now)

    def judge(self, kiosk: KioskRecord, now: datetime) -> KioskState:
        return judge(
            is_active=kiosk.is_active,
            last_heartbeat_at=kiosk.last_heartbeat_at,
            now=now,
            online_threshold_seconds=self.settings.online_threshold_seconds,
        )

    def readiness(self) -> dict[str, Any]:
        # No database name or path: /readyz is unauthenticated, for load balancers.
        if self.stopping.is_set():
            raise ShuttingDown("this replica is stopping; send traffic to another")
        self.probe.check()
        return {"status": "ready"}


def _parse_bool(name: str, value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    if value in ("true", "false"):
        return value == "true"
    raise InvalidInput(name, f"expected true or false, got {value!r}")


def _parse_status_filter(value: str) -> KioskStatus:
    try:
        return KioskStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in KioskStatus)
        raise InvalidInput("status", f"unknown status {value!r}; use one of {allowed}") from None
