"""Persistence: each public method is one short Pony transaction returning plain records."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from pony.orm import db_session, select
from pony.orm.dbapiprovider import DBException

from . import keys, schema
from .adminstore import ManagementStore
from .clock import utc_now
from .config import DatabaseUrl, Settings, parse_database_url
from .errors import DuplicateName, KioskNotFound, StorageUnavailable, TokenNotFound
from .eventstore import ExpectationStore
from .gate import CallsInFlight
from .history_store import HistoryQueries
from .models import Schema, open_database
from .records import (
    EventKind,
    HeartbeatResult,
    HeartbeatWrite,
    KioskRecord,
    Outcome,
    TokenRecord,
    Vitals,
)
from .storebase import INTEGRITY_ERRORS as _INTEGRITY_ERRORS
from .storebase import SqliteFile
from .storebase import require_id as _require_id
from .storebase import session as _session
from .storebase import storage_errors as _storage_errors
from .vitals import BOOT_TIME_TOLERANCE_SECONDS, VITAL_FIELDS

log = logging.getLogger(__name__)
DEFAULT_THRESHOLD_SECONDS = Settings.online_threshold_seconds

# Writing last_used_at on every back-office call would turn reads into writes.
TOKEN_TOUCH_INTERVAL = timedelta(seconds=60)

_VITAL_COLUMNS = ("vitals_reported_at", *VITAL_FIELDS)
_KIOSK_BASE_COLUMNS = (
    "id, kiosk_name, location, is_active, created_at, last_heartbeat_at, "
    "app_version, device_info, key_prefix, schedule_id"
)
_KIOSK_COLUMNS = f"{_KIOSK_BASE_COLUMNS}, {', '.join(_VITAL_COLUMNS)}, boot_time"
_BOOLEAN_VITALS = tuple(
    Vitals._fields.index(name) for name in ("battery_charging", "app_in_foreground", "screen_on")
)


@functools.lru_cache(maxsize=512)
def _batch_update_sql(size: int, mark: str, with_vitals: int = 0) -> str:
    """One UPDATE for a whole batch of heartbeats (distinct kiosks), in portable SQL with
    the driver's positional placeholder `mark`; _batch_update_args() orders the values.

    Each row's own conditions (key hash, activity, rate limit) sit in the WHERE clause, so
    the statement itself refuses what it must: nothing cached outside can grant a write.
    The first `with_vitals` rows carry a vitals snapshot: it replaces the stored one in the
    same statement, and the boot time follows vitals.BOOT_TIME_TOLERANCE_SECONDS.
    """
    rows = range(size)
    m = mark
    keep = " ".join(f"WHEN {m} THEN coalesce({m}, {{0}})" for _ in rows)
    fresh = f"(last_heartbeat_at IS NULL OR last_heartbeat_at <= {m})"
    guards = " OR ".join(f"(id = {m} AND api_key_hash = {m} AND {fresh})" for _ in rows)
    return (
        "UPDATE kiosks SET "
        f"last_heartbeat_at = CASE id {' '.join(f'WHEN {m} THEN {m}' for _ in rows)} END, "
        f"app_version = CASE id {keep.format('app_version')} END, "
        f"device_info = CASE id {keep.format('device_info')} END"
        f"{_vitals_sql(with_vitals, m)} "
        f"WHERE is_active = {m} AND ({guards})"
    )


def _vitals_sql(size: int, m: str) -> str:
    if not size:
        return ""
    rows = range(size)
    replace = " ".join(f"WHEN {m} THEN {m}" for _ in rows)
    moved = (
        f"boot_time IS NULL OR abs(coalesce({m}, boot_time) - boot_time) > "
        f"{BOOT_TIME_TOLERANCE_SECONDS}"
    )
    boot = " ".join(f"WHEN {m} THEN CASE WHEN {moved} THEN {m} ELSE boot_time END" for _ in rows)
    columns = "".join(
        f", {column} = CASE id {replace} ELSE {column} END" for column in _VITAL_COLUMNS
    )
    return f"{columns}, boot_time = CASE id {boot} ELSE boot_time END"


def _batch_update_args(rows: Sequence[tuple[Any, ...]], snapshots: Sequence[Vitals]) -> list[Any]:
    """Values for _batch_update_sql, from (id, time, version, device, hash, not_after) rows
    whose first len(snapshots) rows carry those (time-converted) snapshots."""
    args: list[Any] = []
    for kiosk_id, at, _, _, _, _ in rows:
        args += (kiosk_id, at)
    for kiosk_id, _, version, _, _, _ in rows:
        args += (kiosk_id, version)
    for kiosk_id, _, _, device, _, _ in rows:
        args += (kiosk_id, device)
    for column in range(len(_VITAL_COLUMNS)):
        for row, snapshot in zip(rows, snapshots, strict=False):
            args += (row[0], snapshot[column])
    for row, snapshot in zip(rows, snapshots, strict=False):
        args += (row[0], snapshot.boot_time, snapshot.boot_time)
    args.append(True)
    for kiosk_id, _, _, _, key_hash, not_after in rows:
        args += (kiosk_id, key_hash, not_after)
    return args


class Store(ManagementStore, ExpectationStore, HistoryQueries):
    """The only owner of database sessions; see STYLE.md 'Short database sessions'."""

    def __init__(self, schema: Schema, url: DatabaseUrl, timeout_seconds: float = 5.0) -> None:
        self._schema = schema
        self._db = schema.db
        self._url = url
        self._provider = url.provider
        self._sqlite = url.provider == "sqlite"
        self._filename = str(url.params.get("filename", ""))
        self._timeout_seconds = float(timeout_seconds)
        # kiosk id -> a heartbeat this store recorded: the gap check's shortcut.
        self._known_heartbeats: dict[int, datetime] = {}
        # SQLite has no FOR UPDATE; Pony's BEGIN IMMEDIATE already holds its write lock.
        self._lock_rows = "" if self._sqlite else " FOR UPDATE"
        self._mark = "?" if schema.db.provider.paramstyle == "qmark" else "%s"
        self.sqlite_file = SqliteFile(url.params["filename"]) if self._sqlite else None
        self.calls = CallsInFlight()

    @property
    def description(self) -> str:
        return self._url.describe()

    def close(self) -> None:
        """Release this thread's connection (Pony keeps one per thread)."""
        self._db.disconnect()

    # -- time conversion: aware UTC outside, naive UTC inside -------------------------------

    def _to_db(self, moment: datetime) -> Any:
        if moment.tzinfo is not timezone.utc:
            moment = moment.astimezone(timezone.utc)
        naive = moment.replace(tzinfo=None)
        # Raw SQL on SQLite compares text: keep the fixed-width form Pony itself writes.
        return naive.isoformat(" ", "microseconds") if self._sqlite else naive

    @staticmethod
    def _from_db(value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite; parsing with the offset is 3x cheaper than replace()
            return datetime.fromisoformat(value + "+00:00")
        return value.replace(tzinfo=timezone.utc)  # type: ignore[no-any-return]

    def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Reads go through select(), never execute(): on SQLite, Pony's execute() and
        get_connection() open a write transaction under a process-wide lock even for a
        SELECT, which queued every read behind the heartbeat writer (a quarter of the CPU
        profile under load). Pony adapts the `$name` placeholders to each driver."""
        return self._db.select(sql, params or {})  # type: ignore[no-any-return]

    def _kiosks(self, where: str = "", params: dict[str, Any] | None = None) -> list[KioskRecord]:
        return self._records(
            self._rows(f"SELECT {_KIOSK_COLUMNS} FROM kiosks {where} ORDER BY id", params)
        )

    @_storage_errors
    @_session
    def fleet_kiosks(self) -> list[KioskRecord]:
        """list_kiosks() for a scrape: on SQLite through a plain read-only connection of its
        own (as the history's large reads), which decodes text in C rather than in a Python
        function per value (Pony's), a third of the read at 100,000 kiosks. It sees only
        committed rows, so it is not for a session that wrote (list_kiosks() is).

        While no kiosk has ever sent vitals, their 13 columns are not read (all NULL: a
        quarter of the read at 100,000 kiosks); the check stops at the first kiosk that has
        some. A kiosk's first vitals written between the two reads show at the next scrape."""
        seen = self._bulk_rows(
            "SELECT 1 FROM kiosks WHERE vitals_reported_at IS NOT NULL LIMIT 1", {}
        )
        columns = _KIOSK_COLUMNS if seen else f"{_KIOSK_BASE_COLUMNS}, NULL"
        return self._records(self._bulk_rows(f"SELECT {columns} FROM kiosks ORDER BY id", {}))

    def _records(self, rows: Iterable[Sequence[Any]]) -> list[KioskRecord]:
        """Kiosk rows as records; on SQLite the times are parsed inline (a scrape reads
        every kiosk: a call per value was a quarter of the read)."""
        vitals, new = self._vitals, tuple.__new__
        records = []
        if self._sqlite:
            parse, z = datetime.fromisoformat, "+00:00"
            created: dict[str, datetime] = {}  # kiosks imported together share the instant
            for row in rows:
                i, n, loc, act, cr, hb, ver, dev, pre, sch = row[:10]
                snapshot = None if row[10] is None else vitals(row)
                heard = None if hb is None else parse(hb + z)
                since = created.get(cr)
                if since is None:
                    since = created[cr] = parse(cr + z)
                fields = (i, n, loc, bool(act), since, heard, ver, dev, pre, snapshot, sch)
                records.append(new(KioskRecord, fields))
            return records
        from_db = self._from_db
        for row in rows:
            i, n, loc, act, cr, hb, ver, dev, pre, sch = row[:10]
            snapshot = None if row[10] is None else vitals(row)
            fields = (i, n, loc, bool(act), from_db(cr), from_db(hb), ver, dev, pre, snapshot, sch)
            records.append(new(KioskRecord, fields))
        return records

    def _vitals(self, row: Sequence[Any]) -> Vitals:
        """The snapshot part of a kiosk row (after its 10 first columns)."""
        values = list(row[10:])
        values[0] = self._from_db(values[0])
        for n in _BOOLEAN_VITALS:  # SQLite and MySQL answer 0/1
            if values[n] is not None:
                values[n] = bool(values[n])
        return Vitals(*values)

    def _token_from_entity(self, token: Any) -> TokenRecord:
        return TokenRecord(
            id=token.id,
            name=token.name,
            created_at=self._from_db(token.created_at),  # type: ignore[arg-type]
            last_used_at=self._from_db(token.last_used_at),
            revoked=token.revoked,
            scope=token.scope,
            locations=tuple(sorted(loc.location for loc in token.locations)),
        )

    # -- health -----------------------------------------------------------------------------

    # -- kiosks: reads ------------------------------------------------------------------------

    @_storage_errors
    @_session
    def list_kiosks(self, location: str | None = None) -> list[KioskRecord]:
        if location is None:
            return self._kiosks()
        return self._kiosks("WHERE location = $location", {"location": location})

    @_storage_errors
    @_session
    def get_kiosk(self, kiosk_id: int) -> KioskRecord:
        _require_id(kiosk_id)
        found = self._kiosks("WHERE id = $kiosk_id", {"kiosk_id": kiosk_id})
        if not found:
            raise KioskNotFound(kiosk_id)
        return found[0]

    @_storage_errors
    @_session
    def find_kiosk_by_key(self, key_hash: str) -> KioskRecord | None:
        found = self._kiosks("WHERE api_key_hash = $key_hash", {"key_hash": key_hash})
        return found[0] if found else None

    # -- kiosks: administration -----------------------------------------------------------------

    def add_kiosk(
        self, name: str, location: str, *, now: datetime | None = None
    ) -> tuple[KioskRecord, str]:
        """Create a kiosk; the API key is returned once and only its hash is kept."""
        return self.import_kiosks([(name, location)], now=now)[0]

    @_storage_errors
    def import_kiosks(
        self,
        rows: Iterable[tuple[str, str]],
        *,
        now: datetime | None = None,
        simulated: bool = False,
        schedules: Sequence[str | None] | None = None,
        actor: str | None = None,
    ) -> list[tuple[KioskRecord, str]]:
        """All kiosks in one transaction: a duplicate anywhere creates none of them, nor does
        an unknown schedule. `simulated` marks them as the simulator's (see
        remove_simulated_kiosks); `schedules`, one per row: a schedule's name or None."""
        rows = list(rows)
        created_at = now or utc_now()
        try:
            with db_session:
                created = [self._create_kiosk(n, loc, created_at, simulated) for n, loc in rows]
                for (kiosk_id, _), name in zip(created, schedules or [], strict=False):
                    if name is not None:
                        self._put_on_schedule(kiosk_id, name, created_at, actor)
        except _INTEGRITY_ERRORS as exc:
            raise DuplicateName(self._duplicate_name(exc, rows)) from None
        by_id = {kiosk.id: kiosk for kiosk in self.list_kiosks()} if len(created) > 1 else {}
        return [(by_id.get(kiosk_id) or self.get_kiosk(kiosk_id), key) for kiosk_id, key in created]

    def _create_kiosk(
        self, name: str, location: str, now: datetime, simulated: bool = False
    ) -> tuple[int, str]:
        key = keys.generate_kiosk_key()
        kiosk = self._schema.Kiosk(
            name=name,
            location=location,
            created_at=self._to_naive(now),
            api_key_hash=keys.hash_secret(key),
            key_prefix=keys.visible_prefix(key),
            is_simulated=simulated,
        )
        kiosk.flush()
        return kiosk.id, key

    @staticmethod
    def _to_naive(moment: datetime) -> datetime:
        return moment.astimezone(timezone.utc).replace(tzinfo=None)

    def _duplicate_name(self, exc: Exception, rows: Iterable[tuple[str, str]]) -> str:
        existing = {kiosk.name for kiosk in self.list_kiosks()}
        names = [name for name, _ in rows]
        for name in names:
            if name in existing or names.count(name) > 1:
                return name
        return str(exc)

    @_storage_errors
    @_session
    def rotate_key(self, kiosk_id: int) -> str:
        """A new key; the old one stops working at the next heartbeat (the write re-checks it)."""
        kiosk = self._kiosk_entity(kiosk_id)
        key = keys.generate_kiosk_key()
        kiosk.api_key_hash = keys.hash_secret(key)
        kiosk.key_prefix = keys.visible_prefix(key)
        return key

    @_storage_errors
    def update_kiosk(
        self, kiosk_id: int, *, name: str | None = None, location: str | None = None
    ) -> KioskRecord:
        """Rename or move a kiosk; its key and history stay."""
        try:
            with db_session:
                kiosk = self._kiosk_entity(kiosk_id)
                if name is not None:
                    kiosk.name = name
                if location is not None:
                    kiosk.location = location
        except _INTEGRITY_ERRORS:
            raise DuplicateName(name or "") from None
        return self.get_kiosk(kiosk_id)

    @_storage_errors
    @_session
    def set_active(
        self,
        kiosk_id: int,
        active: bool,
        *,
        now: datetime | None = None,
        actor: str | None = None,
    ) -> None:
        """Activate or deactivate; a change (not a repeat) goes to the event log with it."""
        kiosk = self._kiosk_entity(kiosk_id)
        if bool(kiosk.is_active) == active:
            return
        kiosk.is_active = active
        kind = EventKind.ACTIVATED if active else EventKind.DEACTIVATED
        self._append_event(kiosk_id, kind, now or utc_now(), actor, None)

    @_storage_errors
    @_session
    def remove_kiosk(self, kiosk_id: int) -> None:
        """The kiosk and its history: its events, maintenance windows and outages go with it."""
        self._kiosk_entity(kiosk_id).delete()
        self._forget_kiosk(kiosk_id)
        for table in ("outages", "kiosk_history"):
            self._db.execute(
                f"DELETE FROM {table} WHERE kiosk_id = $kiosk_id", {"kiosk_id": kiosk_id}
            )

    @_storage_errors
    @_session
    def count_simulated_kiosks(self) -> int:
        return int(self._schema.Kiosk.select(lambda k: k.is_simulated).count())

    @_storage_errors
    @_session
    def remove_simulated_kiosks(self) -> int:
        """Every kiosk `simulate` created, by the flag it set; returns how many went."""
        removed = self._schema.Kiosk.select(lambda k: k.is_simulated).delete(bulk=True)
        return int(removed)

    def _kiosk_entity(self, kiosk_id: int) -> Any:
        _require_id(kiosk_id)
        kiosk = self._schema.Kiosk.get(id=kiosk_id)
        if kiosk is None:
            raise KioskNotFound(kiosk_id)
        return kiosk

    # -- heartbeats -----------------------------------------------------------------------------

    @_storage_errors
    def record_heartbeats(
        self,
        writes: Sequence[HeartbeatWrite],
        *,
        min_interval_seconds: float,
        online_threshold_seconds: float = DEFAULT_THRESHOLD_SECONDS,
    ) -> list[HeartbeatResult]:
        """Record a batch of heartbeats from distinct kiosks in ONE transaction.

        One commit (and fsync) serves every request in the batch. Usually every write is
        valid and one UPDATE settles them all; when the UPDATE changed fewer rows than it
        was given, it is rolled back and each write is judged from its row, read under
        the write lock (BEGIN IMMEDIATE on SQLite, FOR UPDATE elsewhere). A heartbeat that
        ends an outage closes it in the same transaction (history_store._record_gaps).
        """
        if len({w.kiosk_id for w in writes}) != len(writes):
            raise ValueError("a heartbeat batch must hold at most one write per kiosk")
        interval = timedelta(seconds=min_interval_seconds)
        threshold = online_threshold_seconds
        with db_session:
            suspects = self._gap_suspects(writes, threshold)
            previous = self._previous_heartbeats(suspects, self._lock_rows) if suspects else {}
            if self._apply(writes, interval) == len(writes):
                self._record_gaps(writes, previous, threshold)
                results = [HeartbeatResult(Outcome.ACCEPTED)] * len(writes)
                accepted = list(writes)
            else:
                self._db.rollback()
                results, previous = self._judge_writes(writes, interval)
                accepted = [
                    w for w, r in zip(writes, results, strict=True) if r.outcome is Outcome.ACCEPTED
                ]
                if accepted and self._apply(accepted, interval) != len(accepted):
                    # The rows are locked: only a driver or schema surprise gets here. Refuse
                    # the batch (rolled back) rather than answer 200 for a write not made.
                    raise StorageUnavailable("heartbeat batch did not update the rows it judged")
                self._record_gaps(accepted, previous, threshold)
        self._remember_heartbeats(accepted)
        return results

    def _judge_writes(
        self, writes: Sequence[HeartbeatWrite], interval: timedelta
    ) -> tuple[list[HeartbeatResult], dict[int, datetime | None]]:
        """Each write's outcome, and each found kiosk's stored heartbeat (for the gaps)."""
        ids = {f"i{n}": w.kiosk_id for n, w in enumerate(writes)}
        rows = self._db.execute(
            "SELECT id, api_key_hash, is_active, last_heartbeat_at FROM kiosks "
            f"WHERE id IN ({', '.join('$' + name for name in ids)}){self._lock_rows}",
            ids,
        ).fetchall()
        found = {row[0]: row for row in rows}
        results = [self._judge_write(w, found.get(w.kiosk_id), interval) for w in writes]
        return results, {kiosk_id: self._from_db(row[3]) for kiosk_id, row in found.items()}

    def _judge_write(
        self, write: HeartbeatWrite, row: Sequence[Any] | None, interval: timedelta
    ) -> HeartbeatResult:
        if row is None or row[1] != write.key_hash:
            return HeartbeatResult(Outcome.UNKNOWN_KEY)
        if not row[2]:
            return HeartbeatResult(Outcome.INACTIVE)
        previous = self._from_db(row[3])
        if previous is not None and write.received_at - previous < interval:
            return HeartbeatResult(Outcome.RATE_LIMITED, previous_at=previous)
        return HeartbeatResult(Outcome.ACCEPTED)

    def _apply(self, writes: Sequence[HeartbeatWrite], interval: timedelta) -> int:
        """Run the batch UPDATE; returns how many rows it changed.

        Straight to the driver's cursor with a cached statement: Pony's execute() parses
        the `$name` text and evaluates an argument tuple on every call, a third of the
        writer thread's time with batches of 16. The provider's execute() still maps
        driver errors to Pony's (and so to 503s)."""
        to_db = self._to_db
        # Writes with a snapshot first: the statement sets vitals for its first rows only,
        # so a batch without any (most heartbeats) runs the same statement as before.
        writes = sorted(writes, key=lambda w: w.vitals is None)
        snapshots = [
            w.vitals._replace(reported_at=to_db(w.vitals.reported_at)) for w in writes if w.vitals
        ]
        rows = [
            (
                w.kiosk_id,
                to_db(w.received_at),
                w.app_version,
                w.device_info,
                w.key_hash,
                to_db(w.received_at - interval),
            )
            for w in writes
        ]
        sql = _batch_update_sql(len(rows), self._mark, len(snapshots))
        cursor = self._db.get_connection().cursor()
        self._db.provider.execute(cursor, sql, tuple(_batch_update_args(rows, snapshots)))
        return int(cursor.rowcount)

    @_storage_errors
    @_session
    def record_heartbeat(
        self,
        kiosk_id: int,
        *,
        received_at: datetime,
        app_version: str | None = None,
        device_info: str | None = None,
        vitals: Vitals | None = None,
    ) -> None:
        """Set a heartbeat directly (seeding, demos, imports of history): no key, no rate
        limit; a vitals snapshot replaces the stored one, its boot time is taken as is; observation
        starts with it if it is the kiosk's first."""
        kiosk = self._kiosk_entity(kiosk_id)
        kiosk.last_heartbeat_at = self._to_naive(received_at)
        self._known_heartbeats.pop(kiosk_id, None)
        self._start_observation(kiosk_id, received_at)
        if app_version is not None:
            kiosk.app_version = app_version
        if device_info is not None:
            kiosk.device_info = device_info
        if vitals is not None:
            kiosk.vitals_reported_at = self._to_naive(vitals.reported_at)
            for name in VITAL_FIELDS:
                setattr(kiosk, name, getattr(vitals, name))
            if vitals.boot_time is not None:
                kiosk.boot_time = vitals.boot_time

    # -- back-office tokens ------------------------------------------------------------------------

    @_storage_errors
    @_session
    def add_token(
        self,
        name: str,
        *,
        scope: str = "read",
        locations: Iterable[str] = (),
        now: datetime | None = None,
    ) -> tuple[TokenRecord, str]:
        """A new token, limited to `locations` when any are given. Names of live tokens are
        unique, so `token list` says whose token is whose: checked here rather than by an
        index, since databases from before may hold duplicates, which keep working (`token
        list` warns about them)."""
        if self._schema.Token.exists(name=name, revoked=False):
            raise DuplicateName(name, "back-office token")
        secret = keys.generate_token()
        token = self._schema.Token(
            name=name,
            token_hash=keys.hash_secret(secret),
            key_prefix=keys.visible_prefix(secret),
            created_at=self._to_naive(now or utc_now()),
            scope=scope,
        )
        for location in sorted(set(locations)):
            self._schema.TokenLocation(token=token, location=location)
        token.flush()
        return self._token_from_entity(token), secret

    @_storage_errors
    @_session
    def list_tokens(self) -> list[TokenRecord]:
        tokens = select(t for t in self._schema.Token).order_by(lambda t: t.id)
        return [self._token_from_entity(t) for t in tokens]

    @_storage_errors
    @_session
    def revoke_token(self, token_id: int) -> None:
        token = self._schema.Token.get(id=token_id)
        if token is None:
            raise TokenNotFound(token_id)
        token.revoked = True

    @_storage_errors
    @_session
    def authenticate_token(self, secret: str, *, now: datetime) -> TokenRecord | None:
        token = self._schema.Token.get(token_hash=keys.hash_secret(secret))
        if token is None or token.revoked:
            return None
        last_used = self._from_db(token.last_used_at)
        if last_used is None or now - last_used >= TOKEN_TOUCH_INTERVAL:
            token.last_used_at = self._to_naive(now)
        return self._token_from_entity(token)


def open_store(
    database: str | DatabaseUrl, *, timeout_seconds: float = 5.0, upgrade: bool = False
) -> Store:
    """Bind a new Database for this caller: Pony's bind() works once per Database object.

    The schema must be current first (schema.require_current: a new SQLite file is
    migrated, anything else behind is refused unless `upgrade`).
    """
    url = parse_database_url(database) if isinstance(database, str) else database
    schema.require_current(url, timeout_seconds=timeout_seconds, upgrade_pending=upgrade)
    try:
        return Store(open_database(url, timeout_seconds=timeout_seconds), url, timeout_seconds)
    except DBException as exc:
        raise StorageUnavailable(f"database {url.describe()} unavailable: {exc}") from exc
