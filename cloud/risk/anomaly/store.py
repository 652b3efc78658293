"""SQL of the anomaly commands: vehicle-days to read, models to version, verdicts to keep.

Every statement filters on the tenant. Days are China-time dates (UTC+8,
no daylight saving): in SQL, ``((time AT TIME ZONE 'UTC') + interval '8 hours')``
is the China wall-clock time of a ``timestamptz``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from cloud.risk.anomaly.features import day_bounds
from cloud.risk.anomaly.model import AnomalyVerdict
from cloud.risk.model import Device, DeviceKind, FixIn, JsonValue

Conn = psycopg.Connection[Any]

_CHINA_DAY = "((f.time AT TIME ZONE 'UTC') + interval '8 hours')::date"
_CHINA_HOUR = "extract(hour FROM (f.time AT TIME ZONE 'UTC') + interval '8 hours')"


@dataclass(frozen=True, slots=True)
class VehicleDay:
    vehicle_id: int
    day: date
    fixes: int


def vehicle_days(conn: Conn, tenant_id: str, first: date, end: date) -> list[VehicleDay]:
    """Vehicle-days with fixes, China days ``first <= day < end``, by vehicle then day."""
    start, _ = day_bounds(first)
    stop, _ = day_bounds(end)
    rows = conn.execute(
        f"""SELECT f.vehicle_id, {_CHINA_DAY} AS day, count(*)
            FROM fixes f
            WHERE f.tenant_id = %s AND f.vehicle_id IS NOT NULL AND f.time >= %s AND f.time < %s
            GROUP BY 1, 2 ORDER BY 1, 2""",  # noqa: S608 - constant SQL fragments only
        (tenant_id, start, stop),
    ).fetchall()
    return [VehicleDay(int(v), d, int(n)) for v, d, n in rows]


_DAY_FIXES = """SELECT f.time, f.device_id, coalesce(d.kind, 'wired'), f.seq, f.lat, f.lon,
       f.speed_mps, f.course_deg, f.alt_m, f.mode, f.hdop, f.sats, f.ignition, f.ext_v,
       f.batt_v, f.flags
FROM fixes f
LEFT JOIN devices d ON d.id = f.device_id AND d.tenant_id = f.tenant_id
WHERE f.tenant_id = %s AND f.vehicle_id = %s AND f.time >= %s AND f.time < %s
ORDER BY f.time, f.device_id"""


def day_fixes(conn: Conn, tenant_id: str, vehicle_id: int, day: date) -> list[FixIn]:
    """The vehicle's fixes of one China day, every device, in GNSS-time order."""
    start, end = day_bounds(day)
    out = []
    for row in conn.execute(_DAY_FIXES, (tenant_id, vehicle_id, start, end)):
        (
            t,
            dev,
            kind,
            seq,
            lat,
            lon,
            speed,
            course,
            alt,
            mode,
            hdop,
            sats,
            ign,
            ext_v,
            batt_v,
            flags,
        ) = row
        device_kind: DeviceKind = "wireless" if kind == "wireless" else "wired"
        out.append(
            FixIn(
                time=t,
                device_id=dev,
                device_kind=device_kind,
                seq=int(seq),
                lat=lat,
                lon=lon,
                speed_mps=float(speed),
                course_deg=course,
                alt_m=alt,
                mode="2d" if mode == 2 else "3d",
                hdop=hdop,
                sats=sats,
                ignition=ign,
                ext_v=ext_v,
                batt_v=batt_v,
                flags=tuple(flags or ()),
            )
        )
    return out


def day_reports(
    conn: Conn, tenant_id: str, device_ids: Sequence[str], day: date
) -> dict[str, list[datetime]]:
    """Per device, the times of its events (heartbeats, power, ...) in China ``day``."""
    start, end = day_bounds(day)
    out: dict[str, list[datetime]] = {}
    for dev, t in conn.execute(
        """SELECT device_id, time FROM device_events
           WHERE device_id = ANY(%s) AND tenant_id = %s AND time >= %s AND time < %s
           ORDER BY time""",
        (list(device_ids), tenant_id, start, end),
    ):
        out.setdefault(str(dev), []).append(t)
    return out


def vehicle_devices(conn: Conn, tenant_id: str, vehicle_id: int) -> dict[str, Device]:
    rows = conn.execute(
        "SELECT id, kind, heartbeat_s FROM devices WHERE tenant_id = %s AND vehicle_id = %s",
        (tenant_id, vehicle_id),
    ).fetchall()
    return {
        str(i): Device(str(i), "wireless" if k == "wireless" else "wired", int(hb))
        for i, k, hb in rows
    }


