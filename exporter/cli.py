"""The `kiosk-exporter` command: serve the API and administer kiosks and tokens."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import __version__
from .access import Scope
from .admin import (
    cmd_db_break_lock,
    cmd_db_status,
    cmd_db_upgrade,
    cmd_kiosk_activate,
    cmd_kiosk_add,
    cmd_kiosk_deactivate,
    cmd_kiosk_enroll_code,
    cmd_kiosk_import,
    cmd_kiosk_list,
    cmd_kiosk_remove,
    cmd_kiosk_rotate,
    cmd_kiosk_update,
    cmd_token_add,
    cmd_token_list,
    cmd_token_revoke,
)
from .config import Settings, load_settings
from .errors import ConfigError, ExporterError, InvalidInput
from .scheduling import (
    cmd_kiosk_events,
    cmd_kiosk_maintenance,
    cmd_schedule_add,
    cmd_schedule_list,
    cmd_schedule_remove,
    cmd_schedule_update,
)
from .status import KioskStatus

if TYPE_CHECKING:
    from .server import WorkerShare

log = logging.getLogger("exporter")
MMAP_THRESHOLD_BYTES = 1024 * 1024
Command = Callable[[argparse.Namespace, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS lets the options stand before or after the subcommand without clobbering.
    common.add_argument("--config", default=argparse.SUPPRESS, help="YAML configuration file")
    common.add_argument("--database", default=argparse.SUPPRESS, help="database URL")
    parser = argparse.ArgumentParser(prog="kiosk-exporter", parents=[common], description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="run the HTTP service")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--threads", type=int, default=None)
    serve.add_argument(
        "--workers", type=int, default=None, help="serving processes sharing the port (default 1)"
    )
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
    )
    _add(
        kiosk,
        "list",
        cmd_kiosk_list,
        common,
        "list kiosks with their status and last heartbeat",
        [
            (
                "--status",
                {
                    "action": "append",
                    "choices": [s.value for s in KioskStatus],
                    "help": "only kiosks with this status (repeat for several)",
                },
            ),
            ("--location", {"help": "only kiosks at this location (exact match)"}),
        ],
    )
    _add(
        kiosk,
        "update",
        cmd_kiosk_update,
        common,
        "rename or move a kiosk, or put it on a schedule (key and history stay)",
        [
            ("id", {"type": int}),
            ("--name", {}),
            ("--location", {}),
            ("--schedule", {"help": "a schedule's name, or always (the default)"}),
        ],
    )
    for action, handler, text in (
        ("rotate-key", cmd_kiosk_rotate, "issue a new API key; the old one stops working"),
        ("deactivate", cmd_kiosk_deactivate, "refuse the kiosk's heartbeats; it never pages"),
        ("activate", cmd_kiosk_activate, "accept the kiosk's heartbeats again"),
        ("remove", cmd_kiosk_remove, "delete the kiosk and its history"),
    ):
        target: tuple[str, dict[str, Any]] = ("id", {"type": int})
        extra = []
        if action == "remove":
            target = ("id", {"type": int, "nargs": "?", "help": "omit with --simulated"})
            extra = [
                ("--yes", {"action": "store_true", "help": "do not ask"}),
                (
                    "--simulated",
                    {"action": "store_true", "help": "every kiosk created by `simulate`"},
                ),
            ]
        _add(kiosk, action, handler, common, text, [target, *extra])
    _add(
        kiosk,
        "enroll-code",
        cmd_kiosk_enroll_code,
        common,
        "issue a one-time enrollment code (the previous one stops working); prints it with a QR",
        [
            ("id", {"type": int}),
            ("--svg", {"metavar": "FILE", "help": "also write the QR code as an SVG file"}),
        ],
    )
    _add(
        kiosk,
        "import",
        cmd_kiosk_import,
        common,
        "create kiosks from a CSV or YAML file of name, location (all or nothing)",
        [("file", {"help": "CSV with a header row name,location, or YAML list; - for stdin"})],
    )

    _add_kiosk_expected_commands(kiosk, common)
    _add_schedule_commands(commands, common)

    token = commands.add_parser("token", help="manage back-office tokens").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    _add(
        token,
        "add",
        cmd_token_add,
        common,
        "create a back-office token and print it once",
        [
            ("--name", {"required": True}),
            (
                "--scope",
                {
                    "default": "read",
                    "choices": [s.value for s in Scope],
                    "help": "read: status, history, page (default); admin: also manage kiosks",
                },
            ),
            (
                "--location",
                {
                    "action": "append",
                    "metavar": "L",
                    "help": "limit the token to kiosks at L (repeat for several; default: all)",
                },
            ),
        ],
    )
    _add(token, "list", cmd_token_list, common, "list tokens", [])
    _add(token, "revoke", cmd_token_revoke, common, "revoke a token", [("id", {"type": int})])
    _add_db_commands(commands, common)
    _add_tablet_commands(commands, common)
    _add_report_command(commands, common)
    return parser


def _add_kiosk_expected_commands(kiosk: Any, common: argparse.ArgumentParser) -> None:
    _add(
        kiosk,
        "maintenance",
        cmd_kiosk_maintenance,
        common,
        "a maintenance window (not expected online) on a kiosk or each kiosk of a location",
        [
            ("id", {"type": int, "nargs": "?", "help": "the kiosk (or --location)"}),
            ("--location", {"help": "a window on each kiosk of this location"}),
            ("--for", {"dest": "duration", "help": "how long: 2h, 90m, 1h30m, 1d"}),
            ("--until", {"help": "until when (ISO-8601)"}),
            ("--reason", {}),
            ("--end", {"action": "store_true", "help": "end the kiosk's window now"}),
        ],
    )
    _add(
        kiosk,
        "events",
        cmd_kiosk_events,
        common,
        "the kiosk's event log: schedule changes, maintenance, activation",
        [("id", {"type": int})],
    )


def _add_schedule_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    schedule = commands.add_parser(
        "schedule", help="named weekly hours when kiosks are expected online"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    hours = ("--hours", {"help": 'e.g. "Mon-Fri 07:00-20:00, Sat 08:00-12:00"'})
    zone = ("--timezone", {"help": "IANA time zone, e.g. Europe/Paris"})
    _add(
        schedule,
        "add",
        cmd_schedule_add,
        common,
        "create a schedule",
        [
            ("--name", {"required": True}),
            (zone[0], {**zone[1], "required": True}),
            (hours[0], {**hours[1], "required": True}),
        ],
    )
    _add(
        schedule,
        "update",
        cmd_schedule_update,
        common,
        "change a schedule's hours or zone from now on (the past keeps its hours)",
        [("name", {}), zone, hours],
    )
    _add(schedule, "list", cmd_schedule_list, common, "list schedules", [])
    _add(
        schedule,
        "remove",
        cmd_schedule_remove,
        common,
        "remove a schedule (refused while a kiosk is on it)",
        [("name", {})],
    )


def _add_report_command(commands: Any, common: argparse.ArgumentParser) -> None:
    from . import report

    text = "availability report (SLA): per kiosk and fleet, e.g. --month 2026-11"
    parser = commands.add_parser("report", parents=[common], help=text, description=text)
    report.add_arguments(parser)
    parser.set_defaults(handler=report.cmd_report)


def _add_db_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    db = commands.add_parser("db", help="database schema migrations").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    for action, handler, text in (
        ("upgrade", cmd_db_upgrade, "apply pending migrations (safe to repeat)"),
        ("status", cmd_db_status, "list applied and pending migrations"),
        ("break-lock", cmd_db_break_lock, "remove the lock of an upgrade that was killed"),
    ):
        _add(db, action, handler, common, text, [])


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
    demo.add_argument("--json", action="store_true", help="print the banner's facts as JSON")
    demo.set_defaults(handler=cmd_demo)


def _add(
    group: Any,
    name: str,
    handler: Command,
    common: argparse.ArgumentParser,
    text: str,
    arguments: Sequence[tuple[str, dict[str, Any]]],
) -> None:
    """Every operator command takes --config, --database and --json (its result as JSON)."""
    sub = group.add_parser(name, parents=[common], help=text, description=text)
    for flag, options in arguments:
        sub.add_argument(flag, **options)
    sub.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
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
                "workers": getattr(args, "workers", None),
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


# -- serve --------------------------------------------------------------------------------------


def cmd_serve(
    args: argparse.Namespace, settings: Settings, on_listening: Callable[[], None] | None = None
) -> int:
    """`on_listening` runs once the port is bound (the demo starts its agents then)."""
    if getattr(args, "upgrade", False):
        cmd_db_upgrade(args, settings)
    if settings.workers > 1:
        return _serve_workers(settings)
    return _serve_process(settings, Listen(on_listening=on_listening))


@dataclass(frozen=True)
class Listen:
    """Where one serving process listens: its own new sockets, or its share of a worker pool."""

    sockets: tuple[Any, ...] = ()  # pre-bound by the supervisor of `--workers`
    metrics_dir: str | None = None  # prometheus_client's multiprocess directory
    worker: str = ""  # "worker 1/2", for the start-up line
    on_listening: Callable[[], None] | None = None  # called once the sockets are bound
    share: WorkerShare | None = None  # this worker's turn at the shared sockets


def _serve_workers(settings: Settings) -> int:
    """`--workers N`: bind once, fork N serving processes sharing the sockets."""
    from .logs import LOG_FORMAT
    from .schema import require_current
    from .server import AcceptShares, bind_sockets
    from .workers import run_workers

    if any(name.startswith("prometheus_client") for name in sys.modules):
        # Its multiprocess mode is chosen when the library is imported.
        raise RuntimeError("--workers must be set when the process starts")
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT)
    # The supervisor checks (and for a new SQLite file, creates) the schema once before the
    # workers start: workers racing to migrate a new file could each time out on its lock.
    require_current(settings.database_url, timeout_seconds=settings.database_timeout_seconds)
    try:
        sockets = tuple(bind_sockets(settings.host, settings.port))
    except OSError as exc:
        where = f"{settings.host}:{settings.port}"
        raise RuntimeError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    shares = AcceptShares(settings.workers)
    with tempfile.TemporaryDirectory(prefix="kiosk-exporter-metrics-") as directory:
        # prometheus_client's documented switch: each worker writes its counters to files
        # there, and any worker's /metrics sums them.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        try:
            return run_workers(
                settings.workers,
                list(sockets),
                lambda slot: _serve_process(
                    settings,
                    Listen(
                        sockets,
                        directory,
                        f"worker {slot + 1}/{settings.workers}",
                        share=shares.slot(slot),
                    ),
                ),
            )
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def _serve_process(settings: Settings, listen: Listen) -> int:
    from .logs import configure_serve_logging

    log_writer = configure_serve_logging(settings.log_level)
    try:
        return _serve(settings, log_writer.line_sink("exporter.access"), listen)
    finally:
        # The last lines ("stopped", shutdown errors) reach the log before the process ends.
        logging.getLogger().removeHandler(log_writer)
        log_writer.close()


def _serve(settings: Settings, access_log: Callable[[str], None], listen: Listen) -> int:
    from .app import app_from_settings
    from .memory import limit_arenas
    from .metrics import multiprocess_registry
    from .renderer import ProcessFleetPage
    from .server import addresses, create_http_server, serve_until_signalled

    # Before any thread allocates: 2 arenas instead of one per request thread, and pages
    # (MBs) in mappings of their own that go back to the system when sent.
    limit_arenas(2, MMAP_THRESHOLD_BYTES)
    fleet_page = ProcessFleetPage(settings)
    fleet_page.start()
    exposed = multiprocess_registry(listen.metrics_dir) if listen.metrics_dir else None
    try:
        application = app_from_settings(settings, access_log, fleet_page, exposed)
    except BaseException:
        fleet_page.close()
        raise
    try:
        server = create_http_server(
            application.wsgi, settings, sockets=listen.sockets, share=listen.share
        )
    except OSError as exc:  # the port is taken, the address is not this host's, ...
        application.close()
        where_text = f"{settings.host}:{settings.port}"
        raise RuntimeError(f"cannot listen on {where_text}: {exc.strerror or exc}") from None
    application.start_background()
    log.info(
        "serving on %s with %s (online threshold %gs)%s",
        " and ".join(addresses(server)),
        application.store.description,
        settings.online_threshold_seconds,
        f", {listen.worker}" if listen.worker else "",
    )
    if listen.on_listening is not None:
        listen.on_listening()

    def cleanup() -> None:
        # Every request received is answered by now (or the drain gave up): end the worker
        # threads and the connections, then commit what the heartbeat writer still holds.
        server.task_dispatcher.shutdown()
        server.close()
        application.close()

    serve_until_signalled(
        server,
        grace_seconds=settings.shutdown_grace_seconds,
        on_signal=application.begin_shutdown,
        cleanup=cleanup,
    )
    log.info("stopped")
    return 0


# -- tablets: agent, simulator, demo --------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from . import simulate

    return simulate.main_from_args(args, settings)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from . import demo

    if getattr(args, "database", None) is not None:
        raise InvalidInput(
            "--database",
            "demo always runs on a temporary database deleted on exit; "
            "to serve your own, use `serve --database ...`",
        )
    return demo.run(
        settings,
        lambda demo_settings, on_listening: cmd_serve(args, demo_settings, on_listening),
        host=args.host,
        as_json=args.json,
    )


if __name__ == "__main__":
    sys.exit(main())
