"""The status page in the real Chromium against the real server and database: the demo fleet
of the original design, both views, filters, French, the detail, a failed refresh, a refused
token, a hostile kiosk name, keyboard use, a phone's width and no CSP violation.

One browser and one server for the module (browser start-up dominates the cost);
screenshots of every view go to test-output/ui/ (desktop and 360 px).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from exporter.clock import utc_now
from exporter.demo import DemoKiosk, provision
from exporter.store import open_store
from tests.support.browser import (
    OUTPUT,
    provision_fleet,
    require_chromium,
    start_chromium,
    wait_for,
)
from tests.support.service import RunningService

pytestmark = pytest.mark.browser


@dataclass
class Demo:
    service: RunningService
    token: str
    kiosks: list[DemoKiosk]

    @property
    def url(self) -> str:
        return self.service.url


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo's four kiosks (Kiosk-Floor2 silent for 15 minutes) on a real server."""
    require_chromium()
    workdir = tmp_path_factory.mktemp("statuspage")
    database = f"sqlite:///{workdir / 'demo.db'}"
    kiosks, token = provision(database, utc_now())
    with RunningService(workdir, {"min_heartbeat_interval_seconds": 0}, database) as service:
        for kiosk in kiosks:
            if not kiosk.silent:
                body = {"app_version": "1.0.0", "device_info": kiosk.device_info}
                assert service.heartbeat(kiosk.api_key, body).status == 200
        yield Demo(service, token, kiosks)


@pytest.fixture(scope="module")
def browser(demo: Demo) -> Iterator[Any]:
    driver = start_chromium()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser: Any, demo: Demo) -> Iterator[Any]:
    """A signed-out tab at the desktop size; afterwards, no CSP violation nor script error."""
    browser.set_window_size(1280, 900)
    browser.get(demo.url + "/ui/")
    browser.execute_script("sessionStorage.clear(); localStorage.clear();")
    browser.get_log("browser")
    yield browser
    problems = [
        entry["message"]
        for entry in browser.get_log("browser")
        if re.search(r"Content Security Policy|Refused to|Uncaught", entry["message"])
    ]
    assert not problems, problems


def text(browser: Any, element_id: str) -> str:
    return str(browser.find_element("id", element_id).text)


def rows(browser: Any) -> list[str]:
    return [e.text for e in browser.find_elements("css selector", "#kiosks > li")]


def names(browser: Any) -> list[str]:
    return [e.text for e in browser.find_elements("css selector", "#kiosks .name")]


def sign_in(browser: Any, url: str, token: str, path: str = "/ui/", remember: bool = False) -> None:
    browser.get(url + path)
    field = wait_for(lambda: browser.find_element("id", "token"), what="the sign-in form")
    field.send_keys(token)
    if remember:
        browser.find_element("id", "remember").click()
    browser.find_element("id", "sign-in-button").click()
    wait_for(lambda: names(browser) or browser.find_element("id", "detail").is_displayed())


def shot(browser: Any, name: str) -> Path:
    path = OUTPUT / f"{name}.png"
    time.sleep(0.2)  # let the last layout settle
    browser.save_screenshot(str(path))
    return path


def no_horizontal_scroll(browser: Any) -> bool:
    return bool(
        browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1"
        )
    )


def test_sign_in_shows_the_demo_fleet_in_the_list_view(page, demo):
    page.get(demo.url + "/")  # / leads to the page
    wait_for(lambda: page.find_element("id", "token").is_displayed(), what="sign-in")
    assert page.current_url == demo.url + "/ui/"
    assert page.find_element("id", "token").get_attribute("type") == "password"
    page.find_element("id", "token").send_keys("kt_not-a-token")
    page.find_element("id", "sign-in-button").click()
    wait_for(lambda: "refused" in text(page, "sign-in-error"), what="the refusal")
    sign_in(page, demo.url, demo.token)
    wait_for(lambda: text(page, "summary").startswith("3/4 online (75 %)"), what="header")
    summary = text(page, "summary")
    for count in ("1 offline", "0 never connected", "0 deactivated"):
        assert count in summary
    # Offline first, then the others by name.
    assert names(page) == ["Kiosk-Floor2", "Kiosk-Cafeteria", "Kiosk-Entrance", "Kiosk-Exit"]
    floor2 = rows(page)[0]
    assert "Offline" in floor2 and "Building C - Floor 2" in floor2
    assert "Offline for 15 minutes" in floor2 and "Last ping: 15 min ago" in floor2
    assert "v1.0.0 | Android/10 - Lenovo Tab M10" in floor2
    entrance = rows(page)[2]
    assert "Online" in entrance and re.search(r"Last ping: \d+ s ago", entrance)
    assert "token" not in page.current_url and demo.token not in page.current_url
    assert not any(demo.token in line for line in demo.service.log_lines)
    assert page.execute_script("return sessionStorage.length") == 1
    assert page.execute_script("return localStorage.length") == 0
    shot(page, "list-desktop")


