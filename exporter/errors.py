"""Domain errors: what went wrong, in plain Python, mapped to HTTP once in app.py."""

from __future__ import annotations


class ExporterError(Exception):
    """Base class, so callers can catch the service's own failures and nothing else."""


class ConfigError(ExporterError):
    """Configuration that cannot be used; lists every problem at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))


class UnknownKey(ExporterError):
    """No key, or a key that matches no kiosk: both answer the same, so keys cannot be probed."""


class UnknownToken(ExporterError):
    """Missing, unknown or revoked back-office token."""


class KioskInactive(ExporterError):
    """The key is valid but its kiosk was deactivated by an operator."""


class KioskNotFound(ExporterError):
    def __init__(self, kiosk_id: int) -> None:
        self.kiosk_id = kiosk_id
        super().__init__(f"no kiosk with id {kiosk_id}")


class MissingScope(ExporterError):
    """A valid token whose scope does not grant the route (403, never 401: it is known)."""

    def __init__(self, needed: str, held: str) -> None:
        self.needed = needed
        self.held = held
        super().__init__(f"this route needs a token with scope {needed!r}; this one has {held!r}")


class LocationForbidden(ExporterError):
    """A location-limited token naming a location outside its limits."""

    def __init__(self, field: str, location: str, allowed: list[str]) -> None:
        self.field = field
        super().__init__(
            f"{field}: this token manages only {', '.join(map(repr, allowed))}, not {location!r}"
        )


class TokenNotFound(ExporterError):
    def __init__(self, token_id: int) -> None:
        self.token_id = token_id
        super().__init__(f"no back-office token with id {token_id}")


class DuplicateName(ExporterError):
    def __init__(self, name: str, kind: str = "kiosk") -> None:
        self.name = name
        super().__init__(f"a {kind} named {name!r} already exists")


class IdempotencyMismatch(ExporterError):
    """An Idempotency-Key already used by this token for a different request."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was already used for a different request; "
            "use a new key for a new request"
        )


class EnrollmentRefused(ExporterError):
    """A used, expired, unknown or malformed enrollment code: all answer the same."""


class ScheduleNotFound(ExporterError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no schedule named {name!r} (see `kiosk-exporter schedule list`)")


class ScheduleConflict(ExporterError):
    """A schedule name taken, or a schedule still in use."""


class InvalidInput(ExporterError):
    """A client's input that is wrong; `field` names what, so the fix is obvious."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class InvalidHeartbeat(InvalidInput):
    """A heartbeat body that cannot be accepted."""


class PayloadTooLarge(ExporterError):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"request body is larger than {limit} bytes")


class UnsupportedMediaType(ExporterError):
    def __init__(self, content_type: str | None) -> None:
        self.content_type = content_type
        super().__init__(f"expected Content-Type application/json, got {content_type or 'none'}")


class RateLimited(ExporterError):
    """Heartbeats closer together than the configured minimum; the earlier one stays recorded."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"heartbeats are too frequent; retry in {retry_after} s")


class TooManyGuesses(RateLimited):
    """Too many refused enrollment codes from one client address."""

    def __init__(self, retry_after: int) -> None:
        ExporterError.__init__(
            self, f"too many refused enrollment codes from this address; retry in {retry_after} s"
        )
        self.retry_after = retry_after


class StorageUnavailable(ExporterError):
    """The database cannot be reached or stayed locked too long; the client should retry."""

    def __init__(self, reason: str, retry_after: int = 5) -> None:
        self.retry_after = retry_after
        super().__init__(reason)


class ShuttingDown(ExporterError):
    """The service received SIGTERM: load balancers should send traffic elsewhere."""

    retry_after = 5


class ImportRejected(ExporterError):
    """A fleet import file with a bad row: nothing is created."""

    def __init__(self, row: int | None, reason: str) -> None:
        """`row` None: the file as a whole (not YAML, no rows)."""
        self.row = row
        self.reason = reason
        super().__init__(reason if row is None else f"row {row}: {reason}")


class SchemaBehind(ExporterError):
    """The database lacks migrations this release needs: start only after an upgrade."""

    def __init__(self, database: str, pending: list[str], command: str) -> None:
        self.pending = pending
        super().__init__(
            f"the schema of {database} is behind this release: {len(pending)} migration(s) "
            f"pending ({', '.join(pending)}); run `{command}`"
        )


class MigrationFailed(ExporterError):
    """A migration the database refused; the schema stays at the last applied version."""


class DatabaseMissing(ExporterError):
    """An administrative command on a SQLite file that does not exist: run from the wrong
    folder, it would otherwise create an empty database and hand out keys nobody accepts."""

    def __init__(self, database: str, command: str) -> None:
        self.database = database
        super().__init__(
            f"no database at {database}; pass --database (or --config) to use the service's, "
            f"or create it with `{command}`"
        )
