"""The /metrics page: gzip on request, and caches that never serve what changed."""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter import vitals
from exporter.collector import FAMILIES, FleetCollector, FleetFamily, KioskFamily
from exporter.config import Settings
from exporter.exposition import FleetText, accepts_gzip
from exporter.renderer import MappedPage
from exporter.store import open_store
from tests.support.http import request
from tests.support.process import open_files
from tests.support.service import RunningService

# Rendering does not depend on the database: SQLite is enough.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def kiosk_samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parse_text(text)
        if family.name.startswith("kiosk_") and not family.name.startswith("kiosk_exporter")
        for s in family.samples
    }


@sqlite_only
def test_metrics_are_gzipped_when_the_scraper_accepts_it(client, store, clock):
    store.add_kiosk("Kiosk-Entrance", "Building A", now=clock())
    plain = client.simulate_get("/metrics")
    packed = client.simulate_get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["vary"]
    assert kiosk_samples(gzip.decompress(packed.content).decode()) == kiosk_samples(plain.text)


@sqlite_only
def test_gzipped_openmetrics_still_ends_with_eof(client):
    reply = client.simulate_get(
        "/metrics",
        headers={"Accept": "application/openmetrics-text", "Accept-Encoding": "br, gzip"},
    )
    assert gzip.decompress(reply.content).endswith(b"# EOF\n")


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("deflate, GZIP;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip;q=nonsense", False),
        ("identity", False),
    ],
)
def test_accept_encoding(header, wanted):
    assert accepts_gzip(header) is wanted


def test_a_second_scrape_shows_every_change_since_the_first(client, store, clock):
    """The identity and line caches are keyed by what they format: a rename, a move, a
    new version, a deactivation, a status change, a removal and a new kiosk all show, on
    every database (each answers its own types: the values compared differ)."""
    ids = []
    for n in range(4):
        kiosk, _ = store.add_kiosk(f"Kiosk-{n}", "Hall", now=clock())
        store.record_heartbeat(kiosk.id, received_at=clock(), app_version="1.0.0")
        ids.append(kiosk.id)
    before = kiosk_samples(client.simulate_get("/metrics").text)
    store.update_kiosk(ids[0], name='Kiosk "zero"', location="Hall\\B")
    store.record_heartbeat(ids[1], received_at=clock(), app_version="2.0.0")
    store.set_active(ids[2], False)
    store.remove_kiosk(ids[3])
    store.add_kiosk("Kiosk-new", "Hall", now=clock())
    clock.advance(600)  # every kiosk still active goes offline
    after = client.simulate_get("/metrics").text
    parsed = kiosk_samples(after)
    assert parsed != before
    names = {dict(labels).get("kiosk_name") for (_, labels) in parsed}
    assert names == {'Kiosk "zero"', "Kiosk-1", "Kiosk-2", "Kiosk-new", None}
    assert "Kiosk-0" not in after and "Kiosk-3" not in after
    info = {dict(labels)["kiosk_name"]: dict(labels) for (n, labels) in parsed if n == "kiosk_info"}
    assert info['Kiosk "zero"']["location"] == "Hall\\B"
    assert info["Kiosk-1"]["app_version"] == "2.0.0"
    online = {
        dict(labels)["kiosk_name"]: v for (n, labels), v in parsed.items() if n == "kiosk_online"
    }
    assert online == {'Kiosk "zero"': 0.0, "Kiosk-1": 0.0, "Kiosk-2": 0.0, "Kiosk-new": 0.0}
    active = {
        dict(labels)["kiosk_name"]: v for (n, labels), v in parsed.items() if n == "kiosk_active"
    }
    assert active["Kiosk-2"] == 0.0
    age = {
        dict(labels)["kiosk_name"]: v
        for (n, labels), v in parsed.items()
        if n == "kiosk_heartbeat_age_seconds"
    }
    assert age["Kiosk-1"] == pytest.approx(timedelta(minutes=10).total_seconds())


