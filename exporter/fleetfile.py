"""Fleet files for `kiosk import`: CSV or YAML rows of name and location, checked whole."""

from __future__ import annotations

import csv
import io
from typing import Any

import yaml

from .errors import ImportRejected


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
