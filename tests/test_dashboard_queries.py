"""Every PromQL expression of the Grafana dashboard, run against a real Prometheus.

Grafana cannot run here, so this test plays its part: it substitutes the dashboard's variables
the way Grafana does (including the regex escaping of multi-value variables) and sends each
panel's queries, instant or range, to a real Prometheus that loads the shipped rules/*.yml and
scrapes the real service. The fleet reproduces the original design's list view (3 of 4
connected kiosks online) plus a never-connected, an inactive and an outdated kiosk, while a
thread plays the tablets' heartbeats. A query error, a panel without data, or a status column
that disagrees with the service fails the test.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from exporter.store import open_store
from tests.promstack import PrometheusProcess, prometheus_config_for_test
from tests.support.service import RunningService
from tests.test_dashboard import (
    VARIABLE_REFERENCE,
    all_panels,
    load_dashboard,
    query_panels,
    variable_query,
    variables,
)

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parent.parent
SCRAPE_SECONDS = 1
STEP_SECONDS = 1
RANGE_SECONDS = 30
WAIT = 40.0  # seconds; bounds every wait on a loaded CI machine
LATEST_VERSION = "1.2.0"


@dataclass(frozen=True)
class Kiosk:
    """A kiosk of the test fleet and the status code the dashboard must show for it."""

    name: str
    location: str
    # 0 inactive, 1 online, 2 never connected, 3 offline, 4 outside hours, 5 maintenance
    # (the value mappings)
    status_code: int
    app_version: str | None = None


# The original design's list view, with a name that needs regex escaping in Grafana.
FLEET = (
    Kiosk("Entrance", "Building A", 1, LATEST_VERSION),
    Kiosk("Cafeteria", "Building B - Floor 1", 1, "1.1.0"),
    Kiosk("Exit (north)", "Building A", 1, LATEST_VERSION),
    Kiosk("Floor2", "Building C - Floor 2", 3, LATEST_VERSION),
    Kiosk("New", "Building C - Floor 2", 2),
    Kiosk("Retired", "Building B - Floor 1", 0, "1.0.0"),
    # Silent for 15 minutes like Floor2, but outside its hours or in maintenance: calm.
    Kiosk("Night", "Building C - Floor 2", 4, LATEST_VERSION),
    Kiosk("Repair", "Building A", 5, LATEST_VERSION),
)
LOCATIONS = {k.location for k in FLEET}
# Device vitals the online tablets send: Entrance runs on battery, the others charge.
VITALS = {
    "Entrance": {
        "battery_percent": 62.5,
        "battery_charging": False,
        "storage_free_bytes": 8 * 2**30,
        "storage_total_bytes": 32 * 2**30,
        "network": "wifi",
        "wifi_signal_dbm": -61,
        "app_in_foreground": True,
    },
    "Cafeteria": {
        "battery_percent": 100,
        "battery_charging": True,
        "storage_free_bytes": 2**30,
        "storage_total_bytes": 16 * 2**30,
        "network": "ethernet",
    },
}


@dataclass
class Stack:
    """The running service and Prometheus, and when the dashboard's time range ends."""

    prometheus: PrometheusProcess
    service: RunningService

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query, as Grafana sends for stat, table and gauge panels; Grafana gives
        every target of a panel the same time (the table's merge joins rows on it)."""
        body = self.prometheus.get("/api/v1/query", query=expr, time=str(at or time.time()))
        assert body["status"] == "success", body
        assert body["data"]["resultType"] == "vector", body
        return list(body["data"]["result"])

    def query_range(self, expr: str) -> list[dict[str, Any]]:
        """A range query over the dashboard's time range, as Grafana sends for graphs."""
        end = time.time()
        body = self.prometheus.get(
            "/api/v1/query_range",
            query=expr,
            start=str(end - RANGE_SECONDS),
            end=str(end),
            step=str(STEP_SECONDS),
        )
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def label_values(self, query: str) -> list[str]:
        """Grafana's label_values(selector, label) variable query, through the same API."""
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
        assert match, query
        selector, label = match.groups()
        body = self.prometheus.get(f"/api/v1/label/{label}/values", **{"match[]": selector})
        assert body["status"] == "success", body
        return list(body["data"])


def seed(database: str) -> dict[str, tuple[int, str]]:
    """Create the fleet directly in the database; return name -> (id, API key).

    The offline and inactive kiosks get heartbeats from the past through the store (the
    service only accepts heartbeats stamped "now"); the online ones get theirs over HTTP.
    """
    store = open_store(database)
    try:
        created = {}
        now = datetime.now(timezone.utc)
        long_ago = now - timedelta(minutes=15)
        # Open one hour a week, two days from now: closed for the whole test.
        closed_day = (now + timedelta(days=2)).strftime("%a")
        store.add_schedule("closed", timezone="UTC", hours=f"{closed_day} 00:00-01:00", now=now)
        for kiosk in FLEET:
            record, key = store.add_kiosk(kiosk.name, kiosk.location)
            created[kiosk.name] = (record.id, key)
            if kiosk.status_code == 4:
                store.assign_schedule(record.id, "closed", now=now)
            if kiosk.status_code == 5:
                store.start_maintenance(
                    [record.id], starts_at=now, ends_at=now + timedelta(hours=2), reason="test"
                )
            if kiosk.status_code in (0, 3, 4, 5):
                store.record_heartbeat(
                    record.id,
                    received_at=long_ago,
                    app_version=kiosk.app_version,
                    device_info="Android/11 - Samsung Galaxy Tab A8",
                )
            if kiosk.status_code == 0:
                store.set_active(record.id, False)
        return created
    finally:
        store.close()


class Tablets:
    """A thread sending heartbeats for the online kiosks (and one with a wrong key), like the
    tablets would, so that rates, delay and latency histograms have data."""

    def __init__(self, service: RunningService, keys: Mapping[str, str]) -> None:
        self._service = service
        self._keys = keys
        self._stop = threading.Event()
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="tablets", daemon=True)

    def _run(self) -> None:
        versions = {k.name: k.app_version for k in FLEET}
        started = time.monotonic()
        while not self._stop.is_set():
            sent_at = datetime.now(timezone.utc) - timedelta(seconds=0.3)
            for name, key in [*self._keys.items(), ("intruder", "not-a-key")]:
                body = {
                    "app_version": versions.get(name) or "1.0.0",
                    "device_info": "Android/13 - Lenovo Tab M10",
                    "sent_at": sent_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    **VITALS.get(name, {}),
                    "uptime_seconds": 7200 + time.monotonic() - started,
                }
                try:
                    reply = self._service.heartbeat(key, body)
                except OSError as exc:
                    self.errors.append(f"{name}: {exc}")
                    continue
                if (reply.status >= 300) != (name == "intruder"):
                    self.errors.append(f"{name}: HTTP {reply.status} {reply.body[:200]!r}")
            self._stop.wait(0.5)

    def __enter__(self) -> Tablets:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@contextmanager
