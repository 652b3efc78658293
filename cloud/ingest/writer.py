"""Batch writer: binary COPY into the hypertables, all in one transaction.

Fixes are copied straight into ``fixes`` inside a savepoint; only a batch that
holds a replay (a unique violation) falls back to a per-connection staging
table and ``INSERT … ON CONFLICT DO NOTHING RETURNING``. Events always take
the staging path (they are few).

Only rows that were really new come back (``RETURNING``), so the risk engine
is handed each fix once even when a tracker replays or two workers race on
the same batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from cloud.ingest.model import FixRow, Work
from cloud.storage import counters
from cloud.webhooks import derive_message_id, enqueue

_MODE = {"2d": 2, "3d": 3}

_FIX_COLS = (
    "time",
    "device_id",
    "boot_id",
    "seq",
    "tenant_id",
    "vehicle_id",
    "lat",
    "lon",
    "alt_m",
    "speed_mps",
    "course_deg",
    "mode",
    "hdop",
    "sats",
    "ignition",
    "ext_v",
    "batt_v",
    "flags",
)
_FIX_TYPES = (
    "timestamptz",
    "text",
    "text",
    "int8",
    "text",
    "int8",
    "float8",
    "float8",
    "float4",
    "float4",
    "float4",
    "int2",
    "float4",
    "int2",
    "bool",
    "float4",
    "float4",
    "text[]",
)
_EVENT_COLS = (
    "time",
    "device_id",
    "boot_id",
    "seq",
    "tenant_id",
    "vehicle_id",
    "kind",
    "lat",
    "lon",
    "detail",
    "flags",
)
_EVENT_TYPES = (
    "timestamptz",
    "text",
    "text",
    "int8",
    "text",
    "int8",
    "text",
    "float8",
    "float8",
    "jsonb",
    "text[]",
)


def _json_text(value: object) -> str:
    return msgspec.json.encode(value).decode()


@dataclass(frozen=True, slots=True)
class Written:
    """What one committed transaction stored for the first time."""

    new_fixes: list[FixRow]
    new_events: int
    quarantined: int


def _staging_ddl(table: str) -> sql.Composed:
    return sql.SQL(
        "CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) "
        "ON COMMIT DELETE ROWS"
    ).format(stage=sql.Identifier(f"{table}_stage"), table=sql.Identifier(table))


def _insert_from_stage(
    table: str, cols: tuple[str, ...], returning: tuple[str, ...] = ("device_id", "boot_id", "seq")
) -> sql.Composed:
    ids = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    return sql.SQL(
        "INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} "
        "ON CONFLICT DO NOTHING RETURNING {returning}"
    ).format(
        table=sql.Identifier(table),
        stage=sql.Identifier(f"{table}_stage"),
        cols=ids,
        returning=sql.SQL(", ").join(sql.Identifier(c) for c in returning),
    )


def _risk_inbox_row(
    new_fixes: list[FixRow], new_events: list[tuple[int | None, str, datetime]]
) -> tuple[list[int], list[str], list[datetime]] | None:
    """Per vehicle with new rows: its tenant and the earliest GNSS time (risk engine inbox)."""
    since: dict[int, tuple[str, datetime]] = {}
    points = [(r.vehicle_id, r.tenant_id, r.fix.time) for r in new_fixes]
    for vehicle_id, tenant_id, time in [*points, *new_events]:
        if vehicle_id is None:
            continue
        seen = since.get(vehicle_id)
        if seen is None or time < seen[1]:
            since[vehicle_id] = (tenant_id, time)
    if not since:
        return None
    ids = sorted(since)
    return ids, [since[v][0] for v in ids], [since[v][1] for v in ids]


def _copy(table: str, cols: tuple[str, ...]) -> sql.Composed:
    return sql.SQL("COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)").format(
        table=sql.Identifier(table),
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in cols),
    )


def _notify_unauthorized(conn: psycopg.Connection[Any], work: Work) -> None:
    """``device.unauthorized`` to the owning tenant (known for revoked terminals), once an hour."""
    for s in work.signals:
        if s.tenant_id is None or s.device_id is None:
            continue  # an unknown terminal has no tenant to tell; it stays in quarantine
        hour = s.time.strftime("%Y-%m-%dT%H")
        enqueue(
            conn, s.tenant_id, "device.unauthorized",
            {"device_id": s.device_id, "tenant_id": s.tenant_id, "reason": s.kind,
             "seen_at": s.time.isoformat(), "detail": dict(s.detail)},
            message_id=derive_message_id(s.tenant_id, "device.unauthorized", s.device_id, hour),
        )  # fmt: skip


class BatchWriter:
    """Writes one unit of work per transaction on its own connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        with conn.transaction():
            conn.execute(_staging_ddl("fixes"))
            conn.execute(_staging_ddl("device_events"))
        self._insert_fixes = _insert_from_stage("fixes", _FIX_COLS)
        self._insert_events = _insert_from_stage(
            "device_events", _EVENT_COLS, ("vehicle_id", "tenant_id", "time")
        )
        self.fast_batches = 0  # fix batches copied straight into the hypertable
        self.replay_batches = 0  # fix batches that held a replay and went through staging

    def _copy_fixes(self, cur: psycopg.Cursor[Any], rows: list[FixRow], *, into: str) -> None:
        with cur.copy(_copy(into, _FIX_COLS)) as copy:
            copy.set_types(list(_FIX_TYPES))
            for row in rows:
                f = row.fix
                copy.write_row((
                    f.time, f.device_id, f.boot_id, f.seq, row.tenant_id, row.vehicle_id,
                    f.lat, f.lon, f.alt_m, f.speed_mps, f.course_deg, _MODE[f.mode.value],
                    f.hdop, f.sats, f.ignition, f.ext_v, f.batt_v, list(row.flags),
                ))  # fmt: skip

    def _write_fixes(self, cur: psycopg.Cursor[Any], rows: list[FixRow]) -> list[FixRow]:
        """Store ``rows``; return the ones that were not stored before, each once.

        Fast path: COPY straight into the hypertable inside a savepoint; every row
        is new. Only when that meets a unique violation (a replay) is the savepoint
        rolled back and the batch written through staging + ``ON CONFLICT DO
        NOTHING RETURNING``, which tells the new rows apart.
        """
        try:
            with self._conn.transaction():
                self._copy_fixes(cur, rows, into="fixes")
            self.fast_batches += 1
            return rows
        except psycopg.errors.UniqueViolation:
            self.replay_batches += 1
        self._copy_fixes(cur, rows, into="fixes_stage")
        cur.execute(self._insert_fixes)
        fresh = {(str(d), str(b), int(s)) for d, b, s in cur.fetchall()}
        new: list[FixRow] = []
        for r in rows:  # a replay inside the same batch is handed over once
            key = (r.fix.device_id, r.fix.boot_id, r.fix.seq)
            if key in fresh:
                fresh.discard(key)
                new.append(r)
        return new

    def write(self, work: Work, *, received_at: datetime) -> Written:
        conn = self._conn
        new_fixes: list[FixRow] = []
        new_events = 0
        stored_events: list[tuple[int | None, str, datetime]] = []
        with conn.transaction(), conn.cursor() as cur:
            if work.fixes:
                new_fixes = self._write_fixes(cur, work.fixes)
            if work.events:
                with cur.copy(_copy("device_events_stage", _EVENT_COLS)) as copy:
                    copy.set_types(list(_EVENT_TYPES))
                    for ev_row in work.events:
                        e = ev_row.event
                        copy.write_row((
                            e.time, e.device_id, e.boot_id, e.seq, ev_row.tenant_id,
                            ev_row.vehicle_id, e.kind.value, e.lat, e.lon,
                            Jsonb(e.detail, dumps=_json_text), list(ev_row.flags),
                        ))  # fmt: skip
                cur.execute(self._insert_events)
                stored_events = [(v, t, when) for v, t, when in cur.fetchall()]
                new_events = len(stored_events)
            if work.quarantine:
                cur.executemany(
                    "INSERT INTO quarantine (received_at, device_id, tenant_id, reason, topic, "
                    "record, raw) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s)",
                    [
                        (
                            received_at,
                            q.device_id,
                            q.tenant_id,
                            q.reason,
                            q.topic,
                            q.record.decode() if q.record is not None else None,
                            q.raw,
                        )
                        for q in work.quarantine
                    ],
                )
            if work.signals:
                cur.executemany(
                    "INSERT INTO signals (time, tenant_id, device_id, vehicle_id, kind, source, "
                    "detail) VALUES (%s, %s, %s, %s, %s, 'ingest', %s::jsonb)",
                    [
                        (
                            s.time,
                            s.tenant_id,
                            s.device_id,
                            s.vehicle_id,
                            s.kind,
                            msgspec.json.encode(s.detail).decode(),
                        )
                        for s in work.signals
                    ],
                )
            if work.status:
                cur.executemany(
                    "INSERT INTO device_status (device_id, state, boot_id, agent_version, "
                    "outbox_depth, reason, updated_at) "
                    "SELECT %(d)s, s->>'state', s->>'boot_id', s->>'agent_version', "
                    "(s->>'outbox_depth')::int, s->>'reason', %(t)s FROM (SELECT %(s)s::jsonb s) x "
                    "ON CONFLICT (device_id) DO UPDATE SET state = EXCLUDED.state, "
                    "boot_id = EXCLUDED.boot_id, agent_version = EXCLUDED.agent_version, "
                    "outbox_depth = EXCLUDED.outbox_depth, reason = EXCLUDED.reason, "
                    "updated_at = EXCLUDED.updated_at",
                    [{"d": d, "s": raw.decode(), "t": received_at} for d, raw in work.status],
                )
            _notify_unauthorized(self._conn, work)
            inbox = _risk_inbox_row(new_fixes, stored_events)
            if inbox is not None:
                cur.execute(
                    "INSERT INTO risk_inbox (vehicle_ids, tenant_ids, since) VALUES (%s, %s, %s)",
                    inbox,
                )
            counters.add(conn, counters.ingest_counts(  # /metrics counts commit with the rows
                (r.tenant_id for r in new_fixes), (t for _, t, _ in stored_events),
                ((q.tenant_id, q.reason) for q in work.quarantine)))  # fmt: skip
        return Written(new_fixes, new_events, len(work.quarantine))
