"""Operator commands: kiosks, back-office tokens and the database schema.

Each `cmd_*` takes the parsed arguments and the settings, prints its result on stdout and
returns an exit code; cli.py wires them into the parser.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from . import qr, schema
from .access import parse_scope
from .clock import format_utc, utc_now
from .config import Settings
from .errors import InvalidInput
from .fleetfile import parse_fleet_csv, parse_fleet_yaml, schedule_choice
from .management import CLI_ACTOR, KioskChanges, Management, Provisioned, clean_text
from .records import KioskRecord, TokenRecord
from .status import KioskStatus, judge
from .store import Store, open_store


def _store(settings: Settings) -> Store:
    """Administrative commands never create a database: see schema.require_existing."""
    schema.require_existing(settings.database_url)
    return open_store(settings.database_url, timeout_seconds=settings.database_timeout_seconds)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _report(args: argparse.Namespace, message: str, result: dict[str, Any]) -> None:
    """A command whose result is a fact, not a table: JSON on stdout or one line on stderr."""
    if getattr(args, "json", False):
        _print_json(result)
    else:
        print(message, file=sys.stderr)


# -- database schema ------------------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    """stdout lists the migrations applied now: nothing when the schema was current.

    Then every kiosk offline now gets its ongoing outage (what serve's liveness tick does
    every 5 s), so one offline at the upgrade that brings history is not missed."""
    url = settings.database_url
    applied = schema.upgrade(url, timeout_seconds=settings.database_timeout_seconds)
    store = _store(settings)
    try:
        store.open_outages(
            now=utc_now(), online_threshold_seconds=settings.online_threshold_seconds
        )
    finally:
        store.close()
    state = schema.status(url, timeout_seconds=settings.database_timeout_seconds)
    if getattr(args, "json", False):
        _print_json(
            {"database": url.describe(), "applied_now": applied, "current": state.applied[-1]}
        )
        return 0
    for migration_id in applied:
        print(migration_id)
    print(f"{url.describe()}: schema at {state.applied[-1]}, up to date", file=sys.stderr)
    return 0


def cmd_db_status(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.database_url
    schema.require_existing(url)
    state = schema.status(url, timeout_seconds=settings.database_timeout_seconds)
    if args.json:
        _print_json(
            {
                "database": url.describe(),
                "current": state.current,
                "applied": list(state.applied),
                "pending": list(state.pending),
                "unknown": state.unknown,
            }
        )
        return 0
    rows = [[m, "applied"] for m in state.applied] + [[m, "pending"] for m in state.pending]
    _print_table(["migration", "state"], rows)
    if state.unknown:
        print(f"{state.unknown} migration(s) applied by a newer release", file=sys.stderr)
    if state.pending:
        print(f"run `{schema.UPGRADE_COMMAND}` to apply the pending ones", file=sys.stderr)
    return 0


def cmd_db_break_lock(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.database_url
    schema.require_existing(url)
    removed = schema.break_lock(url, timeout_seconds=settings.database_timeout_seconds)
    message = "migration lock removed" if removed else "there was no migration lock"
    _report(args, message, {"database": url.describe(), "lock_removed": removed})
    return 0


# -- kiosks -------------------------------------------------------------------------------------


def kiosk_row(kiosk: KioskRecord) -> dict[str, Any]:
    return {
        "id": kiosk.id,
        "name": kiosk.name,
        "location": kiosk.location,
        "is_active": kiosk.is_active,
        "key_prefix": kiosk.key_prefix,
        "created_at": format_utc(kiosk.created_at),
        "last_heartbeat_at": format_utc(kiosk.last_heartbeat_at),
        "app_version": kiosk.app_version,
    }


def _management(settings: Settings) -> Management:
    return Management(_store(settings), settings, utc_now)


def _kiosk_status(kiosk: KioskRecord, settings: Settings, now: Any) -> KioskStatus:
    """The service's own rule (status.judge), with the same threshold as the API."""
    return judge(
        is_active=kiosk.is_active,
        last_heartbeat_at=kiosk.last_heartbeat_at,
        now=now,
        online_threshold_seconds=settings.online_threshold_seconds,
    ).status


