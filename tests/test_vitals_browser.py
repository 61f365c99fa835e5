"""The status page shows each kiosk's battery and "app not on screen" from its vitals, in the
list and card views, in the real Chromium against the real service."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.support.service import RunningService

pytestmark = pytest.mark.live

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
TOKEN_KEY = "kiosk-exporter-token"  # exporter/ui/api.js keeps the token under this name
WAIT = 20.0


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.fail("chromium and chromium-driver are missing: run scripts/install-tools")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,900")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def page_text(browser, url: str, expected: str) -> str:
    browser.get(url)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        text = browser.find_element("tag name", "body").text
        if expected in text:
            return str(text)
        time.sleep(0.2)
    raise AssertionError(f"{expected!r} never shown at {url}:\n{text}")


def test_battery_and_app_not_on_screen_show_in_both_views(browser, tmp_path):
    with RunningService(tmp_path, {"min_heartbeat_interval_seconds": 0}) as service:
        token = service.add_token()
        _, draining = service.add_kiosk("Kiosk-Entrance", "Building A")
        _, charging = service.add_kiosk("Kiosk-Cafeteria", "Building B")
        _, silent = service.add_kiosk("Kiosk-Exit", "Building A")
        body = {"battery_percent": 15, "battery_charging": False, "app_in_foreground": False}
        assert service.heartbeat(draining, body).status == 200
        body = {"battery_percent": 88.4, "battery_charging": True}
        assert service.heartbeat(charging, body).status == 200
        assert service.heartbeat(silent, {"app_version": "1.0.0"}).status == 200
        browser.get(service.url + "/ui/")
        browser.execute_script(
            "sessionStorage.setItem(arguments[0], arguments[1])", TOKEN_KEY, token
        )
        for view in ("list", "cards"):
            text = page_text(browser, f"{service.url}/ui/?view={view}", "Battery 15 %")
            assert "Battery 15 % | ⚠ App not on screen" in text, view
            assert "Battery 88 % (charging)" in text, view
            assert text.count("Battery") == 2, "a kiosk without vitals shows none"
            warning = browser.find_element("css selector", ".vitals.attention")
            assert warning.text.startswith("Battery 15 %"), view
        text = page_text(browser, f"{service.url}/ui/?view=cards&lang=fr", "Batterie 15 %")
        assert "Application pas à l’écran" in text and "(en charge)" in text
