"""Settings: read once at start-up from YAML, environment and flags into one typed object."""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from .errors import ConfigError
from .status import version_key

ENV_PREFIX = "KIOSK_EXPORTER_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
METRICS_PER_KIOSK = ("all", "attention")


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed database URL: Pony's provider name and its bind() arguments."""

    provider: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """For logs and errors, in the form --database accepts; never with the password."""
        if self.provider == "sqlite":
            return f"sqlite:///{self.params['filename']}"  # absolute: sqlite:////abs/path.db
        scheme = "postgresql" if self.provider == "postgres" else self.provider
        user = self.params.get("user")
        host = str(self.params.get("host", "localhost"))
        host = f"[{host}]" if ":" in host else host  # an IPv6 address
        port = self.params.get("port")
        where = f"{host}:{port}" if port else host
        credentials = f"{quote(str(user), safe='')}@" if user else ""
        return f"{scheme}://{credentials}{where}/{self.params['database']}"


@dataclass(frozen=True)
class Settings:
    database: str = "sqlite:///kiosk-heartbeat.db"
    host: str = "0.0.0.0"
    port: int = 8000
    threads: int = 16
    workers: int = 1
    connection_limit: int = 10000
    idle_connection_timeout_seconds: float = 30.0
    shutdown_grace_seconds: float = 0.0
    online_threshold_seconds: float = 300.0
    heartbeat_interval_seconds: int = 60
    min_heartbeat_interval_seconds: float = 10.0
    database_timeout_seconds: float = 5.0
    log_level: str = "INFO"
    latest_app_version: str | None = None
    metrics_token: str | None = None
    # The status page under /ui/; off for operators who expose only the JSON API.
    ui_enabled: bool = True
    enrollment_code_ttl_seconds: float = 86400.0
    # False leaves every device vital out of /metrics (11 series per kiosk at most).
    metrics_vitals: bool = True
    # "all": every kiosk's series (the page as it always was); "attention": per-kiosk series
    # only for kiosks that need attention, plus per-location roll-ups (exporter/attention.py).
    metrics_per_kiosk: str = "all"
    # Browser origins (https://kiosk-app.example) allowed to call the tablet endpoints.
    cors_allowed_origins: tuple[str, ...] = ()
    # The reverse proxy whose X-Forwarded-For waitress trusts for the client address.
    trusted_proxy: str | None = None
    trusted_proxy_count: int = 1
    # Outage history: day buckets and bare dates (YYYY-MM-DD) are in this IANA zone.
    report_timezone: str = "UTC"
    # Outages older than this are purged once a day by serve; 0 keeps them forever.
    outage_retention_days: int = 400

    @property
    def database_url(self) -> DatabaseUrl:
        return parse_database_url(self.database)


_FIELDS = {f.name: f for f in fields(Settings)}
_SECRETS = ("metrics_token",)


def parse_database_url(url: str) -> DatabaseUrl:
    """`sqlite:///relative.db`, `sqlite:////abs.db`, `postgresql://…`, `mysql://…`.

    Relative SQLite paths resolve against the working directory now, because Pony would
    resolve them against the calling module's folder.
    """
    scheme, _, rest = url.partition("://")
    if not rest:
        raise ValueError(f"not a database URL: {url!r} (expected e.g. sqlite:///kiosks.db)")
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else ""
        if not path or path == ":memory:":
            raise ValueError("sqlite URL needs a file path, e.g. sqlite:///kiosks.db")
        return DatabaseUrl("sqlite", {"filename": str(Path(path).absolute())})
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if scheme not in ("postgresql", "postgres", "mysql", "mariadb") or not name:
        raise ValueError(f"unsupported database URL {url!r}: use sqlite, postgresql or mysql")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"database URL has an invalid port: {url!r}") from None
    common: dict[str, Any] = {"host": parts.hostname or "localhost"}
    if port:
        common["port"] = port
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    if scheme.startswith("postgres"):
        params = {**common, "database": name, "user": user or None, "password": password or None}
        return DatabaseUrl("postgres", {k: v for k, v in params.items() if v is not None})
    # PyMySQL's current names: `db` and `passwd` are deprecated aliases.
    params = {**common, "database": name, "user": user or "root", "password": password}
    return DatabaseUrl("mysql", params)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """File, then KIOSK_EXPORTER_* variables, then flags; every problem is reported at once."""
    environ = {} if environ is None else environ
    problems: list[str] = []
    raw: dict[str, Any] = {}
    path = path or environ.get(ENV_PREFIX + "CONFIG")
    if path:
        raw.update(_read_file(Path(path), problems))
    for name in _SECRETS:
        if name in raw and ENV_PREFIX + name.upper() + "_FILE" in environ:
            problems.append(
                f"{name}: set in {path} and in {ENV_PREFIX}{name.upper()}_FILE; keep one"
            )
    raw.update(_from_environ(environ, problems))
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    values = {}
    for name, value in raw.items():
        try:
            values[name] = _coerce(name, value)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    # Cross-field checks run on the values that are valid, so one run lists every problem.
    settings = replace(Settings(), **values)
    problems.extend(_cross_checks(settings, invalid=set(raw) - set(values)))
    if problems:
        raise ConfigError(problems)
    return settings