def cmd_kiosk_add(args: argparse.Namespace, settings: Settings) -> int:
    name, location = (
        clean_text("name", args.name, "--name"),
        clean_text("location", args.location, "--location"),
    )
    made = _management(settings).create(CLI_ACTOR, name, location)
    assert made.api_key is not None
    if args.json:
        _print_json(_with_credentials(made))
    else:
        _print_created([(made.kiosk, made.api_key)], False)
    return 0


def _with_credentials(made: Provisioned) -> dict[str, Any]:
    return {
        **kiosk_row(made.kiosk),
        "api_key": made.api_key,
        "enrollment": made.enrollment.document(),
    }


def _print_created(
    created: list[tuple[KioskRecord, str]], as_json: bool, *, single: bool = False
) -> None:
    rows = [{**kiosk_row(k), "api_key": key} for k, key in created]
    if as_json:
        _print_json(rows[0] if single else rows)
        return
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["id", "name", "location", "api_key"])
    for row in rows:
        writer.writerow([row["id"], row["name"], row["location"], row["api_key"]])
    print("Store these keys now: they are not shown again.", file=sys.stderr)


def cmd_kiosk_list(args: argparse.Namespace, settings: Settings) -> int:
    now = utc_now()
    rows = []
    for kiosk in _store(settings).list_kiosks(location=args.location):
        status = _kiosk_status(kiosk, settings, now)
        if args.status is None or status.value in args.status:
            rows.append({**kiosk_row(kiosk), "status": status.value})
    if args.json:
        _print_json(rows)
        return 0
    columns = [
        "id",
        "name",
        "location",
        "status",
        "last_heartbeat_at",
        "key_prefix",
        "app_version",
    ]
    _print_table(columns, [[row[c] for c in columns] for row in rows])
    return 0


def _print_table(columns: list[str], rows: list[list[Any]]) -> None:
    cells = [columns] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def cmd_kiosk_update(args: argparse.Namespace, settings: Settings) -> int:
    if args.name is None and args.location is None and args.schedule is None:
        raise InvalidInput(
            "--name/--location/--schedule", "kiosk update needs at least one of them"
        )
    changes = KioskChanges(
        name=None if args.name is None else clean_text("name", args.name, "--name"),
        location=(
            None if args.location is None else clean_text("location", args.location, "--location")
        ),
        schedule=None if args.schedule is None else schedule_choice(args.schedule),
        schedule_given=args.schedule is not None,
    )
    kiosk = _management(settings).update(CLI_ACTOR, args.id, changes)
    if args.json:
        _print_json(kiosk_row(kiosk))
    else:
        print(f"kiosk {kiosk.id} is now {kiosk.name!r} at {kiosk.location!r}", file=sys.stderr)
    return 0


def cmd_kiosk_rotate(args: argparse.Namespace, settings: Settings) -> int:
    """The same rotation as POST /admin/kiosks/ID/rotate-key; here the new key is shown too."""
    made = _management(settings).rotate_key(CLI_ACTOR, args.id)
    if args.json:
        _print_json({"id": args.id, **_with_credentials(made)})
    else:
        print(made.api_key)
        print("Store this key now: it is not shown again.", file=sys.stderr)
    return 0


def cmd_kiosk_enroll_code(args: argparse.Namespace, settings: Settings) -> int:
    """A new one-time code (the previous one stops working), as text, terminal QR and SVG."""
    enrollment = _management(settings).issue_code(CLI_ACTOR, args.id)
    if args.svg:
        try:
            Path(args.svg).write_text(qr.svg(enrollment.code), encoding="utf-8")
        except OSError as exc:
            raise InvalidInput("--svg", f"cannot write {args.svg}: {exc.strerror}") from None
    if args.json:
        _print_json({"id": args.id, **enrollment.document()})
        return 0
    print(enrollment.code)
    print(qr.terminal(enrollment.code), end="")
    expires = format_utc(enrollment.expires_at)
    print(f"Single use, valid until {expires}; the previous code no longer works.", file=sys.stderr)
    return 0


def cmd_kiosk_deactivate(args: argparse.Namespace, settings: Settings) -> int:
    _management(settings).set_active(CLI_ACTOR, args.id, False)
    _report(args, f"kiosk {args.id} deactivated", {"id": args.id, "is_active": False})
    return 0


def cmd_kiosk_activate(args: argparse.Namespace, settings: Settings) -> int:
    _management(settings).set_active(CLI_ACTOR, args.id, True)
    _report(args, f"kiosk {args.id} activated", {"id": args.id, "is_active": True})
    return 0


