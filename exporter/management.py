"""Kiosk management: the one implementation behind the `kiosk ...` commands and /admin routes.

Every operation takes the actor (a back-office token's caller, or CLI_ACTOR) and enforces
its location limits; the edges only translate arguments and shape what their audience may
see (the command line prints API keys, HTTP never does).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import keys, qr
from .access import Caller, Scope
from .adminstore import IdempotentRequest, PendingCode
from .clock import Clock, format_utc
from .config import Settings
from .errors import InvalidInput, ScheduleNotFound
from .fleetfile import ALWAYS, LIMITS, schedule_choice, text_problem
from .records import EventKind, KioskRecord
from .store import Store

# Who changed a kiosk from the command line (a token's name otherwise).
CLI_ACTOR = Caller(token_id=0, name="cli", scope=Scope.ADMIN)
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")
_TEXT_FIELDS = ("name", "location")
_KIOSK_FIELDS = (*_TEXT_FIELDS, "schedule")


@dataclass(frozen=True)
class Enrollment:
    """A new one-time code, shown once: the store keeps only its hash."""

    code: str
    expires_at: datetime

    def document(self) -> dict[str, Any]:
        """With the code as a QR code (SVG) for the back office's screen: the code is not
        kept, so this answer is the only time it can be drawn."""
        return {
            "code": self.code,
            "expires_at": format_utc(self.expires_at),
            "qr_svg": qr.svg(self.code),
        }


@dataclass(frozen=True)
class Provisioned:
    """A kiosk with fresh credentials. `api_key` is for the command line only, and None when
    an idempotent retry returned a kiosk created before (its key was shown then)."""

    kiosk: KioskRecord
    enrollment: Enrollment
    api_key: str | None = None
    replayed: bool = False


@dataclass(frozen=True)
class KioskChanges:
    name: str | None = None
    location: str | None = None
    # With schedule_given: a schedule's name, or None for `always`; else unchanged.
    schedule: str | None = None
    schedule_given: bool = False


def clean_text(field: str, value: Any, flag: str | None = None) -> str:
    """A kiosk name or location as stored, or a 400 / usage error naming the field."""
    if not isinstance(value, str):
        raise InvalidInput(flag or field, "must be a string")
    text = value.strip()
    problem = text_problem(text, LIMITS[field])
    if problem:
        raise InvalidInput(flag or field, problem)
    return text


def parse_kiosk_document(document: Any, *, creating: bool) -> KioskChanges:
    """The JSON body of POST (name and location required) or PATCH (at least one)."""
    if not isinstance(document, dict):
        raise InvalidInput("body", "must be a JSON object")
    unknown = sorted(set(document) - set(_KIOSK_FIELDS))
    if unknown:
        raise InvalidInput(unknown[0], f"unknown field; the fields are {', '.join(_KIOSK_FIELDS)}")
    values: dict[str, Any] = {}
    for field in _TEXT_FIELDS:
        if field in document:
            values[field] = clean_text(field, document[field])
        elif creating:
            raise InvalidInput(field, "is required")
    if "schedule" in document:
        values.update(schedule=_schedule(document["schedule"]), schedule_given=True)
    if not values:
        raise InvalidInput("body", f"name at least one of {', '.join(_KIOSK_FIELDS)}")
    return KioskChanges(**values)


def _schedule(value: Any) -> str | None:
    """A schedule's name, or None for `always` (also written null)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("schedule", f"must be a schedule's name or {ALWAYS!r}")
    return schedule_choice(value, "schedule")


def check_idempotency_key(value: str | None) -> str | None:
    if value is not None and not _IDEMPOTENCY_KEY.fullmatch(value):
        raise InvalidInput("Idempotency-Key", "must be 1 to 128 visible ASCII characters")
    return value