def test_relative_times_tick_every_second_in_the_browser(page, demo):
    sign_in(page, demo.url, demo.token)
    first = page.find_element("css selector", "#kiosks li:nth-child(2) .ping").text
    wait_for(
        lambda: page.find_element("css selector", "#kiosks li:nth-child(2) .ping").text != first,
        timeout=5,
        what="the relative time to move",
    )


def all_status_lines(demo: Demo) -> list[str]:
    return [line for line in demo.service.log_lines if '"GET /kiosk/all-status"' in line]


def test_the_page_refreshes_by_itself_every_15_seconds_with_if_none_match(page, demo):
    sign_in(page, demo.url, demo.token)
    checked = "return performance.getEntriesByName('kiosk:refresh-checked').length"
    wait_for(lambda: page.execute_script(checked) >= 1, what="the check right after sign-in")
    time.sleep(0.3)  # its access-log line
    seen = len(all_status_lines(demo))
    started = time.monotonic()
    wait_for(lambda: len(all_status_lines(demo)) > seen, timeout=25, what="a refresh")
    assert 10 < time.monotonic() - started < 25
    assert " 304 " in all_status_lines(demo)[-1]  # nothing changed: no JSON sent
    assert "online" in text(page, "summary")  # and the page still shows the fleet


def test_card_view_is_switchable_and_kept_in_the_url(page, demo):
    sign_in(page, demo.url, demo.token)
    page.find_element("id", "view-cards").click()
    wait_for(lambda: page.find_elements("css selector", "#kiosks a.card"), what="cards")
    assert "view=cards" in page.current_url
    cards = rows(page)
    assert len(cards) == 4
    assert "Offline 15 min" in cards[0] and "Alert" in cards[0]
    assert all("Alert" not in c for c in cards[1:])
    assert page.find_element("id", "view-cards").get_attribute("aria-pressed") == "true"
    shot(page, "cards-desktop")
    page.get(demo.url + "/ui/?view=cards")  # a shared link opens the same view
    wait_for(lambda: page.find_elements("css selector", "#kiosks a.card"), what="cards again")


def test_filters_by_status_location_and_name_live_in_the_url(page, demo):
    from selenium.webdriver.support.ui import Select

    sign_in(page, demo.url, demo.token)
    Select(page.find_element("id", "status")).select_by_value("offline")
    wait_for(lambda: names(page) == ["Kiosk-Floor2"], what="offline only")
    assert "status=offline" in page.current_url
    Select(page.find_element("id", "status")).select_by_value("")
    Select(page.find_element("id", "location")).select_by_visible_text("Building A")
    wait_for(lambda: names(page) == ["Kiosk-Exit"], what="Building A only")
    Select(page.find_element("id", "location")).select_by_value("")
    page.find_element("id", "search").send_keys("CAFE")
    wait_for(lambda: names(page) == ["Kiosk-Cafeteria"], what="search")
    assert "q=CAFE" in page.current_url
    page.find_element("id", "search").send_keys("-nothing")
    wait_for(lambda: page.find_element("id", "empty").is_displayed(), what="no match")
    page.get(demo.url + "/ui/?status=online&location=Building+A+-+Main+Entrance")
    wait_for(lambda: names(page) == ["Kiosk-Entrance"], what="filters from a shared link")


def test_french_texts(page, demo):
    sign_in(page, demo.url, demo.token, path="/ui/?lang=fr")
    wait_for(lambda: text(page, "summary").startswith("3/4 en ligne (75 %)"), what="header")
    floor2 = rows(page)[0]
    assert "Hors ligne depuis 15 minutes" in floor2 and "Il y a 15 min" in floor2
    assert "En ligne" in rows(page)[1] and re.search(r"Il y a \d+ s", rows(page)[1])
    assert page.find_element("tag name", "html").get_attribute("lang") == "fr"
    assert text(page, "sign-out") == "Se déconnecter"
    shot(page, "list-fr-desktop")
    # French runs longer than English: still no sideways scrolling on a phone.
    list_on_a_phone(page, demo.url + "/ui/?lang=fr")
    shot(page, "list-fr-360")
    page.find_element("css selector", "#kiosks li:first-child a").click()
    wait_for(lambda: "/ui/kiosk/" in page.current_url, what="French detail")
    wait_for(lambda: page.find_element("id", "detail").is_displayed(), what="French detail")
    wait_for(lambda: "Hors ligne" in text(page, "detail"), what="French detail text")
    assert no_horizontal_scroll(page)
    shot(page, "detail-fr-360")


