"""What every store module shares: one Pony session per public method, database trouble
turned into StorageUnavailable, and the integrity errors a duplicate raises."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

from pony.orm import TransactionError, TransactionIntegrityError, db_session
from pony.orm.dbapiprovider import DBException, IntegrityError

from .errors import StorageUnavailable

log = logging.getLogger("exporter.store")
# Pony raises the first when flushing inside a session, the second from the driver directly.
INTEGRITY_ERRORS = (TransactionIntegrityError, IntegrityError)
P = ParamSpec("P")
R = TypeVar("R")


def session(method: Callable[P, R]) -> Callable[P, R]:
    """Pony's db_session, typed: one short transaction per public store method."""
    return cast(Callable[P, R], db_session(method))


def storage_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Database trouble becomes StorageUnavailable (503 + Retry-After), never a stack trace."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (DBException, TransactionError) as exc:
            log.warning("database unavailable: %s", exc)
            raise StorageUnavailable(f"database unavailable: {type(exc).__name__}") from exc

    return wrapper
