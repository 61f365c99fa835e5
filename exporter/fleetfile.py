"""Fleet files for `kiosk import`: CSV or YAML rows of name and location, checked whole.

Operators provision hundreds of tablets from a spreadsheet at once: anything unexpected
(an extra column, a list where text belongs, a tab in a name) rejects the file, naming the
row, rather than importing something other than what the operator meant.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

import yaml

from .errors import ImportRejected, InvalidInput
from .expected import ALWAYS, SCHEDULE_NAME_LIMIT

LIMITS = {"name": 128, "location": 256}
# C0, DEL, C1 (NEL U+0085 included) and the Unicode line and paragraph separators: each
# breaks a name across lines in `kiosk list`, logs and Grafana tables.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_REQUIRED = ("name", "location")
# schedule: optional; empty or `always` is the default schedule.
_COLUMNS = (*_REQUIRED, "schedule")
_COLUMN_LIST = "name, location (and optionally schedule)"


class FleetRow(NamedTuple):
    name: str
    location: str
    schedule: str | None = None


def text_problem(text: str, limit: int) -> str | None:
    """Why a kiosk name or location is unacceptable (also for `kiosk add`), or None."""
    if not text:
        return "must not be empty"
    if len(text) > limit:
        return f"longer than {limit} characters"
    if _CONTROL.search(text):
        return "contains control characters (tab, newline, ...)"
    return None


def checked_schedule_name(value: str, flag: str = "--name") -> str:
    """A schedule's name as operators type it (`kiosk update --schedule`, `schedule add`)."""
    name = value.strip()
    problem = text_problem(name, SCHEDULE_NAME_LIMIT)
    if problem is None and name == ALWAYS:
        problem = "`always` is the built-in schedule (expected all the time)"
    if problem is None and "," in name:
        problem = "must not contain a comma"
    if problem:
        raise InvalidInput(flag, problem)
    return name


def schedule_choice(value: str, flag: str = "--schedule") -> str | None:
    """A schedule to put a kiosk on: a name, or None for `always`."""
    return None if value.strip() == ALWAYS else checked_schedule_name(value, flag)


def parse_fleet_csv(text: str) -> list[FleetRow]:
    """CSV with a `name,location` header; row numbers in errors count the header as row 1."""
    reader = csv.DictReader(io.StringIO(text))
    columns = [f.strip() for f in reader.fieldnames or []]
    if set(_REQUIRED) - set(columns):
        raise ImportRejected(1, "the header must name the columns name and location")
    unknown = [c for c in columns if c not in _COLUMNS]
    if unknown:
        what = f"unknown column {unknown[0]!r}" if unknown[0] else "a column without a name"
        raise ImportRejected(1, f"{what}; the columns are {_COLUMN_LIST}")
    twice = [c for c in _COLUMNS if columns.count(c) > 1]
    if twice:
        raise ImportRejected(1, f"the column {twice[0]!r} appears twice")
    return _checked_rows(_csv_rows(reader), first_row=2)


def _csv_rows(reader: csv.DictReader[str]) -> Iterator[dict[str, Any]]:
    for number, row in enumerate(reader, start=2):
        if None in row:  # csv.DictReader files values beyond the header under None
            raise ImportRejected(number, "more values than the header has columns")
        yield {(k or "").strip(): v for k, v in row.items()}


def parse_fleet_yaml(text: str) -> list[FleetRow]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ImportRejected(None, f"not valid YAML ({exc})") from None
    if isinstance(document, dict) and "kiosks" in document:
        extra = sorted(str(k) for k in document if k != "kiosks")
        if extra:
            raise ImportRejected(None, f"unknown top-level key {extra[0]!r}; only kiosks")
        document = document["kiosks"]
    if not isinstance(document, list):
        raise ImportRejected(None, "expected a list of {name, location} entries")
    return _checked_rows(iter(document), first_row=1)


def _checked_rows(rows: Any, first_row: int) -> list[FleetRow]:
    checked: list[FleetRow] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=first_row):
        fleet_row = _checked_row(row, number)
        if fleet_row.name in seen:
            raise ImportRejected(number, f"duplicate name {fleet_row.name!r} in the file")
        seen.add(fleet_row.name)
        checked.append(fleet_row)
    if not checked:
        raise ImportRejected(None, "the file lists no kiosks")
    return checked


def _checked_row(row: Any, number: int) -> FleetRow:
    if not isinstance(row, dict):
        raise ImportRejected(number, "expected name and location")
    unknown = sorted(str(k) for k in row if k not in _COLUMNS)
    if unknown:
        raise ImportRejected(number, f"unknown field {unknown[0]!r}; the fields are {_COLUMN_LIST}")
    name, location, schedule = (_text_cell(row, column, number) for column in _COLUMNS)
    for column, text in (("name", name), ("location", location)):
        problem = text_problem(text, LIMITS[column])
        if problem:
            raise ImportRejected(number, f"{column} {problem}")
    return FleetRow(name, location, _schedule_cell(schedule, number))


def _text_cell(row: dict[str, Any], column: str, number: int) -> str:
    value = row.get(column)
    if value is not None and not isinstance(value, str):
        raise ImportRejected(number, f"{column} must be text (quote it in YAML)")
    return (value or "").strip()


def _schedule_cell(text: str, number: int) -> str | None:
    if not text:
        return None
    try:
        return schedule_choice(text, "schedule")
    except InvalidInput as exc:
        raise ImportRejected(number, f"schedule {exc.reason}") from None
