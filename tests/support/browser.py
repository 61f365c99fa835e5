"""The real Chromium (Debian's `chromium` + `chromium-driver`) driven by Selenium, headless.

The binaries are named explicitly: Selenium Manager would otherwise try to download a
browser, which does not work offline. Without them the tests skip saying why, except under
CI=true, where they fail (scripts/install-tools installs them).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exporter.keys import hash_secret
from exporter.records import HeartbeatWrite
from exporter.store import open_store

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parent.parent.parent
# Screenshots of every run land here (ignored by git); docs/ keeps one of each view.
OUTPUT = ROOT / "test-output" / "ui"


def require_chromium() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if not missing:
        return
    reason = f"status page tests need {', '.join(missing)} (scripts/install-tools)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser is required)", pytrace=False)
    pytest.skip(reason)


def start_chromium(width: int = 1280, height: int = 900, lang: str = "en-US") -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # required as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--no-first-run",
        f"--window-size={width},{height}",
        f"--lang={lang}",
    ):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": lang})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll until `predicate` is truthy (page content arrives after get() returns)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # element not there yet, stale after a re-render
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}: {last_error}")


def provision_fleet(database_url: str, kiosks: int, now: datetime) -> str:
    """A large mixed fleet through the store, for the page at scale: every 10th kiosk has been
    silent 10 to 130 minutes (offline), every 50th never connected, the rest pinged `now`.
    Returns a back-office token."""
    store = open_store(database_url)
    try:
        created = store.import_kiosks(
            [(f"kiosk-{n:05d}", f"Building {n % 40}") for n in range(kiosks)], now=now
        )
        writes = [
            HeartbeatWrite(
                record.id,
                hash_secret(key),
                now - timedelta(minutes=10 + n % 120) if n % 10 == 0 else now,
                "1.0.0",
                "Android/11 - Samsung Galaxy Tab A8",
            )
            for n, (record, key) in enumerate(created)
            if n % 50 != 1
        ]
        for start in range(0, len(writes), 500):
            store.record_heartbeats(writes[start : start + 500], min_interval_seconds=0)
        return store.add_token("bench", now=now)[1]
    finally:
        store.close()
