"""exporter/openapi.json is the whole public HTTP API, and the service keeps to it.

A route added without documenting it fails here, and so does an answer (status, media type,
headers, body) that the document does not promise. Contract fuzzing: test_contract_fuzz.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import falcon.inspect
import pytest
import schemathesis
from prometheus_client import CollectorRegistry

from exporter.app import Application, create_app
from exporter.config import Settings
from exporter.store import open_store
from tests.support.http import request
from tests.support.openapi import assert_documented, document
from tests.support.service import RunningService

METHODS = ("get", "head", "post", "put", "patch", "delete", "options", "trace")


@pytest.fixture
def application(tmp_path: Path) -> Iterator[Application]:
    database = f"sqlite:///{tmp_path / 'kiosks.db'}"
    built = create_app(
        store=open_store(database),
        settings=Settings(database=database),
        registry=CollectorRegistry(),
    )
    yield built
    built.close()


def served_operations(application: Application) -> set[tuple[str, str]]:
    """(method, path) of every responder the app has, falcon's own defaults left out;
    `{kiosk_id:int}` written as OpenAPI does, `{kiosk_id}`."""
    return {
        (method.method.lower(), re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.path))
        for route in falcon.inspect.inspect_routes(application.wsgi)
        for method in route.methods
        if not method.internal
    }


def documented_operations() -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document()["paths"].items()
        for method in item
        if method in METHODS
    }


def test_the_document_is_valid_openapi_3_1():
    assert document()["openapi"].startswith("3.1.")
    schemathesis.openapi.from_dict(document()).validate()


def test_every_route_the_app_serves_is_documented_and_nothing_else(application):
    served = served_operations(application)
    assert served, "inspect found no route: the test would pass vacuously"
    assert served - documented_operations() == set(), "served but not in exporter/openapi.json"
    assert documented_operations() - served == set(), "documented but not served"


def test_every_operation_documents_its_answers_and_security():
    for method, path in documented_operations():
        operation = document()["paths"][path][method]
        assert operation.get("operationId"), f"{method} {path}: no operationId for generators"
        assert "security" in operation, f"{method} {path}: say who may call it"
        assert all(code.isdigit() for code in operation["responses"]), f"{method} {path}"


def test_the_service_serves_the_document_it_ships(server):
    reply = request("GET", server.url + "/openapi.json")
    assert_documented("GET", "/openapi.json", reply)
    shipped = Path(__file__).parent.parent / "exporter" / "openapi.json"
    assert reply.json == json.loads(shipped.read_text(encoding="utf-8"))


def test_real_answers_match_the_document(tmp_path):
    settings = {"min_heartbeat_interval_seconds": 5}
    with RunningService(tmp_path, settings) as service:
        _, key = service.add_kiosk("Kiosk-Entrance", "Building A")
        _, other = service.add_kiosk("Kiosk-Lobby", "Building A")
        idle = service.add_kiosk("Kiosk-Exit", "Building A")
        token = service.add_token()
        answers = _exercise(service, (key, other), idle, token)
    statuses = {(method, path): set() for method, path, _ in answers}
    for method, path, reply in answers:
        assert_documented(method, path, reply)
        statuses[(method, path)].add(reply.status)
    replies = [r.json for _, p, r in answers if p == "/kiosk/heartbeat" and r.status == 200]
    assert any("ignored_fields" in r and "rejected_fields" in r for r in replies)
    # The exercise reached what it meant to (a wrong server would pass nothing above).
    assert statuses[("POST", "/kiosk/heartbeat")] == {200, 400, 401, 403, 413, 415, 429}
    assert statuses[("GET", "/kiosk/all-status")] == {200, 304, 400, 401}
    assert statuses[("GET", "/kiosk/status")] == {200, 401, 403}
    assert statuses[("GET", "/kiosk/{kiosk_id}")] == {200, 401, 404}
    assert statuses[("GET", "/ui/{name}")] == {200, 304, 404}
    for history in ("/kiosk/{kiosk_id}/outages", "/kiosk/{kiosk_id}/availability"):
        assert statuses[("GET", history)] == {200, 400, 401, 404}
    assert statuses[("GET", "/kiosk/availability")] == {200, 400, 401}


def _exercise(
    service: RunningService, keys: tuple[str, str], idle: tuple[int, str], token: str
) -> list:
    """One request for each answer an operation documents that a test can provoke."""
    key, other = keys
    url = service.url
    auth = {"Authorization": f"Bearer {token}"}
    kiosk = {"X-Kiosk-API-Key": key}
    answers = []

    def call(method: str, path: str, query: str = "", *, actual: str = "", **kwargs) -> None:
        """`path` as documented; `actual` fills in its parameters."""
        reply = request(method, url + (actual or path) + query, **kwargs)
        answers.append((method, path, reply))

    call("GET", "/kiosk/status", headers=kiosk)  # never connected
    call("POST", "/kiosk/heartbeat", headers=kiosk, json_body={"app_version": "1.0.0"})
    call("POST", "/kiosk/heartbeat", headers=kiosk, json_body={})  # too soon: 429
    extra = {"battery_level": 87, "sent_at": "yesterday"}  # ignored and rejected fields
    # Device vitals: the status objects below then carry a non-empty `vitals`.
    extra |= {"battery_percent": 50.5, "network": "wifi", "wifi_signal_dbm": -60, "screen_on": True}
    call("POST", "/kiosk/heartbeat", headers={"X-Kiosk-API-Key": other}, json_body=extra)
    call("POST", "/kiosk/heartbeat", headers=kiosk, json_body={"app_version": 3})
    call("POST", "/kiosk/heartbeat", headers=kiosk, body=b"x" * 17_000)
    call("POST", "/kiosk/heartbeat", headers={**kiosk, "Content-Type": "text/plain"}, body="{}")
    call("POST", "/kiosk/heartbeat", headers={"X-Kiosk-API-Key": "kk_nobody"}, json_body={})
    call("GET", "/kiosk/status", headers=kiosk)
    call("GET", "/kiosk/status")
    for query in ("", "?status=online", "?status=sleeping", "?location=Building%20A"):
        call("GET", "/kiosk/all-status", query, headers=auth)
    call("GET", "/kiosk/all-status", headers={"Authorization": "Bearer kt_nobody"})
    call("GET", "/metrics")
    call("GET", "/metrics", headers={"Accept": "application/openmetrics-text"})
    for method in ("GET", "HEAD"):
        call(method, "/healthz")
        call(method, "/readyz")
        call(method, "/")
        call(method, "/ui")
        call(method, "/ui/")
        call(method, "/ui/kiosk/{kiosk_id}", actual="/ui/kiosk/1")
        call(method, "/ui/{name}", actual="/ui/app.css")
        call(method, "/runbook")
    etag = request("GET", url + "/kiosk/all-status", headers=auth).headers["etag"]
    call("GET", "/kiosk/all-status", headers={**auth, "If-None-Match": etag})
    etag = request("GET", url + "/ui/app.js").headers["etag"]
    call("GET", "/ui/{name}", actual="/ui/app.js", headers={"If-None-Match": etag})
    call("GET", "/ui/{name}", actual="/ui/nothing.js")
    for kiosk_id, headers in (("1", auth), ("999", auth), ("1", {})):
        call("GET", "/kiosk/{kiosk_id}", actual=f"/kiosk/{kiosk_id}", headers=headers)
    for path, queries in (
        (
            "/kiosk/availability",
            ("", "?location=Building%20A", "?since=2026-11-01&until=2026-11-01"),
        ),
        ("/kiosk/{kiosk_id}/outages", ("", "?since=2026-11-01", "?until=soon")),
        ("/kiosk/{kiosk_id}/availability", ("", "?bucket=day", "?bucket=week")),
    ):
        for query in queries:
            call("GET", path, query, actual=path.replace("{kiosk_id}", "1"), headers=auth)
        call("GET", path, actual=path.replace("{kiosk_id}", "1"))
        if "{kiosk_id}" in path:
            call("GET", path, actual=path.replace("{kiosk_id}", "999"), headers=auth)
    assert service.cli("kiosk", "deactivate", str(idle[0])).returncode == 0
    call("POST", "/kiosk/heartbeat", headers={"X-Kiosk-API-Key": idle[1]}, json_body={})
    call("GET", "/kiosk/status", headers={"X-Kiosk-API-Key": idle[1]})
    return answers


def test_a_protected_metrics_page_documents_its_401(tmp_path):
    with RunningService(tmp_path, {"metrics_token": "s3cret-metrics"}) as service:
        refused = request("GET", service.url + "/metrics")
        allowed = request(
            "GET", service.url + "/metrics", headers={"Authorization": "Bearer s3cret-metrics"}
        )
    assert (refused.status, allowed.status) == (401, 200)
    assert_documented("GET", "/metrics", refused)
    assert_documented("GET", "/metrics", allowed)


def test_the_document_ships_in_the_package():
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    package_data = pyproject.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    (line,) = [line for line in package_data.splitlines() if line.startswith('"exporter" =')]
    assert '"openapi.json"' in line
