"""The outage history over HTTP: outage list, fleet and kiosk availability, day strip; the
real app on each database, only the clock moves."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import T0
from tests.test_api import beat

# T0 is 10:00. Heartbeats at 10:00 and 10:20 (an outage offline 10:05 -> 10:20), then
# silence: offline again from 10:25, still at 10:40 ("now").
NOW = "2026-11-26T10:40:00.000000Z"


def get(client, token, path, query=""):
    return client.simulate_get(
        path, query_string=query, headers={"Authorization": f"Bearer {token}"}
    )


@pytest.fixture
def history(client, add_kiosk, clock, store):
    kiosk_id, key = add_kiosk()
    assert beat(client, key).status_code == 200
    clock.advance(20 * 60)
    assert beat(client, key).status_code == 200
    clock.advance(20 * 60)
    store.open_outages(now=clock(), online_threshold_seconds=300)
    return kiosk_id


def test_the_outage_list_is_newest_first_with_the_ongoing_one(client, token, history):
    reply = get(client, token, f"/kiosk/{history}/outages", "since=2026-11-26T10:00:00Z")
    assert reply.status_code == 200, reply.text
    assert reply.json == {
        "kiosk_id": history,
        "since": "2026-11-26T10:00:00.000000Z",
        "until": NOW,
        "complete": False,  # history began at the upgrade, after this test's clock
        "outages": [
            {
                "started_at": "2026-11-26T10:20:00.000000Z",
                "offline_at": "2026-11-26T10:25:00.000000Z",
                "ended_at": None,
                "duration_seconds": 1200,
                "downtime_seconds": 900,
                "ongoing": True,
            },
            {
                "started_at": "2026-11-26T10:00:00.000000Z",
                "offline_at": "2026-11-26T10:05:00.000000Z",
                "ended_at": "2026-11-26T10:20:00.000000Z",
                "duration_seconds": 1200,
                "downtime_seconds": 900,
                "ongoing": False,
            },
        ],
    }
    cut = get(client, token, f"/kiosk/{history}/outages", "since=2026-11-26T10:30:00%2B00:00")
    assert [o["downtime_seconds"] for o in cut.json["outages"]] == [600]


def test_fleet_and_kiosk_availability_agree(client, token, history, add_kiosk):
    add_kiosk("Kiosk-New", "Building B")  # never connected: observed nothing
    query = "since=2026-11-26T10:00:00Z"
    fleet = get(client, token, "/kiosk/availability", query).json
    row = {
        "kiosk_id": history,
        "kiosk_name": "Kiosk-Entrance",
        "location": "Building A",
        "availability_ratio": 0.25,  # 30 of 40 minutes down
        "downtime_seconds": 1800,
        "observed_seconds": 2400,
        "unknown_seconds": 0,
        "outages": 2,
        "longest_outage_seconds": 900,
        "mean_outage_seconds": 900,
    }
    assert fleet["fleet"] == {
        "kiosks": 2,
        "availability_ratio": 0.25,
        "downtime_seconds": 1800,
        "observed_seconds": 2400,
        "unknown_seconds": 0,
        "outages": 2,
        "mean_outage_seconds": 900,
    }
    assert fleet["kiosks"][0] == row
    assert fleet["kiosks"][1]["availability_ratio"] is None
    single = get(client, token, f"/kiosk/{history}/availability", query).json
    assert single == {"since": fleet["since"], "until": NOW, "complete": False, **row}
    located = get(client, token, "/kiosk/availability", query + "&location=Building%20B").json
    assert [k["kiosk_name"] for k in located["kiosks"]] == ["Kiosk-New"]


def test_the_day_strip_splits_at_midnight_of_the_report_time_zone(
    make_client, token, add_kiosk, clock, store
):
    client = make_client(report_timezone="Europe/Paris")
    kiosk_id, key = add_kiosk()
    clock.advance(12 * 3600 + 50 * 60)  # 23:50 Paris (22:50 UTC)
    beat(client, key)
    clock.advance(40 * 60)  # 00:30 Paris the next day
    beat(client, key)
    reply = get(client, token, f"/kiosk/{kiosk_id}/availability", "since=2026-11-26&bucket=day")
    assert reply.json["since"] == "2026-11-25T23:00:00.000000Z"
    days = reply.json["days"]
    assert [d["date"] for d in days] == ["2026-11-26", "2026-11-27"]
    # offline 23:55 -> 00:30 Paris: 5 minutes on the first day, 30 on the second
    assert [d["downtime_seconds"] for d in days] == [300, 1800]
    assert [d["observed_seconds"] for d in days] == [600, 1800]
    assert [d["outages"] for d in days] == [1, 1]


def test_the_window_defaults_to_the_last_30_days(client, token, history):
    reply = get(client, token, f"/kiosk/{history}/outages").json
    assert (reply["since"], reply["until"]) == ("2026-10-27T10:40:00.000000Z", NOW)
    assert len(reply["outages"]) == 2


def test_a_window_after_the_upgrade_is_complete(client, token, history, clock, store):
    started = store.history_state().started_at
    clock.now = started + timedelta(days=1)
    query = f"since={(started + timedelta(seconds=1)).isoformat()}".replace("+", "%2B")
    assert get(client, token, "/kiosk/availability", query).json["complete"] is True


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/kiosk/availability", "since=yesterday", "since"),
        ("/kiosk/availability", "until=2026-13-01", "until"),
        ("/kiosk/availability", "since=2026-11-26T10:00:00", "since"),  # no offset
        ("/kiosk/availability", "since=2026-11-26&until=2026-11-26", "since"),
        ("/kiosk/availability", "sinse=2026-11-26", "sinse"),
        ("/kiosk/availability", "since=2026-11-26&since=2026-11-27", "since"),
        ("/kiosk/1/availability", "bucket=week", "bucket"),
        ("/kiosk/1/outages", "location=x", "location"),
    ],
)
def test_a_bad_query_is_a_400_naming_the_field(client, token, history, path, query, field):
    reply = get(client, token, path, query)
    assert reply.status_code == 400, reply.text
    assert reply.json["field"] == field


def test_unknown_kiosks_and_missing_tokens(client, token, history):
    assert get(client, token, "/kiosk/999/outages").status_code == 404
    assert get(client, token, "/kiosk/999/availability").status_code == 404
    assert get(client, "kt_wrong", "/kiosk/availability").status_code == 401
    assert get(client, "kt_wrong", f"/kiosk/{history}/outages").status_code == 401


def test_the_report_command_prints_the_http_document_and_a_table(database_url, store, token):
    """October 2026 in Paris begins 2026-09-30T22:00Z and ends 2026-10-31T23:00Z (DST)."""
    import json
    from datetime import datetime, timezone

    from exporter.config import Settings
    from exporter.history import HistoryService
    from tests.support.service import run_cli
    from tests.test_outage_history import beat as store_beat

    kiosk, key = store.add_kiosk("Kiosk-Entrance", "Building A", now=T0 - timedelta(days=60))
    base = datetime(2026, 10, 10, 10, 0, tzinfo=timezone.utc)
    for minutes in (0, 60, 90):  # offline 10:05 -> 11:00 and 11:05 -> 11:30: 80 minutes
        store_beat(store, kiosk, key, (base - T0).total_seconds() + minutes * 60)
    args = ("report", "--month", "2026-10", "--timezone", "Europe/Paris")
    printed = run_cli(*args, "--format", "json", database=database_url)
    assert printed.returncode == 0, printed.stderr
    document = json.loads(printed.stdout)
    assert (document["since"], document["until"]) == (
        "2026-09-30T22:00:00.000000Z",
        "2026-10-31T23:00:00.000000Z",
    )
    assert document["kiosks"][0]["downtime_seconds"] == 80 * 60
    history = HistoryService(store, Settings(report_timezone="Europe/Paris"), lambda: T0)
    assert document == history.fleet_availability(history.window("2026-10-01", "2026-11-01"), None)
    table = run_cli(*args, database=database_url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[1].split()[:4] == ["id", "name", "location", "availability"]
    assert "1:20:00" in lines[2] and lines[-1].startswith("fleet")
    bad = run_cli("report", "--month", "2026-13", database=database_url)
    assert bad.returncode == 2 and "--month" in bad.stderr


def test_counters_are_exact_and_survive_totals_advance_and_purge(client, token, history, clock):
    """Down 10:05-10:20 and 10:25-10:40, observed 10:00-10:40, two outages: whatever was
    folded into the stored totals or purged, the counters read the same."""
    from exporter.config import Settings
    from exporter.history import HistoryService

    store = client.application.store
    service = HistoryService(store, Settings(), clock)

    def scraped():
        metrics = client.simulate_get("/metrics").text
        return [
            float(line.rsplit(" ", 1)[1])
            for name in ("offline_seconds", "observed_seconds", "outages")
            for line in metrics.splitlines()
            if line.startswith(f"kiosk_{name}_total{{")
        ]

    assert scraped() == [1800.0, 2400.0, 2.0]
    assert "# TYPE kiosk_outages_total counter" in client.simulate_get("/metrics").text
    assert service.advance_totals(clock() - timedelta(minutes=22)) == 1  # mid-outage
    assert scraped() == [1800.0, 2400.0, 2.0]
    assert service.advance_totals(clock() - timedelta(minutes=1)) == 1
    assert store.purge_history(before=clock()) == 1  # the closed outage, held by the totals
    assert scraped() == [1800.0, 2400.0, 2.0]
    clock.advance(60)
    assert scraped() == [1860.0, 2460.0, 2.0]


def test_a_location_limited_token_sees_only_its_kiosks_history(client, store, history, add_kiosk):
    other_id, _ = add_kiosk("Kiosk-Hall", "Building B")
    limited = store.add_token("building-b", locations=["Building B"])[1]
    assert get(client, limited, f"/kiosk/{history}/outages").status_code == 404
    assert get(client, limited, f"/kiosk/{history}/availability").status_code == 404
    assert get(client, limited, f"/kiosk/{other_id}/availability").status_code == 200
    fleet = get(client, limited, "/kiosk/availability").json
    assert [k["kiosk_id"] for k in fleet["kiosks"]] == [other_id]
