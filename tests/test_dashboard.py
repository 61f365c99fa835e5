"""Structure of the Grafana dashboard and its provisioning files.

No Grafana server can run in CI, and the schema packages do not validate dashboards, so these
checks catch what breaks a dashboard silently: a hard-coded data source uid (empty panels after
import), a `$variable` that does not exist (a query error), overlapping panels, thresholds that
drift from the alert rules, a metric name that is not part of the public interface. Every
query is also run against a real Prometheus in tests/test_dashboard_queries.py.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_PATH = ROOT / "grafana" / "dashboards" / "kiosk-fleet.json"
PROVISIONING = ROOT / "grafana" / "provisioning"
DOCS = ROOT / "docs" / "grafana.md"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_COLUMNS = 24

# The public interface (issues 3 and 4): the only series a dashboard query may read.
PUBLIC_METRICS = frozenset(
    {
        "kiosk_last_heartbeat_timestamp_seconds",
        "kiosk_heartbeat_age_seconds",
        "kiosk_online",
        "kiosk_active",
        "kiosk_info",
        "kiosk_app_version_outdated",
        "kiosk_expected_online",
        "kiosk_maintenance",
        "kiosk_offline_while_expected_seconds",
        "kiosk_fleet_kiosks",
        "kiosk_battery_ratio",
        "kiosk_battery_charging",
        "kiosk_storage_free_bytes",
        "kiosk_storage_size_bytes",
        "kiosk_wifi_signal_dbm",
        "kiosk_boot_time_seconds",
        "kiosk_offline_seconds_total",
        "kiosk_observed_seconds_total",
        "kiosk_outages_total",
        # metrics_per_kiosk: attention's per-location roll-ups (issue 17).
        "kiosk_location_kiosks",
        "kiosk_location_app_version_kiosks",
        "kiosk_location_offline_seconds_total",
        "kiosk_location_observed_seconds_total",
        "kiosk_location_outages_total",
        "kiosk_exporter_heartbeats_total",
        "kiosk_exporter_heartbeats_rejected_total",
        "kiosk_exporter_heartbeat_delay_seconds_bucket",
        "kiosk_exporter_heartbeat_delay_seconds_count",
        "kiosk_exporter_heartbeat_delay_seconds_sum",
        "kiosk_exporter_request_duration_seconds_bucket",
        "kiosk_exporter_request_duration_seconds_count",
        "kiosk_exporter_request_duration_seconds_sum",
        "kiosk_exporter_build_info",
        "up",
        "scrape_duration_seconds",
        "ALERTS",
    }
)
FIXED_RECORDING_RULES = frozenset(
    {"kiosk:fleet_availability:ratio", "location:kiosk_availability:ratio"}
)
FIXED_ALERTS = frozenset(
    {
        "KioskOffline",
        "NoKioskOnline",
        "KioskFleetAvailabilityLow",
        "KioskAppVersionOutdated",
        "KioskExporterDown",
    }
)
STATUS_TEXTS = {
    "0": "Inactive",
    "1": "Online",
    "2": "Never connected",
    "3": "Offline",
    "4": "Outside hours",
    "5": "Maintenance",
}

# Variables Grafana defines itself (https://grafana.com/docs/grafana/latest/dashboards/
# variables/add-template-variables/#global-variables) and the "All" token.
GRAFANA_BUILTINS = frozenset(
    {
        "__all",
        "__auto",
        "__interval",
        "__interval_ms",
        "__rate_interval",
        "__rate_interval_ms",
        "__range",
        "__range_s",
        "__range_ms",
        "__from",
        "__to",
        "__dashboard",
        "__name",
        "__org",
        "__user",
        "__timezone",
        "__field",
        "__series",
        "__value",
        "__data",
        "__url_time_range",
        "timeFilter",
        "__timeFilter",
    }
)
VARIABLE_REFERENCE = re.compile(r"\$\{(\w+)(?:[:.][^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")
_PROMQL_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"bool", "offset", "inf", "nan"}
)
INSTANT_PANELS = frozenset({"stat", "gauge", "bargauge", "table", "piechart"})


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD_PATH.read_text(encoding="utf-8"))
    return dashboard


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Top-level panels plus those tucked inside collapsed rows."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in all_panels(dashboard) if p["type"] not in ("row", "alertlist", "text")]


def panel_by_title(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    matches = [p for p in all_panels(dashboard) if p.get("title") == title]
    assert len(matches) == 1, f"expected one panel titled {title!r}, found {len(matches)}"
    return matches[0]


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def variable_query(variable: dict[str, Any]) -> str:
    """Grafana 10+ stores the query as an object; older exports as a string."""
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


def all_expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression: panel targets and annotations (not label_values() helpers)."""
    exprs = [t["expr"] for p in query_panels(dashboard) for t in p["targets"]]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    return exprs


def walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_strings(item)


def walk_dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from walk_dicts(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_dicts(item)


def metric_names(expr: str) -> set[str]:
    """Series names an expression reads: what is left once strings, label matchers, ranges,
    grouping clauses, variables, functions and keywords are removed. Good enough for the
    dashboard's own queries (no `__name__` matchers, no exotic syntax)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\$\{?\w+\}?", "1", text)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, call = match.groups()
        if not call and name.lower() not in _PROMQL_KEYWORDS:
            names.add(name)
    return names


def rule_documents() -> list[dict[str, Any]]:
    return [
        yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in sorted((ROOT / "rules").glob("*.yml"))
    ]


def rules() -> list[dict[str, Any]]:
    return [
        rule
        for document in rule_documents()
        for group in document.get("groups", [])
        for rule in group.get("rules", [])
    ]


def alert_thresholds(alert: str, pattern: str) -> set[float]:
    """Numbers an alert compares against, e.g. `ratio < 0.9` -> 0.9, from rules/*.yml."""
    found = {
        float(m.group(1))
        for rule in rules()
        if rule.get("alert") == alert
        for m in re.finditer(pattern, rule["expr"])
    }
    assert found, f"no threshold for {alert} in rules/*.yml"
    return found


def threshold_values(thresholds: dict[str, Any]) -> set[float]:
    return {float(s["value"]) for s in thresholds["steps"] if s["value"] is not None}


# -- the file as a whole --------------------------------------------------------------------


def test_dashboard_is_importable_json_with_a_stable_uid() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "kiosk-fleet"
    assert dashboard["title"]
    # Grafana 10.0 writes schema 38, 11.x 39 or later: older would be migrated on load.
    assert dashboard["schemaVersion"] >= 38
    # A numeric id or import inputs would clash with the target instance on import.
    assert dashboard.get("id") is None
    assert "__inputs" not in dashboard and "__requires" not in dashboard


def test_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in all_panels(dashboard)]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), sorted(ids)


def test_target_ref_ids_are_unique_within_each_panel(dashboard: dict[str, Any]) -> None:
    for panel in query_panels(dashboard):
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]


def test_panels_lie_inside_the_24_column_grid(dashboard: dict[str, Any]) -> None:
    for panel in all_panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["y"] >= 0, panel["title"]
        assert pos["w"] > 0 and pos["h"] > 0, panel["title"]
        assert pos["x"] + pos["w"] <= GRID_COLUMNS, panel["title"]


def test_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    def cells(panel: dict[str, Any]) -> set[tuple[int, int]]:
        pos = panel["gridPos"]
        return {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }

    for a, b in itertools.combinations(dashboard["panels"], 2):
        assert not cells(a) & cells(b), f"{a['title']!r} overlaps {b['title']!r}"


def test_every_panel_has_a_title_and_a_description(dashboard: dict[str, Any]) -> None:
    for panel in all_panels(dashboard):
        assert panel.get("title"), panel["id"]
        if panel["type"] != "row":
            assert len(panel.get("description", "")) > 40, panel["title"]


# -- data source and variables --------------------------------------------------------------


def test_every_query_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    for panel in query_panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, (panel["title"], target["refId"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
    for annotation in dashboard["annotations"]["list"]:
        assert annotation["datasource"] == DATASOURCE, annotation["name"]


def test_no_data_source_uid_is_hard_coded_anywhere(dashboard: dict[str, Any]) -> None:
    for node in walk_dicts(dashboard):
        source = node.get("datasource")
        if isinstance(source, dict):
            assert source.get("uid") == "${datasource}", source
        elif isinstance(source, str):
            # The alert list's data source filter: "" means every source.
            assert source in ("", "${datasource}"), source


def test_datasource_variable_offers_prometheus_sources(dashboard: dict[str, Any]) -> None:
    variable = variables(dashboard)["datasource"]
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"
    assert not variable.get("multi") and not variable.get("includeAll")


@pytest.mark.parametrize(
    ("name", "label", "depends_on"),
    [("location", "location", None), ("kiosk", "kiosk_name", "$location")],
)
def test_location_and_kiosk_variables_are_multi_select_label_values(
    dashboard: dict[str, Any], name: str, label: str, depends_on: str | None
) -> None:
    variable = variables(dashboard)[name]
    assert variable["type"] == "query"
    assert variable["multi"] is True and variable["includeAll"] is True
    # ".*" rather than a list of every value: new kiosks show up without a reload, and the
    # query stays short for thousands of kiosks.
    assert variable["allValue"] == ".*"
    query = variable_query(variable)
    # Locations from the roll-ups too: in attention mode a location whose kiosks are all
    # fine has no kiosk_info series.
    selector = r"kiosk_info(\{.*\})?|\{__name__=~\"kiosk_info\|kiosk_location_kiosks\"\}"
    assert re.fullmatch(rf"label_values\(({selector}), {label}\)", query), query
    assert variable["definition"] == query
    if depends_on:
        assert depends_on in query
    # Refreshed on time range change, so kiosks added since the page loaded appear.
    assert variable["refresh"] == 2


def test_variables_are_declared_before_use(dashboard: dict[str, Any]) -> None:
    """Grafana resolves variables in order: a variable may only use those above it."""
    declared: set[str] = set()
    for variable in dashboard["templating"]["list"]:
        used = set(re.findall(r"\$\{?(\w+)", json.dumps(variable.get("query", ""))))
        assert used <= declared, variable["name"]
        declared.add(variable["name"])


def test_every_variable_reference_resolves(dashboard: dict[str, Any]) -> None:
    known = set(variables(dashboard)) | GRAFANA_BUILTINS
    unknown = set()
    for text in walk_strings(dashboard):
        for match in VARIABLE_REFERENCE.finditer(text):
            name = next(g for g in match.groups() if g)
            if name not in known:
                unknown.add(name)
    assert not unknown, f"undefined variables: {sorted(unknown)}"


# -- queries --------------------------------------------------------------------------------


def test_queries_read_only_the_public_metrics_and_existing_recording_rules(
    dashboard: dict[str, Any],
) -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    assert recorded >= FIXED_RECORDING_RULES, "rules/*.yml lacks a fixed recording rule"
    used: set[str] = set()
    for expr in all_expressions(dashboard):
        names = metric_names(expr)
        assert names, expr
        assert names <= PUBLIC_METRICS | recorded, (expr, names - PUBLIC_METRICS - recorded)
        used |= names
    # Availability comes from the recording rules the alerts use, not a re-derivation.
    assert used >= FIXED_RECORDING_RULES


def test_metric_name_extraction_ignores_labels_functions_and_variables() -> None:
    expr = (
        'sum by (le) (rate(a_bucket{x=~"$kiosk"}[$__rate_interval])) * on (job) group_left (v)'
        ' count_values("v", b) and c:d:e > bool 0'
    )
    assert metric_names(expr) == {"a_bucket", "b", "c:d:e"}


def test_rates_use_the_rate_interval_variable(dashboard: dict[str, Any]) -> None:
    rates = 0
    for expr in all_expressions(dashboard):
        for match in re.finditer(r"\b(rate|irate|increase|delta|deriv)\([^\[]*\[([^\]]+)\]", expr):
            if match.group(1) == "increase" and match.group(2) == "$__range":
                continue  # a total over the dashboard's range (the history counters)
            assert match.group(2) == "$__rate_interval", expr
            rates += 1
    assert rates >= 5


def test_histogram_quantiles_aggregate_buckets_by_le(dashboard: dict[str, Any]) -> None:
    found = 0
    for expr in all_expressions(dashboard):
        if "histogram_quantile" in expr:
            found += 1
            assert re.search(r"sum by \((?:[\w, ]*\b)?le\b[\w, ]*\) \(rate\(\w+_bucket\[", expr)
    assert found >= 5


def test_instant_panels_ask_for_one_instant_and_graphs_for_a_range(
    dashboard: dict[str, Any],
) -> None:
    for panel in query_panels(dashboard):
        for target in panel["targets"]:
            instant = panel["type"] in INSTANT_PANELS
            assert target["instant"] is instant, (panel["title"], target["refId"])
            assert target["range"] is not instant, (panel["title"], target["refId"])
            assert target["expr"].strip(), (panel["title"], target["refId"])


# -- specific panels ------------------------------------------------------------------------


def test_header_reads_like_the_back_office_summary(dashboard: dict[str, Any]) -> None:
    """ "3/4 online (75 %)": the counts travel as labels so the stat can print them as text,
    while the value (the ratio) picks the colour."""
    panel = panel_by_title(dashboard, "Kiosks online")
    assert panel["options"]["textMode"] == "name"
    (target,) = panel["targets"]
    assert target["legendFormat"] == "{{online}}/{{total}} online ({{percent}} %)"
    for label in ("online", "total", "percent"):
        assert f'count_values("{label}"' in target["expr"]


@pytest.mark.parametrize(
    "title",
    ["Kiosks online", "Fleet availability", "Availability by location", "Availability over time"],
)
def test_availability_colours_match_the_availability_alert(
    dashboard: dict[str, Any], title: str
) -> None:
    expected = alert_thresholds(
        "KioskFleetAvailabilityLow", r"kiosk:fleet_availability:ratio\s*<\s*([\d.]+)"
    )
    assert expected == {0.5, 0.9}
    panel = panel_by_title(dashboard, title)
    assert threshold_values(panel["fieldConfig"]["defaults"]["thresholds"]) == expected
    assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"


def test_offline_duration_colours_match_the_kiosk_offline_alert(dashboard: dict[str, Any]) -> None:
    expected = alert_thresholds("KioskOffline", r"\)\s*>\s*(\d+)")
    bar = panel_by_title(dashboard, "Offline now: for how long")
    assert threshold_values(bar["fieldConfig"]["defaults"]["thresholds"]) == expected
    table = panel_by_title(dashboard, "Kiosks")
    (override,) = [
        o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "Offline for"
    ]
    (thresholds,) = [p["value"] for p in override["properties"] if p["id"] == "thresholds"]
    assert threshold_values(thresholds) == expected


def status_mapping(properties: list[dict[str, Any]]) -> dict[str, str]:
    (mappings,) = [p["value"] for p in properties if p["id"] == "mappings"]
    return {code: option["text"] for m in mappings for code, option in m["options"].items()}


def test_list_view_table_merges_instant_queries_into_named_columns(
    dashboard: dict[str, Any],
) -> None:
    table = panel_by_title(dashboard, "Kiosks")
    assert [t["id"] for t in table["transformations"]] == ["merge", "organize"]
    refs = {t["refId"] for t in table["targets"]}
    assert all(t["format"] == "table" for t in table["targets"])
    organize = table["transformations"][1]["options"]
    for hidden in ("Time", "job", "instance"):
        assert organize["excludeByName"][hidden] is True
    renamed = organize["renameByName"]
    value_columns = {k.removeprefix("Value #") for k in renamed if k.startswith("Value #")}
    assert value_columns <= refs
    assert set(renamed.values()) >= {
        "Status",
        "Name",
        "Location",
        "Last ping (ago)",
        "App version",
        "Device",
        "Offline for",
    }
    # Overrides match the renamed column names; a typo would silently drop the colouring.
    for override in table["fieldConfig"]["overrides"]:
        assert override["matcher"]["id"] == "byName"
        assert override["matcher"]["options"] in renamed.values()
    (status,) = [
        o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "Status"
    ]
    assert status_mapping(status["properties"]) == STATUS_TEXTS
    (cell,) = [p["value"] for p in status["properties"] if p["id"] == "custom.cellOptions"]
    assert cell["type"] == "color-background"
    assert table["options"]["sortBy"] == [{"displayName": "Status", "desc": True}]


def test_card_view_repeats_one_stat_per_kiosk_with_the_list_views_status(
    dashboard: dict[str, Any],
) -> None:
    cards = [p for p in all_panels(dashboard) if p.get("repeat")]
    assert len(cards) == 1
    (card,) = cards
    assert card["type"] == "stat" and card["repeat"] == "kiosk"
    assert card["repeatDirection"] == "h" and card["title"] == "$kiosk"
    assert card["options"]["colorMode"] == "background"
    defaults = card["fieldConfig"]["defaults"]
    assert {c: o["text"] for m in defaults["mappings"] for c, o in m["options"].items()} == (
        STATUS_TEXTS
    )
    table = panel_by_title(dashboard, "Kiosks")
    assert card["targets"][0]["expr"] == table["targets"][0]["expr"], "one status definition"


def test_alert_list_shows_every_kiosk_alert(dashboard: dict[str, Any]) -> None:
    (panel,) = [p for p in all_panels(dashboard) if p["type"] == "alertlist"]
    options = panel["options"]
    defined = {rule["alert"] for rule in rules() if "alert" in rule}
    assert defined >= FIXED_ALERTS
    # Grafana keeps rules whose name contains alertName, ignoring case.
    needle = options["alertName"].lower()
    assert needle and all(needle in name.lower() for name in defined)
    assert options["stateFilter"]["firing"] is True
    assert options["stateFilter"]["pending"] is True
    assert options["stateFilter"]["normal"] is False
    # Grafana compares this filter with a data source *name* without expanding variables:
    # anything but "" would hide every alert after an import under another name.
    assert options["datasource"] == ""
    assert options["dashboardAlerts"] is False
    assert not options["alertInstanceLabelFilter"], "fleet alerts carry no location label"


def test_alert_annotations_cover_every_alert(dashboard: dict[str, Any]) -> None:
    (annotation,) = dashboard["annotations"]["list"]
    match = re.search(r'alertname=~"([^"]+)"', annotation["expr"])
    assert match
    defined = {rule["alert"] for rule in rules() if "alert" in rule}
    assert set(match.group(1).split("|")) == defined


def test_exporter_health_reads_the_shipped_scrape_job(dashboard: dict[str, Any]) -> None:
    shipped = yaml.safe_load((ROOT / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"] for job in shipped["scrape_configs"]}
    for title in ("Exporter scrape", "Scrape duration"):
        (target,) = panel_by_title(dashboard, title)["targets"]
        job = re.search(r'job="([^"]+)"', target["expr"])
        assert job and job.group(1) in jobs


# -- provisioning and docs ------------------------------------------------------------------


def test_datasource_provisioning_matches_the_shipped_prometheus_config() -> None:
    (path,) = (PROVISIONING / "datasources").glob("*.yml")
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert document["apiVersion"] == 1
    (source,) = document["datasources"]
    assert source["type"] == "prometheus" and source["access"] == "proxy"
    assert source["url"].startswith("http")
    assert source["jsonData"]["manageAlerts"] is True
    # $__rate_interval is derived from this: it must be Prometheus' scrape interval.
    shipped = yaml.safe_load((ROOT / "prometheus.yml").read_text(encoding="utf-8"))
    assert source["jsonData"]["timeInterval"] == shipped["global"]["scrape_interval"]


def test_dashboard_provisioning_points_at_the_documented_folder() -> None:
    (path,) = (PROVISIONING / "dashboards").glob("*.yml")
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    docs = DOCS.read_text(encoding="utf-8")
    assert provider["options"]["path"] in docs
    assert "/etc/grafana/provisioning" in docs


def test_docs_explain_every_panel(dashboard: dict[str, Any]) -> None:
    docs = DOCS.read_text(encoding="utf-8")
    for panel in all_panels(dashboard):
        if panel["type"] != "row":
            title = "Card per kiosk" if panel.get("repeat") else panel["title"]
            assert title in docs, f"docs/grafana.md does not explain {title!r}"
