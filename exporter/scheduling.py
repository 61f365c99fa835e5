"""Operator commands of expected hours: schedules, maintenance windows, the kiosk event log.

Each `cmd_*` takes the parsed arguments and the settings, prints its result on stdout and
returns an exit code; cli.py wires them into the parser. Input is checked here, so a bad
flag is a usage error (exit 2) naming the flag.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime, timedelta
from typing import Any

from .admin import _print_json, _print_table, _store
from .clock import format_utc, parse_utc, utc_now
from .config import Settings
from .errors import InvalidInput
from .expected import REASON_LIMIT, parse_hours, parse_timezone
from .fleetfile import checked_schedule_name, text_problem
from .management import CLI_ACTOR
from .records import KioskEvent, ScheduleRecord

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
MAX_MAINTENANCE = timedelta(days=366)


# -- checks shared by the commands and `kiosk import` ---------------------------------------------


def _checked(flag: str, parse: Any, value: str) -> str:
    try:
        parse(value)
    except ValueError as exc:
        raise InvalidInput(flag, str(exc)) from None
    return value.strip()


def parse_duration(text: str) -> timedelta:
    """`2h`, `90m`, `1h30m`, `1d`, `45s`: how long a maintenance window lasts."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None:
        raise InvalidInput("--for", f"expected a duration such as 2h, 90m or 1h30m, got {text!r}")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if not timedelta(0) < duration <= MAX_MAINTENANCE:
        raise InvalidInput("--for", "must be more than 0 s and at most 366 days")
    return duration


# -- schedules ------------------------------------------------------------------------------------


def schedule_row(schedule: ScheduleRecord) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "timezone": schedule.timezone,
        "hours": schedule.hours,
        "kiosks": schedule.kiosks,
        "created_at": format_utc(schedule.created_at),
        "updated_at": format_utc(schedule.updated_at),
    }


def cmd_schedule_add(args: argparse.Namespace, settings: Settings) -> int:
    name = checked_schedule_name(args.name)
    zone = _checked("--timezone", parse_timezone, args.timezone)
    hours = _checked("--hours", parse_hours, args.hours)
    schedule = _store(settings).add_schedule(name, timezone=zone, hours=hours, now=utc_now())
    _print_schedule(schedule, args.json, "added")
    return 0


def cmd_schedule_update(args: argparse.Namespace, settings: Settings) -> int:
    if args.timezone is None and args.hours is None:
        raise InvalidInput("--timezone/--hours", "schedule update needs at least one of them")
    name = checked_schedule_name(args.name, "NAME")
    zone = None if args.timezone is None else _checked("--timezone", parse_timezone, args.timezone)
    hours = None if args.hours is None else _checked("--hours", parse_hours, args.hours)
    schedule = _store(settings).update_schedule(name, timezone=zone, hours=hours, now=utc_now())
    _print_schedule(schedule, args.json, "updated (from now on; the past keeps its hours)")
    return 0


def _print_schedule(schedule: ScheduleRecord, as_json: bool, what: str) -> None:
    if as_json:
        _print_json(schedule_row(schedule))
    else:
        print(f"schedule {schedule.name!r} {what}", file=sys.stderr)


def cmd_schedule_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = [schedule_row(s) for s in _store(settings).list_schedules()]
    if args.json:
        _print_json(rows)
        return 0
    columns = ["name", "timezone", "hours", "kiosks", "updated_at"]
    _print_table(columns, [[row[c] for c in columns] for row in rows])
    return 0


def cmd_schedule_remove(args: argparse.Namespace, settings: Settings) -> int:
    _store(settings).remove_schedule(checked_schedule_name(args.name, "NAME"), now=utc_now())
    print(f"schedule {args.name!r} removed", file=sys.stderr)
    return 0


# -- maintenance ----------------------------------------------------------------------------------


def cmd_kiosk_maintenance(args: argparse.Namespace, settings: Settings) -> int:
    """A window on one kiosk or on each kiosk of a location; or end the kiosk's window."""
    if (args.id is None) == (args.location is None):
        raise InvalidInput("ID/--location", "give a kiosk id or --location, not both")
    now = utc_now()
    if args.end:
        if args.id is None or args.duration or args.until or args.reason:
            raise InvalidInput("--end", "--end takes a kiosk id and nothing else")
        ended = _store(settings).end_maintenance(args.id, now=now, actor=CLI_ACTOR.name)
        if not ended:
            print(f"kiosk {args.id} is not in maintenance", file=sys.stderr)
            return 1
        print(f"maintenance of kiosk {args.id} ended", file=sys.stderr)
        return 0
    ends_at = _window_end(args, now)
    reason = _reason(args.reason)
    store = _store(settings)
    if args.id is not None:
        kiosk_ids = [args.id]
    else:
        location = args.location.strip()
        kiosk_ids = [k.id for k in store.list_kiosks(location=location)]
        if not kiosk_ids:
            raise InvalidInput("--location", f"no kiosk at {location!r}")
    windows = store.start_maintenance(
        kiosk_ids, starts_at=now, ends_at=ends_at, reason=reason, actor=CLI_ACTOR.name
    )
    rows = [
        {
            "kiosk_id": w.kiosk_id,
            "starts_at": format_utc(w.starts_at),
            "ends_at": format_utc(w.ends_at),
            "reason": w.reason,
        }
        for w in windows
    ]
    if args.json:
        _print_json(rows)
    else:
        print(f"{len(rows)} kiosk(s) in maintenance until {format_utc(ends_at)}", file=sys.stderr)
    return 0


def _window_end(args: argparse.Namespace, now: datetime) -> datetime:
    if (args.duration is None) == (args.until is None):
        raise InvalidInput("--for/--until", "give how long (--for 2h) or until when (--until)")
    if args.duration is not None:
        return now + parse_duration(args.duration)
    try:
        until = parse_utc(args.until)
    except ValueError:
        raise InvalidInput("--until", f"not an ISO-8601 time: {args.until!r}") from None
    if not now < until <= now + MAX_MAINTENANCE:
        raise InvalidInput("--until", "must be in the future, at most 366 days ahead")
    return until


def _reason(value: str | None) -> str | None:
    if value is None:
        return None
    reason = value.strip()
    problem = text_problem(reason, REASON_LIMIT)
    if problem:
        raise InvalidInput("--reason", problem)
    return reason


# -- the event log --------------------------------------------------------------------------------


def event_row(event: KioskEvent) -> dict[str, Any]:
    return {
        "at": format_utc(event.at),
        "kind": event.kind,
        "actor": event.actor,
        "detail": event.detail,
    }


def cmd_kiosk_events(args: argparse.Namespace, settings: Settings) -> int:
    rows = [event_row(e) for e in _store(settings).kiosk_events(args.id)]
    if args.json:
        _print_json(rows)
        return 0
    _print_table(
        ["at", "kind", "actor", "detail"],
        [[r["at"], r["kind"], r["actor"], _describe(r["detail"])] for r in rows],
    )
    return 0


def _describe(detail: dict[str, Any] | None) -> str | None:
    if not detail:
        return None
    return " ".join(f"{k}={v}" for k, v in sorted(detail.items()) if v is not None) or None
