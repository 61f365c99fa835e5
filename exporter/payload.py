"""Wire formats: validating a heartbeat body and shaping a kiosk's status object.

A heartbeat is a liveness signal, so it is never refused for what it adds:
- a top-level field the service does not know is ignored and named in `ignored_fields`;
- a *diagnostic* field (declared in `DIAGNOSTIC_FIELDS`) with an invalid value is dropped,
  treated as not sent, and named with its reason in `rejected_fields`.
Only what the service stores and shows (`app_version`, `device_info`) and the body's shape
(JSON object) still make a 400.

How to add a diagnostic field (one entry, nothing else to wire):
1. write a validator `def _battery(value: object) -> object | Reject` that returns the clean
   value, or `Reject("a reason a tablet developer can act on")`. It never sees `null`: a null
   field is "not sent". Beware that JSON `true` is a Python `int`: test `isinstance(value,
   bool)` first where a number is expected;
2. add `"battery_percent": _battery` to `DIAGNOSTIC_FIELDS`;
3. read it from `payload.diagnostics.get("battery_percent")` in the service.
Rejections are counted by field in `kiosk_exporter_heartbeat_rejected_fields_total`, with a
series per declared field from the start; document the field in the README's heartbeat section.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from .clock import format_utc, parse_utc
from .errors import InvalidHeartbeat, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from .expected import KioskExpectation
from .records import KioskRecord
from .status import KioskState
from .vitals import VITAL_CHECKS, cross_check, vitals_document

MAX_BODY_BYTES = 16 * 1024
FIELD_LIMITS = {"app_version": 64, "device_info": 256}
# Unicode categories Cc (C0, DEL, C1 controls) and Cs (lone surrogates), as one regex: a
# per-character unicodedata lookup cost ~10 us on every heartbeat.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# What JSON counts as whitespace (RFC 8259): bytes.strip() also drops \x0b and \x0c, which
# made a body of those a valid empty heartbeat while it is neither empty nor JSON.
_JSON_SPACE = b" \t\r\n"
_TIME_HINT = "not a time: send an ISO-8601 string such as 2026-11-26T10:00:00Z"


@dataclass(frozen=True)
class Reject:
    """What a diagnostic validator returns for a value it cannot use; `reason` is shown as is."""

    reason: str


DiagnosticValidator = Callable[[Any], Any]


def _sent_at(value: object) -> datetime | Reject:
    # Without an offset the time is read as UTC, as tablets often omit it (documented).
    if not isinstance(value, str) or len(value) > 40:
        return Reject(_TIME_HINT)
    try:
        return parse_utc(value)
    except ValueError:
        return Reject(_TIME_HINT)
    except OverflowError:  # 0001-01-01T00:00+01:00 is a time, but not one UTC can hold
        return Reject("out of range: the time in UTC falls outside years 1-9999")


def _vital(check: Callable[[object], Any]) -> DiagnosticValidator:
    """A device-vitals check (vitals.py raises ValueError with the reason) as a validator."""

    def validate(value: object) -> Any:
        try:
            return check(value)
        except ValueError as exc:
            return Reject(str(exc))

    return validate


# The one declaration of the optional measurements a heartbeat may carry: name -> validator.
DIAGNOSTIC_FIELDS: Mapping[str, DiagnosticValidator] = MappingProxyType(
    {
        "sent_at": _sent_at,
        **{name: _vital(check) for name, check in VITAL_CHECKS.items()},
    }
)
_KNOWN_FIELDS = frozenset(FIELD_LIMITS) | frozenset(DIAGNOSTIC_FIELDS)


@dataclass(frozen=True)
class HeartbeatPayload:
    app_version: str | None = None
    device_info: str | None = None
    # Valid diagnostic values by field name; an invalid or null one is absent.
    diagnostics: Mapping[str, Any] = field(default_factory=dict)
    ignored_fields: tuple[str, ...] = ()
    rejected_fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def sent_at(self) -> datetime | None:
        value: datetime | None = self.diagnostics.get("sent_at")
        return value


def parse_heartbeat(body: bytes) -> HeartbeatPayload:
    """Validate a heartbeat body; every rejection names the field so a tablet developer can fix it.

    An empty body is a valid heartbeat: the fields are optional and the key says who it is.
    """
    if is_blank(body):
        return HeartbeatPayload()
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidHeartbeat("body", f"not valid JSON ({exc})") from None
    except RecursionError:  # 16 KiB of "[" nests deeper than the parser's recursion limit
        raise InvalidHeartbeat("body", "JSON nested too deeply") from None
    if not isinstance(document, dict):
        raise InvalidHeartbeat("body", "must be a JSON object")
    diagnostics: dict[str, Any] = {}
    rejected: dict[str, str] = {}
    for name, validator in DIAGNOSTIC_FIELDS.items():
        value = document.get(name)
        if value is None:
            continue
        checked = validator(value)
        if isinstance(checked, Reject):
            rejected[name] = checked.reason
        else:
            diagnostics[name] = checked
    # Values valid alone that contradict each other (free above total, a Wi-Fi signal
    # without Wi-Fi) are dropped the same way.
    rejected.update(cross_check(diagnostics))
    return HeartbeatPayload(
        app_version=_text_field(document, "app_version"),
        device_info=_text_field(document, "device_info"),
        diagnostics=diagnostics,
        ignored_fields=tuple(name for name in document if name not in _KNOWN_FIELDS),
        rejected_fields=rejected,
    )


def is_blank(body: bytes) -> bool:
    """An empty body (JSON whitespace at most): a heartbeat without fields."""
    return not body.strip(_JSON_SPACE)


def _text_field(document: dict[str, Any], field: str) -> str | None:
    value = document.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidHeartbeat(field, "must be a string")
    limit = FIELD_LIMITS[field]
    if len(value) > limit:
        raise InvalidHeartbeat(field, f"longer than {limit} characters")
    if _CONTROL.search(value):
        raise InvalidHeartbeat(field, "contains control characters")
    return value


# Query parameters a JSON endpoint accepts: name -> may it be repeated (values are a union).
QuerySpec = Mapping[str, bool]


def parse_query(params: Mapping[str, str | list[str]], accepted: QuerySpec) -> dict[str, list[str]]:
    """The one check of a JSON endpoint's query string: every value as a list, an unknown
    parameter or a repeated single one a 400 naming it (a typo such as `?stauts=offline`
    would otherwise answer the whole fleet). A rule on every value belongs here too."""
    unknown = [name for name in params if name not in accepted]
    if unknown:
        allowed = ", ".join(accepted) or "none"
        raise InvalidInput(
            unknown[0], f"unknown query parameter {', '.join(unknown)}; accepted: {allowed}"
        )
    values = {name: value if isinstance(value, list) else [value] for name, value in params.items()}
    for name, given in values.items():
        if len(given) > 1 and not accepted[name]:
            raise InvalidInput(name, "given more than once; it takes one value")
        # Refused the same way on every database: PostgreSQL's driver rejects NUL in a
        # string (a 500 there, a silent empty answer on SQLite), and no stored name or
        # location holds a control character, so such a value is a client's mistake.
        if any(_CONTROL.search(value) for value in given):
            raise InvalidInput(name, "contains control characters")
    return values


def is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def parse_json_request(content_type: str | None, body: bytes) -> Any:
    """The JSON document of a management or enrollment request (strict, unlike heartbeats:
    these are written by people and scripts that should hear about every mistake)."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(MAX_BODY_BYTES)
    if not is_json(content_type):
        raise UnsupportedMediaType(content_type)
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput("body", f"not valid JSON ({exc})") from None
    except RecursionError:
        raise InvalidInput("body", "JSON nested too deeply") from None


