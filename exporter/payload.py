"""Wire formats: validating a heartbeat body and shaping a kiosk's status object."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .clock import format_utc, parse_utc
from .errors import InvalidHeartbeat
from .records import KioskRecord
from .status import KioskState

MAX_BODY_BYTES = 16 * 1024
FIELD_LIMITS = {"app_version": 64, "device_info": 256}
_KNOWN_FIELDS = (*FIELD_LIMITS, "sent_at")
# Unicode categories Cc (C0, DEL, C1 controls) and Cs (lone surrogates), as one regex: a
# per-character unicodedata lookup cost ~10 us on every heartbeat.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class HeartbeatPayload:
    app_version: str | None = None
    device_info: str | None = None
    sent_at: datetime | None = None


def parse_heartbeat(body: bytes) -> HeartbeatPayload:
    """Validate a heartbeat body; every rejection names the field so a tablet developer can fix it.

    An empty body is a valid heartbeat: the fields are optional and the key says who it is.
    """
    if not body.strip():
        return HeartbeatPayload()
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidHeartbeat("body", f"not valid JSON ({exc})") from None
    except RecursionError:  # 16 KiB of "[" nests deeper than the parser's recursion limit
        raise InvalidHeartbeat("body", "JSON nested too deeply") from None
    if not isinstance(document, dict):
        raise InvalidHeartbeat("body", "must be a JSON object")
    unknown = sorted(set(document) - set(_KNOWN_FIELDS))
    if unknown:
        raise InvalidHeartbeat(unknown[0], "unknown field")
    return HeartbeatPayload(
        app_version=_text_field(document, "app_version"),
        device_info=_text_field(document, "device_info"),
        sent_at=_time_field(document, "sent_at"),
    )


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


def _time_field(document: dict[str, Any], field: str) -> datetime | None:
    value = document.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidHeartbeat(
            field, "must be an ISO-8601 time string such as 2026-11-26T10:00:00Z"
        )
    try:
        return parse_utc(value)
    except ValueError:
        raise InvalidHeartbeat(
            field, "must be an ISO-8601 time string such as 2026-11-26T10:00:00Z"
        ) from None


def status_document(kiosk: KioskRecord, state: KioskState) -> dict[str, Any]:
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
    }
