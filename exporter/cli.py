"""The `kiosk-exporter` command: serve the API and administer kiosks and tokens."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from . import schema
from .clock import format_utc
from .config import Settings, load_settings
from .errors import ConfigError, ExporterError, ImportRejected, InvalidInput
from .records import KioskRecord, TokenRecord
from .store import Store, open_store

log = logging.getLogger("exporter")
WAITRESS_SEND_BYTES = 18000
Command = Callable[[argparse.Namespace, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS lets the options stand before or after the subcommand without clobbering.
    common.add_argument("--config", default=argparse.SUPPRESS, help="YAML configuration file")
    common.add_argument("--database", default=argparse.SUPPRESS, help="database URL")
    parser = argparse.ArgumentParser(prog="kiosk-exporter", parents=[common], description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="run the HTTP service")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--threads", type=int, default=None)
    serve.add_argument(
        "--upgrade", action="store_true", help="apply pending schema migrations first"
    )
    serve.set_defaults(handler=cmd_serve)

    kiosk = commands.add_parser("kiosk", help="manage kiosks").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    _add(
        kiosk,
        "add",
        cmd_kiosk_add,
        common,
        "create a kiosk and print its API key once",
        [("--name", {"required": True}), ("--location", {"required": True})],
        json_output=True,
    )
    _add(kiosk, "list", cmd_kiosk_list, common, "list kiosks", [], json_output=True)
    _add(
        kiosk,
        "update",
        cmd_kiosk_update,
        common,
        "rename or move a kiosk (key and history stay)",
        [("id", {"type": int}), ("--name", {}), ("--location", {})],
        json_output=True,
    )
    for action, handler, text in (
        ("rotate-key", cmd_kiosk_rotate, "issue a new API key; the old one stops working"),
        ("deactivate", cmd_kiosk_deactivate, "refuse the kiosk's heartbeats; it never pages"),
        ("activate", cmd_kiosk_activate, "accept the kiosk's heartbeats again"),
        ("remove", cmd_kiosk_remove, "delete the kiosk and its history"),
    ):
        extra = (
            [("--yes", {"action": "store_true", "help": "do not ask"})]
            if action == "remove"
            else []
        )
        _add(
            kiosk,
            action,
            handler,
            common,
            text,
            [("id", {"type": int}), *extra],
            json_output=action == "rotate-key",
        )
    _add(
        kiosk,
        "import",
        cmd_kiosk_import,
        common,
        "create kiosks from a CSV or YAML file of name, location (all or nothing)",
        [("file", {"help": "CSV with a header row name,location, or YAML list; - for stdin"})],
        json_output=True,
    )

    token = commands.add_parser("token", help="manage back-office tokens").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    _add(
        token,
        "add",
        cmd_token_add,
        common,
        "create a back-office token and print it once",
        [("--name", {"required": True})],
        json_output=True,
    )
    _add(token, "list", cmd_token_list, common, "list tokens", [], json_output=True)
    _add(token, "revoke", cmd_token_revoke, common, "revoke a token", [("id", {"type": int})])
    _add_db_commands(commands, common)
    _add_tablet_commands(commands, common)
    return parser


def _add_db_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    db = commands.add_parser("db", help="database schema migrations").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    for action, handler, text, json_output in (
        ("upgrade", cmd_db_upgrade, "apply pending migrations (safe to repeat)", False),
        ("status", cmd_db_status, "list applied and pending migrations", True),
        ("break-lock", cmd_db_break_lock, "remove the lock of an upgrade that was killed", False),
    ):
        _add(db, action, handler, common, text, [], json_output=json_output)


def _add_tablet_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """agent, simulate and demo: their options are owned by their own modules."""
    from . import agent, simulate

    agent_parser = commands.add_parser(
        "agent", help="send this machine's heartbeats (stdlib only; runs on kiosks)"
    )
    agent.add_arguments(agent_parser)
    simulate_parser = commands.add_parser(
        "simulate", parents=[common], help="provision and run a fleet of simulated tablets"
    )
    simulate.add_arguments(simulate_parser)
    simulate_parser.set_defaults(handler=cmd_simulate)
    demo = commands.add_parser(
        "demo", parents=[common], help="the service with the four demo kiosks on a temp database"
    )
    demo.add_argument("--port", type=int, default=None, help="default 8000; 0 picks a free one")
    demo.add_argument("--host", default="127.0.0.1")
    demo.set_defaults(handler=cmd_demo)


def _add(
    group: Any,
    name: str,
    handler: Command,
    common: argparse.ArgumentParser,
    text: str,
    arguments: Sequence[tuple[str, dict[str, Any]]],
    *,
    json_output: bool = False,
) -> None:
    sub = group.add_parser(name, parents=[common], help=text, description=text)
    for flag, options in arguments:
        sub.add_argument(flag, **options)
    if json_output:
        sub.add_argument("--json", action="store_true", help="print JSON")
    sub.set_defaults(handler=handler)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    if args.command == "agent":
        # The agent runs on tablets: the server's configuration is none of its business.
        from . import agent

        return agent.main_from_args(args, environ)
    try:
        settings = load_settings(
            getattr(args, "config", None),
            environ,
            {
                "database": getattr(args, "database", None),
                "host": getattr(args, "host", None),
                "port": getattr(args, "port", None),
                "threads": getattr(args, "threads", None),
            },
        )
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"kiosk-exporter: config: {problem}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args, settings))
    except InvalidInput as exc:
        print(f"kiosk-exporter: {exc}", file=sys.stderr)
        return 2
    except ExporterError as exc:
        print(f"kiosk-exporter: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"kiosk-exporter: {exc}", file=sys.stderr)
        return 1


def _store(settings: Settings) -> Store:
    return open_store(settings.database_url, timeout_seconds=settings.database_timeout_seconds)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# -- serve --------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from waitress import create_server

    from .app import app_from_settings

    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # waitress warns once per queued request while saturated: a flood that costs ~5 % of the
    # CPU exactly when it is scarce. kiosk_exporter_request_duration_seconds shows queueing.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    if getattr(args, "upgrade", False):
        cmd_db_upgrade(args, settings)
    application = app_from_settings(settings)
    server = create_server(
        application.wsgi,
        host=settings.host,
        port=settings.port,
        threads=settings.threads,
        connection_limit=settings.connection_limit,
        ident="kiosk-exporter",
        # Heartbeats are tiny: refuse huge bodies before they are buffered.
        max_request_body_size=1024 * 1024,
        # With waitress's default of 1, a response written while its task still runs makes
        # the main loop spin on a socket it may not flush yet: measured 60-200 loop turns
        # per heartbeat and a tenth of the throughput once commits wake threads in groups.
        send_bytes=WAITRESS_SEND_BYTES,
        expose_tracebacks=False,
    )
    log.info(
        "serving on http://%s:%s with %s (online threshold %gs)",
        server.effective_host,
        server.effective_port,
        application.store.description,
        settings.online_threshold_seconds,
    )
    _stop_on_sigterm()
    try:
        server.run()
    finally:
        # waitress stops accepting and finishes running requests; queued heartbeats commit.
        server.close()
        application.close()
        log.info("stopped")
    return 0


def _stop_on_sigterm() -> None:
    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


# -- database schema ------------------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    """stdout lists the migrations applied now: nothing when the schema was current."""
    url = settings.database_url
    for migration_id in schema.upgrade(url, timeout_seconds=settings.database_timeout_seconds):
        print(migration_id)
    state = schema.status(url, timeout_seconds=settings.database_timeout_seconds)
    print(f"{url.describe()}: schema at {state.applied[-1]}, up to date", file=sys.stderr)
    return 0


def cmd_db_status(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.database_url
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
    schema.break_lock(settings.database_url, timeout_seconds=settings.database_timeout_seconds)
    print("migration lock removed", file=sys.stderr)
    return 0


# -- tablets: agent, simulator, demo --------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from . import simulate

    return simulate.main_from_args(args, settings)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from . import demo

    return demo.run(settings, lambda demo_settings: cmd_serve(args, demo_settings), host=args.host)


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


def cmd_kiosk_add(args: argparse.Namespace, settings: Settings) -> int:
    name, location = (
        _required_text(args.name, "--name"),
        _required_text(args.location, "--location"),
    )
    kiosk, key = _store(settings).add_kiosk(name, location)
    _print_created([(kiosk, key)], args.json, single=True)
    return 0


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
    rows = [kiosk_row(k) for k in _store(settings).list_kiosks()]
    if args.json:
        _print_json(rows)
        return 0
    columns = [
        "id",
        "name",
        "location",
        "is_active",
        "key_prefix",
        "last_heartbeat_at",
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
    if args.name is None and args.location is None:
        raise InvalidInput("--name/--location", "kiosk update needs at least one of them")
    kiosk = _store(settings).update_kiosk(
        args.id,
        name=None if args.name is None else _required_text(args.name, "--name"),
        location=None if args.location is None else _required_text(args.location, "--location"),
    )
    if args.json:
        _print_json(kiosk_row(kiosk))
    else:
        print(f"kiosk {kiosk.id} is now {kiosk.name!r} at {kiosk.location!r}", file=sys.stderr)
    return 0


def cmd_kiosk_rotate(args: argparse.Namespace, settings: Settings) -> int:
    key = _store(settings).rotate_key(args.id)
    if args.json:
        _print_json({"id": args.id, "api_key": key})
    else:
        print(key)
        print("Store this key now: it is not shown again.", file=sys.stderr)
    return 0


def cmd_kiosk_deactivate(args: argparse.Namespace, settings: Settings) -> int:
    _store(settings).set_active(args.id, False)
    print(f"kiosk {args.id} deactivated", file=sys.stderr)
    return 0


def cmd_kiosk_activate(args: argparse.Namespace, settings: Settings) -> int:
    _store(settings).set_active(args.id, True)
    print(f"kiosk {args.id} activated", file=sys.stderr)
    return 0


def cmd_kiosk_remove(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    kiosk = store.get_kiosk(args.id)
    if not args.yes:
        answer = input(f"Remove kiosk {kiosk.id} {kiosk.name!r} ({kiosk.location})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not removed", file=sys.stderr)
            return 1
    store.remove_kiosk(args.id)
    print(f"kiosk {args.id} removed", file=sys.stderr)
    return 0


def cmd_kiosk_import(args: argparse.Namespace, settings: Settings) -> int:
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    suffix = Path(args.file).suffix.lower()
    rows = parse_fleet_yaml(text) if suffix in (".yml", ".yaml") else parse_fleet_csv(text)
    created = _store(settings).import_kiosks(rows)
    _print_created(created, args.json)
    print(f"{len(created)} kiosks created", file=sys.stderr)
    return 0


def parse_fleet_csv(text: str) -> list[tuple[str, str]]:
    """CSV with a `name,location` header; row numbers in errors count the header as row 1."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or {"name", "location"} - {f.strip() for f in reader.fieldnames}:
        raise ImportRejected(1, "the header must name the columns name and location")
    return _checked_rows(
        ({k.strip(): v for k, v in row.items() if k} for row in reader), first_row=2
    )


