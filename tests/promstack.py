"""Real Prometheus and Alertmanager processes, plus a webhook receiver, for tests.

Rules, dashboards and alert routing are only proven against the real tools, so tests start
them here on free loopback ports, each in its own temporary folder, and stop them by PID.
Every wait is bounded. Nothing here needs pytest; import it like the other test support:

    from tests.promstack import (
        AlertmanagerProcess, PrometheusProcess, WebhookReceiver,
        alertmanager_config_for_test, prometheus_config_for_test,
    )

    with WebhookReceiver() as hook, \\
         AlertmanagerProcess(alertmanager_config_for_test(am_text, hook.url), tmp / "am") as am, \\
         PrometheusProcess(
             prometheus_config_for_test(prom_text, exporter_target="127.0.0.1:8123",
                                        alertmanager_address=am.address),
             {"kiosk.yml": rules_text}, tmp / "prom",
         ) as prom:
        prom.wait_for(lambda: prom.query_value("up") == 1, timeout=20)
        hook.wait_for(lambda: hook.alerts(alertname="KioskOffline"), timeout=20)

Prometheus 2.42 waits about 5 s before its first scrape whatever the interval: start one stack
per test module or session, not per test.
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

INSTALL_HINT = (
    "install the Debian packages: apt-get install -y --no-install-recommends "
    "prometheus prometheus-alertmanager"
)
KIOSK_JOB = "kiosk-exporter"


class ToolMissing(RuntimeError):
    """A Prometheus tool is not on PATH (tests should fail with this message, not skip)."""


class PromStackError(RuntimeError):
    """A process did not start, or an HTTP API answered with an error."""


def find_tool(*names: str) -> str:
    """Return the path of the first of `names` found on PATH, or raise ToolMissing.

    Several names because distributions differ (Debian ships `prometheus-alertmanager`,
    upstream tarballs `alertmanager`).
    """
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise ToolMissing(f"{' or '.join(names)} not found on PATH; {INSTALL_HINT}")


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago (callers retry on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], T | None], timeout: float, interval: float = 0.2, what: str = ""
) -> T:
    """Call `predicate` until it returns something truthy; return that value.

    Exceptions from the predicate count as "not yet" (a server still starting refuses
    connections); after `timeout` seconds, raise TimeoutError naming the last value or error.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except Exception as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            label = what or getattr(predicate, "__name__", "condition")
            raise TimeoutError(f"{label} not met within {timeout:g} s; last result: {last!r}")
        time.sleep(interval)