def night_samples(
    conn: Conn, tenant_id: str, vehicle_id: int, first: date, end: date
) -> list[tuple[float, float]]:
    """One mean position per quarter-hour of night (22:00-06:00) with fixes.

    Days ``first <= day < end``. Wired fixes only when the vehicle has any at
    night in the range, else wireless (the tracks are never mixed).
    """
    start, _ = day_bounds(first)
    stop, _ = day_bounds(end)
    rows = conn.execute(
        f"""SELECT coalesce(d.kind, 'wired') AS kind, avg(f.lat), avg(f.lon)
            FROM fixes f
            LEFT JOIN devices d ON d.id = f.device_id AND d.tenant_id = f.tenant_id
            WHERE f.tenant_id = %s AND f.vehicle_id = %s AND f.time >= %s AND f.time < %s
              AND {_CHINA_HOUR} NOT BETWEEN 6 AND 21
            GROUP BY 1, time_bucket('15 minutes', f.time)
            ORDER BY time_bucket('15 minutes', f.time)""",  # noqa: S608 - constants only
        (tenant_id, vehicle_id, start, stop),
    ).fetchall()
    wired = [(float(a), float(b)) for k, a, b in rows if k == "wired"]
    return wired or [(float(a), float(b)) for _, a, b in rows]


def declared_point(conn: Conn, tenant_id: str, vehicle_id: int) -> tuple[float, float] | None:
    """The geocoded declared address of the vehicle's newest loan that has one."""
    row = conn.execute(
        """SELECT declared_lat, declared_lon FROM loans
           WHERE tenant_id = %s AND vehicle_id = %s
             AND declared_lat IS NOT NULL AND declared_lon IS NOT NULL
           ORDER BY created_at DESC LIMIT 1""",
        (tenant_id, vehicle_id),
    ).fetchone()
    return (float(row[0]), float(row[1])) if row else None


@dataclass(frozen=True, slots=True)
class StoredModel:
    tenant_id: str
    version: int
    created_at: datetime
    feature_names: tuple[str, ...]
    params: Mapping[str, Any]
    training_rows: int
    blob: bytes


def insert_model(
    conn: Conn,
    tenant_id: str,
    *,
    feature_names: Sequence[str],
    params: Mapping[str, JsonValue],
    training_rows: int,
    blob: bytes,
    metrics: Mapping[str, JsonValue],
) -> int:
    """Store a new model version (previous version + 1 for the tenant) and return it."""
    with conn.transaction():
        # serialise concurrent trainings of one tenant so versions never collide
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('vgr.anomaly_models'), hashtext(%s))",
            (tenant_id,),
        )
        row = conn.execute(
            """INSERT INTO anomaly_models
                   (tenant_id, version, feature_names, params, training_rows, blob, metrics)
               SELECT %(t)s, coalesce(max(version), 0) + 1, %(names)s, %(params)s, %(rows)s,
                      %(blob)s, %(metrics)s
               FROM anomaly_models WHERE tenant_id = %(t)s
               RETURNING version""",
            {
                "t": tenant_id,
                "names": list(feature_names),
                "params": Jsonb(dict(params)),
                "rows": training_rows,
                "blob": blob,
                "metrics": Jsonb(dict(metrics)),
            },
        ).fetchone()
    assert row is not None
    return int(row[0])


def latest_model(conn: Conn, tenant_id: str) -> StoredModel | None:
    row = conn.execute(
        """SELECT tenant_id, version, created_at, feature_names, params, training_rows, blob
           FROM anomaly_models WHERE tenant_id = %s ORDER BY version DESC LIMIT 1""",
        (tenant_id,),
    ).fetchone()
    if row is None:
        return None
    t, version, created, names, params, rows, blob = row
    return StoredModel(t, int(version), created, tuple(names), params, int(rows), bytes(blob))


def last_scored_day(conn: Conn, tenant_id: str, version: int) -> date | None:
    row = conn.execute(
        "SELECT max(day) FROM anomaly_scores WHERE tenant_id = %s AND model_version = %s",
        (tenant_id, version),
    ).fetchone()
    return row[0] if row else None


def save_scores(
    conn: Conn,
    tenant_id: str,
    version: int,
    verdicts: Sequence[tuple[int, date, AnomalyVerdict]],
) -> None:
    """Upsert verdicts: scoring a day again with the same model replaces its rows."""
    rows = [
        (
            tenant_id,
            vehicle_id,
            day,
            version,
            v.score,
            v.is_anomaly,
            Jsonb(
                [
                    {"name": c.name, "value": c.value, "contribution": c.contribution}
                    for c in v.top_features
                ]
            ),
        )
        for vehicle_id, day, v in verdicts
    ]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO anomaly_scores
                   (tenant_id, vehicle_id, day, model_version, score, is_anomaly, top_features)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (tenant_id, vehicle_id, day, model_version) DO UPDATE
               SET score = EXCLUDED.score, is_anomaly = EXCLUDED.is_anomaly,
                   top_features = EXCLUDED.top_features, scored_at = now()""",
            rows,
        )
