"""Persistence of outage history: outage rows, each kiosk's observation start, history state.

A mixin of store.Store (one object owns every session): the heartbeat batch calls
`_record_gaps` inside its own transaction, only for the kiosks whose gap may have ended;
everything else here is one short transaction per public method, returning plain values.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from .outages import Outage, gap_is_outage, offline_at
from .records import HeartbeatWrite
from .storebase import session, storage_errors

_NAMED = re.compile(r"\$(\w+)")


def _replacing(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# The heartbeats a store remembers per kiosk, to skip the gap check on the hot path.
KNOWN_HEARTBEATS_MAX = 1_000_000


@dataclass(frozen=True)
class HistoryState:
    """When history began (the upgrade that introduced it) and up to when it was purged."""

    started_at: datetime
    purged_before: datetime | None
    # Every outage that ended before it has its judged downtime stored (None: none yet).
    judged_through: datetime | None = None

    def complete_from(self) -> datetime:
        return max(self.started_at, self.purged_before or self.started_at)


class KioskHistoryRecord(NamedTuple):
    """Per kiosk: when observation began, and counter totals exact up to `through_at`. A
    NamedTuple, as KioskRecord: a scrape builds one per kiosk."""

    kiosk_id: int
    observed_since: datetime
    through_at: datetime | None
    downtime_us: int
    observed_us: int
    outages: int


class SettledSums(NamedTuple):
    """A kiosk's judged outages wholly inside a window: how many, their downtime and the
    longest, in microseconds."""

    outages: int
    downtime_us: int
    longest_us: int


class FleetWindow(NamedTuple):
    """What a fleet document reads: outages to judge, and sums of those judged already."""

    outages: dict[int, list[Outage]]
    settled: dict[int, SettledSums]


# Outages judged per UPDATE statement (a CASE over their ids).
JUDGEMENTS_PER_STATEMENT = 1000


@dataclass(frozen=True)
class TotalsAdvance:
    """Counter increments of one kiosk from `previous` (None: from observation start) to
    `through_at`, in microseconds."""

    kiosk_id: int
    previous: datetime | None
    through_at: datetime
    downtime_us: int
    observed_us: int
    outages: int


class HistoryQueries:
    """Expects the Store's `_db`, `_to_db`, `_from_db`, `_rows`, `_sqlite` and `_provider`."""

    _db: Any
    _sqlite: bool
    _provider: str
    _filename: str
    _timeout_seconds: float
    _known_heartbeats: dict[int, datetime]

    def _to_db(self, moment: datetime) -> Any: ...  # provided by Store

    @staticmethod
    def _from_db(value: Any) -> datetime | None: ...  # provided by Store

    def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]: ...

    def _purge_events(self, cutoff: Any) -> int: ...  # provided by ExpectationStore

    # -- the hot path: only when a gap may have ended -------------------------------------------

    def _gap_suspects(
        self, writes: Sequence[HeartbeatWrite], threshold_seconds: float
    ) -> list[int]:
        """Kiosks whose previous heartbeat this store does not know to be recent. A stored
        heartbeat only moves forward, so a remembered one younger than the threshold proves
        there was no gap: in steady state no kiosk is a suspect and the batch costs nothing
        more than before."""
        known = self._known_heartbeats
        suspects = []
        for write in writes:
            last = known.get(write.kiosk_id)
            if last is None or gap_is_outage(last, write.received_at, threshold_seconds):
                suspects.append(write.kiosk_id)
        return suspects

    def _previous_heartbeats(self, kiosk_ids: Sequence[int], lock: str) -> dict[int, Any]:
        """The suspects' stored heartbeats, read under the write lock (as _judge_writes)."""
        ids = {f"i{n}": kiosk_id for n, kiosk_id in enumerate(kiosk_ids)}
        rows = self._db.execute(
            "SELECT id, last_heartbeat_at FROM kiosks "
            f"WHERE id IN ({', '.join('$' + name for name in ids)}){lock}",
            ids,
        ).fetchall()
        return {row[0]: self._from_db(row[1]) for row in rows}

    def _record_gaps(
        self,
        writes: Iterable[HeartbeatWrite],
        previous: dict[int, datetime | None],
        threshold_seconds: float,
    ) -> None:
        """Inside the heartbeat transaction: a first heartbeat starts observation, a gap
        that was an outage closes it (or records it whole, if nobody opened it)."""
        for write in writes:
            if write.kiosk_id not in previous:
                continue
            last = previous[write.kiosk_id]
            if last is None:
                self._start_observation(write.kiosk_id, write.received_at)
            elif gap_is_outage(last, write.received_at, threshold_seconds):
                self._end_outage(write.kiosk_id, last, write.received_at, threshold_seconds)

    def _remember_heartbeats(self, writes: Iterable[HeartbeatWrite]) -> None:
        known = self._known_heartbeats
        if len(known) >= KNOWN_HEARTBEATS_MAX:
            known.clear()
        for write in writes:
            known[write.kiosk_id] = write.received_at

    def _start_observation(self, kiosk_id: int, at: datetime) -> None:
        self._db.execute(
            self._insert_ignoring_duplicates(
                "kiosk_history",
                "kiosk_id, observed_since, downtime_us, observed_us, outages",
                "$kiosk_id, $at, 0, 0, 0",
            ),
            {"kiosk_id": kiosk_id, "at": self._to_db(at)},
        )

    def _end_outage(
        self, kiosk_id: int, last: datetime, ended_at: datetime, threshold_seconds: float
    ) -> None:
        close = (
            "UPDATE outages SET ended_at = $ended WHERE kiosk_id = $kiosk_id AND ended_at IS NULL"
        )
        params = {"ended": self._to_db(ended_at), "kiosk_id": kiosk_id}
        if self._db.execute(close, params).rowcount:
            return
        if not self._insert_outage(kiosk_id, last, threshold_seconds, ended_at):
            # A tick opened it meanwhile: its insert was not committed when we looked, and
            # ours waited on the row's key until it was. Close that row; left open, it would
            # go on until the kiosk's next outage (PostgreSQL and MariaDB; SQLite serialises
            # the two transactions).
            self._db.execute(close, params)

    def _insert_outage(
        self,
        kiosk_id: int,
        last: datetime,
        threshold_seconds: float,
        ended_at: datetime | None,
    ) -> int:
        """One outage row; a second replica writing the same gap writes nothing."""
        return int(
            self._db.execute(
                self._insert_ignoring_duplicates(
                    "outages",
                    "kiosk_id, started_at, offline_at, ended_at",
                    "$kiosk_id, $started, $offline, $ended",
                ),
                {
                    "kiosk_id": kiosk_id,
                    "started": self._to_db(last),
                    "offline": self._to_db(offline_at(last, threshold_seconds)),
                    "ended": None if ended_at is None else self._to_db(ended_at),
                },
            ).rowcount
        )

    def _insert_ignoring_duplicates(self, table: str, columns: str, values: str) -> str:
        if self._provider == "mysql":
            return f"INSERT IGNORE INTO {table} ({columns}) VALUES ({values})"
        return f"INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING"

    # -- the liveness tick -------------------------------------------------------------------------

    @storage_errors
    @session
    def open_outages(self, *, now: datetime, online_threshold_seconds: float) -> int:
        """Persist the outage of every active kiosk the status rule calls offline at `now`
        and that has none open yet, with the `offline_at` of the threshold in force now.
        Returns how many were opened (0 when another replica did it first)."""
        cutoff = now - timedelta(seconds=online_threshold_seconds)
        rows = self._db.execute(
            "SELECT k.id, k.last_heartbeat_at FROM kiosks k "
            "WHERE k.is_active = $yes AND k.last_heartbeat_at <= $cutoff AND NOT EXISTS "
            "(SELECT 1 FROM outages o WHERE o.kiosk_id = k.id "
            "AND o.started_at = k.last_heartbeat_at)",
            {"yes": True, "cutoff": self._to_db(cutoff)},
        ).fetchall()
        opened = 0
        for kiosk_id, last in rows:
            last = self._from_db(last)
            if gap_is_outage(last, now, online_threshold_seconds):
                opened += self._insert_outage(kiosk_id, last, online_threshold_seconds, None)
        return opened

    @storage_errors
    @session
    def purge_history(self, *, before: datetime) -> int:
        """Delete outages that ended before `before`, and the kiosk events, maintenance
        windows and liveness intervals older than it; history is complete from then on.
        Returns how many rows went."""
        cutoff = self._to_db(before)
        # Only rows the counters' totals already hold (ended before the kiosk's through_at):
        # a purge never changes kiosk_offline_seconds_total and co.
        deleted = self._db.execute(
            "DELETE FROM outages WHERE ended_at < $cutoff AND ended_at < "
            "(SELECT h.through_at FROM kiosk_history h WHERE h.kiosk_id = outages.kiosk_id)",
            {"cutoff": cutoff},
        ).rowcount + self._purge_events(self._settled_before(before))
        self._db.execute(
            "UPDATE history_state SET purged_before = $cutoff "
            "WHERE purged_before IS NULL OR purged_before < $cutoff",
            {"cutoff": cutoff},
        )
        return int(deleted)

    def _settled_before(self, before: datetime) -> Any:
        """`before` (as a database value), or earlier where a kiosk's counters are not
        folded that far: the facts after its totals' `through_at` are still read."""
        (unfolded,) = self._rows(
            "SELECT MIN(COALESCE(through_at, observed_since)) FROM kiosk_history"
        )
        unfolded = self._from_db(unfolded)
        return self._to_db(before if unfolded is None else min(before, unfolded))

    def advance_totals(self, advances: Sequence[TotalsAdvance], *, chunk: int = 500) -> int:
        """Add each kiosk's increments and move its `through_at`, in short transactions (the
        heartbeat writer waits for none of them long). A row another replica advanced
        meanwhile is left alone: both computed the same totals from the same facts."""
        done = 0
        for first in range(0, len(advances), chunk):
            done += self._advance_chunk(advances[first : first + chunk])
        return done

    @storage_errors
    @session
    def _advance_chunk(self, advances: Sequence[TotalsAdvance]) -> int:
        done = 0
        for a in advances:
            params = {
                "kiosk_id": a.kiosk_id,
                "through": self._to_db(a.through_at),
                "down": a.downtime_us,
                "seen": a.observed_us,
                "outages": a.outages,
            }
            if a.previous is None:
                guard = "through_at IS NULL"
            else:
                guard = "through_at = $previous"
                params["previous"] = self._to_db(a.previous)
            done += self._db.execute(
                "UPDATE kiosk_history SET through_at = $through, "
                "downtime_us = downtime_us + $down, observed_us = observed_us + $seen, "
                f"outages = outages + $outages WHERE kiosk_id = $kiosk_id AND {guard}",
                params,
            ).rowcount
        return done

    # -- reads ----------------------------------------------------------------------------------

    @storage_errors
    @session
    def history_state(self) -> HistoryState:
        ((started, purged, judged),) = self._rows(
            "SELECT started_at, purged_before, judged_through FROM history_state"
        )
        return HistoryState(
            self._from_db(started),  # type: ignore[arg-type]
            self._from_db(purged),
            self._from_db(judged),
        )

    @storage_errors
    @session
    def kiosk_histories(
        self, kiosk_ids: Sequence[int] | None = None
    ) -> dict[int, KioskHistoryRecord]:
        where, params = self._ids_filter("kiosk_id", kiosk_ids)
        from_db = self._from_db
        return {
            row[0]: KioskHistoryRecord(
                row[0],
                from_db(row[1]),
                from_db(row[2]),
                int(row[3]),
                int(row[4]),
                int(row[5]),  # type: ignore[arg-type]
            )
            for row in self._bulk_rows(
                "SELECT kiosk_id, observed_since, through_at, downtime_us, observed_us, outages "
                f"FROM kiosk_history {where}",
                params,
            )
        }

    @storage_errors
    @session
    def counter_rows(self) -> list[tuple[Any, ...]]:
        """Per kiosk: id, when its stored totals end (`through_at`, or `observed_since` before
        the first fold), `observed_since`, downtime_us, observed_us, outages. Times are left
        as the database gives them (time_from_db() reads them): a scrape reads every kiosk,
        most share one `through_at`, and `observed_since` is needed only for a kiosk with
        an outage."""
        return self._bulk_rows(
            "SELECT kiosk_id, COALESCE(through_at, observed_since), observed_since, "
            "downtime_us, observed_us, outages FROM kiosk_history",
            {},
        )

    def time_from_db(self, value: Any) -> datetime | None:
        """A time as counter_rows() returned it, aware UTC."""
        return self._from_db(value)

    @storage_errors
    @session
    def outages_between(
        self, since: datetime, until: datetime, kiosk_ids: Sequence[int] | None = None
    ) -> dict[int, list[Outage]]:
        """Outages that may overlap [since, until): open ones, and those ended at or after
        `since` that went offline before `until`; per kiosk, oldest first."""
        where, params = self._ids_filter("kiosk_id", kiosk_ids, prefix="AND")
        params.update(since=self._to_db(since), until=self._to_db(until))
        found: dict[int, list[Outage]] = {}
        # One statement (one snapshot: an outage closed meanwhile is in one part or the
        # other), in two parts so each uses its index. No ORDER BY: SQLite would then walk
        # the whole (kiosk_id, offline_at) index, a year of history, instead of the
        # ended_at range of the window.
        columns = "SELECT kiosk_id, started_at, offline_at, ended_at FROM outages"
        rows = self._bulk_rows(
            f"{columns} WHERE ended_at >= $since AND offline_at < $until {where} UNION ALL "
            f"{columns} WHERE ended_at IS NULL AND offline_at < $until {where}",
            params,
        )
        for kiosk_id, outage in self._outage_rows(rows):
            found.setdefault(kiosk_id, []).append(outage)
        for outages in found.values():
            outages.sort()  # by started_at: a kiosk's outages never overlap
        return found

    @storage_errors
    @session
    def fleet_window(self, since: datetime, until: datetime) -> FleetWindow:
        """Every kiosk's outages over [since, until) for a fleet document, in one statement
        (so one snapshot: a judgement committed meanwhile cannot count an outage twice):
        the judged ones wholly inside the window (from offline_at to ended_at) summed by
        the database, one row per kiosk, and the others as outages_between() gives them,
        to be judged: those cut by the window's edges, ongoing, or not judged yet."""
        # The first column tells outage rows (0) from sums (1); placeholders are integers,
        # as a NULL's type would not match across the UNION on PostgreSQL.
        rows = self._bulk_rows(
            "SELECT 0, kiosk_id, started_at, offline_at, ended_at, 0, 0, 0 FROM outages "
            "WHERE ended_at >= $since AND offline_at < $until "
            "AND (downtime_us IS NULL OR offline_at < $since OR ended_at > $until) "
            "UNION ALL "
            "SELECT 0, kiosk_id, started_at, offline_at, ended_at, 0, 0, 0 FROM outages "
            "WHERE ended_at IS NULL AND offline_at < $until "
            "UNION ALL "
            "SELECT 1, kiosk_id, NULL, NULL, NULL, COUNT(*), SUM(downtime_us), "
            "MAX(downtime_us) FROM outages WHERE ended_at >= $since AND ended_at <= $until "
            "AND offline_at >= $since AND offline_at < $until AND downtime_us >= 0 "
            "GROUP BY kiosk_id",
            {"since": self._to_db(since), "until": self._to_db(until)},
        )
        settled = {
            row[1]: SettledSums(int(row[5]), int(row[6]), int(row[7])) for row in rows if row[0]
        }
        outages: dict[int, list[Outage]] = {}
        for kiosk_id, outage in self._outage_rows([row[1:5] for row in rows if not row[0]]):
            outages.setdefault(kiosk_id, []).append(outage)
        for found in outages.values():
            found.sort()  # by started_at: a kiosk's outages never overlap
        return FleetWindow(outages, settled)

    @storage_errors
    @session
    def first_outage_end(self) -> datetime | None:
        """When the oldest ended outage ended (None: none has)."""
        (first,) = self._rows("SELECT MIN(ended_at) FROM outages")
        return self._from_db(first)

    @storage_errors
    @session
    def outages_ended_between(
        self, since: datetime, until: datetime
    ) -> list[tuple[int, int, Outage]]:
        """(id, kiosk_id, outage) of the outages that ended in [since, until), to judge."""
        rows = self._bulk_rows(
            "SELECT id, kiosk_id, started_at, offline_at, ended_at FROM outages "
            "WHERE ended_at >= $since AND ended_at < $until",
            {"since": self._to_db(since), "until": self._to_db(until)},
        )
        return [
            (row[0], kiosk, outage)
            for row, (kiosk, outage) in zip(
                rows, self._outage_rows([row[1:] for row in rows]), strict=True
            )
        ]

    def record_judgements(
        self, downtimes: Mapping[int, int], previous: datetime | None, through: datetime
    ) -> None:
        """Store each outage's judged downtime (by outage id; -1: no outage at all), then
        move `judged_through` from `previous` to `through`, in short transactions. A replica
        that did the same meanwhile computed the same values from the same facts."""
        items = sorted(downtimes.items())
        for first in range(0, len(items), JUDGEMENTS_PER_STATEMENT):
            self._store_judgements(items[first : first + JUDGEMENTS_PER_STATEMENT])
        self._move_judged_through(previous, through)

    @storage_errors
    @session
    def _store_judgements(self, items: Sequence[tuple[int, int]]) -> None:
        # One statement per chunk: executemany() sends one UPDATE per row on PostgreSQL and
        # MariaDB. Only integers computed here are inlined.
        cases = " ".join(f"WHEN {int(i)} THEN {int(d)}" for i, d in items)
        ids = ", ".join(str(int(i)) for i, _ in items)
        self._db.execute(
            f"UPDATE outages SET downtime_us = CASE id {cases} END WHERE id IN ({ids})"
        )

    @storage_errors
    @session
    def _move_judged_through(self, previous: datetime | None, through: datetime) -> None:
        params = {"through": self._to_db(through)}
        if previous is None:
            guard = "judged_through IS NULL"
        else:
            guard = "judged_through = $previous"
            params["previous"] = self._to_db(previous)
        self._db.execute(
            f"UPDATE history_state SET judged_through = $through WHERE {guard}", params
        )

    def _outage_rows(self, rows: list[Any]) -> list[tuple[int, Outage]]:
        """(kiosk_id, Outage) of each row, the times converted inline: a fleet document
        reads a few hundred thousand of them, and a call per value was a third of its
        time."""
        new = tuple.__new__
        if not self._sqlite:  # the driver gives naive UTC datetimes
            utc = timezone.utc
            return [
                (
                    k,
                    new(
                        Outage,
                        (s.replace(tzinfo=utc), o.replace(tzinfo=utc), e and e.replace(tzinfo=utc)),
                    ),
                )
                for k, s, o, e in rows
            ]
        parse, z = datetime.fromisoformat, "+00:00"
        return [
            (k, new(Outage, (parse(s + z), parse(o + z), e and parse(e + z))))
            for k, s, o, e in rows
        ]

    def _bulk_rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """A large read. On SQLite through a plain read-only connection of its own: Pony's
        select() decodes every text value in Python (a third of a fleet document's time),
        and a reader of the WAL snapshot waits for no writer."""
        if not self._sqlite:
            return self._rows(sql, params)
        connection = sqlite3.connect(self._filename, timeout=self._timeout_seconds)
        sql = _NAMED.sub(r":\1", sql)
        try:
            try:
                return connection.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "decode" not in str(exc):
                    raise
                # Text that is not UTF-8 (written by another tool): read as Pony reads it,
                # with a replacement character, rather than fail.
                connection.text_factory = _replacing
                return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    @staticmethod
    def _ids_filter(
        column: str, ids: Sequence[int] | None, prefix: str = "WHERE"
    ) -> tuple[str, dict[str, Any]]:
        if ids is None:
            return "", {}
        params = {f"k{n}": kiosk_id for n, kiosk_id in enumerate(ids)} or {"k0": -1}
        return f"{prefix} {column} IN ({', '.join('$' + p for p in params)})", params