def parse_fleet_yaml(text: str) -> list[tuple[str, str]]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ImportRejected(0, f"not valid YAML ({exc})") from None
    if isinstance(document, dict) and "kiosks" in document:
        document = document["kiosks"]
    if not isinstance(document, list):
        raise ImportRejected(0, "expected a list of {name, location} entries")
    return _checked_rows(iter(document), first_row=1)


def _checked_rows(rows: Any, first_row: int) -> list[tuple[str, str]]:
    checked: list[tuple[str, str]] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=first_row):
        if not isinstance(row, dict):
            raise ImportRejected(number, "expected name and location")
        name, location = (str(row.get(k) or "").strip() for k in ("name", "location"))
        if not name or not location:
            raise ImportRejected(number, "name and location must not be empty")
        if len(name) > 128 or len(location) > 256:
            raise ImportRejected(number, "name is limited to 128 and location to 256 characters")
        if name in seen:
            raise ImportRejected(number, f"duplicate name {name!r} in the file")
        seen.add(name)
        checked.append((name, location))
    if not checked:
        raise ImportRejected(first_row, "the file lists no kiosks")
    return checked


def _required_text(value: str, flag: str) -> str:
    text = value.strip()
    if not text:
        raise InvalidInput(flag, "must not be empty")
    return text


# -- tokens -------------------------------------------------------------------------------------


def token_row(token: TokenRecord) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "created_at": format_utc(token.created_at),
        "last_used_at": format_utc(token.last_used_at),
        "revoked": token.revoked,
    }


def cmd_token_add(args: argparse.Namespace, settings: Settings) -> int:
    token, secret = _store(settings).add_token(_required_text(args.name, "--name"))
    if args.json:
        _print_json({**token_row(token), "token": secret})
    else:
        print(secret)
        print("Store this token now: it is not shown again.", file=sys.stderr)
    return 0


def cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = [token_row(t) for t in _store(settings).list_tokens()]
    if args.json:
        _print_json(rows)
    else:
        columns = ["id", "name", "created_at", "last_used_at", "revoked"]
        _print_table(columns, [[row[c] for c in columns] for row in rows])
    return 0


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    _store(settings).revoke_token(args.id)
    print(f"token {args.id} revoked", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