def running_stack(workdir: Path, **settings: str) -> Iterator[Stack]:
    """The seeded service (`settings` on top of the test's) with its tablets, and a
    Prometheus that loads the shipped rules and scrapes it, once it has some history."""
    database = f"sqlite:///{workdir / 'kiosks.db'}"
    created = seed(database)
    online = {k.name: created[k.name][1] for k in FLEET if k.status_code == 1}
    settings = {
        "online_threshold_seconds": 300,
        "min_heartbeat_interval_seconds": 0,
        "latest_app_version": LATEST_VERSION,
        **settings,
    }
    rule_files = {p.name: p.read_text("utf-8") for p in sorted((ROOT / "rules").glob("*.yml"))}
    assert rule_files, "no rules/*.yml"
    with RunningService(workdir, settings, database) as service, Tablets(service, online) as tab:
        config = prometheus_config_for_test(
            (ROOT / "prometheus.yml").read_text("utf-8"),
            exporter_target=f"127.0.0.1:{service.port}",
            interval=f"{SCRAPE_SECONDS}s",
        )
        with PrometheusProcess(config, rule_files, workdir / "prometheus") as prometheus:
            wait_for_history(prometheus)
            assert not tab.errors, tab.errors
            yield Stack(prometheus, service)
        assert not tab.errors, tab.errors


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One service and one Prometheus for the module: Prometheus 2.42 waits ~5 s before its
    first scrape, and the recording rules need a few evaluations after that."""
    with running_stack(tmp_path_factory.mktemp("dashboard")) as running:
        yield running


def wait_for_history(prometheus: PrometheusProcess) -> None:
    """Until every kind of panel can have data: scrapes, rule evaluations, rates, alerts."""
    for expr in (
        'up{job="kiosk-exporter"} == 1',
        "kiosk:fleet_availability:ratio",
        # Enough evaluations that range queries and rate windows see several points.
        "count_over_time(kiosk:fleet_availability:ratio[1m]) >= 5",
        "sum(rate(kiosk_exporter_heartbeat_delay_seconds_count[4s])) > 0",
        'ALERTS{alertname="KioskOffline", alertstate="firing"}',
        # The history counters move with the service's 5-s liveness records, not each scrape.
        "sum(location:kiosk_observed_seconds:increase1d) > 0",
        f"sum(increase(kiosk_observed_seconds_total[{RANGE_SECONDS}s])) > 0"
        f" or sum(increase(kiosk_location_observed_seconds_total[{RANGE_SECONDS}s])) > 0",
    ):
        prometheus.wait_for_query(expr, timeout=WAIT)


# -- Grafana's variable substitution ---------------------------------------------------------


def grafana_regex_escape(value: str) -> str:
    """What Grafana's Prometheus data source does to each value of a multi-value variable
    (prometheusSpecialRegexEscape): escaped once for the regex, once for the PromQL string."""
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]+?.()|]", lambda m: "\\\\" + m.group(0), value)


def selection(values: list[str] | None) -> str:
    """A multi-value variable as Grafana interpolates it; None is "All" (the allValue)."""
    if values is None:
        return ".*"
    escaped = [grafana_regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def rate_interval() -> int:
    """Grafana's $__rate_interval: max($__interval + scrape interval, 4 * scrape interval)."""
    return max(STEP_SECONDS + SCRAPE_SECONDS, 4 * SCRAPE_SECONDS)