def test_french_when_the_browser_prefers_it(page, demo):
    agent = page.execute_script("return navigator.userAgent")
    override = {"userAgent": agent, "acceptLanguage": "fr-FR,fr"}
    page.execute_cdp_cmd("Network.setUserAgentOverride", override)
    try:
        sign_in(page, demo.url, demo.token)
        assert page.execute_script("return navigator.language") == "fr-FR"
        wait_for(lambda: text(page, "summary").startswith("3/4 en ligne"), what="French")
    finally:
        page.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": agent})


def test_detail_view_shows_the_status_and_the_outage_history(page, demo):
    sign_in(page, demo.url, demo.token, path="/ui/?view=cards")
    floor2 = next(k for k in demo.kiosks if k.silent)
    page.find_element("css selector", "#kiosks li:first-child a").click()
    wait_for(lambda: "Kiosk-Floor2" in text(page, "detail"), what="the detail")
    assert page.current_url == f"{demo.url}/ui/kiosk/{floor2.id}?view=cards"
    detail = text(page, "detail")
    assert "Offline" in detail and "Offline for 15 minutes" in detail
    assert "Building C - Floor 2" in detail and "Android/10 - Lenovo Tab M10" in detail
    # Then the outage history (issue 14): availability figures, the 30-day strip, outages.
    wait_for(lambda: "Last outages" in text(page, "detail"), what="history")
    assert "Availability" in text(page, "detail")
    assert page.find_elements("css selector", "#detail ol.strip li.day")
    shot(page, "detail-desktop")
    page.back()
    wait_for(lambda: page.find_elements("css selector", "#kiosks a.card"), what="back to cards")
    page.get(f"{demo.url}/ui/kiosk/9999")
    wait_for(lambda: "No kiosk with this id" in text(page, "detail"), what="unknown kiosk")


def test_keyboard_alone_reaches_a_kiosk_and_switches_views(page, demo):
    from selenium.webdriver.common.keys import Keys

    sign_in(page, demo.url, demo.token)
    for _ in range(30):
        page.switch_to.active_element.send_keys(Keys.TAB)
        if page.switch_to.active_element.get_attribute("id") == "view-cards":
            break
    page.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for(lambda: "view=cards" in page.current_url, what="cards by keyboard")
    for _ in range(30):
        page.switch_to.active_element.send_keys(Keys.TAB)
        if "Kiosk-Floor2" in (page.switch_to.active_element.text or ""):
            break
    page.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for(lambda: "/ui/kiosk/" in page.current_url, what="detail by keyboard")


def list_on_a_phone(page, url: str) -> None:
    """The demo's four kiosks listed at a phone's 360 px, with no sideways scrolling."""
    page.set_window_size(360, 780)
    wait_for(lambda: page.execute_script("return window.innerWidth") <= 360, what="resize")
    page.get(url)
    wait_for(lambda: len(names(page)) == 4, what=f"list at 360 px ({url})")
    assert no_horizontal_scroll(page)


def test_phone_width_screenshots_without_horizontal_scrolling(page, demo):
    sign_in(page, demo.url, demo.token)
    list_on_a_phone(page, demo.url + "/ui/")
    shot(page, "list-360")
    page.get(demo.url + "/ui/?view=cards")
    wait_for(lambda: page.find_elements("css selector", "#kiosks a.card"), what="cards")
    assert no_horizontal_scroll(page)
    shot(page, "cards-360")
    page.find_element("css selector", "#kiosks li:first-child a").click()
    wait_for(lambda: "Last outages" in text(page, "detail"), what="detail with its history")
    assert no_horizontal_scroll(page)
    shot(page, "detail-360")


def test_the_remembered_token_survives_a_new_tab_session(page, demo):
    sign_in(page, demo.url, demo.token, remember=True)
    assert page.execute_script("return localStorage.length") == 1
    page.execute_script("sessionStorage.clear()")
    page.get(demo.url + "/ui/")
    wait_for(lambda: len(names(page)) == 4, what="signed in from localStorage")
    page.find_element("id", "sign-out").click()
    assert page.execute_script("return localStorage.length + sessionStorage.length") == 0
    wait_for(lambda: page.find_element("id", "token").is_displayed(), what="signed out")