class Management:
    """Kiosk operations for one store, settings and clock."""

    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock

    def create(
        self,
        actor: Caller,
        name: str,
        location: str,
        *,
        schedule: str | None = None,
        idempotency_key: str | None = None,
    ) -> Provisioned:
        """A kiosk waiting for enrollment, on `schedule` (None: `always`). A retry with the
        same Idempotency-Key returns the kiosk already created, with a new code (the first
        answer may never have arrived)."""
        actor.require(Scope.ADMIN)
        actor.require_location(location)
        if schedule is not None and schedule not in {s.name for s in self._store.list_schedules()}:
            raise ScheduleNotFound(schedule)
        request = None
        if idempotency_key is not None:
            asked = json.dumps(
                {"name": name, "location": location, "schedule": schedule}, sort_keys=True
            )
            request = IdempotentRequest(
                actor.token_id, idempotency_key, hashlib.sha256(asked.encode()).hexdigest()
            )
        code, pending = self._new_code()
        now = self._clock()
        kiosk, key = self._store.create_kiosk(
            name, location, code=pending, now=now, request=request
        )
        if key is None:
            return Provisioned(kiosk, self.issue_code(actor, kiosk.id), replayed=True)
        self._log(actor, kiosk.id, EventKind.CREATED, now, {"name": name, "location": location})
        if schedule is not None:
            self._store.assign_schedule(kiosk.id, schedule, now=now, actor=actor.name)
            kiosk = self._store.get_kiosk(kiosk.id)
        return Provisioned(kiosk, code, api_key=key)

    def get(self, actor: Caller, kiosk_id: int) -> KioskRecord:
        """Another location's kiosk is a 404 for a limited token, as if it did not exist."""
        kiosk = self._store.get_kiosk(kiosk_id)
        actor.require_visible(kiosk_id, kiosk.location)
        return kiosk

    def update(self, actor: Caller, kiosk_id: int, changes: KioskChanges) -> KioskRecord:
        """Rename, move, put on a schedule; each change goes to the kiosk's event log."""
        actor.require(Scope.ADMIN)
        before = self.get(actor, kiosk_id)
        if changes.location is not None:
            actor.require_location(changes.location)
        now = self._clock()
        if changes.schedule_given:
            self._store.assign_schedule(kiosk_id, changes.schedule, now=now, actor=actor.name)
        after = self._store.update_kiosk(kiosk_id, name=changes.name, location=changes.location)
        for kind, old, new in (
            (EventKind.RENAMED, before.name, after.name),
            (EventKind.MOVED, before.location, after.location),
        ):
            if old != new:
                self._log(actor, kiosk_id, kind, now, {"from": old, "to": new})
        return after

    def set_active(self, actor: Caller, kiosk_id: int, active: bool) -> KioskRecord:
        actor.require(Scope.ADMIN)
        self.get(actor, kiosk_id)
        self._store.set_active(kiosk_id, active, now=self._clock(), actor=actor.name)
        return self._store.get_kiosk(kiosk_id)

    def rotate_key(self, actor: Caller, kiosk_id: int) -> Provisioned:
        """The old key is refused from now on; the tablet enrolls again with the new code."""
        actor.require(Scope.ADMIN)
        self.get(actor, kiosk_id)
        code, pending = self._new_code()
        key = self._store.reset_credentials(kiosk_id, pending)
        self._log(actor, kiosk_id, EventKind.KEY_ROTATED, self._clock(), None)
        return Provisioned(self._store.get_kiosk(kiosk_id), code, api_key=key)

    def issue_code(self, actor: Caller, kiosk_id: int) -> Enrollment:
        """A new enrollment code for the kiosk; the previous one stops working."""
        actor.require(Scope.ADMIN)
        self.get(actor, kiosk_id)
        code, pending = self._new_code()
        self._store.set_enrollment_code(kiosk_id, pending)
        self._log(actor, kiosk_id, EventKind.ENROLLMENT_CODE_ISSUED, self._clock(), None)
        return code

    def _log(
        self,
        actor: Caller,
        kiosk_id: int,
        kind: EventKind,
        at: datetime,
        detail: dict[str, Any] | None,
    ) -> None:
        """The kiosk event log (#13's), with the token's name (or `cli`) as the actor."""
        self._store.append_event(kiosk_id, kind, at=at, actor=actor.name, detail=detail)

    def remove(self, actor: Caller, kiosk_id: int) -> KioskRecord:
        actor.require(Scope.ADMIN)
        kiosk = self.get(actor, kiosk_id)
        self._store.remove_kiosk(kiosk_id)
        return kiosk

    def _new_code(self) -> tuple[Enrollment, PendingCode]:
        code = keys.generate_enrollment_code()
        expires_at = self._clock() + timedelta(seconds=self._settings.enrollment_code_ttl_seconds)
        normalized = keys.normalize_enrollment_code(code)
        assert normalized is not None  # a generated code is always well formed
        return Enrollment(code, expires_at), PendingCode(keys.hash_secret(normalized), expires_at)