def interpolate(text: str, *, location: str = ".*", kiosk: str = ".*") -> str:
    """Replace every variable; one Grafana would not know raises KeyError."""
    values = {
        "location": location,
        "kiosk": kiosk,
        "datasource": "prometheus",
        "__interval": f"{STEP_SECONDS}s",
        "__interval_ms": str(STEP_SECONDS * 1000),
        "__rate_interval": f"{rate_interval()}s",
        "__range": f"{RANGE_SECONDS}s",
        "__range_s": str(RANGE_SECONDS),
        "__range_ms": str(RANGE_SECONDS * 1000),
    }

    def replace(match: re.Match[str]) -> str:
        return values[next(g for g in match.groups() if g)]

    return VARIABLE_REFERENCE.sub(replace, text)


def has_values(samples: list[dict[str, Any]]) -> bool:
    """True when at least one sample is a number (NaN is what Grafana shows as no data)."""
    for series in samples:
        points = series.get("values") or [series["value"]]
        if any(point[1] not in ("NaN", "+Inf", "-Inf") for point in points):
            return True
    return False


# -- the tests -------------------------------------------------------------------------------

DASHBOARD = load_dashboard()
PANELS = query_panels(DASHBOARD)


def run_panel(stack: Stack, panel: dict[str, Any], **selected: str) -> dict[str, list[Any]]:
    """Each visible target of the panel, as Grafana would send it: refId -> samples."""
    results = {}
    now = time.time()
    for target in panel["targets"]:
        if target.get("hide"):
            continue
        expr = interpolate(target["expr"], **selected)
        instant = target["instant"]
        results[target["refId"]] = stack.query(expr, now) if instant else stack.query_range(expr)
    return results


