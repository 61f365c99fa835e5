"""The Grafana dashboard on a service in `metrics_per_kiosk: attention`, against real Prometheus.

The same fleet, tablets and Grafana emulation as test_dashboard_queries.py (all mode); here
only the kiosks that need attention have per-kiosk series: Cafeteria (outdated, storage
under 10%), Floor2 (offline while expected) and New (never connected). Fleet figures must
read as in all mode (from the roll-ups), per-kiosk panels show those three, and the panels
attention mode gives up are named, with the reason, in EMPTY_IN_ATTENTION_MODE.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.test_dashboard_queries import (
    DASHBOARD,
    FLEET,
    LATEST_VERSION,
    LOCATIONS,
    PANELS,
    Stack,
    has_values,
    interpolate,
    list_view_rows,
    run_panel,
    running_stack,
    variable_query,
    variables,
)

pytestmark = pytest.mark.live

SHOWN = {"Cafeteria", "Floor2", "New"}
# Panels that have no data in attention mode with this fleet, and why (docs/grafana.md).
EMPTY_IN_ATTENTION_MODE = {
    # Per-kiosk history counters are not exported (their sums per location are).
    "Availability per kiosk over the dashboard range",
    # Only Entrance is on Wi-Fi, and it needs no attention.
    "Wi-Fi signal",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("dashboard-attention")
    with running_stack(workdir, metrics_per_kiosk="attention") as running:
        yield running


def values_of(stack: Stack, title: str) -> list[dict[str, Any]]:
    panel = next(p for p in PANELS if p["title"] == title)
    (samples,) = run_panel(stack, panel).values()
    return samples


@pytest.mark.parametrize("panel", PANELS, ids=[p["title"] for p in PANELS])
def test_every_panel_query_runs_and_has_data_unless_attention_mode_gives_it_up(
    stack: Stack, panel: dict[str, Any]
) -> None:
    results = run_panel(stack, panel)  # a query error fails here
    has_data = any(has_values(samples) for samples in results.values())
    assert has_data is (panel["title"] not in EMPTY_IN_ATTENTION_MODE), (panel["title"], results)


def test_only_the_kiosks_that_need_attention_have_series(stack: Stack) -> None:
    shown = stack.query(interpolate('kiosk_active{kiosk_name=~".+"}'))
    assert {s["metric"]["kiosk_name"] for s in shown} == SHOWN


def test_fleet_figures_read_as_in_all_mode(stack: Stack) -> None:
    (sample,) = values_of(stack, "Kiosks online")
    labels = sample["metric"]
    assert (labels["online"], labels["total"], labels["percent"]) == ("3", "4", "75")
    (gauge,) = values_of(stack, "Fleet availability")
    assert float(gauge["value"][1]) == 0.75
    for title in ("Offline", "Never connected", "Inactive"):
        (count,) = values_of(stack, title)
        assert float(count["value"][1]) == 1, title
    versions = {
        s["metric"]["app_version"]: float(s["value"][1])
        for s in values_of(stack, "App versions now")
    }
    assert versions == {LATEST_VERSION: 5, "1.1.0": 1, "1.0.0": 1, "none": 1}
    (outdated,) = values_of(stack, "Outdated kiosks")
    assert float(outdated["value"][1]) == 1
    by_location = {
        s["metric"]["location"]
        for s in values_of(stack, "Availability per location over the dashboard range")
    }
    assert by_location and by_location <= LOCATIONS


def test_location_variable_lists_locations_whose_kiosks_are_all_fine(stack: Stack) -> None:
    locations = stack.label_values(interpolate(variable_query(variables(DASHBOARD)["location"])))
    assert set(locations) == LOCATIONS  # Building A has no kiosk shown


def test_list_view_lists_the_kiosks_that_need_attention_with_their_status(stack: Stack) -> None:
    by_name = {row["Name"]: row for row in list_view_rows(stack)}
    assert set(by_name) == SHOWN
    codes = {k.name: k.status_code for k in FLEET}
    for name, row in by_name.items():
        assert int(float(row["Status"])) == codes[name], row
    assert by_name["Cafeteria"]["Outdated"] == "1"
    assert float(by_name["Cafeteria"]["Storage free"]) == 1 / 16
    assert float(by_name["Floor2"]["Offline for"]) > 14 * 60


def test_offline_panels_show_the_offline_kiosk(stack: Stack) -> None:
    offline = values_of(stack, "Offline now: for how long")
    assert [s["metric"]["kiosk_name"] for s in offline] == ["Floor2"]
    unreliable = values_of(stack, "Time offline over the dashboard range")
    assert [s["metric"]["kiosk_name"] for s in unreliable] == ["Floor2"]
