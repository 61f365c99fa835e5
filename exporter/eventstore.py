"""Persistence of what "expected online" is judged from: schedules and their versions, each
kiosk's schedule, maintenance windows, the kiosk event log and the service's liveness."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .clock import format_utc
from .errors import KioskNotFound, ScheduleConflict, ScheduleNotFound
from .expected import ExpectationFacts
from .records import (
    EventKind,
    KioskEvent,
    LivenessInterval,
    MaintenanceWindow,
    ScheduleRecord,
    ScheduleVersion,
)
from .storebase import require_id, session, storage_errors

# Only an offline kiosk has an offline-while-expected time, and only what happened after its
# last heartbeat can start that time later than the heartbeat does: the join keeps these
# reads to the few kiosks changed while silent, not one row per kiosk ever changed (100,000
# rows would cost a scrape ~1 s).
_SILENT_SINCE = (
    " JOIN kiosks k ON k.id = {at_kiosk} AND k.last_heartbeat_at <= $offline_before"
    " AND {at} > k.last_heartbeat_at"
)
# Changes after which a kiosk's expected time starts afresh.
_RESTARTING_KINDS = (EventKind.ACTIVATED.value, EventKind.SCHEDULE_ASSIGNED.value)


class ExpectationStore:
    """Store methods of the expected-hours rule; Store (store.py) inherits them (one class
    owns the sessions, the connection and the time conversions)."""

    if TYPE_CHECKING:
        _db: Any

        def _to_db(self, moment: datetime) -> Any: ...
        @staticmethod
        def _from_db(value: Any) -> datetime | None: ...
        @staticmethod
        def _to_naive(moment: datetime) -> datetime: ...
        def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]: ...

    # -- the kiosk event log ----------------------------------------------------------------

    def _append_event(
        self,
        kiosk_id: int,
        kind: EventKind | str,
        at: datetime,
        actor: str | None,
        detail: dict[str, Any] | None,
    ) -> None:
        """Inside the caller's session, so a change and its event commit together."""
        self._db.entities["KioskEvent"](
            kiosk_id=kiosk_id,
            at=self._to_naive(at),
            kind=str(getattr(kind, "value", kind)),
            actor=actor,
            detail=None if detail is None else json.dumps(detail, sort_keys=True),
        )

    @storage_errors
    @session
    def append_event(
        self,
        kiosk_id: int,
        kind: EventKind | str,
        *,
        at: datetime,
        actor: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record a change made elsewhere (a key rotation, a rename...) in the event log."""
        self._require_kiosk(kiosk_id)
        self._append_event(kiosk_id, kind, at, actor, detail)

    @storage_errors
    @session
    def kiosk_events(
        self, kiosk_id: int, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[KioskEvent]:
        """A kiosk's events, oldest first; KioskNotFound for an unknown kiosk."""
        self._require_kiosk(kiosk_id)
        return self._events("kiosk_id = $kiosk_id", {"kiosk_id": kiosk_id}, since, until)

    @storage_errors
    @session
    def events_since(self, since: datetime) -> dict[int, list[KioskEvent]]:
        """Every kiosk's events from `since` on, oldest first, by kiosk (for history: the
        later events say what held before them, see expected.expected_intervals)."""
        grouped: dict[int, list[KioskEvent]] = {}
        for event in self._events("1 = 1", {}, since, None):
            grouped.setdefault(event.kiosk_id, []).append(event)
        return grouped

    def _events(
        self,
        where: str,
        params: dict[str, Any],
        since: datetime | None,
        until: datetime | None,
    ) -> list[KioskEvent]:
        where = self._overlapping(where, params, since, until, starts="at", ends="at")
        rows = self._rows(
            "SELECT kiosk_id, at, kind, actor, detail FROM kiosk_event"
            f" WHERE {where} ORDER BY at, id",
            params,
        )
        return [
            KioskEvent(k, self._from_db(at), kind, actor, None if d is None else json.loads(d))  # type: ignore[arg-type]
            for k, at, kind, actor, d in rows
        ]

    def _overlapping(
        self,
        where: str,
        params: dict[str, Any],
        since: datetime | None,
        until: datetime | None,
        *,
        starts: str,
        ends: str,
    ) -> str:
        """`where` narrowed to rows that overlap [since, until) (fills `params`)."""
        if since is not None:
            where += f" AND {ends} >= $since"
            params["since"] = self._to_db(since)
        if until is not None:
            where += f" AND {starts} < $until"
            params["until"] = self._to_db(until)
        return where

    def _require_kiosk(self, kiosk_id: int) -> None:
        require_id(kiosk_id)
        if not self._rows("SELECT id FROM kiosks WHERE id = $k", {"k": kiosk_id}):
            raise KioskNotFound(kiosk_id)

    def _forget_kiosk(self, kiosk_id: int) -> None:
        """A removed kiosk's history goes with it (inside the removal's session)."""
        for table in ("kiosk_event", "maintenance_windows"):
            self._db.execute(f"DELETE FROM {table} WHERE kiosk_id = $k", {"k": kiosk_id})

    def _purge_events(self, cutoff: Any) -> int:
        """Inside purge_history()'s session: events, maintenance windows and liveness
        intervals that ended before `cutoff` (a value for the database). What held before
        the oldest kept event is read from that event (expected.expected_intervals), and
        windows before the cutoff are reported incomplete anyway."""
        deleted = 0
        for table, column in (
            ("kiosk_event", "at"),
            ("maintenance_windows", "ends_at"),
            ("service_liveness", "last_seen_at"),
        ):
            deleted += self._db.execute(
                f"DELETE FROM {table} WHERE {column} < $cutoff", {"cutoff": cutoff}
            ).rowcount
        return int(deleted)

    # -- schedules --------------------------------------------------------------------------

    @storage_errors
    @session
    def add_schedule(
        self, name: str, *, timezone: str, hours: str, now: datetime
    ) -> ScheduleRecord:
        """A new schedule (or one removed before, under the same name, from now on)."""
        found = self._schedule_entity(name)
        if found is not None and self._current_version(found.id).hours is not None:
            raise ScheduleConflict(f"a schedule named {name!r} already exists")
        if found is None:
            found = self._db.entities["Schedule"](name=name, created_at=self._to_naive(now))
            found.flush()
        self._add_version(found.id, now, timezone, hours)
        return self._schedule_record(found.id)

    @storage_errors
    @session
    def update_schedule(
        self,
        name: str,
        *,
        timezone: str | None = None,
        hours: str | None = None,
        now: datetime,
    ) -> ScheduleRecord:
        """New hours or zone from `now` on: the past keeps the version it had."""
        schedule_id = self._live_schedule_id(name)
        current = self._current_version(schedule_id)
        self._add_version(
            schedule_id, now, timezone or current.timezone, hours or current.hours or ""
        )
        return self._schedule_record(schedule_id)

    @storage_errors
    @session
    def remove_schedule(self, name: str, *, now: datetime) -> None:
        """Refused while a kiosk follows it; its versions stay for the history."""
        schedule_id = self._live_schedule_id(name)
        users = self._rows("SELECT COUNT(*) FROM kiosks WHERE schedule_id = $s", {"s": schedule_id})
        if users[0]:
            raise ScheduleConflict(
                f"schedule {name!r} is used by {users[0]} kiosk(s); move them first"
            )
        self._add_version(schedule_id, now, self._current_version(schedule_id).timezone, None)

    @storage_errors
    @session
    def list_schedules(self) -> list[ScheduleRecord]:
        """Schedules in use or usable (not removed), by name."""
        rows = self._rows("SELECT id FROM schedules ORDER BY name")
        records = [self._schedule_record(schedule_id) for schedule_id in rows]
        return [r for r in records if r is not None]

    @storage_errors
    @session
    def schedule_versions(self) -> dict[int, list[ScheduleVersion]]:
        """Every version of every schedule, removed ones included, by schedule id."""
        return self._versions()

    def _versions(self) -> dict[int, list[ScheduleVersion]]:
        grouped: dict[int, list[ScheduleVersion]] = {}
        for schedule_id, valid_from, zone, hours in self._rows(
            "SELECT schedule_id, valid_from, timezone, hours FROM schedule_versions"
            " ORDER BY schedule_id, valid_from, id"
        ):
            version = ScheduleVersion(schedule_id, self._from_db(valid_from), zone, hours)  # type: ignore[arg-type]
            grouped.setdefault(schedule_id, []).append(version)
        return grouped

    def _schedule_entity(self, name: str) -> Any:
        return self._db.entities["Schedule"].get(name=name)

    def _live_schedule_id(self, name: str) -> int:
        found = self._schedule_entity(name)
        if found is None or self._current_version(found.id).hours is None:
            raise ScheduleNotFound(name)
        return int(found.id)

    def _current_version(self, schedule_id: int) -> ScheduleVersion:
        return self._versions_of(schedule_id)[-1]

    def _versions_of(self, schedule_id: int) -> list[ScheduleVersion]:
        rows = self._rows(
            "SELECT valid_from, timezone, hours FROM schedule_versions"
            " WHERE schedule_id = $s ORDER BY valid_from, id",
            {"s": schedule_id},
        )
        return [ScheduleVersion(schedule_id, self._from_db(v), z, h) for v, z, h in rows]  # type: ignore[arg-type]

    def _add_version(
        self, schedule_id: int, now: datetime, timezone: str, hours: str | None
    ) -> None:
        self._db.entities["ScheduleVersion"](
            schedule_id=schedule_id, valid_from=self._to_naive(now), timezone=timezone, hours=hours
        ).flush()

    def _schedule_record(self, schedule_id: int) -> ScheduleRecord | None:
        versions = self._versions_of(schedule_id)
        if not versions or versions[-1].hours is None:
            return None
        entity = self._db.entities["Schedule"][schedule_id]
        users = self._rows("SELECT COUNT(*) FROM kiosks WHERE schedule_id = $s", {"s": schedule_id})
        return ScheduleRecord(
            id=schedule_id,
            name=entity.name,
            timezone=versions[-1].timezone,
            hours=versions[-1].hours,
            created_at=self._from_db(entity.created_at),  # type: ignore[arg-type]
            updated_at=versions[-1].valid_from,
            kiosks=int(users[0]),
        )

    @storage_errors
    @session
    def assign_schedule(
        self, kiosk_id: int, name: str | None, *, now: datetime, actor: str | None = None
    ) -> None:
        """Put a kiosk on a schedule (None: `always`); a change is logged with its time."""
        self._put_on_schedule(kiosk_id, name, now, actor)

    def _put_on_schedule(
        self, kiosk_id: int, name: str | None, now: datetime, actor: str | None
    ) -> None:
        require_id(kiosk_id)
        kiosk = self._db.entities["Kiosk"].get(id=kiosk_id)
        if kiosk is None:
            raise KioskNotFound(kiosk_id)
        schedule_id = None if name is None else self._live_schedule_id(name)
        previous = kiosk.schedule_id
        if previous == schedule_id:
            return
        kiosk.schedule_id = schedule_id
        names = {None: None, schedule_id: name}
        if previous is not None:
            names[previous] = self._db.entities["Schedule"][previous].name
        detail = {
            "schedule_id": schedule_id,
            "schedule": names[schedule_id],
            "previous_schedule_id": previous,
            "previous_schedule": names[previous],
        }
        self._append_event(kiosk_id, EventKind.SCHEDULE_ASSIGNED, now, actor, detail)

    # -- maintenance windows ----------------------------------------------------------------

    @storage_errors
    @session
    def start_maintenance(
        self,
        kiosk_ids: Sequence[int],
        *,
        starts_at: datetime,
        ends_at: datetime,
        reason: str | None = None,
        actor: str | None = None,
    ) -> list[MaintenanceWindow]:
        """A window on each kiosk, all or none; each is logged on its kiosk."""
        windows = []
        for kiosk_id in kiosk_ids:
            self._require_kiosk(kiosk_id)
            window = self._db.entities["MaintenanceWindow"](
                kiosk_id=kiosk_id,
                starts_at=self._to_naive(starts_at),
                ends_at=self._to_naive(ends_at),
                reason=reason,
            )
            window.flush()
            windows.append(MaintenanceWindow(window.id, kiosk_id, starts_at, ends_at, reason))
            detail = {"window_id": window.id, "ends_at": _iso(ends_at), "reason": reason}
            self._append_event(kiosk_id, EventKind.MAINTENANCE_STARTED, starts_at, actor, detail)
        return windows

    @storage_errors
    @session
    def end_maintenance(
        self, kiosk_id: int, *, now: datetime, actor: str | None = None
    ) -> list[MaintenanceWindow]:
        """End the kiosk's windows in progress now; returns them as ended (none: nothing)."""
        self._require_kiosk(kiosk_id)
        ended = []
        for window in self._windows(
            "kiosk_id = $k AND starts_at <= $now AND ends_at > $now",
            {"k": kiosk_id, "now": self._to_db(now)},
        ):
            self._db.entities["MaintenanceWindow"][window.id].ends_at = self._to_naive(now)
            ended.append(
                MaintenanceWindow(window.id, kiosk_id, window.starts_at, now, window.reason)
            )
            detail = {"window_id": window.id, "planned_end": _iso(window.ends_at)}
            self._append_event(kiosk_id, EventKind.MAINTENANCE_ENDED, now, actor, detail)
        return ended

    @storage_errors
    @session
    def maintenance_windows(
        self,
        *,
        kiosk_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[MaintenanceWindow]:
        """Windows overlapping [since, until), by start."""
        where, params = "1 = 1", {}
        if kiosk_id is not None:
            where, params = "kiosk_id = $k", {"k": kiosk_id}
        where = self._overlapping(where, params, since, until, starts="starts_at", ends="ends_at")
        return self._windows(where, params)

    def _windows(self, where: str, params: dict[str, Any]) -> list[MaintenanceWindow]:
        rows = self._rows(
            "SELECT id, kiosk_id, starts_at, ends_at, reason FROM maintenance_windows"
            f" WHERE {where} ORDER BY starts_at, id",
            params,
        )
        from_db = self._from_db
        return [MaintenanceWindow(i, k, from_db(s), from_db(e), r) for i, k, s, e, r in rows]  # type: ignore[arg-type]

    # -- service liveness -------------------------------------------------------------------

    @storage_errors
    @session
    def start_liveness(self, replica: str, *, now: datetime) -> int:
        """A new liveness interval for this replica, from `now`; returns its id."""
        row = self._db.entities["ServiceLiveness"](
            replica=replica[:128], started_at=self._to_naive(now), last_seen_at=self._to_naive(now)
        )
        row.flush()
        return int(row.id)

    @storage_errors
    @session
    def touch_liveness(self, interval_id: int, *, now: datetime) -> None:
        """Extend the interval to `now`: one real write, so a full disk shows."""
        self._db.execute(
            "UPDATE service_liveness SET last_seen_at = $now WHERE id = $i",
            {"now": self._to_db(now), "i": interval_id},
        )

    @storage_errors
    @session
    def liveness_intervals(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[LivenessInterval]:
        """Every replica's intervals overlapping [since, until), by start."""
        return self._liveness(since, until)

    def _liveness(self, since: datetime | None, until: datetime | None) -> list[LivenessInterval]:
        params: dict[str, Any] = {}
        where = self._overlapping(
            "1 = 1", params, since, until, starts="started_at", ends="last_seen_at"
        )
        rows = self._rows(
            "SELECT id, replica, started_at, last_seen_at FROM service_liveness"
            f" WHERE {where} ORDER BY started_at, id",
            params,
        )
        from_db = self._from_db
        return [LivenessInterval(i, r, from_db(s), from_db(seen)) for i, r, s, seen in rows]  # type: ignore[arg-type]

    # -- what a scrape needs ----------------------------------------------------------------

    @storage_errors
    @session
    def expectation_facts(
        self, now: datetime, *, offline_before: datetime, kiosk_id: int | None = None
    ) -> ExpectationFacts:
        """Everything the rule needs at `now` for the fleet (or one kiosk), in five short
        reads whose size follows schedules, maintenance and recent changes, not the fleet's
        size. The latest maintenance end and change are read only where they came after the
        kiosk's last heartbeat, for kiosks silent since `offline_before` (now minus the
        online threshold: the others are online), as nothing else can move the start of an
        offline-while-expected time."""
        params: dict[str, Any] = {
            "now": self._to_db(now),
            "offline_before": self._to_db(offline_before),
        }
        mine = ""
        if kiosk_id is not None:
            mine, params["k"] = " AND kiosk_id = $k", kiosk_id
        open_windows: dict[int, list[MaintenanceWindow]] = {}
        for window in self._windows("ends_at > $now" + mine, dict(params)):
            open_windows.setdefault(window.kiosk_id, []).append(window)
        kinds = ", ".join(f"'{kind}'" for kind in _RESTARTING_KINDS)
        return ExpectationFacts(
            schedule_names=dict(self._rows("SELECT id, name FROM schedules")),
            versions=self._versions(),
            open_windows=open_windows,
            last_maintenance_end=self._latest(
                "SELECT w.kiosk_id, MAX(w.ends_at) FROM maintenance_windows w"
                f"{_SILENT_SINCE.format(at='w.ends_at', at_kiosk='w.kiosk_id')}"
                f" WHERE w.ends_at <= $now{mine.replace('kiosk_id', 'w.kiosk_id')}"
                " GROUP BY w.kiosk_id",
                params,
            ),
            last_change=self._latest(
                "SELECT e.kiosk_id, MAX(e.at) FROM kiosk_event e"
                f"{_SILENT_SINCE.format(at='e.at', at_kiosk='e.kiosk_id')}"
                f" WHERE e.kind IN ({kinds}) AND e.at <= $now"
                f"{mine.replace('kiosk_id', 'e.kiosk_id')} GROUP BY e.kiosk_id",
                params,
            ),
            liveness=self._liveness(None, None),
        )

    def _latest(self, sql: str, params: dict[str, Any]) -> dict[int, datetime]:
        return {k: self._from_db(t) for k, t in self._rows(sql, params)}  # type: ignore[misc]


def _iso(moment: datetime) -> str:
    return str(format_utc(moment))