def grafana_merge(results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Grafana's "merge" transformation (packages/grafana-data .../transformers/merge.ts) on
    table-format frames: the fields present in every frame form the key, and a row joins
    every earlier row of its key that no common field contradicts."""
    frames = [
        [{"Time": s["value"][0], **s["metric"], f"Value #{ref}": s["value"][1]} for s in samples]
        for ref, samples in results.items()
        if samples
    ]
    fields = [set().union(*(row.keys() for row in frame)) for frame in frames]
    # A frame is rectangular: Prometheus omits empty labels, Grafana shows them as "".
    frames = [
        [{f: row.get(f, "") for f in sorted(names)} for row in frame]
        for frame, names in zip(frames, fields, strict=True)
    ]
    key_fields = sorted(set.intersection(*fields))
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for frame in frames:
        for row in frame:
            group = groups.setdefault(tuple(row.get(f) for f in key_fields), [])
            fits = [
                i
                for i, old in enumerate(group)
                if all(old.get(k) in (None, v) for k, v in row.items())
            ]
            for i in fits:
                group[i] = {**group[i], **row}
            if not fits:
                group.append(row)
    return [row for group in groups.values() for row in group]


def grafana_organize(rows: list[dict[str, Any]], options: dict[str, Any]) -> list[dict[str, Any]]:
    """Grafana's "organize" transformation: hide, then rename columns."""
    hidden = {name for name, hide in options["excludeByName"].items() if hide}
    rename = options["renameByName"]
    return [{rename.get(k, k): v for k, v in row.items() if k not in hidden} for row in rows]


def list_view_rows(stack: Stack) -> list[dict[str, Any]]:
    """The list view's rows as Grafana shows them: merged, then organized."""
    table = next(p for p in PANELS if p["title"] == "Kiosks")
    rows = grafana_merge(run_panel(stack, table))
    for transformation in table["transformations"][1:]:
        assert transformation["id"] == "organize"
        rows = grafana_organize(rows, transformation["options"])
    return rows


@pytest.mark.parametrize("panel", PANELS, ids=[p["title"] for p in PANELS])
def test_every_panel_query_runs_and_returns_data_for_the_whole_fleet(
    stack: Stack, panel: dict[str, Any]
) -> None:
    results = run_panel(stack, panel)
    assert any(has_values(samples) for samples in results.values()), (panel["title"], results)


@pytest.mark.parametrize(
    ("location", "kiosk"),
    [
        (["Building A", "Building C - Floor 2"], None),
        (None, ["Exit (north)"]),
        (["Building B - Floor 1"], ["Cafeteria", "Retired"]),
    ],
    ids=["two-locations", "one-kiosk-with-regex-characters", "location-and-kiosks"],
)
def test_every_panel_query_runs_with_a_narrowed_selection(
    stack: Stack, location: list[str] | None, kiosk: list[str] | None
) -> None:
    """No query error when variables hold escaped values, and the filters really filter."""
    for panel in PANELS:
        run_panel(stack, panel, location=selection(location), kiosk=selection(kiosk))
    table = next(p for p in PANELS if p["title"] == "Kiosks")
    status = run_panel(stack, table, location=selection(location), kiosk=selection(kiosk))["A"]
    expected = {
        k.name
        for k in FLEET
        if (location is None or k.location in location) and (kiosk is None or k.name in kiosk)
    }
    assert {s["metric"]["kiosk_name"] for s in status} == expected


def test_template_variable_queries_list_the_fleet(stack: Stack) -> None:
    declared = variables(DASHBOARD)
    locations = stack.label_values(interpolate(variable_query(declared["location"])))
    assert set(locations) == LOCATIONS
    kiosks = stack.label_values(
        interpolate(variable_query(declared["kiosk"]), location=selection(["Building A"]))
    )
    assert set(kiosks) == {k.name for k in FLEET if k.location == "Building A"}


def test_annotation_query_marks_firing_kiosk_alerts(stack: Stack) -> None:
    (annotation,) = DASHBOARD["annotations"]["list"]
    samples = stack.query_range(interpolate(annotation["expr"]))
    assert {s["metric"]["kiosk_name"] for s in samples if "kiosk_name" in s["metric"]} == {"Floor2"}


def test_list_and_card_views_give_each_kiosk_its_true_status(stack: Stack) -> None:
    table = next(p for p in PANELS if p["title"] == "Kiosks")
    (status,) = [t for t in table["targets"] if t["refId"] == "A"]
    samples = stack.query(interpolate(status["expr"]))
    shown = {s["metric"]["kiosk_name"]: int(float(s["value"][1])) for s in samples}
    assert shown == {k.name: k.status_code for k in FLEET}
    # The card panel is repeated per kiosk: $kiosk then holds one escaped name.
    (card,) = [p for p in all_panels(DASHBOARD) if p.get("repeat") == "kiosk"]
    for kiosk in FLEET:
        result = run_panel(stack, card, kiosk=selection([kiosk.name]))
        assert [float(s["value"][1]) for s in result["A"]] == [kiosk.status_code], kiosk
        assert len(result["B"]) == (0 if kiosk.status_code == 2 else 1), kiosk


def test_list_view_table_shows_one_row_per_kiosk_after_the_transformations(
    stack: Stack,
) -> None:
    rows = list_view_rows(stack)
    by_name = {row["Name"]: row for row in rows}
    assert len(rows) == len(by_name) == len(FLEET), rows
    for kiosk in FLEET:
        row = by_name[kiosk.name]
        assert row["Location"] == kiosk.location
        assert int(float(row["Status"])) == kiosk.status_code
        assert ("Offline for" in row) == (kiosk.status_code == 3), row
        assert ("Last ping (ago)" in row) == (kiosk.status_code != 2), row
        assert row["App version"] == (kiosk.app_version or ""), row
        # No version, no verdict: the service leaves kiosk_app_version_outdated out.
        assert ("Outdated" in row) == (kiosk.app_version is not None), row
        assert not {"Time", "job", "instance", "__name__"} & row.keys(), row
    assert float(by_name["Floor2"]["Offline for"]) > 14 * 60
    assert by_name["Cafeteria"]["Outdated"] == "1"


def test_list_view_columns_hold_the_kiosks_facts(stack: Stack) -> None:
    table = next(p for p in PANELS if p["title"] == "Kiosks")
    results = run_panel(stack, table)
    by_name = {
        ref: {s["metric"]["kiosk_name"]: s for s in samples} for ref, samples in results.items()
    }
    ages = {name: float(s["value"][1]) for name, s in by_name["B"].items()}
    assert set(ages) == {k.name for k in FLEET if k.status_code != 2}
    assert all(ages[k.name] < 60 for k in FLEET if k.status_code == 1)
    assert 14 * 60 < ages["Floor2"] < 16 * 60
    info = by_name["C"]
    assert info["Cafeteria"]["metric"]["app_version"] == "1.1.0"
    assert info["Floor2"]["metric"]["device_info"] == "Android/11 - Samsung Galaxy Tab A8"
    assert set(by_name["D"]) == {"Floor2"}, "offline duration only for offline kiosks"
    outdated = {name: float(s["value"][1]) for name, s in by_name["E"].items()}
    assert outdated["Cafeteria"] == 1 and outdated["Entrance"] == 0


def test_vitals_show_in_the_list_view_and_the_most_at_risk_panel(stack: Stack) -> None:
    by_name = {row["Name"]: row for row in list_view_rows(stack)}
    assert float(by_name["Entrance"]["Battery"]) == 0.625
    assert float(by_name["Entrance"]["Storage free"]) == 0.25
    assert float(by_name["Entrance"]["Wi-Fi signal"]) == -61
    assert float(by_name["Entrance"]["Reboots (1h)"]) == 0
    assert float(by_name["Cafeteria"]["Storage free"]) == 1 / 16
    assert "Wi-Fi signal" not in by_name["Cafeteria"], "no signal off Wi-Fi"
    assert "Battery" not in by_name["Floor2"], "no vitals from an offline kiosk"
    risk = run_panel(stack, next(p for p in PANELS if p["title"] == "Kiosks most at risk"))
    assert [s["metric"]["kiosk_name"] for s in risk["A"]] == ["Entrance"], "discharging only"
    assert {s["metric"]["kiosk_name"] for s in risk["B"]} == {"Entrance", "Cafeteria"}


def panel_samples(stack: Stack, title: str) -> list[dict[str, Any]]:
    panel = next(p for p in PANELS if p["title"] == title)
    (samples,) = run_panel(stack, panel).values()
    return samples


def test_header_reads_three_of_four_online(stack: Stack) -> None:
    (sample,) = panel_samples(stack, "Kiosks online")
    labels = sample["metric"]
    assert (labels["online"], labels["total"], labels["percent"]) == ("3", "4", "75")
    assert float(sample["value"][1]) == 0.75
    (gauge,) = panel_samples(stack, "Fleet availability")
    assert float(gauge["value"][1]) == 0.75
    for title in ("Offline", "Never connected", "Inactive"):
        (count,) = panel_samples(stack, title)
        assert float(count["value"][1]) == 1, title


def test_app_version_and_offline_panels_count_the_right_kiosks(stack: Stack) -> None:
    versions = {
        s["metric"]["app_version"]: float(s["value"][1])
        for s in panel_samples(stack, "App versions now")
    }
    assert versions == {LATEST_VERSION: 5, "1.1.0": 1, "1.0.0": 1, "none": 1}
    (outdated,) = panel_samples(stack, "Outdated kiosks")
    assert float(outdated["value"][1]) == 1
    offline = panel_samples(stack, "Offline now: for how long")
    assert [s["metric"]["kiosk_name"] for s in offline] == ["Floor2"]
    unreliable = panel_samples(stack, "Time offline over the dashboard range")
    assert [s["metric"]["kiosk_name"] for s in unreliable] == ["Floor2"]


def test_interpolation_escapes_like_grafana() -> None:
    assert selection(None) == ".*"
    assert selection(["Exit (north)"]) == r"Exit \\(north\\)"
    assert selection(["a.b", "c|d"]) == r"(a\\.b|c\\|d)"
    with pytest.raises(KeyError):
        interpolate("up{x=~'$unknown'}")