def test_a_hostile_kiosk_name_is_text_and_runs_nothing(page, demo):
    from selenium.common.exceptions import NoAlertPresentException

    hostile = "<img src=x onerror=alert(1)>"
    kiosk_id, _ = demo.service.add_kiosk(hostile, "<b>Lobby</b>")
    try:
        sign_in(page, demo.url, demo.token)
        wait_for(lambda: hostile in names(page), what="the hostile name as text")
        assert "<b>Lobby</b>" in "\n".join(rows(page))
        page.get(f"{demo.url}/ui/kiosk/{kiosk_id}")
        wait_for(lambda: hostile in text(page, "detail"), what="the detail")
        assert page.execute_script("return document.querySelectorAll('img, b').length") == 0
        with pytest.raises(NoAlertPresentException):
            page.switch_to.alert.text  # noqa: B018
    finally:
        demo.service.cli("kiosk", "remove", str(kiosk_id), "--yes")


def test_a_failed_refresh_is_shown_and_a_refused_token_returns_to_sign_in(browser, tmp_path):
    with RunningService(tmp_path) as service:
        service.add_kiosk("Kiosk-Entrance", "Building A")
        token = service.add_token()
        sign_in(browser, service.url, token)
        wait_for(lambda: names(browser) == ["Kiosk-Entrance"], what="the fleet")
        assert not browser.find_element("id", "refresh-error").is_displayed()
        service.stop()
        browser.find_element("id", "refresh-now").click()
        banner = wait_for(
            lambda: browser.find_element("id", "refresh-error").text, what="the failure banner"
        )
        assert "Last refresh failed" in banner and "not current" in banner
        assert "stale" in browser.find_element("tag name", "body").get_attribute("class")
        assert names(browser) == ["Kiosk-Entrance"]  # still shown, marked as old
        shot(browser, "failed-refresh-desktop")
        service.start(port=service.port)
        browser.find_element("id", "refresh-now").click()
        wait_for(
            lambda: not browser.find_element("id", "refresh-error").is_displayed(),
            what="recovery",
        )
        service.cli("token", "revoke", "1")
        browser.find_element("id", "refresh-now").click()
        wait_for(lambda: browser.find_element("id", "token").is_displayed(), what="sign-in")
        assert "refused" in text(browser, "sign-in-error")
        assert browser.execute_script("return sessionStorage.length") == 0


def test_ten_thousand_kiosks_render_one_page_quickly(browser, tmp_path):
    """A liveness bound, not a benchmark (bench/ui.py measures): generous seconds."""
    database = f"sqlite:///{tmp_path / 'fleet.db'}"
    token = provision_fleet(database, 10_000, utc_now())
    with RunningService(tmp_path, {"min_heartbeat_interval_seconds": 0}, database) as service:
        _, key = service.add_kiosk("kiosk-moving", "Building 0")
        sign_in(browser, service.url, token)
        first = wait_for(lambda: measure(browser, "kiosk:first-render"), timeout=30)
        assert first < 10_000
        assert len(rows(browser)) == 50  # one page, not 10,001 nodes
        assert text(browser, "page-range") == "1–50 of 10,001"
        # 1,000 silent for 10 min or more, 200 never connected + kiosk-moving.
        assert text(browser, "summary").startswith("8,800/9,800 online (89 %)")
        assert "201 never connected" in text(browser, "summary")
        assert "offline" in rows(browser)[0].lower()  # the longest offline first
        browser.find_element("id", "next").click()
        wait_for(lambda: text(browser, "page-range") == "51–100 of 10,001", what="page 2")
        assert "page=2" in browser.current_url
        service.heartbeat(key)
        browser.find_element("id", "refresh-now").click()
        refresh = wait_for(lambda: measure(browser, "kiosk:refresh"), timeout=30)
        assert refresh < 5_000


def measure(browser: Any, name: str) -> float | None:
    script = "const m = performance.getEntriesByName(arguments[0]); return m[0]?.duration"
    return browser.execute_script(script, name)  # type: ignore[no-any-return]


CALM_CASES = [
    # (status object fields, display state)
    ({"status": "online"}, "online"),
    ({"status": "offline"}, "offline"),
    ({"status": "never_connected", "expected_online": False}, "never_connected"),
    ({"status": "inactive", "expected_online": False}, "inactive"),
    ({"status": "offline", "expected_online": True}, "offline"),
    ({"status": "offline", "expected_online": False, "maintenance_until": None}, "outside_hours"),
    ({"status": "online", "expected_online": False}, "outside_hours"),
    (
        {
            "status": "offline",
            "expected_online": False,
            "maintenance_until": "2026-12-01T08:00:00Z",
        },
        "maintenance",
    ),
]