def test_what_the_renderer_keeps_never_outlives_what_it_formats(store, clock):
    """After every kind of change, a renderer that kept the previous scrape's lines writes
    the very bytes a new one writes: through the reuse of a whole family (nothing changed),
    the replacement of a few lines (a heartbeat, a rename, a deactivation), and a new
    page (a kiosk removed, every kiosk offline)."""
    ids = []
    for n in range(30):
        kiosk, _ = store.add_kiosk(f"Kiosk-{n:02d}", f"Hall {n % 3}", now=clock())
        store.record_heartbeat(kiosk.id, received_at=clock(), app_version="1.0.0")
        ids.append(kiosk.id)
    collector = FleetCollector(store, Settings(latest_app_version="1.5.0"), clock)
    kept = {False: FleetText(collector.families_wanted), True: FleetText(collector.families_wanted)}

    def scrape() -> str:
        snapshot = collector.snapshot()
        pages = {}
        for openmetrics, text in kept.items():
            page = b"".join(text.render(snapshot, openmetrics))
            fresh = FleetText(collector.families_wanted).render(snapshot, openmetrics)
            assert page == b"".join(fresh)
            pages[openmetrics] = page.decode()
        assert kiosk_samples(pages[False]) == kiosk_samples(pages[True] + "# EOF\n")
        return pages[False]

    scrape()
    clock.advance(5)
    assert 'kiosk_name="Kiosk-07"' in scrape()  # only the ages changed
    store.record_heartbeat(ids[3], received_at=clock(), app_version="2.0.0")
    store.update_kiosk(ids[7], name='Kiosk "seven"', location="Hall\\7")
    store.set_active(ids[9], False)
    page = scrape()
    assert 'kiosk_name="Kiosk-07"' not in page
    assert 'kiosk_name="Kiosk \\"seven\\"",location="Hall\\\\7"' in page
    by_kiosk = {
        (n, dict(k)["kiosk_id"]): (dict(k), v)
        for (n, k), v in kiosk_samples(page).items()
        if n != "kiosk_fleet_kiosks"
    }
    assert by_kiosk["kiosk_info", str(ids[3])][0]["app_version"] == "2.0.0"
    assert by_kiosk["kiosk_app_version_outdated", str(ids[3])][1] == 0.0
    assert by_kiosk["kiosk_app_version_outdated", str(ids[4])][1] == 1.0
    assert by_kiosk["kiosk_active", str(ids[9])][1] == 0.0
    store.remove_kiosk(ids[0])
    assert 'kiosk_name="Kiosk-00"' not in scrape()
    # Vitals: none anywhere so far (those families are skipped whole), then one kiosk's
    # (a few lines replaced), then most kiosks' (formatted anew), then stale everywhere.
    assert "kiosk_battery_ratio{" not in scrape()
    send_vitals(store, ids[5:6], clock(), battery_percent=40, network="wifi")
    page = scrape()
    assert page.count("kiosk_battery_ratio{") == 1 and 'network="wifi"' in page
    send_vitals(store, ids[1:25], clock(), battery_percent=80)
    assert scrape().count("kiosk_battery_ratio{") == 24
    clock.advance(600)
    parsed = kiosk_samples(scrape())
    assert {v for (n, _), v in parsed.items() if n == "kiosk_online"} == {0.0}
    assert not [n for (n, _) in parsed if n == "kiosk_battery_ratio"]


def send_vitals(store, kiosk_ids, at, **values) -> None:
    for kiosk_id in kiosk_ids:
        store.record_heartbeat(kiosk_id, received_at=at, vitals=vitals.snapshot(values, at))


def test_every_family_is_declared_once_with_a_unique_name():
    names = [family.name for family in FAMILIES]
    assert len(names) == len(set(names))
    assert all(isinstance(f, KioskFamily | FleetFamily) for f in FAMILIES)


def renderer_children(pid: int) -> list[int]:
    """The serving process's metrics renderer (multiprocessing's resource tracker aside)."""
    children = [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]
    return [c for c in children if b"exporter.renderer" in Path(f"/proc/{c}/cmdline").read_bytes()]


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_the_served_page_comes_from_a_renderer_process_replaced_when_it_dies(server):
    """serve renders /metrics in a child process (the request thread only waits on a
    pipe); a renderer that dies is replaced at the next scrape, and it ends with serve."""
    _, key = server.add_kiosk("Kiosk-Entrance", "Building A")
    assert server.heartbeat(key).status == 200
    (renderer,) = renderer_children(server.process.pid)
    reply = request("GET", server.url + "/metrics", headers={"Accept-Encoding": "gzip"})
    assert reply.status == 200 and reply.headers["content-encoding"] == "gzip"
    page = gzip.decompress(reply.body).decode()
    assert (
        'kiosk_online{kiosk_id="1",kiosk_name="Kiosk-Entrance",location="Building A"} 1.0' in page
    )
    assert "kiosk_exporter_heartbeats_total 1.0" in page
    os.kill(renderer, signal.SIGKILL)
    assert wait_for(lambda: not Path(f"/proc/{renderer}").exists() or _zombie(renderer))
    again = request("GET", server.url + "/metrics")
    assert again.status == 200 and b'kiosk_name="Kiosk-Entrance"' in again.body
    (replacement,) = renderer_children(server.process.pid)
    assert replacement != renderer
    assert server.stop() == 0
    assert wait_for(lambda: not Path(f"/proc/{replacement}").exists())


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return True


