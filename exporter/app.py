"""Wiring: build the WSGI app from a store, settings, a registry and a clock."""

from __future__ import annotations

import importlib.resources
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import falcon
from prometheus_client import CollectorRegistry

from . import statuspage
from .adminroutes import EnrollResource, add_admin_routes
from .clock import Clock, utc_now
from .collector import FleetCollector
from .config import Settings
from .enrollment import Enroller
from .errors import (
    DuplicateName,
    EnrollmentRefused,
    ExporterError,
    IdempotencyMismatch,
    InvalidInput,
    KioskInactive,
    KioskNotFound,
    LocationForbidden,
    MissingScope,
    PayloadTooLarge,
    RateLimited,
    ScheduleNotFound,
    ShuttingDown,
    StorageUnavailable,
    TooManyGuesses,
    UnknownKey,
    UnknownToken,
    UnsupportedMediaType,
)
from .exposition import FleetPage, LocalFleetPage
from .gate import DatabaseGate, reserved_threads
from .history import HistoryKeeper, HistoryService
from .liveness import LivenessLoop, replica_name
from .logs import printable
from .management import Management
from .metrics import ServiceMetrics
from .payload import DIAGNOSTIC_FIELDS
from .readiness import ReadinessProbe
from .resources import (
    AllStatusResource,
    FleetAvailabilityResource,
    HealthResource,
    HeartbeatResource,
    KioskAvailabilityResource,
    KioskOutagesResource,
    KioskResource,
    KioskStatusResource,
    MetricsResource,
    OpenApiResource,
    ReadyResource,
    RunbookResource,
)
from .runbook import load_markdown, render
from .service import KeyDirectory, KioskService
from .store import Store, open_store
from .writer import HeartbeatWriter, writer_wait_seconds

log = logging.getLogger(__name__)
access_logger = logging.getLogger("exporter.access")

# Routes a browser-based kiosk may call from another origin (cors_allowed_origins): path ->
# method. Back-office and metrics routes stay same-origin only.
CORS_ROUTES = {"/kiosk/heartbeat": "POST", "/kiosk/status": "GET", "/kiosk/enroll": "POST"}
CORS_REQUEST_HEADERS = "Content-Type, X-Kiosk-API-Key"
CORS_MAX_AGE_SECONDS = 600

# Domain error -> (HTTP status, title). One table, so every endpoint answers alike.
_ERROR_STATUS: dict[type[ExporterError], tuple[int, str]] = {
    UnknownKey: (401, "Missing or unknown X-Kiosk-API-Key"),
    UnknownToken: (401, "Missing, unknown or revoked bearer token"),
    KioskInactive: (403, "Kiosk is deactivated"),
    MissingScope: (403, "Token scope does not allow this"),
    LocationForbidden: (403, "Token is limited to other locations"),
    KioskNotFound: (404, "Kiosk not found"),
    ScheduleNotFound: (400, "Unknown schedule"),
    DuplicateName: (409, "Duplicate kiosk name"),
    IdempotencyMismatch: (422, "Idempotency-Key reused for another request"),
    InvalidInput: (400, "Invalid request"),
    PayloadTooLarge: (413, "Request body too large"),
    UnsupportedMediaType: (415, "Unsupported media type"),
    TooManyGuesses: (429, "Too many enrollment attempts"),
    RateLimited: (429, "Too many heartbeats"),
    EnrollmentRefused: (401, "Unknown, used or expired enrollment code"),
    StorageUnavailable: (503, "Database unavailable"),
    ShuttingDown: (503, "Service is shutting down"),
}


@dataclass
class Application:
    """The WSGI app plus what must be stopped with it (the heartbeat writer thread, and the
    liveness loop that `serve` starts)."""

    wsgi: falcon.App[falcon.Request, falcon.Response]
    writer: HeartbeatWriter
    probe: ReadinessProbe
    store: Store
    registry: CollectorRegistry
    stopping: threading.Event
    fleet: FleetPage
    liveness: LivenessLoop

    def start_background(self) -> None:
        """The 5-s loop (liveness and periodic jobs): started by `serve`, not by tests of
        the app alone, which drive `liveness.tick()` themselves."""
        self.liveness.start()

    def begin_shutdown(self) -> None:
        """From now on /readyz answers 503; requests are still served."""
        self.stopping.set()

    def close(self) -> None:
        self.probe.stop()
        self.liveness.stop()
        self.writer.stop()
        self.fleet.close()
        self.store.close()


