"""Status page at scale in headless Chromium: first render after sign-in and refresh cost.

Prints, for a fleet of --kiosks (default 10,000) on the real server:
- first render: from the sign-in click to the first painted list (wall time, includes the
  request), as the page measures it (performance measure `kiosk:first-render`);
- refresh that changed data: the page's own main-thread block (draw one page and lay it out:
  measure `kiosk:refresh`; fetching, parsing, sorting and filtering run in a Web Worker) and
  Chromium's whole main-thread task time over the refresh (CDP Performance.getMetrics
  TaskDuration: everything the page's thread ran, the worker's messages included);
- refresh answered 304: the same task time;
- the request alone (all-status for the whole fleet, timed from Python);
- peer, in the same tab and run: JSON.parse alone of the same all-status document on the
  main thread, the floor a page that parses on its main thread pays.

    .venv/bin/python bench/ui.py [--kiosks 10000] [--refreshes 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.clock import utc_now  # noqa: E402
from tests.support.browser import provision_fleet, start_chromium, wait_for  # noqa: E402
from tests.support.service import RunningService  # noqa: E402


def task_ms(browser: Any) -> float:
    metrics = browser.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
    return 1000 * next(m["value"] for m in metrics if m["name"] == "TaskDuration")


def measures(browser: Any, name: str) -> list[float]:
    script = f"return performance.getEntriesByName({name!r}).map(e => e.duration)"
    return [float(v) for v in browser.execute_script(script)]


# One script that clicks and waits for the page's mark: polling from here would add
# script tasks of its own to the main thread being measured.
_CLICK_AND_WAIT = """
  const done = arguments[arguments.length - 1];
  const seen = performance.getEntriesByName('kiosk:refresh-checked').length;
  const poll = () => performance.getEntriesByName('kiosk:refresh-checked').length > seen
    ? requestAnimationFrame(() => setTimeout(done, 0)) : setTimeout(poll, 20);
  document.getElementById('refresh-now').click();
  poll();
"""


def refresh(browser: Any) -> float:
    """Click Refresh now; main-thread task time until the answer is handled and painted."""
    before = task_ms(browser)
    browser.execute_async_script(_CLICK_AND_WAIT)
    return task_ms(browser) - before


def peer_parse_ms(browser: Any, token: str) -> float:
    """JSON.parse of the same document in the same tab (the floor for any client)."""
    script = """
      const done = arguments[arguments.length - 1];
      fetch('/kiosk/all-status', {headers: {Authorization: 'Bearer ' + arguments[0]}})
        .then(r => r.text()).then(text => {
          const t0 = performance.now(); JSON.parse(text); done(performance.now() - t0);
        });
    """
    return float(browser.execute_async_script(script, token))


def server_ms(service: RunningService, token: str) -> float:
    """The request alone, from Python: what the server spends building all-status."""
    started = time.perf_counter()
    reply = service.all_status(token)
    assert reply.status == 200
    return 1000 * (time.perf_counter() - started)


def run(kiosks: int, refreshes: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as directory:
        workdir = Path(directory)
        database = f"sqlite:///{workdir / 'ui.db'}"
        started = time.monotonic()
        token = provision_fleet(database, kiosks, utc_now())
        print(f"provisioned {kiosks:,} kiosks in {time.monotonic() - started:.1f} s")
        settings = {"min_heartbeat_interval_seconds": 0}
        with RunningService(workdir, settings, database) as service:
            _, key = service.add_kiosk("kiosk-bench-moving", "Building 0")
            browser = start_chromium()
            try:
                browser.set_script_timeout(30)
                browser.execute_cdp_cmd("Performance.enable", {})
                browser.get(service.url + "/ui/")
                wait_for(lambda: browser.find_element("id", "token").is_displayed())
                browser.find_element("id", "token").send_keys(token)
                before = task_ms(browser)
                browser.find_element("id", "sign-in-button").click()
                wait_for(lambda: measures(browser, "kiosk:first-render"), timeout=60)
                first_render = measures(browser, "kiosk:first-render")[0]
                first_task = task_ms(browser) - before
                rows = browser.execute_script(
                    "return document.querySelectorAll('#kiosks > li').length"
                )
                changed, blocks = [], []
                for _ in range(refreshes):
                    service.heartbeat(key)  # a new fact: the ETag changes
                    changed.append(refresh(browser))
                blocks = measures(browser, "kiosk:refresh")[-refreshes:]
                unchanged = [refresh(browser) for _ in range(refreshes)]
                peer = [peer_parse_ms(browser, token) for _ in range(refreshes)]
                summary = browser.find_element("id", "summary").text.splitlines()[0]
                server = [server_ms(service, token) for _ in range(refreshes)]
            finally:
                browser.quit()
    print(f"page header: {summary}; list items in the DOM: {rows}")
    print(f"first render after sign-in (wall, incl. request): {first_render:7.0f} ms")
    print(f"  of which the request (server, median/max):      {_fmt(server)}")
    print(f"  main-thread task time over it:                  {first_task:7.0f} ms")
    print(f"refresh with new data, page block (median/max):   {_fmt(blocks)}")
    print(f"refresh with new data, main-thread task time:     {_fmt(changed)}")
    print(f"refresh answered 304, main-thread task time:      {_fmt(unchanged)}")
    print(f"peer: JSON.parse alone of the same document:      {_fmt(peer)}")
    ratio = statistics.median(blocks) / statistics.median(peer)
    print(f"page refresh block / main-thread JSON.parse:      {ratio:7.1f} x")


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):7.0f} / {max(values):.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiosks", type=int, default=10_000)
    parser.add_argument("--refreshes", type=int, default=7)
    args = parser.parse_args()
    run(args.kiosks, args.refreshes)


if __name__ == "__main__":
    main()