def page_files(pid: int) -> list[str]:
    """The memory files of rendered pages that a process still holds or maps."""
    mapped = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return [name for name in open_files(pid) + mapped if "kiosk-exporter-metrics" in name]


def test_concurrent_scrapes_of_a_large_fleet_each_get_a_whole_page_and_nothing_stays_mapped(
    tmp_path,
):
    """The renderer hands the page over as a shared memory file: scrapes that share one
    render each read it from the start, in blocks (a 3,000-kiosk page is ~3 MB, far more
    than one socket buffer), and once answered no process keeps the page's memory."""
    service = RunningService(tmp_path, {"min_heartbeat_interval_seconds": 0})
    store = open_store(service.database, upgrade=True)
    store.import_kiosks([(f"Kiosk-{n:04d}", f"Building {n % 7}") for n in range(3000)])
    store.close()
    variants = [
        {},
        {"Accept-Encoding": "gzip"},
        {"Accept": "application/openmetrics-text"},
        {"Accept": "application/openmetrics-text", "Accept-Encoding": "gzip"},
    ] * 3
    with service, ThreadPoolExecutor(len(variants)) as pool:
        replies = list(
            pool.map(lambda h: request("GET", service.url + "/metrics", headers=h), variants)
        )
        for reply, headers in zip(replies, variants, strict=True):
            assert reply.status == 200
            body = reply.body
            assert int(reply.headers["content-length"]) == len(body)
            if "Accept-Encoding" in headers:
                body = gzip.decompress(body)
            text = body.decode()
            if "Accept" in headers:
                assert text.endswith("# EOF\n") and text.count("# EOF") == 1
            active = [line for line in text.splitlines() if line.startswith("kiosk_active{")]
            assert len(active) == 3000, headers
        pids = [service.process.pid, *renderer_children(service.process.pid)]
        assert wait_for(lambda: not any(page_files(pid) for pid in pids)), [
            page_files(pid) for pid in pids
        ]


def test_a_page_crosses_to_the_serving_process_as_a_memory_file_each_reader_from_the_start():
    ours, theirs = socket.socketpair()
    renderer, server = Connection(ours.detach()), Connection(theirs.detach())
    pieces = [b"# HELP a\n", b"a 1.0\n" * 50_000, b"b 2.0\n"]
    MappedPage.send(renderer, pieces)
    status, size = server.recv()
    page = MappedPage.receive(server, size)
    assert status == "ok" and len(page) == size == sum(map(len, pieces))
    first, second = page.open(), page.open()
    assert first.read(9) == b"# HELP a\n"
    assert second.read() == b"".join(pieces)  # its own position, from the start
    assert first.read() == b"".join(pieces)[9:]
    renderer.close()
    server.close()


# A renderer whose memory file may not grow past 64 KiB (RLIMIT_FSIZE holds for memfd too;
# SIGXFSZ ignored so that the write fails with EFBIG instead of ending the process).
_LIMITED_RENDERER = """
import resource, signal, socket, sys
from multiprocessing.connection import Connection
from exporter.renderer import MappedPage
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
conn = Connection(int(sys.argv[1]))
MappedPage.send(conn, [b"a 1.0\\n" * 100_000])
MappedPage.send(conn, [b"a 1.0\\n" * 1_000])
"""


def test_a_page_the_host_has_no_memory_for_is_an_error_for_that_scrape_only():
    """A page the memory file cannot hold (here the kernel refuses to let it grow, as it
    would when the shared memory is full) is answered as an error, and the renderer goes
    on to render the next page. Filling the machine's memory for real would starve
    everything else on it; a file-size limit makes the kernel refuse the same write."""
    ours, theirs = socket.socketpair()
    with theirs:
        child = subprocess.Popen(
            [sys.executable, "-c", _LIMITED_RENDERER, str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
        )
    server = Connection(ours.detach())
    try:
        status, detail = server.recv()
        assert status == "error" and "did not fit in memory" in detail, detail
        status, size = server.recv()
        assert status == "ok"
        assert MappedPage.receive(server, size).open().read() == b"a 1.0\n" * 1_000
        assert child.wait(30) == 0
    finally:
        server.close()
        child.kill()
