"""What every store module shares: one Pony session per public method, database trouble
turned into StorageUnavailable, and the integrity errors a duplicate raises."""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

from pony.orm import TransactionError, TransactionIntegrityError, db_session
from pony.orm.dbapiprovider import DBException, IntegrityError

from .errors import KioskNotFound, StorageUnavailable
from .gate import CallsInFlight
from .logs import printable

log = logging.getLogger("exporter.store")
# Pony raises the first when flushing inside a session, the second from the driver directly.
INTEGRITY_ERRORS = (TransactionIntegrityError, IntegrityError)
P = ParamSpec("P")
R = TypeVar("R")


def require_id(kiosk_id: int) -> None:
    """An id no row can have: a URL's /kiosk/99999999999999999999 overflowed the driver's
    64-bit integer (a 500); it is simply not found."""
    if not 0 < kiosk_id < 1 << 63:
        raise KioskNotFound(kiosk_id)


def session(method: Callable[P, R]) -> Callable[P, R]:
    """Pony's db_session, typed: one short transaction per public store method."""
    return cast(Callable[P, R], db_session(method))


def storage_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Database trouble becomes StorageUnavailable (503 + Retry-After), never a stack trace.

    On SQLite, the file must first still be the one the store opened (its `sqlite_file`).
    Each call is timed while it runs (the store's `calls`), so the service can tell a
    database that hangs from one that is slow."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        store = args[0]
        sqlite_file: SqliteFile | None = getattr(store, "sqlite_file", None)
        if sqlite_file is not None:
            sqlite_file.require_same()
        calls: CallsInFlight = getattr(store, "calls", _UNTRACKED)
        try:
            with calls.call():
                return method(*args, **kwargs)
        except (DBException, TransactionError) as exc:
            log.warning("database unavailable: %s", printable(str(exc)))
            raise StorageUnavailable(f"database unavailable: {type(exc).__name__}") from exc

    return wrapper


_UNTRACKED = CallsInFlight()


class SqliteFile:
    """The database file this process opened, told apart from whatever is at its path now.

    A deleted folder or a file replaced under a running service leaves SQLite writing, with
    success, into files that no longer exist: every such heartbeat would be lost and the
    next start would find another database or none. Each write first checks that the path
    still names the opened file (one stat); if not, it is refused (503) and logged once.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._opened = self._identity()
        self._lost = False
        self._lock = threading.Lock()

    def _identity(self) -> tuple[int, int] | None:
        try:
            status = os.stat(self._path)
        except OSError:
            return None
        return status.st_dev, status.st_ino

    def require_same(self) -> None:
        same = self._opened is not None and self._identity() == self._opened
        with self._lock:
            changed, self._lost = self._lost == same, not same
        if changed and not same:
            log.error(
                "the SQLite database %s was removed or replaced while serving: writes are "
                "refused (503) until the same file is back at that path; restart the "
                "service to open whatever is there now",
                printable(self._path),
            )
        elif changed:
            log.warning("the SQLite database %s is back: writes resume", printable(self._path))
        if not same:
            raise StorageUnavailable("the database file was removed or replaced")
