"""HTTP resources of kiosk management (/admin/kiosks, admin tokens) and of enrollment
(/kiosk/enroll): parse, delegate, shape the reply. Only enrollment ever returns an API key,
to the tablet that spent its one-time code."""

from __future__ import annotations

from typing import Any

import falcon

from .access import Caller, Scope
from .enrollment import Enroller
from .management import Management, Provisioned, check_idempotency_key, parse_kiosk_document
from .payload import MAX_BODY_BYTES, parse_json_request
from .resources import require_token
from .service import KioskService

# Ids beyond a 32-bit INTEGER column would be a database error (503), not a 404.
KIOSK_ID = "{kiosk_id:int(min=1, max=2147483647)}"
KIOSK_ACTIONS = ("deactivate", "activate", "rotate-key")


def read_json(req: falcon.Request) -> Any:
    return parse_json_request(req.content_type, req.bounded_stream.read(MAX_BODY_BYTES + 1))


class AdminKiosksResource:
    """POST /admin/kiosks: create a kiosk waiting for its tablet's enrollment."""

    def __init__(self, service: KioskService, management: Management) -> None:
        self.service = service
        self._management = management

    @require_token(Scope.ADMIN)
    def on_post(self, req: falcon.Request, resp: falcon.Response, caller: Caller) -> None:
        changes = parse_kiosk_document(read_json(req), creating=True)
        key = check_idempotency_key(req.get_header("Idempotency-Key"))
        assert changes.name is not None and changes.location is not None
        made = self._management.create(
            caller,
            changes.name,
            changes.location,
            schedule=changes.schedule,
            idempotency_key=key,
        )
        resp.status = 201
        resp.location = f"/admin/kiosks/{made.kiosk.id}"
        if made.replayed:
            resp.set_header("Idempotent-Replayed", "true")
        resp.media = provisioned(self.service, made)


def provisioned(service: KioskService, made: Provisioned) -> dict[str, Any]:
    """The kiosk's status object and its new enrollment code (never its API key)."""
    return {**service.describe(made.kiosk), "enrollment": made.enrollment.document()}


class AdminKioskResource:
    """PATCH and DELETE /admin/kiosks/{id}, and POST /admin/kiosks/{id}/<action>."""

    def __init__(self, service: KioskService, management: Management) -> None:
        self.service = service
        self._management = management

    @require_token(Scope.ADMIN)
    def on_patch(
        self, req: falcon.Request, resp: falcon.Response, caller: Caller, kiosk_id: int
    ) -> None:
        changes = parse_kiosk_document(read_json(req), creating=False)
        resp.media = self.service.describe(self._management.update(caller, kiosk_id, changes))

    @require_token(Scope.ADMIN)
    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, caller: Caller, kiosk_id: int
    ) -> None:
        self._management.remove(caller, kiosk_id)
        resp.status = 204

    @require_token(Scope.ADMIN)
    def on_post_deactivate(
        self, req: falcon.Request, resp: falcon.Response, caller: Caller, kiosk_id: int
    ) -> None:
        resp.media = self.service.describe(self._management.set_active(caller, kiosk_id, False))

    @require_token(Scope.ADMIN)
    def on_post_activate(
        self, req: falcon.Request, resp: falcon.Response, caller: Caller, kiosk_id: int
    ) -> None:
        resp.media = self.service.describe(self._management.set_active(caller, kiosk_id, True))

    @require_token(Scope.ADMIN)
    def on_post_rotate_key(
        self, req: falcon.Request, resp: falcon.Response, caller: Caller, kiosk_id: int
    ) -> None:
        resp.media = provisioned(self.service, self._management.rotate_key(caller, kiosk_id))


def add_admin_routes(
    app: falcon.App[falcon.Request, falcon.Response],
    service: KioskService,
    management: Management,
) -> None:
    app.add_route("/admin/kiosks", AdminKiosksResource(service, management))
    kiosk = AdminKioskResource(service, management)
    app.add_route(f"/admin/kiosks/{KIOSK_ID}", kiosk)
    for action in KIOSK_ACTIONS:
        suffix = action.replace("-", "_")
        app.add_route(f"/admin/kiosks/{KIOSK_ID}/{action}", kiosk, suffix=suffix)


class EnrollResource:
    """POST /kiosk/enroll: no credentials but the code; guesses are limited per address."""

    def __init__(self, enroller: Enroller) -> None:
        self._enroller = enroller

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.bounded_stream.read(MAX_BODY_BYTES + 1)
        resp.media = self._enroller.enroll(req.remote_addr, req.content_type, body)
        # The answer holds a secret: no cache, no proxy may keep it.
        resp.cache_control = ["no-store"]
