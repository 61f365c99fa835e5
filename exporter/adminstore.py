"""Persistence of kiosk management: creation with an enrollment code and an idempotency key,
new credentials, and the one-time exchange of a code for an API key (a mixin of Store)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pony.orm import TransactionError, db_session, delete
from pony.orm.dbapiprovider import DBException

from . import keys
from .errors import DuplicateName, IdempotencyMismatch
from .records import KioskRecord
from .storebase import INTEGRITY_ERRORS, session, storage_errors

if TYPE_CHECKING:
    from .models import Schema

# How long a management request's Idempotency-Key is remembered.
IDEMPOTENCY_WINDOW = timedelta(hours=24)
DEADLOCK_ATTEMPTS = 3


def _is_deadlock(exc: BaseException) -> bool:
    original = getattr(exc, "original_exc", None) or exc.__cause__
    return any("deadlock" in str(e).lower() for e in (exc, original) if e is not None)


@dataclass(frozen=True)
class IdempotentRequest:
    """Who asked (the token), the client's key, and a hash of what was asked."""

    token_id: int
    key: str
    request_hash: str


@dataclass(frozen=True)
class PendingCode:
    """An enrollment code as stored: its hash and when it stops working."""

    code_hash: str
    expires_at: datetime


class ManagementStore:
    """Kiosk management writes; Store inherits them (one class owns the sessions)."""

    if TYPE_CHECKING:
        _schema: Schema

        def get_kiosk(self, kiosk_id: int) -> KioskRecord: ...
        def _create_kiosk(self, name: str, location: str, now: datetime) -> tuple[int, str]: ...
        def _kiosk_entity(self, kiosk_id: int) -> Any: ...
        @staticmethod
        def _to_naive(moment: datetime) -> datetime: ...
        @staticmethod
        def _from_db(value: Any) -> datetime | None: ...

    @storage_errors
    def create_kiosk(
        self,
        name: str,
        location: str,
        *,
        code: PendingCode,
        now: datetime,
        request: IdempotentRequest | None = None,
    ) -> tuple[KioskRecord, str | None]:
        """A new kiosk waiting for enrollment; returns it with its API key.

        With `request`, a retry of a request already carried out (even one still running
        when this one started) returns that kiosk and no key (None) instead of a duplicate.
        """
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            replayed = self._replay(request) if request else None
            if replayed is not None:
                return replayed, None
            try:
                with db_session:
                    kiosk_id, key = self._create_kiosk(name, location, now)
                    self._set_code(self._kiosk_entity(kiosk_id), code)
                    if request is not None:
                        self._remember(request, kiosk_id, now)
                return self.get_kiosk(kiosk_id), key
            except INTEGRITY_ERRORS:
                replayed = self._replay(request) if request else None
                if replayed is not None:
                    return replayed, None
                raise DuplicateName(name) from None
            except (DBException, TransactionError) as exc:
                # InnoDB picks a deadlock victim when three sessions insert one unique name
                # (a retry racing its own first attempt): run it again, it then sees the
                # winner's row. Other databases make the later insert wait instead.
                if attempt == DEADLOCK_ATTEMPTS or not _is_deadlock(exc):
                    raise
        raise AssertionError("unreachable")

    @session
    def _replay(self, request: IdempotentRequest) -> KioskRecord | None:
        row = self._schema.IdempotencyKey.get(
            token_id=request.token_id, idempotency_key=request.key
        )
        if row is None:
            return None
        if not hmac.compare_digest(row.request_hash, request.request_hash):
            raise IdempotencyMismatch(request.key)
        return self.get_kiosk(row.kiosk_id)

    def _remember(self, request: IdempotentRequest, kiosk_id: int, now: datetime) -> None:
        cutoff = self._to_naive(now - IDEMPOTENCY_WINDOW)
        delete(k for k in self._schema.IdempotencyKey if k.created_at < cutoff)
        self._schema.IdempotencyKey(
            token_id=request.token_id,
            idempotency_key=request.key,
            request_hash=request.request_hash,
            kiosk_id=kiosk_id,
            created_at=self._to_naive(now),
        ).flush()

    def _set_code(self, kiosk: Any, code: PendingCode | None) -> None:
        kiosk.enrollment_code_hash = code.code_hash if code else None
        kiosk.enrollment_expires_at = self._to_naive(code.expires_at) if code else None

    @storage_errors
    @session
    def set_enrollment_code(self, kiosk_id: int, code: PendingCode) -> None:
        """Replaces the kiosk's pending code: the previous one stops working."""
        self._set_code(self._kiosk_entity(kiosk_id), code)

    @storage_errors
    @session
    def reset_credentials(self, kiosk_id: int, code: PendingCode) -> str:
        """A new API key (the old one is refused from now on) and a new enrollment code, in
        one transaction; returns the key."""
        kiosk = self._kiosk_entity(kiosk_id)
        key = keys.generate_kiosk_key()
        kiosk.api_key_hash = keys.hash_secret(key)
        kiosk.key_prefix = keys.visible_prefix(key)
        self._set_code(kiosk, code)
        return key

    @storage_errors
    @session
    def enroll(
        self, code_hash: str, *, now: datetime, device_info: str | None
    ) -> tuple[int, str] | None:
        """Exchange a pending, unexpired code for a new API key, once: the row is locked, so
        two tablets racing with one code get one key between them. None: no such code."""
        kiosk = self._schema.Kiosk.get_for_update(enrollment_code_hash=code_hash)
        if kiosk is None or not hmac.compare_digest(kiosk.enrollment_code_hash, code_hash):
            return None
        expires_at = self._from_db(kiosk.enrollment_expires_at)
        if expires_at is None or expires_at <= now:
            return None
        key = keys.generate_kiosk_key()
        kiosk.api_key_hash = keys.hash_secret(key)
        kiosk.key_prefix = keys.visible_prefix(key)
        self._set_code(kiosk, None)
        if device_info is not None:
            kiosk.device_info = device_info
        return kiosk.id, key
