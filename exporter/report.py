"""`kiosk-exporter report`: the monthly SLA report, from the same document as the HTTP API."""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from dataclasses import replace
from datetime import date
from typing import Any

from .clock import utc_now
from .config import Settings, time_zone
from .errors import InvalidInput
from .history import HistoryService
from .store import open_store

COLUMNS = (
    ("kiosk_id", "id"),
    ("kiosk_name", "name"),
    ("location", "location"),
    ("availability_ratio", "availability"),
    ("downtime_seconds", "downtime"),
    ("outages", "outages"),
    ("longest_outage_seconds", "longest"),
    ("mean_outage_seconds", "mean"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", help="ISO-8601 with Z or an offset, or YYYY-MM-DD")
    parser.add_argument("--until", help="ISO-8601 with Z or an offset, or YYYY-MM-DD")
    parser.add_argument("--month", help="YYYY-MM: that calendar month in --timezone")
    parser.add_argument("--timezone", help="IANA zone of dates and months (report_timezone)")
    parser.add_argument("--location", help="only the kiosks of this location")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")


def month_bounds(month: str) -> tuple[str, str]:
    """`2026-11` -> ("2026-11-01", "2026-12-01"): dates, so midnight in the report zone."""
    if not re.fullmatch(r"\d{4}-\d{2}", month) or not 1 <= int(month[5:]) <= 12:
        raise InvalidInput("--month", f"{month!r} is not a month YYYY-MM")
    year, number = int(month[:4]), int(month[5:])
    first = date(year, number, 1)
    following = date(year + number // 12, number % 12 + 1, 1)
    return first.isoformat(), following.isoformat()


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    if args.timezone is not None:
        try:
            time_zone(args.timezone)
        except ValueError as exc:
            raise InvalidInput("--timezone", str(exc)) from None
        settings = replace(settings, report_timezone=args.timezone)
    since, until = args.since, args.until
    if args.month is not None:
        if since is not None or until is not None:
            raise InvalidInput("--month", "give either --month or --since/--until")
        since, until = month_bounds(args.month)
    store = open_store(settings.database_url, timeout_seconds=settings.database_timeout_seconds)
    try:
        history = HistoryService(store, settings, utc_now)
        try:
            window = history.window(since, until)
        except InvalidInput as exc:
            raise InvalidInput(f"--{exc.field}", exc.reason) from None
        document = history.fleet_availability(window, args.location)
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        _print_rows(document, args.format)
    return 0


def _print_rows(document: dict[str, Any], fmt: str) -> None:
    fleet = document["fleet"]
    total = {
        **fleet,
        "kiosk_id": "fleet",
        "kiosk_name": f"{fleet['kiosks']} kiosks",
        "location": "",
        "longest_outage_seconds": max(
            (k["longest_outage_seconds"] for k in document["kiosks"]), default=0
        ),
    }
    rows = [*document["kiosks"], total]
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([key for key, _ in COLUMNS])
        for row in rows:
            writer.writerow(["" if row[key] is None else row[key] for key, _ in COLUMNS])
        return
    print(
        f"{document['since']} - {document['until']}"
        + ("" if document["complete"] else " (incomplete history)")
    )
    cells = [[title for _, title in COLUMNS]] + [
        [_shown(key, row[key]) for key, _ in COLUMNS] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _shown(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "availability_ratio":
        return f"{value * 100:.3f} %"
    if key.endswith("_seconds"):
        hours, rest = divmod(int(value), 3600)
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return str(value)
