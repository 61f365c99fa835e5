"""Back-office rights: a token's scope and the locations it is limited to, judged purely."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .errors import InvalidInput, KioskNotFound, LocationForbidden, MissingScope


class Scope(str, Enum):
    """`read` sees status, history and the page; `admin` also manages kiosks."""

    READ = "read"
    ADMIN = "admin"


# What each scope grants; a new scope is one line here, never a comparison elsewhere.
_GRANTS: dict[Scope, frozenset[Scope]] = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.ADMIN: frozenset({Scope.READ, Scope.ADMIN}),
}


def parse_scope(value: str, field: str = "scope") -> Scope:
    try:
        return Scope(value)
    except ValueError:
        allowed = ", ".join(s.value for s in Scope)
        raise InvalidInput(field, f"unknown scope {value!r}; use one of {allowed}") from None


@dataclass(frozen=True)
class Caller:
    """Who a back-office request comes from: the token's name (the event log's actor), its
    scope, and its locations (empty: every location)."""

    token_id: int
    name: str
    scope: Scope
    locations: frozenset[str] = frozenset()

    def require(self, needed: Scope) -> None:
        if needed not in _GRANTS[self.scope]:
            raise MissingScope(needed.value, self.scope.value)

    def sees(self, location: str) -> bool:
        return not self.locations or location in self.locations

    def require_location(self, location: str, field: str = "location") -> None:
        """A limited admin manages only its own locations (creating or moving a kiosk)."""
        if not self.sees(location):
            raise LocationForbidden(field, location, sorted(self.locations))

    def require_visible(self, kiosk_id: int, location: str) -> None:
        """Another location's kiosk is a 404 for a limited token, as if it did not exist."""
        if not self.sees(location):
            raise KioskNotFound(kiosk_id)
