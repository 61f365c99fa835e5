"""The status page shows each kiosk's battery and "app not on screen" from its vitals, in the
list and card views, in the real Chromium against the real service."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import require_chromium, start_chromium, wait_for
from tests.support.service import RunningService

pytestmark = pytest.mark.live

TOKEN_KEY = "kiosk-exporter-token"  # exporter/ui/api.js keeps the token under this name


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


def page_text(browser: Any, url: str, expected: str) -> str:
    """The page's text once `expected` is in it (the page renders after fetching JSON)."""
    browser.get(url)

    def shown() -> str | None:
        text = str(browser.find_element("tag name", "body").text)
        return text if expected in text else None

    return str(wait_for(shown, timeout=20, what=f"{expected!r} at {url}"))


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
