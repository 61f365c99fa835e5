"""Heartbeat agent: the tablet side of the protocol, stdlib only so it runs on any kiosk.

This file is also the reference implementation for tablet developers, and it can be copied
alone onto a kiosk and run as `python3 agent.py --url ... --api-key-file ...`. That is why
it imports nothing from the rest of the package and stays one file.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import enum
import http.client
import json
import logging
import os
import platform
import random
import signal
import socket
import ssl
import sys
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

log = logging.getLogger(__name__)

HEARTBEAT_PATH = "/kiosk/heartbeat"
ENROLL_PATH = "/kiosk/enroll"
API_KEY_HEADER = "X-Kiosk-API-Key"
API_KEY_ENV = "KIOSK_EXPORTER_API_KEY"
FIELD_LIMITS = {"app_version": 64, "device_info": 256}
USER_AGENT = "kiosk-heartbeat-agent/1"
# A server asking for less than this would turn a fleet into a burst; more than a day, a silence.
MIN_SERVER_INTERVAL, MAX_SERVER_INTERVAL = 1.0, 86_400.0
MAX_RETRY_AFTER = 3_600.0
# Values firmware vendors leave in DMI fields; they say nothing about the machine.
_PLACEHOLDER_MODELS = {"", "to be filled by o.e.m.", "system product name", "default string"}

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Outcome(enum.Enum):
    """What one heartbeat exchange came to; the schedule and the log line follow from it."""

    SENT = "sent"
    UNAUTHORIZED = "unauthorized"  # 401: unknown or missing key
    FORBIDDEN = "forbidden"  # 403: kiosk deactivated
    REJECTED = "rejected"  # 400/413/415 and other 4xx: the request itself is wrong
    RATE_LIMITED = "rate_limited"  # 429
    SERVER_ERROR = "server_error"  # 5xx, or a 200 that is not the service's reply
    NETWORK_ERROR = "network_error"  # no reply at all


RETRYABLE = frozenset({Outcome.SERVER_ERROR, Outcome.NETWORK_ERROR})


@dataclass(frozen=True)
class HeartbeatResult:
    outcome: Outcome
    status: int | None = None
    detail: str = ""
    retry_after: float | None = None
    next_interval: float | None = None
    kiosk_id: int | None = None
    received_at: str | None = None


@dataclass(frozen=True)
class AgentSettings:
    """Everything an agent needs; the key is kept out of repr so it never reaches a log."""

    url: str
    api_key: str = field(repr=False)
    app_version: str | None = None
    device_info: str | None = None  # None: collected from this machine
    interval_seconds: float = 60.0
    timeout_seconds: float = 5.0
    jitter: float = 0.1
    backoff_base_seconds: float = 1.0
    # Device vitals: read at each heartbeat (storage of this folder); None sends none.
    vitals_dir: Path | None = None


# -- wire format --------------------------------------------------------------------------------


def format_sent_at(moment: datetime) -> str:
    """`2026-11-26T10:00:00.123Z`: the server measures delivery delay from it."""
    utc = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return utc.isoformat(timespec="milliseconds") + "Z"


def clean_text(value: str, limit: int) -> str:
    """Drop control characters and squeeze spaces, then cut: the server refuses both excesses."""
    kept = "".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in value)
    return " ".join(kept.split())[:limit]


def build_payload(
    app_version: str | None,
    device_info: str | None,
    sent_at: datetime,
    vitals: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The heartbeat body; `vitals` (see read_vitals) go as top-level fields."""
    payload: dict[str, Any] = {"sent_at": format_sent_at(sent_at)}
    for name, value in (("app_version", app_version), ("device_info", device_info)):
        if value:
            payload[name] = clean_text(value, FIELD_LIMITS[name])
    payload.update(vitals or {})
    return payload


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def classify(status: int, body: bytes, retry_after: float | None) -> HeartbeatResult:
    """Turn an HTTP reply into a result; no exception escapes for a server's odd answer."""
    document = _json_object(body)
    if status == 200:
        if "kiosk_id" not in document:
            # A captive portal or proxy answering 200 has not delivered the heartbeat.
            return HeartbeatResult(Outcome.SERVER_ERROR, status, "200 without a heartbeat reply")
        return HeartbeatResult(
            Outcome.SENT,
            status,
            kiosk_id=_int_or_none(document.get("kiosk_id")),
            received_at=str(document.get("received_at") or ""),
            next_interval=_number_or_none(document.get("next_heartbeat_in_seconds")),
        )
    detail = ": ".join(str(document[k]) for k in ("title", "description") if document.get(k))
    outcome = {401: Outcome.UNAUTHORIZED, 403: Outcome.FORBIDDEN, 429: Outcome.RATE_LIMITED}.get(
        status, Outcome.SERVER_ERROR if status >= 500 else Outcome.REJECTED
    )
    return HeartbeatResult(outcome, status, detail or f"HTTP {status}", retry_after=retry_after)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body or b"null")
    except (UnicodeDecodeError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- one exchange -------------------------------------------------------------------------------


class HeartbeatClient:
    """One kiosk's POSTs. A fresh connection per heartbeat: idle keep-alives die between beats."""

    def __init__(
        self, base_url: str, api_key: str, *, timeout_seconds: float = 5.0, clock: Clock = utc_now
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._parts = parts
        self._path = parts.path.rstrip("/") + HEARTBEAT_PATH
        self._headers = {
            API_KEY_HEADER: api_key,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._timeout = timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._connection: http.client.HTTPConnection | None = None

    def send(self, payload: Mapping[str, Any]) -> HeartbeatResult:
        """POST once; network trouble comes back as a NETWORK_ERROR result, never raised."""
        connection = self._connect()
        try:
            connection.request("POST", self._path, json.dumps(payload).encode(), self._headers)
            response = connection.getresponse()
            body = response.read(64 * 1024)
            retry_after = parse_retry_after(response.getheader("Retry-After"), self._clock())
            return classify(response.status, body, retry_after)
        except (OSError, http.client.HTTPException) as exc:
            return HeartbeatResult(Outcome.NETWORK_ERROR, detail=_describe_error(exc))
        finally:
            with self._lock:
                self._connection = None
            connection.close()

    def abort(self) -> None:
        """Cut an exchange in flight (from another thread) so a stop is never held up by it."""
        with self._lock:
            sock = self._connection.sock if self._connection else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _connect(self) -> http.client.HTTPConnection:
        connection = open_connection(self._parts, self._timeout)
        with self._lock:
            self._connection = connection
        return connection


def open_connection(parts: SplitResult, timeout: float) -> http.client.HTTPConnection:
    """A new connection to the service (certificates verified for https)."""
    host, port = parts.hostname or "", parts.port
    if parts.scheme == "https":
        context = ssl.create_default_context()
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    return http.client.HTTPConnection(host, port, timeout=timeout)


# -- enrollment ---------------------------------------------------------------------------------


class EnrollmentFailed(Exception):
    """The code could not be exchanged; the message says what to do."""


def exchange_code(
    base_url: str, code: str, device_info: str | None, *, timeout_seconds: float = 10.0
) -> str:
    """POST /kiosk/enroll once; returns the kiosk's API key (the code is spent by then)."""
    parts = urlsplit(base_url)
    body = {"code": code, **({"device_info": device_info} if device_info else {})}
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    connection = open_connection(parts, timeout_seconds)
    try:
        path = parts.path.rstrip("/") + ENROLL_PATH
        connection.request("POST", path, json.dumps(body).encode(), headers)
        response = connection.getresponse()
        status, data = response.status, response.read(64 * 1024)
        retry_after = response.getheader("Retry-After")
    except (OSError, http.client.HTTPException) as exc:
        raise EnrollmentFailed(f"cannot reach {base_url}: {_describe_error(exc)}") from None
    finally:
        connection.close()
    key = _json_object(data).get("api_key")
    if status == 200 and isinstance(key, str) and key:
        return key
    if status == 401:
        raise EnrollmentFailed(
            "the enrollment code is unknown, used or expired: ask for a new one "
            "(`kiosk-exporter kiosk enroll-code ID` on the server)"
        )
    if status == 429:
        raise EnrollmentFailed(f"too many refused codes from here; retry in {retry_after} s")
    detail = _json_object(data).get("description") or data[:200].decode("utf-8", "replace")
    raise EnrollmentFailed(f"enrollment refused with HTTP {status}: {detail}")


def write_key_file(path: Path, key: str) -> None:
    """Mode 0600 from the first byte, then renamed into place: never readable by others,
    never half written."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, (key + "\n").encode("ascii"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)


def enroll_if_needed(args: argparse.Namespace) -> None:
    """With --enroll: exchange the code unless the key file already holds a key, so a
    service manager restarting the same command line keeps the key it has."""
    if not args.api_key_file:
        raise ValueError("--enroll needs --api-key-file PATH: where to keep the key")
    path = Path(args.api_key_file)
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8").strip():
            log.info("Enrollment: %s already holds a key; the code is not used", path)
            return
    device_info = (
        clean_text(args.device_info, FIELD_LIMITS["device_info"])
        if args.device_info
        else collect_device_info()
    )
    key = exchange_code(args.url, args.enroll, device_info, timeout_seconds=args.timeout)
    try:
        write_key_file(path, key)
    except OSError as exc:
        raise EnrollmentFailed(f"enrolled, but cannot write {path}: {exc.strerror}") from None
    log.info("Enrollment: done; the API key is in %s (mode 0600)", path)


def _describe_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


# -- when to send next --------------------------------------------------------------------------


@dataclass
class Schedule:
    """The delay before the next heartbeat, as a pure function of outcomes (easy to test).

    `rand` returns a float in [0, 1): injected so tests can pin the jitter.
    """

    interval: float
    jitter: float = 0.1
    backoff_base: float = 1.0
    rand: Callable[[], float] = random.random
    failures: int = 0

    def next_delay(self, result: HeartbeatResult) -> float:
        if result.next_interval is not None:
            self.interval = min(max(result.next_interval, MIN_SERVER_INTERVAL), MAX_SERVER_INTERVAL)
        if result.outcome in RETRYABLE:
            self.failures = min(self.failures + 1, 32)
            backoff = min(self.interval, self.backoff_base * 2.0 ** (self.failures - 1))
            if result.retry_after is not None:
                return self._not_before(max(backoff, result.retry_after))
            # Only shorten: the cap is the interval, and a fleet must not retry in step.
            return backoff * (1 - self.jitter * self.rand())
        self.failures = 0
        if result.outcome is Outcome.RATE_LIMITED and result.retry_after is not None:
            return self._not_before(result.retry_after)
        return self.interval * (1 + self.jitter * (2 * self.rand() - 1))

    def _not_before(self, seconds: float) -> float:
        """The server's Retry-After is honoured exactly: jitter only ever adds to it, so
        tablets told to wait at once spread out after the time, never before it."""
        wait = min(seconds, MAX_RETRY_AFTER)
        return wait * (1 + self.jitter * self.rand())


# -- device information -------------------------------------------------------------------------


def machine_model(root: Path = Path("/")) -> str | None:
    """The board or product name, where the system exposes one (Raspberry Pi, DMI PCs)."""
    tree = _read_text(root / "sys/firmware/devicetree/base/model")
    if tree and tree.strip(" \x00").lower() not in _PLACEHOLDER_MODELS:
        return clean_text(tree, FIELD_LIMITS["device_info"])
    dmi = root / "sys/class/dmi/id"
    product = (_read_text(dmi / "product_name") or "").strip()
    if product.lower() in _PLACEHOLDER_MODELS:
        return None
    vendor = (_read_text(dmi / "sys_vendor") or "").strip()
    if vendor and vendor.lower() not in _PLACEHOLDER_MODELS and vendor not in product:
        product = f"{vendor} {product}"
    return clean_text(product, FIELD_LIMITS["device_info"])


def os_name(root: Path = Path("/")) -> str | None:
    """The distribution's NAME and VERSION_ID from os-release, e.g. `Debian GNU/Linux 12`."""
    for path in ("etc/os-release", "usr/lib/os-release"):
        text = _read_text(root / path)
        if text is None:
            continue
        fields = dict(
            (k, v.strip().strip("\"'"))
            for k, _, v in (line.partition("=") for line in text.splitlines())
        )
        name = " ".join(v for v in (fields.get("NAME"), fields.get("VERSION_ID")) if v)
        return name or None
    return None


def collect_device_info(
    root: Path = Path("/"), *, system: str | None = None, release: str | None = None
) -> str:
    """`Linux/6.1.0-rpi7 (Debian GNU/Linux 12) - Raspberry Pi 4 Model B Rev 1.4`.

    Shaped like the tablets' `Android/11 - Samsung Galaxy Tab A8`: OS/version - model.
    """
    text = f"{system or platform.system() or 'unknown'}/{release or platform.release() or '?'}"
    distribution = os_name(root)
    if distribution:
        text += f" ({distribution})"
    model = machine_model(root)
    if model:
        text += f" - {model}"
    return clean_text(text, FIELD_LIMITS["device_info"])


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


# -- device vitals --------------------------------------------------------------------------------
# Read without privileges from sysfs, procfs and statvfs; what cannot be read is left out (the
# server treats a missing vital as unknown). A Linux kiosk cannot tell whether "the app" is on
# screen or whether the display is on, so app_in_foreground and screen_on are never sent here.

# power_supply status values meaning "on external power" (Not charging: plugged in, held).
_ON_POWER = {"charging", "full", "not charging"}
# Interface name prefixes of mobile-broadband links (ModemManager, qmi, ppp dial-up).
_CELLULAR = ("wwan", "rmnet", "ppp", "usb", "ccmni")


def read_vitals(root: Path = Path("/"), data_dir: Path | None = None) -> dict[str, Any]:
    """The vitals this machine exposes: battery, storage of `data_dir`, memory, uptime,
    network type and Wi-Fi signal. `root` is "/" except in tests (a fake sysfs/proc tree)."""
    vitals: dict[str, Any] = {}
    vitals.update(_battery(root / "sys/class/power_supply"))
    if data_dir is not None:
        vitals.update(_storage(data_dir))
    vitals.update(_memory(root / "proc/meminfo"))
    uptime = _read_text(root / "proc/uptime")
    with contextlib.suppress(ValueError, IndexError):
        vitals["uptime_seconds"] = max(0.0, float((uptime or "").split()[0]))
    vitals.update(_network(root))
    return vitals


def _battery(supplies: Path) -> dict[str, Any]:
    try:
        entries = sorted(supplies.iterdir())
    except OSError:
        return {}
    found: dict[str, Any] = {}
    on_mains = False
    for entry in entries:
        kind = (_read_text(entry / "type") or "").strip().lower()
        if kind == "battery" and "battery_percent" not in found:
            with contextlib.suppress(ValueError):
                capacity = float((_read_text(entry / "capacity") or "").strip())
                if 0 <= capacity <= 100:
                    found["battery_percent"] = capacity
            status = (_read_text(entry / "status") or "").strip().lower()
            if status == "discharging":
                found["battery_charging"] = False
            elif status in _ON_POWER:
                found["battery_charging"] = True
        elif kind in ("mains", "usb", "usb_c", "usb_pd"):
            on_mains = on_mains or (_read_text(entry / "online") or "").strip() == "1"
    if on_mains and "battery_percent" in found:
        found["battery_charging"] = True
    return found


def _storage(data_dir: Path) -> dict[str, Any]:
    try:
        stats = os.statvfs(data_dir)
    except OSError:
        return {}
    # f_bavail: what an unprivileged app can still write (root's reserve excluded).
    return {
        "storage_free_bytes": stats.f_bavail * stats.f_frsize,
        "storage_total_bytes": stats.f_blocks * stats.f_frsize,
    }


def _memory(meminfo: Path) -> dict[str, Any]:
    values = {}
    for line in (_read_text(meminfo) or "").splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name] = int(parts[0]) * 1024  # kB
    found = {}
    if "MemTotal" in values:
        found["memory_total_bytes"] = values["MemTotal"]
        free = values.get("MemAvailable", values.get("MemFree"))
        if free is not None and free <= values["MemTotal"]:
            found["memory_free_bytes"] = free
    return found


def _network(root: Path) -> dict[str, Any]:
    """The link of the default route; the Wi-Fi level from /proc/net/wireless when on Wi-Fi."""
    interface = None
    for line in (_read_text(root / "proc/net/route") or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) > 1 and fields[1] == "00000000":
            interface = fields[0]
            break
    if interface is None:
        return {}
    wireless = _wireless_levels(root / "proc/net/wireless")
    if interface in wireless or (root / "sys/class/net" / interface / "wireless").exists():
        found: dict[str, Any] = {"network": "wifi"}
        level = wireless.get(interface)
        if level is not None and -127 <= level <= 0:
            found["wifi_signal_dbm"] = level
        return found
    if interface.startswith(_CELLULAR):
        return {"network": "cellular"}
    kind = (_read_text(root / "sys/class/net" / interface / "type") or "").strip()
    return {"network": "ethernet" if kind == "1" else "other"}


def _wireless_levels(path: Path) -> dict[str, int | None]:
    """Interface -> signal level in dBm (None when the driver reports none)."""
    levels: dict[str, int | None] = {}
    for line in (_read_text(path) or "").splitlines()[2:]:
        name, _, rest = line.partition(":")
        fields = rest.split()
        level = None
        with contextlib.suppress(ValueError, IndexError):
            level = round(float(fields[2].rstrip(".")))
        levels[name.strip()] = level
    return levels


# -- the agent ----------------------------------------------------------------------------------


class HeartbeatAgent:
    """Sends a heartbeat at start, then one per interval, from a thread: start() / stop().

    `on_result(result, delay)` is called after each exchange (tests and embedding apps use it
    to observe the agent); `clock` and `rand` make sent_at and jitter controllable.
    """

    def __init__(
        self,
        settings: AgentSettings,
        *,
        clock: Clock = utc_now,
        rand: Callable[[], float] = random.random,
        on_result: Callable[[HeartbeatResult, float], None] | None = None,
        vitals: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.settings = settings
        # Where each beat's vitals come from: this machine (vitals_dir), or the caller's.
        self._vitals = vitals
        if vitals is None and settings.vitals_dir is not None:
            data_dir = settings.vitals_dir
            self._vitals = lambda: read_vitals(data_dir=data_dir)
        self.device_info = settings.device_info or collect_device_info()
        self._clock = clock
        self._client = HeartbeatClient(
            settings.url, settings.api_key, timeout_seconds=settings.timeout_seconds, clock=clock
        )
        self._schedule = Schedule(
            settings.interval_seconds, settings.jitter, settings.backoff_base_seconds, rand
        )
        self._on_result = on_result
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stopping.clear()
        # Daemon: an embedding app that forgets stop() must still be able to exit.
        self._thread = threading.Thread(
            target=self.run_until_stopped, name="heartbeat", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Let an exchange in flight finish for half the timeout, then cut it; then join."""
        self._stopping.set()
        if self._thread is None:
            return
        self._thread.join(timeout / 2)
        if self._thread.is_alive():
            self._client.abort()
            self._thread.join(timeout / 2)

    def run_until_stopped(self) -> None:
        while not self._stopping.is_set():
            _, delay = self.beat()
            if self._stopping.wait(delay):
                break
        log.info("Heartbeat: Stopped")

    def beat(self) -> tuple[HeartbeatResult, float]:
        """One exchange, its one log line, and the delay before the next."""
        # Read at each beat: a retried heartbeat carries the uptime of when it is sent.
        vitals = self._vitals() if self._vitals is not None else None
        payload = build_payload(self.settings.app_version, self.device_info, self._clock(), vitals)
        result = self._client.send(payload)
        delay = self._schedule.next_delay(result)
        if not (self._stopping.is_set() and result.outcome is Outcome.NETWORK_ERROR):
            log_result(result, delay)
        if self._on_result is not None:
            self._on_result(result, delay)
        return result, delay


def log_result(result: HeartbeatResult, delay: float) -> None:
    """Exactly one line per outcome; the first words match the original troubleshooting guide."""
    after = f"next in {delay:.1f}s"
    if result.outcome is Outcome.SENT:
        log.info("Heartbeat: Sent successfully (kiosk %s, %s)", result.kiosk_id, after)
    elif result.outcome is Outcome.UNAUTHORIZED:
        log.error("Heartbeat: Rejected, API key unknown or missing (401); check the key; %s", after)
    elif result.outcome is Outcome.FORBIDDEN:
        log.error("Heartbeat: Rejected, kiosk is deactivated (403); %s", after)
    elif result.outcome is Outcome.REJECTED:
        log.error("Heartbeat: Rejected (%s): %s; %s", result.status, result.detail, after)
    elif result.outcome is Outcome.RATE_LIMITED:
        log.warning("Heartbeat: Too many heartbeats (429), server asks to wait; %s", after)
    elif result.outcome is Outcome.SERVER_ERROR:
        log.warning("Heartbeat: Server error (%s): %s; %s", result.status, result.detail, after)
    else:
        log.warning("Heartbeat: Network error (%s); %s", result.detail, after)


# -- command line -------------------------------------------------------------------------------


def read_api_key(path: str | None, environ: Mapping[str, str]) -> str:
    """From the key file (surrounding whitespace ignored) or the environment, never argv."""
    if path:
        try:
            key = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read the API key file {path}: {exc.strerror}") from None
        source = path
    else:
        key, source = environ.get(API_KEY_ENV, "").strip(), API_KEY_ENV
    if not key:
        raise ValueError(f"no API key: use --api-key-file FILE or set {API_KEY_ENV}")
    if not key.isascii() or not key.isprintable() or " " in key:
        raise ValueError(f"the API key from {source} contains characters a header cannot carry")
    return key


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="service root, e.g. http://backend:8000")
    parser.add_argument(
        "--api-key-file", help=f"file holding the kiosk's API key (or set {API_KEY_ENV})"
    )
    parser.add_argument("--app-version", help="app version to report (at most 64 characters)")
    parser.add_argument(
        "--interval",
        type=float,
        default=60.0,
        help="seconds between heartbeats until the server says otherwise (default 60)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="HTTP timeout in seconds (default 5)"
    )
    parser.add_argument("--device-info", help="override the collected device description")
    parser.add_argument(
        "--enroll",
        metavar="CODE",
        help="first start: exchange this one-time enrollment code for the API key, written "
        "to --api-key-file (mode 0600); ignored once that file holds a key",
    )
    parser.add_argument(
        "--data-dir",
        default=".",
        help="folder whose partition is reported as storage (default: the working directory)",
    )
    parser.add_argument(
        "--no-vitals",
        action="store_true",
        help="send no device vitals (battery, storage, memory, uptime, network)",
    )


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> AgentSettings:
    if args.interval < 1 or args.timeout <= 0:
        raise ValueError("--interval must be at least 1 and --timeout positive")
    HeartbeatClient(args.url, "probe")  # validates the URL before anything starts
    return AgentSettings(
        url=args.url,
        api_key=read_api_key(args.api_key_file, environ),
        app_version=args.app_version,
        device_info=args.device_info,
        interval_seconds=args.interval,
        timeout_seconds=args.timeout,
        vitals_dir=None if args.no_vitals else Path(args.data_dir),
    )


def run(settings: AgentSettings) -> int:
    """Run in the foreground until SIGTERM or SIGINT; returns the exit code (0)."""
    signalled = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda signum, frame: signalled.set())
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    agent = HeartbeatAgent(settings)
    log.info("Heartbeat: agent for %s as %r", settings.url, agent.device_info)
    agent.start()
    try:
        while not signalled.wait(0.2) and agent.running:
            pass
    finally:
        agent.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if getattr(args, "enroll", None):
            HeartbeatClient(args.url, "probe")  # a bad URL is a usage error, before the code
            enroll_if_needed(args)
        settings = settings_from_args(args, os.environ if environ is None else environ)
    except ValueError as exc:
        print(f"kiosk-exporter agent: {exc}", file=sys.stderr)
        return 2
    except EnrollmentFailed as exc:
        print(f"kiosk-exporter agent: {exc}", file=sys.stderr)
        return 1
    return run(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kiosk-agent", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return main_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
