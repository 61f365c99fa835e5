"""HTTP resources: read the request, call one service method, shape the reply."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import falcon
from prometheus_client import CollectorRegistry

from .access import Caller, Scope
from .clock import Clock
from .errors import UnknownToken
from .exposition import (
    FleetPage,
    Page,
    PageRequest,
    SingleFlight,
    accepts_gzip,
    negotiate,
    service_text,
)
from .history import HistoryService, Window
from .payload import MAX_BODY_BYTES, parse_query, status_etag
from .service import KioskService

KEY_HEADER = "X-Kiosk-API-Key"


def bearer_token(req: falcon.Request) -> str | None:
    scheme, _, credentials = (req.get_header("Authorization") or "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


class HeartbeatResource:
    def __init__(self, service: KioskService) -> None:
        self._service = service

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        # One byte past the limit is enough to know the body is too large.
        body = req.bounded_stream.read(MAX_BODY_BYTES + 1)
        resp.media = self._service.heartbeat(req.get_header(KEY_HEADER), req.content_type, body)


class KioskStatusResource:
    def __init__(self, service: KioskService) -> None:
        self._service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._service.own_status(req.get_header(KEY_HEADER), req.params)


def require_token(scope: Scope) -> Callable[..., Any]:
    """Falcon hook for back-office routes: the bearer token becomes a `caller` parameter
    (name, scope, locations) or the request ends as a 401, or a 403 naming the scope.
    The resource holds the service as `service`."""

    def authenticate(
        req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        params["caller"] = resource.service.authenticate_back_office(bearer_token(req), scope)

    return falcon.before(authenticate)


class AllStatusResource:
    def __init__(self, service: KioskService) -> None:
        self.service = service

    @require_token(Scope.READ)
    def on_get(self, req: falcon.Request, resp: falcon.Response, caller: Caller) -> None:
        documents = self.service.all_status(caller, req.params)
        etag = status_etag(documents)
        # Tabs poll every 15 s: revalidate each time, answer 304 while nothing but the
        # *_seconds durations changed.
        resp.set_header("ETag", etag)
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("Vary", "Authorization")
        if _matches(req.get_header("If-None-Match"), etag):
            resp.status = falcon.HTTP_304
            return
        resp.media = documents


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2): the opaque values match, W/ prefixes aside."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return any(tag == "*" or tag.removeprefix("W/") == wanted for tag in tags)


class KioskResource:
    def __init__(self, service: KioskService) -> None:
        self.service = service

    @require_token(Scope.READ)
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, caller: Caller, kiosk_id: int
    ) -> None:
        resp.media = self.service.kiosk_status(caller, kiosk_id, req.params)


def query(req: falcon.Request, allowed: tuple[str, ...]) -> dict[str, str | None]:
    """Single-valued parameters through the one query check (payload.parse_query)."""
    values = parse_query(req.params, dict.fromkeys(allowed, False))
    return {name: values[name][0] if name in values else None for name in allowed}


class _HistoryResource:
    """Back-office history endpoints (read scope): validate the query, read the window."""

    parameters: tuple[str, ...] = ("since", "until")

    def __init__(self, service: KioskService, history: HistoryService) -> None:
        self.service = service
        self._history = history

    def _read(self, req: falcon.Request) -> tuple[Window, dict[str, str | None]]:
        params = query(req, self.parameters)
        return self._history.window(params["since"], params["until"]), params


class KioskOutagesResource(_HistoryResource):
    """GET /kiosk/{kiosk_id}/outages?since=&until="""

    @require_token(Scope.READ)
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, caller: Caller, kiosk_id: int
    ) -> None:
        window, _ = self._read(req)
        resp.media = self._history.kiosk_outages(kiosk_id, window, caller)


class FleetAvailabilityResource(_HistoryResource):
    """GET /kiosk/availability?since=&until=&location="""

    parameters = ("since", "until", "location")

    @require_token(Scope.READ)
    def on_get(self, req: falcon.Request, resp: falcon.Response, caller: Caller) -> None:
        window, params = self._read(req)
        resp.media = self._history.fleet_availability(window, params["location"], caller)


class KioskAvailabilityResource(_HistoryResource):
    """GET /kiosk/{kiosk_id}/availability?since=&until=&bucket=day"""

    parameters = ("since", "until", "bucket")

    @require_token(Scope.READ)
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, caller: Caller, kiosk_id: int
    ) -> None:
        window, params = self._read(req)
        resp.media = self._history.kiosk_availability(kiosk_id, window, params["bucket"], caller)


class HealthResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}

    on_head = on_get  # some load balancers probe with HEAD


class ReadyResource:
    def __init__(self, service: KioskService) -> None:
        self._service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._service.readiness()

    on_head = on_get


class OpenApiResource:
    """The API's OpenAPI document, as shipped in the package (read once at start-up)."""

    def __init__(self, document: bytes) -> None:
        self._document = document

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self._document


class RunbookResource:
    """The runbook as one read-only HTML page (rendered once, at start-up)."""

    def __init__(self, page: str) -> None:
        self._page = page.encode("utf-8")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        # Static text: no script may run, nothing may be framed or sniffed as another type.
        resp.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.data = self._page

    on_head = on_get


class MetricsResource:
    def __init__(
        self, fleet: FleetPage, registry: CollectorRegistry, clock: Clock, token: str | None
    ) -> None:
        self._fleet = fleet
        self._registry = registry
        self._clock = clock
        self._token = token
        self._flights = SingleFlight()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._token is not None:
            given = bearer_token(req) or ""
            if not hmac.compare_digest(given.encode(), self._token.encode()):
                raise UnknownToken()
        fmt = negotiate(req.get_header("Accept"))
        gzip = accepts_gzip(req.get_header("Accept-Encoding"))
        resp.content_type = fmt.content_type
        resp.vary = ("Accept", "Accept-Encoding")
        if gzip:
            resp.set_header("Content-Encoding", "gzip")
        page = self._flights.run((fmt, gzip), lambda: self._page(fmt.openmetrics, gzip))
        # A stream, not resp.data: waitress sends a seekable stream (wsgi.file_wrapper) in
        # blocks from where it lies, where a body over 1 MB given as bytes is first copied
        # to a temporary file (~110 MB at 100,000 kiosks).
        resp.content_length = len(page)
        resp.stream = page.open()

    def _page(self, openmetrics: bool, gzip: bool) -> Page:
        service = service_text(self._registry, openmetrics)
        return self._fleet.page(PageRequest(openmetrics, self._clock(), service, gzip))