def _cross_checks(settings: Settings, invalid: set[str]) -> list[str]:
    """Problems between two settings; a pair with an invalid member was reported already."""
    problems = []
    interval = {"heartbeat_interval_seconds"}
    if not ({"online_threshold_seconds"} | interval) & invalid and (
        settings.online_threshold_seconds <= settings.heartbeat_interval_seconds
    ):
        problems.append(
            f"online_threshold_seconds ({settings.online_threshold_seconds:g}) must be greater "
            f"than heartbeat_interval_seconds ({settings.heartbeat_interval_seconds}), "
            "or every kiosk flaps offline between two heartbeats"
        )
    if not ({"min_heartbeat_interval_seconds"} | interval) & invalid and (
        settings.min_heartbeat_interval_seconds > settings.heartbeat_interval_seconds
    ):
        problems.append(
            f"min_heartbeat_interval_seconds ({settings.min_heartbeat_interval_seconds:g}) must "
            f"not exceed heartbeat_interval_seconds ({settings.heartbeat_interval_seconds}), "
            "or tablets on schedule are refused"
        )
    return problems


def _read_file(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(f"config file {path}: {exc.strerror}")
        return {}
    except yaml.YAMLError as exc:
        problems.append(f"config file {path}: not valid YAML ({exc})")
        return {}
    if document is None:
        return {}
    if not isinstance(document, dict):
        problems.append(f"config file {path}: must be a mapping of setting: value")
        return {}
    unknown = sorted(str(k) for k in document if k not in _FIELDS)
    problems.extend(f"{name}: unknown setting in {path}" for name in unknown)
    return {k: v for k, v in document.items() if k in _FIELDS}


# Variables with the prefix that are not settings: the config path, and the agent's key.
_OTHER_VARIABLES = frozenset({ENV_PREFIX + "CONFIG", ENV_PREFIX + "API_KEY"})
# Kubernetes adds <SERVICE>_SERVICE_HOST, <SERVICE>_PORT_8000_TCP_ADDR, ... to every pod for
# each Service of the namespace: a Service named kiosk-exporter-metrics must not stop us,
# and one named kiosk-exporter sets KIOSK_EXPORTER_PORT=tcp://10.0.0.7:8000, not a port.
_SERVICE_LINK = re.compile(
    r"(^|_)(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)\w*)?)$"
)


def _known_variables() -> frozenset[str]:
    return (
        _OTHER_VARIABLES
        | {ENV_PREFIX + name.upper() for name in _FIELDS}
        | {ENV_PREFIX + name.upper() + "_FILE" for name in _SECRETS}
    )


def _is_service_link(variable: str, value: str, known: frozenset[str]) -> bool:
    if variable == ENV_PREFIX + "PORT":  # ours, unless it is the link's tcp://10.0.0.7:8000
        return value.lower().startswith(("tcp://", "udp://", "sctp://"))
    return variable not in known and bool(_SERVICE_LINK.search(variable[len(ENV_PREFIX) :]))


def _from_environ(environ: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    """A mistyped variable (KIOSK_EXPORTER_DATABSE) would silently leave the default in
    force, e.g. serve an empty SQLite fleet: like an unknown YAML key, it stops start-up."""
    known = _known_variables()
    ours = {
        k: v
        for k, v in environ.items()
        if k.startswith(ENV_PREFIX) and not _is_service_link(k, v, known)
    }
    for variable in sorted(v for v in ours if v not in known):
        close = difflib.get_close_matches(variable, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{variable}: unknown environment variable{hint}")
    values: dict[str, Any] = {}
    for name in _FIELDS:
        variable = ENV_PREFIX + name.upper()
        if variable in ours:
            values[name] = ours[variable]
    for name in _SECRETS:
        variable = ENV_PREFIX + name.upper() + "_FILE"
        if variable in ours:
            if name in values:
                problems.append(f"{variable}: {ENV_PREFIX}{name.upper()} is set too; keep one")
            secret = _read_secret(variable, ours[variable], problems)
            if secret is not None:
                values[name] = secret
    return values


def _read_secret(variable: str, path: str, problems: list[str]) -> str | None:
    """An empty or unreadable secret file would leave the endpoint open without a word."""
    try:
        secret = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        problems.append(f"{variable}: cannot read {path} ({reason})")
        return None
    if not secret:
        problems.append(f"{variable}: {path} is empty")
        return None
    return secret


_MINIMUMS: dict[str, float] = {
    "port": 0,
    "threads": 1,
    "workers": 1,
    "connection_limit": 1,
    "idle_connection_timeout_seconds": 1,
    "trusted_proxy_count": 1,
    "shutdown_grace_seconds": 0,
    "online_threshold_seconds": 1,
    "heartbeat_interval_seconds": 1,
    "min_heartbeat_interval_seconds": 0,
    "database_timeout_seconds": 0.1,
    "enrollment_code_ttl_seconds": 60,
    "outage_retention_days": 0,
}


# A grace of 10000 (milliseconds meant) would keep a stopping replica up for hours.
_MAXIMUMS: dict[str, float] = {
    "port": 65535,
    "shutdown_grace_seconds": 600,
    "workers": 64,
    "idle_connection_timeout_seconds": 3600,
}


def _coerce(name: str, value: Any) -> Any:
    """Turn a YAML/env/flag value into the field's type, or say why it cannot be."""
    kind = _FIELDS[name].type
    if kind == "bool":
        return _boolean(value)
    if isinstance(value, bool):
        raise ValueError(f"expected a number or text, got {value!r}")
    if name == "cors_allowed_origins":
        return _origins(value)
    if kind in ("int", "float"):
        number = _number(value, int if kind == "int" else float)
        if number < _MINIMUMS[name]:
            raise ValueError(f"{number} is below the minimum {_MINIMUMS[name]:g}")
        if number > _MAXIMUMS.get(name, math.inf):
            raise ValueError(f"{number} is above the maximum {_MAXIMUMS[name]:g}")
        return number
    text = str(value).strip()
    if name == "log_level":
        if text.upper() not in LOG_LEVELS:
            raise ValueError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
        return text.upper()
    if name == "database":
        parse_database_url(text)
    if name == "metrics_per_kiosk":
        if text.lower() not in METRICS_PER_KIOSK:
            raise ValueError(f"{text!r} is not one of {', '.join(METRICS_PER_KIOSK)}")
        return text.lower()
    if name == "report_timezone":
        time_zone(text)
    if name == "latest_app_version":
        if not isinstance(value, str):
            # YAML reads 1.10 as the number 1.1: only a quoted version means what it says.
            raise ValueError(f'{value!r} must be quoted text, e.g. "1.10.0"')
        if version_key(text) is None:
            raise ValueError(f"{text!r} is not a version such as 1.10.0")
    if not text and kind == "str":
        raise ValueError("must not be empty")
    return text or None


_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True}
_BOOLEANS.update({"false": False, "no": False, "off": False, "0": False})


def _boolean(value: Any) -> bool:
    """YAML gives a bool; an environment variable or a flag gives text such as `false`."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _BOOLEANS:
        raise ValueError(f"{value!r} is not true or false")
    return _BOOLEANS[text]


def _origins(value: Any) -> tuple[str, ...]:
    """A YAML list, or text separated by commas or spaces (an environment variable)."""
    items = value if isinstance(value, list) else str(value).replace(",", " ").split()
    origins = []
    for item in items:
        origin = str(item).strip()
        parts = urlsplit(origin)
        if origin != "*" and (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or origin != f"{parts.scheme}://{parts.netloc}"
        ):
            raise ValueError(
                f"{origin!r} is not an origin: scheme://host[:port] without a path, "
                "e.g. https://kiosk-app.example.com, or *"
            )
        origins.append(origin)
    return tuple(origins)


def time_zone(name: str) -> ZoneInfo:
    """An IANA zone such as Europe/Paris, or ValueError saying the name is not one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{name!r} is not an IANA time zone such as Europe/Paris") from None


def _number(value: Any, kind: type) -> int | float:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a{'n integer' if kind is int else ' number'}") from None
    if kind is int and isinstance(value, float) and value != number:
        raise ValueError(f"{value!r} is not an integer")
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number  # type: ignore[no-any-return]
