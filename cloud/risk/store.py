"""SQL of the risk engine: claim work from the inbox, read inputs, keep rule state.

All functions take the caller's connection and run inside the caller's
transaction, so a worker that dies mid-batch leaves the inbox rows, states
and alerts exactly as they were before it started.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import psycopg

from cloud.risk.engine import ENGINE_VERSION, Snapshot, VehicleState, decode_key, encode_key
from cloud.risk.model import DeviceKind, EventIn, FixIn

Conn = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class Claim:
    """Vehicles this worker holds (advisory lock until commit) and the earliest new GNSS time."""

    tenant_of: dict[int, str]
    since: dict[int, datetime | None]  # None: a tick only, no new data


def claim(conn: Conn, *, max_rows: int = 200) -> Claim:
    """Take inbox rows; lock their vehicles; give back (re-queue) vehicles another worker holds."""
    rows = conn.execute(
        "DELETE FROM risk_inbox WHERE id IN (SELECT id FROM risk_inbox ORDER BY id "
        "LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING vehicle_ids, tenant_ids, since, tick",
        (max_rows,),
    ).fetchall()
    tenant_of: dict[int, str] = {}
    since: dict[int, datetime | None] = {}
    for vehicle_ids, tenant_ids, times, tick in rows:
        for v, t, s in zip(vehicle_ids, tenant_ids, times, strict=True):
            tenant_of[v] = t
            new = None if tick else s
            if v not in since:
                since[v] = new
            elif new is not None:
                old = since[v]
                since[v] = new if old is None else min(old, new)
    held: dict[int, datetime | None] = {}
    busy: list[tuple[int, str, datetime | None]] = []
    for v in sorted(since):
        got = conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", (7301, v)).fetchone()
        if got is not None and got[0]:
            held[v] = since[v]
        else:
            busy.append((v, tenant_of[v], since[v]))
    requeue(conn, busy)
    return Claim({v: tenant_of[v] for v in held}, held)


def requeue(conn: Conn, items: Sequence[tuple[int, str, datetime | None]]) -> None:
    """Put work back for another round (another worker holds these vehicles)."""
    data = [(v, t, s) for v, t, s in items if s is not None]
    ticks = [(v, t) for v, t, s in items if s is None]
    if data:
        conn.execute(
            "INSERT INTO risk_inbox (vehicle_ids, tenant_ids, since) VALUES (%s, %s, %s)",
            ([v for v, _, _ in data], [t for _, t, _ in data], [s for _, _, s in data]),
        )
    if ticks:
        enqueue_ticks(conn, ticks, now=None)


def enqueue_ticks(conn: Conn, vehicles: Sequence[tuple[int, str]], now: datetime | None) -> None:
    if not vehicles:
        return
    stamp = now if now is not None else datetime.fromtimestamp(0).astimezone()
    conn.execute(
        "INSERT INTO risk_inbox (vehicle_ids, tenant_ids, since, tick) VALUES (%s, %s, %s, true)",
        ([v for v, _ in vehicles], [t for _, t in vehicles], [stamp] * len(vehicles)),
    )


@dataclass(frozen=True, slots=True)
class StoredState:
    state: VehicleState
    tick_time: datetime | None


def load_states(conn: Conn, vehicle_ids: Sequence[int]) -> dict[int, StoredState]:
    rows = conn.execute(
        "SELECT vehicle_id, engine_version, pos_time, pos_key, tick_time, state FROM rule_state "
        "WHERE vehicle_id = ANY(%s)",
        (list(vehicle_ids),),
    ).fetchall()
    out: dict[int, StoredState] = {}
    for v, version, pos_time, pos_key, tick_time, raw in rows:
        if version != ENGINE_VERSION:
            continue  # an incompatible older layout: start afresh
        state = VehicleState.decode(bytes(raw), decode_key(bytes(pos_key)), pos_time)
        state.tick_time = tick_time
        out[v] = StoredState(state, tick_time)
    return out


def snapshot_before(conn: Conn, vehicle_id: int, before: datetime) -> VehicleState | None:
    """The newest snapshot strictly before ``before`` (late data re-runs from it)."""
    row = conn.execute(
        "SELECT pos_time, pos_key, state FROM rule_snapshots WHERE vehicle_id = %s "
        "AND pos_time < %s AND engine_version = %s ORDER BY pos_time DESC LIMIT 1",
        (vehicle_id, before, ENGINE_VERSION),
    ).fetchone()
    if row is None:
        return None
    pos_time, pos_key, raw = row
    return VehicleState.decode(bytes(raw), decode_key(bytes(pos_key)), pos_time)


def save_state(conn: Conn, vehicle_id: int, tenant_id: str, state: VehicleState) -> None:
    if state.pos is None or state.pos_time is None:
        return
    conn.execute(
        "INSERT INTO rule_state (vehicle_id, tenant_id, engine_version, pos_time, pos_key, "
        "tick_time, state, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now()) "
        "ON CONFLICT (vehicle_id) DO UPDATE SET engine_version = EXCLUDED.engine_version, "
        "pos_time = EXCLUDED.pos_time, pos_key = EXCLUDED.pos_key, tick_time = "
        "EXCLUDED.tick_time, state = EXCLUDED.state, updated_at = now()",
        (vehicle_id, tenant_id, ENGINE_VERSION, state.pos_time, encode_key(state.pos),
         state.tick_time, state.encode()),
    )  # fmt: skip


def save_snapshots(conn: Conn, vehicle_id: int, snaps: Iterable[Snapshot]) -> None:
    rows = [(vehicle_id, s.pos_time, ENGINE_VERSION, encode_key(s.pos), s.state) for s in snaps]
    if not rows:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO rule_snapshots (vehicle_id, pos_time, engine_version, pos_key, state) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (vehicle_id, pos_time) DO UPDATE SET "
            "engine_version = EXCLUDED.engine_version, pos_key = EXCLUDED.pos_key, "
            "state = EXCLUDED.state",
            rows,
        )


def prune_snapshots(conn: Conn, older_than: datetime) -> int:
    cur = conn.execute("DELETE FROM rule_snapshots WHERE pos_time < %s", (older_than,))
    return cur.rowcount


_Detail = msgspec.json.Decoder(dict[str, str | int | float | bool | None])


def load_inputs(
    conn: Conn, starts: dict[int, datetime | None], kinds: dict[str, DeviceKind]
) -> dict[int, list[FixIn | EventIn]]:
    """Fixes and events of each vehicle from its start time (None: from the beginning)."""
    out: dict[int, list[FixIn | EventIn]] = {v: [] for v in starts}
    if not starts:
        return out
    floor = datetime.fromisoformat("2000-01-01T00:00:00+00:00")
    ids = list(starts)
    times = [starts[v] or floor for v in ids]
    fixes = conn.execute(
        "SELECT f.vehicle_id, f.time, f.device_id, f.seq, f.lat, f.lon, f.speed_mps, "
        "f.course_deg, f.alt_m, f.mode, f.hdop, f.sats, f.ignition, f.ext_v, f.batt_v, f.flags "
        "FROM fixes f JOIN unnest(%s::bigint[], %s::timestamptz[]) AS w(v, t) "
        "ON f.vehicle_id = w.v AND f.time >= w.t",
        (ids, times),
    ).fetchall()
    for (v, t, dev, seq, lat, lon, spd, crs, alt, mode, hdop, sats, ign, ext, batt,
         flags) in fixes:  # fmt: skip
        marks = tuple(flags)
        out[v].append(
            FixIn(t, dev, kinds.get(dev, "wired"), seq, lat, lon, spd, crs, alt,
                  "2d" if mode == 2 else "3d", hdop, sats, ign, ext, batt, marks)
        )  # fmt: skip
    events = conn.execute(
        "SELECT e.vehicle_id, e.time, e.device_id, e.seq, e.kind, e.lat, e.lon, e.detail::text, "
        "e.flags "
        "FROM device_events e JOIN unnest(%s::bigint[], %s::timestamptz[]) AS w(v, t) "
        "ON e.vehicle_id = w.v AND e.time >= w.t",
        (ids, times),
    ).fetchall()
    for v, t, dev, seq, kind, lat, lon, detail, flags in events:
        out[v].append(
            EventIn(t, dev, kinds.get(dev, "wired"), seq, kind, lat, lon, _Detail.decode(detail),
                    tuple(flags))
        )  # fmt: skip
    return out