def test_outside_hours_and_maintenance_are_calm_states_not_failures(page, demo):
    """The expected-hours fields, when the service sends them, take a kiosk out of N/M."""
    documents = [
        {
            "kiosk_id": n,
            "kiosk_name": f"k{n}",
            "location": "A",
            "last_heartbeat_at": "2026-11-30T10:00:00.000000Z",
            **fields,
        }
        for n, (fields, _) in enumerate(CALM_CASES)
    ]
    script = """
      const done = arguments[arguments.length - 1];
      import('/ui/fleet.js').then((f) => {
        const entries = f.toEntries(arguments[0]);
        done({states: entries.map((e) => e.state), summary: f.summarize(entries)});
      });
    """
    sign_in(page, demo.url, demo.token)
    result = page.execute_async_script(script, documents)
    assert result["states"] == [state for _, state in CALM_CASES]
    assert result["summary"]["online"] == 1 and result["summary"]["counted"] == 3
    assert result["summary"]["counts"]["outside_hours"] == 2
    assert result["summary"]["counts"]["maintenance"] == 1


def test_order_is_longest_offline_first_then_by_name(page, demo):
    def doc(n: int, name: str, status: str, last: str | None) -> dict[str, Any]:
        return {
            "kiosk_id": n,
            "kiosk_name": name,
            "location": "A",
            "status": status,
            "last_heartbeat_at": last,
        }

    documents = [
        doc(1, "Écran-Hall", "online", "2026-11-30T10:00:00.000000Z"),
        doc(2, "kiosk-10", "online", "2026-11-30T10:00:00.000000Z"),
        doc(3, "Kiosk-9", "offline", "2026-11-30T09:50:00.000000Z"),
        doc(4, "Kiosk-2", "never_connected", None),
        doc(5, "Zulu", "offline", "2026-11-30T08:00:00.000000Z"),
        doc(6, "abri", "inactive", None),
    ]
    script = """
      const done = arguments[arguments.length - 1];
      import('/ui/fleet.js').then((f) => {
        const sort = f.makeSorter();
        const order = (docs) => sort(f.toEntries(docs)).map((e) => e.doc.kiosk_name);
        done([order(arguments[0]), order(arguments[0].slice().reverse())]);
      });
    """
    sign_in(page, demo.url, demo.token)
    first, again = page.execute_async_script(script, documents)
    assert first == ["Zulu", "Kiosk-9", "abri", "Écran-Hall", "Kiosk-2", "kiosk-10"]
    assert again == first  # the remembered ranks give the same order


def test_a_real_kiosk_outside_its_hours_or_in_maintenance_is_calm_on_the_page(browser, tmp_path):
    """End to end with the service's own expected-hours fields: two kiosks silent for 15
    minutes, one on a schedule closed now, one in maintenance, beside an online one."""
    database = f"sqlite:///{tmp_path / 'kiosks.db'}"
    store = open_store(database)
    now = utc_now()
    closed_day = (now + timedelta(days=2)).strftime("%a")
    store.add_schedule("closed", timezone="UTC", hours=f"{closed_day} 00:00-01:00", now=now)
    ids = {}
    for name in ("Kiosk-Online", "Kiosk-Night", "Kiosk-Repair"):
        kiosk, key = store.add_kiosk(name, "Building A", now=now)
        ids[name] = (kiosk.id, key)
        if name != "Kiosk-Online":
            store.record_heartbeat(kiosk.id, received_at=now - timedelta(minutes=15))
    store.assign_schedule(ids["Kiosk-Night"][0], "closed", now=now)
    store.start_maintenance(
        [ids["Kiosk-Repair"][0]], starts_at=now, ends_at=now + timedelta(hours=2)
    )
    token = store.add_token("page")[1]
    store.close()
    with RunningService(tmp_path, database=database) as service:
        assert service.heartbeat(ids["Kiosk-Online"][1]).status == 200
        sign_in(browser, service.url, token)
        wait_for(lambda: len(names(browser)) == 3, what="the fleet")
        summary = text(browser, "summary")
        assert summary.startswith("1/1 online (100 %)"), summary
        assert "0 offline" in summary and "2 outside hours / maintenance" in summary
        by_name = dict(zip(names(browser), rows(browser), strict=True))
        assert "Outside hours" in by_name["Kiosk-Night"]
        assert "Maintenance" in by_name["Kiosk-Repair"]
        for calm in ("Kiosk-Night", "Kiosk-Repair"):
            assert "Offline" not in by_name[calm] and "⚠" not in by_name[calm], by_name[calm]
