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
from typing import Any

import yaml

from .errors import ImportRejected

LIMITS = {"name": 128, "location": 256}
# C0, DEL, C1 (NEL U+0085 included) and the Unicode line and paragraph separators: each
# breaks a name across lines in `kiosk list`, logs and Grafana tables.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_COLUMNS = ("name", "location")


def text_problem(text: str, limit: int) -> str | None:
    """Why a kiosk name or location is unacceptable (also for `kiosk add`), or None."""
    if not text:
        return "must not be empty"
    if len(text) > limit:
        return f"longer than {limit} characters"
    if _CONTROL.search(text):
        return "contains control characters (tab, newline, ...)"
    return None


def parse_fleet_csv(text: str) -> list[tuple[str, str]]:
    """CSV with a `name,location` header; row numbers in errors count the header as row 1."""
    reader = csv.DictReader(io.StringIO(text))
    columns = [f.strip() for f in reader.fieldnames or []]
    if set(_COLUMNS) - set(columns):
        raise ImportRejected(1, "the header must name the columns name and location")
    unknown = [c for c in columns if c not in _COLUMNS]
    if unknown:
        what = f"unknown column {unknown[0]!r}" if unknown[0] else "a column without a name"
        raise ImportRejected(1, f"{what}; the columns are name, location")
    twice = [c for c in _COLUMNS if columns.count(c) > 1]
    if twice:
        raise ImportRejected(1, f"the column {twice[0]!r} appears twice")
    return _checked_rows(_csv_rows(reader), first_row=2)


def _csv_rows(reader: csv.DictReader[str]) -> Iterator[dict[str, Any]]:
    for number, row in enumerate(reader, start=2):
        if None in row:  # csv.DictReader files values beyond the header under None
            raise ImportRejected(number, "more values than the header has columns")
        yield {(k or "").strip(): v for k, v in row.items()}


def parse_fleet_yaml(text: str) -> list[tuple[str, str]]:
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


def _checked_rows(rows: Any, first_row: int) -> list[tuple[str, str]]:
    checked: list[tuple[str, str]] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=first_row):
        name, location = _checked_row(row, number)
        if name in seen:
            raise ImportRejected(number, f"duplicate name {name!r} in the file")
        seen.add(name)
        checked.append((name, location))
    if not checked:
        raise ImportRejected(None, "the file lists no kiosks")
    return checked


def _checked_row(row: Any, number: int) -> tuple[str, str]:
    if not isinstance(row, dict):
        raise ImportRejected(number, "expected name and location")
    unknown = sorted(str(k) for k in row if k not in _COLUMNS)
    if unknown:
        raise ImportRejected(number, f"unknown field {unknown[0]!r}; the fields are name, location")
    values = []
    for column in _COLUMNS:
        value = row.get(column)
        if value is not None and not isinstance(value, str):
            raise ImportRejected(number, f"{column} must be text (quote it in YAML)")
        text = (value or "").strip()
        problem = text_problem(text, LIMITS[column])
        if problem:
            raise ImportRejected(number, f"{column} {problem}")
        values.append(text)
    return values[0], values[1]
