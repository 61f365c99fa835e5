"""Which time of each kiosk counts neither as downtime nor as observed: the service not
listening (unknown, from the replicas' liveness) and the kiosk not expected online
(deactivated, outside its hours, in maintenance), judged by expected.py's rule from the event
log as it was then. The history's documents and counters ask it; outages.py does the
arithmetic with what it returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from .expected import expected_intervals, unknown_intervals
from .outages import Exclusions, Interval, Outage, subtract
from .records import (
    KioskEvent,
    KioskRecord,
    LivenessInterval,
    MaintenanceWindow,
    ScheduleVersion,
)

# An outage's life is judged from a little before it began, so a hole that ends exactly at
# its start is seen (and the kiosk gets its grace) whatever window the question names.
REACH_MARGIN = timedelta(days=1)


class ExclusionFacts(Protocol):
    """The store's reads this module needs (exporter.store.Store provides them)."""

    def kiosk_events(
        self, kiosk_id: int, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[KioskEvent]: ...

    def events_since(self, since: datetime) -> dict[int, list[KioskEvent]]: ...

    def maintenance_windows(
        self,
        *,
        kiosk_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[MaintenanceWindow]: ...

    def schedule_versions(self) -> dict[int, list[ScheduleVersion]]: ...


@dataclass(frozen=True)
class FleetExclusions:
    """Each kiosk's Exclusions; `everyone`'s (unknown time alone) for kiosks expected
    throughout."""

    everyone: Exclusions
    by_kiosk: dict[int, Exclusions]

    def of(self, kiosk_id: int) -> Exclusions:
        return self.by_kiosk.get(kiosk_id, self.everyone)


def reach(since: datetime, outages: Mapping[int, Sequence[Outage]]) -> datetime:
    """From when exclusions are needed: the window, and the whole life of every outage that
    overlaps it (an outage's reality is judged over its whole life)."""
    firsts = [found[0].offline_at for found in outages.values() if found]
    return min([since, *firsts]) - REACH_MARGIN


def fleet_exclusions(
    store: ExclusionFacts,
    kiosks: Sequence[KioskRecord],
    since: datetime,
    until: datetime,
    liveness: Sequence[LivenessInterval],
    *,
    one_kiosk: bool,
) -> FleetExclusions:
    """Unknown time (fleet-wide) and each kiosk's not-expected time over [since, until).
    Kiosks expected throughout (active, `always`, no change or window in the range) have no
    entry; kiosks that share hours and have no change of their own share one Exclusions, so
    its merged holes are worked out once."""
    unknown = unknown_intervals(liveness, since, until)
    if one_kiosk:
        kiosk_id = kiosks[0].id
        events = {kiosk_id: store.kiosk_events(kiosk_id, since=since)}
        windows = store.maintenance_windows(kiosk_id=kiosk_id, since=since, until=until)
    else:
        events = store.events_since(since)
        windows = store.maintenance_windows(since=since, until=until)
    by_kiosk: dict[int, list[MaintenanceWindow]] = {}
    for w in windows:
        by_kiosk.setdefault(w.kiosk_id, []).append(w)
    versions = store.schedule_versions()
    everyone = Exclusions(unknown)
    shared: dict[tuple[int | None, bool], Exclusions] = {}
    excluded: dict[int, Exclusions] = {}
    # A scrape walks the whole fleet here: kiosks on `always`, active, with no change or
    # window in the range are left out in one pass.
    concerned = [
        k
        for k in kiosks
        if k.schedule_id is not None or not k.is_active or k.id in events or k.id in by_kiosk
    ]
    for kiosk in concerned:
        own_events, own_windows = events.get(kiosk.id, ()), by_kiosk.get(kiosk.id, ())
        if not own_events and not own_windows:
            key = (kiosk.schedule_id, kiosk.is_active)
            if key not in shared:
                holes = not_expected(kiosk, (), (), versions, since, until)
                shared[key] = Exclusions(unknown, holes) if holes else everyone
            excluded[kiosk.id] = shared[key]
        else:
            holes = not_expected(kiosk, own_events, own_windows, versions, since, until)
            excluded[kiosk.id] = Exclusions(unknown, holes) if holes else everyone
    return FleetExclusions(everyone, excluded)


def not_expected(
    kiosk: KioskRecord,
    events: Sequence[KioskEvent],
    windows: Sequence[MaintenanceWindow],
    versions: Mapping[int, Sequence[ScheduleVersion]],
    since: datetime,
    until: datetime,
) -> list[Interval]:
    """[since, until) minus the kiosk's expected time, as the event log says it was."""
    expected = expected_intervals(
        events=events,
        versions=versions,
        windows=windows,
        is_active=kiosk.is_active,
        schedule_id=kiosk.schedule_id,
        since=since,
        until=until,
    )
    return subtract([(since, until)], expected)
