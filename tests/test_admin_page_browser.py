"""Kiosk management on the status page, in the real Chromium against the real server: an admin
adds a kiosk or rotates a key and sees the new enrollment code with its QR code; the code
works at /kiosk/enroll; a read token is told it can only read."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import require_chromium, start_chromium, wait_for
from tests.support.http import request
from tests.support.service import RunningService

pytestmark = pytest.mark.browser
CODE = re.compile(r"^[2-9A-HJKMNP-Z]{5}-[2-9A-HJKMNP-Z]{5}$")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningService, dict]]:
    require_chromium()
    workdir = tmp_path_factory.mktemp("adminpage")
    with RunningService(workdir) as service:
        tokens = {}
        for scope in ("admin", "read"):
            made = service.cli("token", "add", "--name", scope, "--scope", scope)
            tokens[scope] = made.stdout.strip()
        yield service, tokens


@pytest.fixture(scope="module")
def browser(served: tuple[RunningService, dict]) -> Iterator[Any]:
    driver = start_chromium()
    yield driver
    driver.quit()


def sign_in(browser: Any, url: str, token: str, path: str = "/ui/") -> None:
    browser.get(url + path)
    browser.execute_script("sessionStorage.clear(); localStorage.clear();")
    browser.get(url + path)
    browser.get_log("browser")
    wait_for(lambda: browser.find_element("id", "token").is_displayed(), what="sign-in form")
    browser.find_element("id", "token").send_keys(token)
    browser.find_element("id", "sign-in-button").click()


def add_kiosk(browser: Any, name: str, location: str) -> None:
    wait_for(lambda: browser.find_element("id", "add-kiosk").is_displayed(), what="add kiosk")
    browser.find_element("css selector", "#add-kiosk summary").click()
    browser.find_element("id", "new-kiosk-name").send_keys(name)
    browser.find_element("id", "new-kiosk-location").send_keys(location)
    browser.find_element("id", "create-kiosk").click()


def shown_code(browser: Any) -> str:
    return str(
        wait_for(
            lambda: browser.find_element("css selector", ".enrollment-code").text,
            what="the enrollment code",
        )
    )


def enroll(url: str, code: str) -> int:
    return request("POST", url + "/kiosk/enroll", json_body={"code": code}).status


def no_page_errors(browser: Any) -> None:
    problems = [
        e["message"]
        for e in browser.get_log("browser")
        if re.search(r"Content Security Policy|Refused to|Uncaught", e["message"])
    ]
    assert not problems, problems


def test_an_admin_adds_a_kiosk_and_sees_its_code_and_qr_once(browser, served):
    service, tokens = served
    sign_in(browser, service.url, tokens["admin"])
    add_kiosk(browser, "Kiosk-Lobby", "Building A")
    code = shown_code(browser)
    assert CODE.match(code), code
    qr = browser.find_element("css selector", ".enrollment-qr svg")
    assert qr.size["width"] >= 100  # drawn, at a size a phone camera reads
    assert qr.get_dom_attribute("viewBox"), "sized by a viewBox: the stylesheet must not crop it"
    wait_for(lambda: "Kiosk-Lobby" in browser.find_element("id", "kiosks").text, what="the row")
    no_page_errors(browser)
    assert enroll(service.url, code) == 200


def test_an_admin_rotates_a_key_from_the_detail_view(browser, served):
    service, tokens = served
    sign_in(browser, service.url, tokens["admin"])
    add_kiosk(browser, "Kiosk-Hall", "Building B")
    first = shown_code(browser)
    kiosk_id = service.all_status(tokens["admin"]).json[-1]["kiosk_id"]
    browser.get(f"{service.url}/ui/kiosk/{kiosk_id}")
    button = wait_for(lambda: browser.find_element("id", "rotate-key"), what="rotate button")
    button.click()
    browser.switch_to.alert.accept()  # the key stops working: the page asks first
    second = wait_for(
        lambda: (c := browser.find_element("css selector", ".enrollment-code").text) != first and c,
        what="a new code",
    )
    assert CODE.match(second)
    assert browser.find_element("css selector", ".enrollment-qr svg")
    no_page_errors(browser)
    assert (enroll(service.url, first), enroll(service.url, second)) == (401, 200)


def test_a_read_token_is_told_it_can_only_read(browser, served):
    service, tokens = served
    sign_in(browser, service.url, tokens["read"])
    add_kiosk(browser, "Kiosk-Nope", "Building C")
    message = wait_for(
        lambda: browser.find_element("css selector", ".admin-error").text, what="the refusal"
    )
    assert "admin token" in message
    names = [k["kiosk_name"] for k in service.all_status(tokens["admin"]).json]
    assert "Kiosk-Nope" not in names