def _http_json(url: str, timeout: float = 5.0) -> Any:
    """GET `url` and decode its JSON body, also for error statuses (APIs explain in the body)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        raise PromStackError(f"GET {url}: HTTP {exc.code}: {body}") from exc


class _ServerProcess:
    """A server binary on a free loopback port with its own folder, log and PID."""

    name = "server"
    start_timeout = 30.0

    def __init__(self, binary: str, tmp_dir: Path) -> None:
        self.tmp_dir = Path(tmp_dir)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.tmp_dir / f"{self.name}.log"
        self._binary = binary
        self._popen: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def address(self) -> str:
        """`host:port`, the form Prometheus wants for Alertmanager and scrape targets."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Base URL without a trailing slash."""
        return f"http://{self.address}"

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def _args(self) -> list[str]:
        raise NotImplementedError

    def _start(self) -> None:
        """Start and wait for /-/ready; retry with a new port if another process took it."""
        for _attempt in range(3):
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self._popen = subprocess.Popen(
                    [self._binary, *self._args()],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.tmp_dir,
                )
            if self._wait_ready():
                return
            self.stop()
            if "address already in use" not in self.log_tail():
                break
        raise PromStackError(f"{self.name} did not become ready:\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._popen is None or self._popen.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def log_tail(self, lines: int = 40) -> str:
        """The end of the process log, for failure messages."""
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM this process (by PID), then SIGKILL after `timeout` seconds. Idempotent."""
        popen, self._popen = self._popen, None
        if popen is None or popen.poll() is not None:
            return
        popen.terminate()
        try:
            popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=timeout)

    def get(self, path: str, **params: str) -> Any:
        """GET a JSON API path (e.g. "/api/v1/rules") with query parameters."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return _http_json(f"{self.url}{path}{query}")

    def wait_for(self, predicate: Callable[[], T | None], timeout: float, what: str = "") -> T:
        """Bounded wait (see `wait_until`); the log tail is added to the timeout message."""
        try:
            return wait_until(predicate, timeout, what=what)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- {self.name} log ---\n{self.log_tail()}") from None

    def __enter__(self) -> _ServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class PrometheusProcess(_ServerProcess):
    """A real Prometheus on a free loopback port, ready when the constructor returns.

    `config_text` is written to `tmp_dir/prometheus.yml` and each `rule_files` entry
    (name -> YAML text) to `tmp_dir/rules/<name>`, so a config that says
    `rule_files: ["rules/*.yml"]` (as the shipped one does) loads them. TSDB and log
    (`prometheus.log`) live in `tmp_dir` too. `extra_args` go to the command line, e.g.
    `["--rules.alert.resend-delay=1s"]`. Use as a context manager or call `stop()`.
    """

    name = "prometheus"

    def __init__(
        self,
        config_text: str,
        rule_files: Mapping[str, str] | None,
        tmp_dir: Path,
        *,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(find_tool("prometheus"), tmp_dir)
        self.config_path = self.tmp_dir / "prometheus.yml"
        self.config_path.write_text(config_text, "utf-8")
        rules_dir = self.tmp_dir / "rules"
        rules_dir.mkdir(exist_ok=True)
        for name, text in (rule_files or {}).items():
            (rules_dir / name).write_text(text, "utf-8")
        self._extra_args = list(extra_args)
        self._start()

    def _args(self) -> list[str]:
        return [
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.tmp_dir / 'data'}",
            f"--web.listen-address={self.address}",
            *self._extra_args,
        ]

    def __enter__(self) -> PrometheusProcess:
        return self

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Evaluate `expr` now; return the API's samples: [{"metric": {...}, "value": [t, "v"]}].

        A scalar result comes back as one sample without labels. PromQL errors raise
        PromStackError with Prometheus' message.
        """
        body = self.get("/api/v1/query", query=expr)
        if body.get("status") != "success":
            raise PromStackError(f"query {expr!r} failed: {body}")
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_value(self, expr: str) -> float | None:
        """The single value of `expr`, or None when it has no sample; >1 sample is an error."""
        samples = self.query(expr)
        if not samples:
            return None
        if len(samples) > 1:
            raise PromStackError(f"query {expr!r} returned {len(samples)} samples: {samples}")
        return float(samples[0]["value"][1])

    def wait_for_query(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 20.0,
    ) -> list[dict[str, Any]]:
        """Poll `expr` until `predicate(samples)` holds (default: any sample); return samples."""

        def check() -> list[dict[str, Any]] | None:
            samples = self.query(expr)
            return samples if predicate(samples) else None

        return self.wait_for(check, timeout, what=f"query {expr!r}")

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts (/api/v1/alerts): labels, annotations, state, value."""
        return list(self.get("/api/v1/alerts")["data"]["alerts"])

    def rule_groups(self) -> list[dict[str, Any]]:
        """Loaded rule groups with each rule's health and lastError (/api/v1/rules)."""
        return list(self.get("/api/v1/rules")["data"]["groups"])

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets with health and lastError (/api/v1/targets)."""
        return list(self.get("/api/v1/targets")["data"]["activeTargets"])


class AlertmanagerProcess(_ServerProcess):
    """A real Alertmanager on a free loopback port, ready when the constructor returns.

    Runs with `--cluster.listen-address=` so it binds no gossip port. Point Prometheus at
    `.address`. Use as a context manager or call `stop()`.
    """

    name = "alertmanager"

    def __init__(self, config_text: str, tmp_dir: Path) -> None:
        super().__init__(find_tool("prometheus-alertmanager", "alertmanager"), tmp_dir)
        self.config_path = self.tmp_dir / "alertmanager.yml"
        self.config_path.write_text(config_text, "utf-8")
        self._start()

    def _args(self) -> list[str]:
        return [
            f"--config.file={self.config_path}",
            f"--storage.path={self.tmp_dir / 'data'}",
            f"--web.listen-address={self.address}",
            "--cluster.listen-address=",
        ]

    def __enter__(self) -> AlertmanagerProcess:
        return self

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert Alertmanager holds (/api/v2/alerts), with `status.state` ("active",
        "suppressed") and `status.inhibitedBy`: how inhibition is checked without waiting."""
        return list(self.get("/api/v2/alerts"))


class WebhookReceiver:
    """An HTTP server thread on a free loopback port that records Alertmanager webhooks.

    Point a `webhook_configs` URL at `.url`. `notifications` are the decoded JSON bodies in
    arrival order; `alerts(status=..., **labels)` flattens them to one dict per alert, each with the
    notification's `receiver` added.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notifications: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so close() returns at once
            name="webhook-receiver",
            daemon=True,
        )
        self._thread.start()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with receiver._lock:
                    receiver._notifications.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Keep pytest output clean."""

        return Handler

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    @property
    def notifications(self) -> list[dict[str, Any]]:
        """A copy of every webhook body received so far."""
        with self._lock:
            return copy.deepcopy(self._notifications)

    def alerts(self, *, status: str | None = None, **labels: str) -> list[dict[str, Any]]:
        """Alerts from all notifications whose labels include `labels`, oldest first.

        `status` ("firing" or "resolved") filters on the alert's status, not on a label.
        Each is the webhook's alert dict (status, labels, annotations, startsAt...) plus
        the notification's "receiver".
        """
        found = []
        for note in self.notifications:
            for alert in note.get("alerts", []):
                if status is not None and alert.get("status") != status:
                    continue
                if all(alert["labels"].get(k) == v for k, v in labels.items()):
                    found.append({**alert, "receiver": note.get("receiver")})
        return found

    def wait_for(self, predicate: Callable[[], T | None], timeout: float, what: str = "") -> T:
        """Bounded wait; the notifications so far are added to the timeout message."""
        try:
            return wait_until(predicate, timeout, what=what)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\nnotifications: {self.notifications}") from None

    def close(self) -> None:
        """Stop serving and join the thread. Idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def prometheus_config_for_test(
    shipped_text: str,
    *,
    exporter_target: str,
    alertmanager_address: str | None = None,
    interval: str = "1s",
    external_labels: Mapping[str, str] | None = None,
) -> str:
    """The shipped prometheus.yml rewritten only for ports and intervals.

    Sets the global scrape and evaluation intervals to `interval` (and per-job timeouts to
    it, since a timeout longer than the interval is invalid), points the `kiosk-exporter`
    job at `exporter_target` ("host:port") and alerting at `alertmanager_address` (or
    removes alerting when None), and sets `external_labels` over the shipped ones. Jobs,
    metrics_path, rule_files stay as shipped.
    """
    config = yaml.safe_load(shipped_text)
    config.setdefault("global", {}).update(
        scrape_interval=interval, evaluation_interval=interval, scrape_timeout=interval
    )
    config["global"].setdefault("external_labels", {}).update(external_labels or {})
    jobs = {job["job_name"]: job for job in config.get("scrape_configs", [])}
    if KIOSK_JOB not in jobs:
        raise ValueError(f"no scrape job named {KIOSK_JOB!r} in the config")
    for job in jobs.values():
        if "scrape_timeout" in job:
            job["scrape_timeout"] = interval
    jobs[KIOSK_JOB]["static_configs"] = [{"targets": [exporter_target]}]
    if alertmanager_address is None:
        config.pop("alerting", None)
    else:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [alertmanager_address]}]}]
        }
    return str(yaml.safe_dump(config, sort_keys=False))


def alertmanager_config_for_test(
    shipped_text: str,
    webhook_url: str,
    *,
    group_wait: str = "2s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> str:
    """The shipped alertmanager.yml with every receiver delivering to `webhook_url`.

    Receiver names, routes, grouping and inhibition stay as shipped (notifications carry the
    receiver's name, so routing stays visible); only the waits on the top route are shortened.
    A 2 s `group_wait` lets a critical alert arrive before the warning it inhibits is sent.
    """
    config = yaml.safe_load(shipped_text)
    for receiver in config.get("receivers", []):
        for key in [k for k in receiver if k.endswith("_configs")]:
            del receiver[key]
        receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]
    config["route"].update(
        group_wait=group_wait, group_interval=group_interval, repeat_interval=repeat_interval
    )
    for route in config["route"].get("routes", []):
        for key in ("group_wait", "group_interval", "repeat_interval"):
            route.pop(key, None)
    return str(yaml.safe_dump(config, sort_keys=False))
