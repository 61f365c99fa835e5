"""The status page's server side over real HTTP: the files and their headers, the switch that
turns the page off, one kiosk's status for the detail view, and the ETag that makes polling
cheap."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from exporter.config import load_settings
from exporter.errors import ConfigError
from exporter.payload import status_etag
from exporter.statuspage import load_files
from tests.support.http import request
from tests.support.service import RunningService

UI = Path(__file__).resolve().parent.parent / "exporter" / "ui"


def _assert_strict_headers(headers: dict[str, str]) -> None:
    policy = headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    assert directives["default-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


def test_root_redirects_to_the_page_and_every_ui_answer_is_strict(server):
    root = request("GET", server.url + "/")
    assert root.status == 302 and root.headers["location"].endswith("/ui/")
    _assert_strict_headers(root.headers)
    for path, kind in [
        ("/ui/", "text/html"),
        ("/ui/kiosk/4", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/worker.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ]:
        reply = request("GET", server.url + path)
        assert reply.status == 200, path
        assert reply.headers["content-type"].startswith(kind), path
        _assert_strict_headers(reply.headers)
        again = request("GET", server.url + path, headers={"If-None-Match": reply.headers["etag"]})
        assert again.status == 304 and again.body == b""
    missing = request("GET", server.url + "/ui/secrets.py")
    assert missing.status == 404
    _assert_strict_headers(missing.headers)


def test_the_page_references_only_its_own_files():
    page = (UI / "index.html").read_text(encoding="utf-8")
    references = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert references, "the page loads its script and style"
    assert all(ref.startswith("/ui/") and ref[4:] in load_files() for ref in references)
    assert "<script>" not in page and "style=" not in page and "<style" not in page


def test_the_script_never_writes_html():
    """Names, locations, versions and devices are text: no API that parses HTML is used."""
    html_sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(")
    for script in UI.glob("*.js"):
        assert not html_sinks.search(script.read_text(encoding="utf-8")), script.name


def test_ui_disabled_is_404_and_the_api_and_runbook_stay(tmp_path):
    with RunningService(tmp_path, {"ui_enabled": "false"}) as service:
        for path in ("/", "/ui", "/ui/", "/ui/app.js", "/ui/kiosk/1"):
            assert request("GET", service.url + path).status == 404, path
        token = service.add_token()
        assert service.all_status(token).status == 200
        # Alerts link the runbook: it stays served without the page.
        runbook = request("GET", service.url + "/runbook")
        assert runbook.status == 200 and runbook.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(("text", "enabled"), [("false", False), ("off", False), ("yes", True)])
def test_ui_enabled_reads_true_and_false_from_the_environment(text, enabled):
    settings = load_settings(environ={"KIOSK_EXPORTER_UI_ENABLED": text})
    assert settings.ui_enabled is enabled


def test_ui_enabled_refuses_other_words():
    with pytest.raises(ConfigError, match="ui_enabled: 'maybe' is not true or false"):
        load_settings(environ={"KIOSK_EXPORTER_UI_ENABLED": "maybe"})


def test_one_kiosk_status_for_the_back_office(server):
    kiosk_id, key = server.add_kiosk("Kiosk-Floor2", "Building C - Floor 2")
    token = server.add_token()
    server.heartbeat(key)
    bearer = {"Authorization": f"Bearer {token}"}
    reply = request("GET", f"{server.url}/kiosk/{kiosk_id}", headers=bearer)
    assert reply.status == 200
    listed = server.all_status(token).json[0]
    assert reply.json == {
        **listed,
        "offline_duration_seconds": reply.json["offline_duration_seconds"],
    }
    assert reply.json["kiosk_name"] == "Kiosk-Floor2" and reply.json["status"] == "online"
    unknown = request("GET", f"{server.url}/kiosk/{kiosk_id + 1}", headers=bearer)
    assert unknown.status == 404 and "title" in unknown.json
    assert request("GET", f"{server.url}/kiosk/{kiosk_id}").status == 401
    wrong = {"Authorization": "Bearer nope"}
    assert request("GET", f"{server.url}/kiosk/{kiosk_id}", headers=wrong).status == 401


def _poll(service: RunningService, token: str, etag: str) -> tuple[int, str]:
    reply = request(
        "GET",
        service.url + "/kiosk/all-status",
        headers={"Authorization": f"Bearer {token}", "If-None-Match": etag},
    )
    return reply.status, reply.headers["etag"]


def test_all_status_etag_ignores_durations_and_follows_facts_and_status(tmp_path):
    settings = {
        "online_threshold_seconds": 2,
        "heartbeat_interval_seconds": 1,
        "min_heartbeat_interval_seconds": 0,
    }
    with RunningService(tmp_path, settings) as service:
        _, silent = service.add_kiosk("Kiosk-Floor2", "Building C - Floor 2")
        _, key = service.add_kiosk("Kiosk-Entrance", "Building A")
        token = service.add_token()
        service.heartbeat(silent)
        service.heartbeat(key)
        first = service.all_status(token)
        etag = first.headers["etag"]
        assert first.headers["cache-control"] == "no-cache"
        # Kiosk-Floor2 goes offline (the status flips with time): a new tag.
        assert service.wait_until(lambda: _poll(service, token, etag)[0] == 200, timeout=10)
        offline = service.all_status(token)
        assert offline.json[0]["status"] == "offline"
        service.heartbeat(key)
        status, etag = _poll(service, token, offline.headers["etag"])
        assert status == 200  # a new heartbeat is a new fact
        # Both offline now; only offline_duration_seconds moves from here on.
        assert service.wait_until(
            lambda: all(k["status"] == "offline" for k in service.all_status(token).json),
            timeout=10,
        )
        settled = service.all_status(token)
        time.sleep(1.2)
        later = request(
            "GET",
            service.url + "/kiosk/all-status",
            headers={"Authorization": f"Bearer {token}", "If-None-Match": settled.headers["etag"]},
        )
        assert later.status == 304 and later.body == b""
        assert later.headers["etag"] == settled.headers["etag"]
        fresh = service.all_status(token)
        assert (
            fresh.json[0]["offline_duration_seconds"] > settled.json[0]["offline_duration_seconds"]
        )
        assert fresh.headers["etag"] == settled.headers["etag"]


BASE = {"kiosk_id": 1, "status": "offline", "offline_duration_seconds": 900}


@pytest.mark.parametrize(
    ("other", "same"),
    [
        ([{**BASE, "offline_duration_seconds": 960}], True),
        ([{**BASE, "offline_while_expected_seconds": 5}], True),
        ([{**BASE, "status": "online"}], False),
        ([{"kiosk_id": 1, "state": "offline", "offline_duration_seconds": 900}], False),
        ([BASE, BASE], False),
        ([], False),
    ],
)
def test_the_etag_covers_every_field_but_durations(other, same):
    assert (status_etag([BASE]) == status_etag(other)) is same


def test_the_etag_follows_each_document_when_shapes_alternate():
    short = {"kiosk_id": 2, "status": "never_connected"}
    documents = [BASE, short, {**BASE, "kiosk_id": 3}]
    changed = [BASE, {**short, "status": "inactive"}, {**BASE, "kiosk_id": 3}]
    assert status_etag(documents) != status_etag(changed)
    assert status_etag(documents) == status_etag([dict(d) for d in documents])