def create_app(
    *,
    store: Store,
    settings: Settings,
    registry: CollectorRegistry | None = None,
    clock: Clock = utc_now,
    access_log: Callable[[str], None] | None = None,
    fleet_page: FleetPage | None = None,
    exposed: CollectorRegistry | None = None,
) -> Application:
    """`access_log` takes one line per request; by default the `exporter.access` logger.
    `fleet_page` renders /metrics; by default in the scraping request's own thread.
    `exposed` is the registry /metrics shows (by default `registry`; under `--workers`,
    one that sums every worker's counters)."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ServiceMetrics(registry, DIAGNOSTIC_FIELDS)
    writer = HeartbeatWriter(
        store,
        min_interval_seconds=settings.min_heartbeat_interval_seconds,
        online_threshold_seconds=settings.online_threshold_seconds,
        wait_timeout_seconds=writer_wait_seconds(settings.database_timeout_seconds),
    )
    # /readyz's write is this replica's liveness row: a real row, committed like a heartbeat.
    liveness = LivenessLoop(store, clock, replica=replica_name())
    probe = ReadinessProbe(liveness.record, finish=store.close)
    stopping = threading.Event()
    gate = DatabaseGate(
        settings.threads - reserved_threads(settings.threads),
        store.calls,
        max_wait_seconds=writer_wait_seconds(settings.database_timeout_seconds),
    )
    service = KioskService(
        store, writer, settings, clock, metrics, KeyDirectory(), probe, gate, stopping
    )
    fleet = fleet_page or LocalFleetPage(FleetCollector(store, settings, clock))
    middleware: list[object] = [RequestObserver(metrics, access_log or access_logger.info)]
    if settings.cors_allowed_origins:  # none by default: no cost on the heartbeat path
        middleware.append(CorsPolicy(settings.cors_allowed_origins, CORS_ROUTES))
    wsgi = falcon.App(middleware=middleware)
    wsgi.req_options.auto_parse_qs_csv = False
    wsgi.add_route("/kiosk/heartbeat", HeartbeatResource(service))
    wsgi.add_route("/kiosk/status", KioskStatusResource(service))
    wsgi.add_route("/kiosk/all-status", AllStatusResource(service))
    wsgi.add_route("/kiosk/{kiosk_id:int}", KioskResource(service))
    add_admin_routes(wsgi, service, Management(store, settings, clock))
    wsgi.add_route("/kiosk/enroll", EnrollResource(Enroller(store, settings, clock, metrics)))
    history = HistoryService(store, settings, clock)
    wsgi.add_route("/kiosk/availability", FleetAvailabilityResource(service, history))
    wsgi.add_route("/kiosk/{kiosk_id:int}/outages", KioskOutagesResource(service, history))
    wsgi.add_route(
        "/kiosk/{kiosk_id:int}/availability", KioskAvailabilityResource(service, history)
    )
    wsgi.add_route("/healthz", HealthResource())
    wsgi.add_route("/readyz", ReadyResource(service))
    wsgi.add_route(
        "/metrics", MetricsResource(fleet, exposed or registry, clock, settings.metrics_token)
    )
    wsgi.add_route("/openapi.json", OpenApiResource(openapi_document()))
    wsgi.add_route("/runbook", RunbookResource(render(load_markdown())))
    if settings.ui_enabled:
        statuspage.add_routes(wsgi)
    wsgi.set_error_serializer(_serialize_http_error)
    wsgi.add_error_handler(ExporterError, _handle_domain_error)
    wsgi.add_error_handler(Exception, _handle_unexpected)
    writer.start()
    probe.start()
    # The history's periodic work (open outages, fold counter totals, purge) in the same loop.
    keeper = HistoryKeeper(store, settings, clock)
    liveness.add_job(lambda now: keeper.tick())
    return Application(
        wsgi=wsgi,
        writer=writer,
        probe=probe,
        store=store,
        registry=registry,
        stopping=stopping,
        fleet=fleet,
        liveness=liveness,
    )


def openapi_document() -> bytes:
    """exporter/openapi.json: the public HTTP API, kept beside the code that serves it
    (tests/test_openapi.py fails when a route is missing from it or an answer differs)."""
    return importlib.resources.files(__package__).joinpath("openapi.json").read_bytes()


def app_from_settings(
    settings: Settings,
    access_log: Callable[[str], None] | None = None,
    fleet_page: FleetPage | None = None,
    exposed: CollectorRegistry | None = None,
) -> Application:
    store = open_store(settings.database_url, timeout_seconds=settings.database_timeout_seconds)
    return create_app(
        store=store,
        settings=settings,
        access_log=access_log,
        fleet_page=fleet_page,
        exposed=exposed,
    )


def _handle_domain_error(
    req: falcon.Request, resp: falcon.Response, exc: ExporterError, params: dict[str, Any]
) -> None:
    status, title = next(
        (v for t, v in _ERROR_STATUS.items() if isinstance(exc, t)), (500, "Internal error")
    )
    body: dict[str, Any] = {"title": title, "description": str(exc)}
    if isinstance(exc, InvalidInput | LocationForbidden):
        body["field"] = exc.field
    if isinstance(exc, DuplicateName):
        body["field"] = "name"
    if isinstance(exc, ScheduleNotFound):
        body["field"] = "schedule"
    if isinstance(exc, MissingScope):
        body["required_scope"] = exc.needed
    if isinstance(exc, RateLimited | StorageUnavailable | ShuttingDown):
        resp.set_header("Retry-After", str(exc.retry_after))
    if isinstance(exc, UnknownToken):
        resp.set_header("WWW-Authenticate", "Bearer")
    if isinstance(exc, UnknownKey):
        body["description"] = "send the kiosk's API key in the X-Kiosk-API-Key header"
    elif isinstance(exc, UnknownToken):
        body["description"] = "send a valid token as Authorization: Bearer <token>"
    elif isinstance(exc, KioskInactive):
        body["description"] = "an operator deactivated this kiosk; its heartbeats are refused"
    resp.status = status
    resp.media = body


def _serialize_http_error(
    req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError
) -> None:
    """Falcon's own errors (no route, wrong method, bad header) in our error shape: JSON with
    a description, whatever the client accepts."""
    description = exc.description
    if description is None and exc.status_code == 404:
        description = f"nothing is served at {req.path}"
    elif description is None and exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        description = f"{req.method} is not allowed on {req.path}; allowed: {allowed}"
    resp.content_type = falcon.MEDIA_JSON
    resp.media = {"title": exc.title, "description": description or exc.title}


def _handle_unexpected(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]
) -> None:
    log.exception("unexpected error on %s %s", printable(req.method), printable(req.path))
    resp.status = 500
    resp.media = {"title": "Internal server error", "description": "see the server log"}


class RequestObserver:
    """Falcon middleware: request duration by route template, and one access-log line."""

    def __init__(self, metrics: ServiceMetrics, access_log: Callable[[str], None]) -> None:
        self._metrics = metrics
        self._access_log = access_log

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        started: float = req.context.get("started") or time.perf_counter()
        seconds = time.perf_counter() - started
        status = str(resp.status_code)
        self._metrics.request_finished(req.uri_template or "unmatched", req.method, status, seconds)
        # The path only: keys and tokens travel in headers, never in what is logged here.
        # Method and path are the client's: escaped, so they cannot forge a line.
        request_line = printable(f"{req.method} {req.path}")
        self._access_log(f'{req.remote_addr} "{request_line}" {status} {seconds * 1000:.1f}ms')


class CorsPolicy:
    """Falcon middleware: lets browser-based kiosks (a web app, a PWA) on the configured
    origins call the tablet routes. Preflights are answered only for those routes and their
    one method; every other route gets no CORS header, so browsers keep blocking it."""

    def __init__(self, origins: tuple[str, ...], routes: dict[str, str]) -> None:
        self._origins = frozenset(origins)
        self._routes = routes

    def _allowed(self, req: falcon.Request, method: str) -> str | None:
        """The Access-Control-Allow-Origin value for this request, or None."""
        origin = req.get_header("Origin")
        if not origin or self._routes.get(req.path) != method:
            return None
        if origin in self._origins:
            return origin
        return "*" if "*" in self._origins else None

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        requested = req.get_header("Access-Control-Request-Method")
        if req.method != "OPTIONS" or requested is None:
            return
        allowed = self._allowed(req, requested)
        resp.status = 204 if allowed else 403
        resp.complete = True  # no responder: a preflight never reaches the resource
        if allowed:
            resp.set_header("Access-Control-Allow-Origin", allowed)
            resp.set_header("Access-Control-Allow-Methods", requested)
            resp.set_header("Access-Control-Allow-Headers", CORS_REQUEST_HEADERS)
            resp.set_header("Access-Control-Max-Age", str(CORS_MAX_AGE_SECONDS))
        resp.set_header("Vary", "Origin")

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        if req.method == "OPTIONS" or req.path not in self._routes:
            return
        allowed = self._allowed(req, req.method)
        if allowed:
            resp.set_header("Access-Control-Allow-Origin", allowed)
            # A web app must read Retry-After to honour a 429 or a 503.
            resp.set_header("Access-Control-Expose-Headers", "Retry-After")
        resp.append_header("Vary", "Origin")