def cmd_kiosk_remove(args: argparse.Namespace, settings: Settings) -> int:
    if (args.id is None) == (not args.simulated):
        raise InvalidInput("ID/--simulated", "give a kiosk ID or --simulated, not both")
    if args.simulated:
        return _remove_simulated(args, _store(settings))
    management = _management(settings)
    kiosk = management.get(CLI_ACTOR, args.id)
    if not args.yes and not confirm(
        f"Remove kiosk {kiosk.id} {kiosk.name!r} ({kiosk.location})? [y/N] "
    ):
        print("not removed", file=sys.stderr)
        return 1
    management.remove(CLI_ACTOR, args.id)
    _report(args, f"kiosk {args.id} removed", {"id": args.id, "removed": True})
    return 0


def _remove_simulated(args: argparse.Namespace, store: Store) -> int:
    """Every kiosk `simulate` created (flagged in the database), after a confirmation."""
    count = store.count_simulated_kiosks()
    if count and not args.yes and not confirm(f"Remove all {count} simulated kiosks? [y/N] "):
        print("not removed", file=sys.stderr)
        return 1
    removed = store.remove_simulated_kiosks() if count else 0
    _report(args, f"{removed} simulated kiosks removed", {"simulated_removed": removed})
    return 0


def confirm(question: str) -> bool:
    """Ask on the terminal; without one (a script, a pipe) asking is a usage error."""
    if not sys.stdin.isatty():
        raise InvalidInput("--yes", "standard input is not a terminal: pass --yes to confirm")
    try:
        answer = input(question)
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def cmd_kiosk_import(args: argparse.Namespace, settings: Settings) -> int:
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(args.file, f"cannot read the fleet file ({exc})") from None
    suffix = Path(args.file).suffix.lower()
    rows = parse_fleet_yaml(text) if suffix in (".yml", ".yaml") else parse_fleet_csv(text)
    created = _store(settings).import_kiosks(
        [(row.name, row.location) for row in rows],
        schedules=[row.schedule for row in rows],
        actor=CLI_ACTOR.name,
    )
    _print_created(created, args.json)
    print(f"{len(created)} kiosks created", file=sys.stderr)
    return 0


def _required_text(value: str, flag: str) -> str:
    """Checked here so a bad flag is a usage error (exit 2), not a database exception."""
    return clean_text(flag.removeprefix("--"), value, flag)


# -- tokens -------------------------------------------------------------------------------------


def token_row(token: TokenRecord) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "created_at": format_utc(token.created_at),
        "last_used_at": format_utc(token.last_used_at),
        "revoked": token.revoked,
        "scope": token.scope,
        "locations": list(token.locations),
    }


def cmd_token_add(args: argparse.Namespace, settings: Settings) -> int:
    """Tokens are made here only: no HTTP route can create or widen one."""
    token, secret = _store(settings).add_token(
        _required_text(args.name, "--name"),
        scope=parse_scope(args.scope, "--scope").value,
        locations=[_required_text(loc, "--location") for loc in args.location or ()],
    )
    if args.json:
        _print_json({**token_row(token), "token": secret})
    else:
        print(secret)
        print("Store this token now: it is not shown again.", file=sys.stderr)
    return 0


def cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    tokens = _store(settings).list_tokens()
    rows = [token_row(t) for t in tokens]
    live = Counter(t.name for t in tokens if not t.revoked)
    for name in sorted(n for n, count in live.items() if count > 1):
        ids = ", ".join(str(t.id) for t in tokens if t.name == name and not t.revoked)
        print(
            f"warning: tokens {ids} share the name {name!r} (created before names were "
            "unique); revoke all but one and add replacements with distinct names",
            file=sys.stderr,
        )
    if args.json:
        _print_json(rows)
    else:
        columns = ["id", "name", "scope", "locations", "created_at", "last_used_at", "revoked"]
        for row in rows:
            row["locations"] = ", ".join(row["locations"]) or "(all)"
        _print_table(columns, [[row[c] for c in columns] for row in rows])
    return 0


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    _store(settings).revoke_token(args.id)
    _report(args, f"token {args.id} revoked", {"id": args.id, "revoked": True})
    return 0