def status_document(
    kiosk: KioskRecord, state: KioskState, expected: KioskExpectation
) -> dict[str, Any]:
    """The status object the back office and tablets read; field names are a public contract."""
    return {
        "kiosk_id": kiosk.id,
        "kiosk_name": kiosk.name,
        "location": kiosk.location,
        "is_active": kiosk.is_active,
        "last_heartbeat_at": format_utc(kiosk.last_heartbeat_at),
        "app_version": kiosk.app_version,
        "device_info": kiosk.device_info,
        "is_online": state.is_online,
        "offline_duration_seconds": state.offline_duration_seconds,
        "status": state.status.value,
        "vitals": vitals_document(kiosk.vitals),
        "expected_online": expected.expectation.expected_online,
        "schedule": expected.schedule,
        "maintenance_until": format_utc(expected.expectation.maintenance_until),
        "offline_while_expected_seconds": expected.offline_while_expected_seconds,
    }


def status_etag(documents: list[dict[str, Any]]) -> str:
    """A weak ETag over a list of status objects, blind to the `*_seconds` durations.

    Durations grow every second while nothing happens; a client derives them from the
    timestamps, so polling gets 304 until a fact or a status changes (a status that flips
    with time, e.g. a threshold crossed, changes `status` and so the tag).
    """
    # One itemgetter per shape of document rather than a filtered copy of each: at 10,000
    # kiosks this costs less than serialising the answer itself (docs/performance.md).
    rows: list[Any] = []
    shape: Any = None
    pick: Callable[[dict[str, Any]], Any] = dict.values
    for document in documents:
        if document.keys() != shape:
            shape = document.keys()
            names = [k for k in document if not k.endswith("_seconds")]
            pick = operator.itemgetter(*names)
            rows.append(names)
        rows.append(pick(document))
    encoded = json.dumps(rows, separators=(",", ":")).encode()
    return f'W/"{hashlib.blake2b(encoded, digest_size=16).hexdigest()}"'
