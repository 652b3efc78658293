"""Reference data in PostgreSQL: the regions, risk_pois and ip_ranges tables (0005_refdata.sql).

Synchronous psycopg 3: these are administrative imports and a loader run once
per worker start. Every POI query is scoped to one tenant (plus global rows).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import shapely
from psycopg.types.json import Jsonb

from cloud.risk.model import Poi

from .discover import Candidate, StopFix
from .ipranges import IpIndex, IpInfo, IpLookup, IpRange, MaxMindProvinces
from .lookup import Places, PoiIndex, RegionIndex
from .pois import CANDIDATE, PoiRow
from .regions import LEVELS, Level, RegionRecord

__all__ = [
    "PoiListing",
    "confirm_poi",
    "insert_candidates",
    "insert_pois",
    "list_pois",
    "load_ip_ranges",
    "load_places",
    "load_pois",
    "load_regions",
    "stop_fixes",
    "upsert_ip_ranges",
    "upsert_regions",
]

Conn = psycopg.Connection[Any]
_BATCH = 200


def _batches(rows: Iterable[Any], size: int = _BATCH) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# ---------------------------------------------------------------- regions


def upsert_regions(conn: Conn, records: Iterable[RegionRecord]) -> int:
    """Insert or replace regions by (level, adcode); returns how many were written."""
    written = 0
    sql = """INSERT INTO regions (adcode, level, name, parent, geom, bbox, source, repaired)
             VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
             ON CONFLICT (level, adcode) DO UPDATE SET
                 name = EXCLUDED.name, parent = EXCLUDED.parent, geom = EXCLUDED.geom,
                 bbox = EXCLUDED.bbox, source = EXCLUDED.source, repaired = EXCLUDED.repaired,
                 imported_at = now()"""
    for batch in _batches(records):
        params = [
            (
                r.adcode,
                r.level,
                r.name,
                r.parent,
                shapely.to_wkb(r.geometry),
                list(r.geometry.bounds),
                r.source,
                Jsonb(asdict(r.repair)) if r.repair is not None else None,
            )
            for r in batch
        ]
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, params)
        written += len(batch)
    return written


def load_regions(conn: Conn, levels: Iterable[Level] = LEVELS) -> list[RegionRecord]:
    """The stored regions of these levels (geometry decoded, valid as stored)."""
    rows = conn.execute(
        "SELECT adcode, level, name, parent, geom, source FROM regions WHERE level = ANY(%s) "
        "ORDER BY level, adcode",
        (list(levels),),
    ).fetchall()
    shapes = shapely.from_wkb([bytes(r[4]) for r in rows]) if rows else []
    return [
        RegionRecord(str(r[0]), r[1], str(r[2]), r[3], shape, str(r[5]))
        for r, shape in zip(rows, shapes, strict=True)
    ]


def region_counts(conn: Conn) -> dict[tuple[str, str], int]:
    """Stored regions by (level, source)."""
    rows = conn.execute("SELECT level, source, count(*) FROM regions GROUP BY 1, 2").fetchall()
    return {(str(r[0]), str(r[1])): int(r[2]) for r in rows}


# ---------------------------------------------------------------- POIs


def insert_pois(
    conn: Conn, tenant_id: str | None, rows: Iterable[PoiRow], source: str
) -> tuple[int, int]:
    """Insert confirmed POIs; returns (inserted, already present)."""
    inserted = present = 0
    with conn.transaction(), conn.cursor() as cur:
        for r in rows:
            cur.execute(
                """INSERT INTO risk_pois (tenant_id, category, name, lat, lon, radius_m, source,
                                          confirmed, confirmed_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, true, now()) ON CONFLICT DO NOTHING""",
                (tenant_id, r.category, r.name, r.lat, r.lon, r.radius_m, source),
            )
            if cur.rowcount == 1:
                inserted += 1
            else:
                present += 1
    return inserted, present


def load_pois(conn: Conn, tenant_id: str | None, *, confirmed_only: bool = True) -> list[Poi]:
    """Global POIs plus the tenant's own (only global ones when ``tenant_id`` is None)."""
    rows = conn.execute(
        "SELECT id, category, name, lat, lon, radius_m FROM risk_pois "
        "WHERE (tenant_id IS NULL OR tenant_id = %s) AND (confirmed OR NOT %s) ORDER BY id",
        (tenant_id, confirmed_only),
    ).fetchall()
    return [Poi(str(r[0]), str(r[1]), str(r[2]), r[3], r[4], r[5]) for r in rows]


@dataclass(frozen=True, slots=True)
class PoiListing:
    poi: Poi
    tenant_id: str | None
    confirmed: bool
    source: str
    evidence: dict[str, Any]
    created_at: datetime


def list_pois(conn: Conn, tenant_id: str | None, *, candidates: bool = False) -> list[PoiListing]:
    rows = conn.execute(
        "SELECT id, category, name, lat, lon, radius_m, tenant_id, confirmed, source, evidence, "
        "created_at FROM risk_pois WHERE (tenant_id IS NULL OR tenant_id = %s) "
        "AND (NOT confirmed OR NOT %s) ORDER BY confirmed, id",
        (tenant_id, candidates),
    ).fetchall()
    return [
        PoiListing(
            Poi(str(r[0]), str(r[1]), str(r[2]), r[3], r[4], r[5]), r[6], r[7], r[8], r[9], r[10]
        )
        for r in rows
    ]


def insert_candidates(conn: Conn, tenant_id: str, candidates: Iterable[Candidate]) -> list[int]:
    """Store discovered candidates (unconfirmed, category 'unknown'); returns their ids."""
    ids: list[int] = []
    with conn.transaction(), conn.cursor() as cur:
        for c in candidates:
            name = f"candidate: {len(c.vehicles)} vehicles, {len(c.stops)} long stops"
            cur.execute(
                """INSERT INTO risk_pois (tenant_id, category, name, lat, lon, radius_m, source,
                                          confirmed, evidence)
                   VALUES (%s, %s, %s, %s, %s, %s, 'discover', false, %s)
                   ON CONFLICT DO NOTHING RETURNING id""",
                (tenant_id, CANDIDATE, name, c.lat, c.lon, c.radius_m, Jsonb(c.evidence)),
            )
            row = cur.fetchone()
            if row is not None:
                ids.append(int(row[0]))
    return ids


def confirm_poi(
    conn: Conn, poi_id: int, *, tenant_id: str | None, category: str | None, name: str | None
) -> str | None:
    """Confirm a POI (setting its category/name); None when done, else why not."""
    row = conn.execute(
        "SELECT tenant_id, category, confirmed FROM risk_pois WHERE id = %s", (poi_id,)
    ).fetchone()
    if row is None or (tenant_id is not None and row[0] != tenant_id):
        return f"no POI {poi_id}" + (f" of tenant {tenant_id}" if tenant_id else "")
    new_category = category or str(row[1])
    if new_category == CANDIDATE:
        return f"POI {poi_id} is a discovered candidate: give its --category to confirm it"
    conn.execute(
        "UPDATE risk_pois SET confirmed = true, confirmed_at = now(), category = %s, "
        "name = COALESCE(%s, name) WHERE id = %s",
        (new_category, name, poi_id),
    )
    return None


def stop_fixes(conn: Conn, tenant_id: str, since: datetime) -> Iterator[StopFix]:
    """Fixes of the tenant's vehicles with an overdue or defaulted loan, by (vehicle, time).

    Streams through a server-side cursor (in its own transaction), so months of fixes never
    sit in memory at once; consume it before using the connection for anything else.
    """
    sql = """SELECT f.vehicle_id, f.time, f.lat, f.lon, f.speed_mps FROM fixes f
             WHERE f.tenant_id = %s AND f.time >= %s AND f.vehicle_id IN (
                 SELECT vehicle_id FROM loans WHERE tenant_id = %s
                 AND status IN ('overdue', 'default') AND vehicle_id IS NOT NULL)
             ORDER BY f.vehicle_id, f.time"""
    with conn.transaction(), conn.cursor(name="refdata_stop_fixes") as cur:
        cur.itersize = 5000
        cur.execute(sql, (tenant_id, since, tenant_id))
        for vehicle_id, time, lat, lon, speed in cur:
            yield StopFix(int(vehicle_id), time, float(lat), float(lon), float(speed))


# ---------------------------------------------------------------- IP ranges


def upsert_ip_ranges(conn: Conn, ranges: Iterable[IpRange], source: str) -> int:
    written = 0
    sql = """INSERT INTO ip_ranges (cidr, province, is_foreign, is_hosting, source)
             VALUES (%s, %s, %s, %s, %s)
             ON CONFLICT (cidr) DO UPDATE SET province = EXCLUDED.province,
                 is_foreign = EXCLUDED.is_foreign, is_hosting = EXCLUDED.is_hosting,
                 source = EXCLUDED.source, imported_at = now()"""
    for batch in _batches(ranges, 1000):
        params = [
            (r.network, r.info.province, r.info.foreign, r.info.hosting, source) for r in batch
        ]
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, params)
        written += len(batch)
    return written


def load_ip_ranges(conn: Conn) -> list[IpRange]:
    rows = conn.execute("SELECT cidr, province, is_foreign, is_hosting FROM ip_ranges").fetchall()
    return [IpRange(ipaddress.ip_network(r[0]), IpInfo(r[1], bool(r[2]), bool(r[3]))) for r in rows]


# ---------------------------------------------------------------- everything


def load_places(
    conn: Conn,
    tenant_id: str | None,
    *,
    maxmind_db: Path | None = None,
    levels: Iterable[Level] = LEVELS,
) -> Places:
    """A :class:`Places` for one tenant: stored regions, its POIs and global ones, IP data.

    For many tenants, build once and swap POIs with :meth:`Places.with_pois`.
    """
    regions = RegionIndex(load_regions(conn, levels))
    pois = PoiIndex(load_pois(conn, tenant_id))
    maxmind = MaxMindProvinces(maxmind_db) if maxmind_db is not None else None
    return Places(regions, pois, IpLookup(IpIndex(load_ip_ranges(conn)), maxmind))


def repair_summary(conn: Conn) -> list[tuple[str, str, str]]:
    """(level, adcode, problem) of every stored region that was repaired on import."""
    rows = conn.execute(
        "SELECT level, adcode, repaired FROM regions WHERE repaired IS NOT NULL ORDER BY 1, 2"
    ).fetchall()
    return [(str(r[0]), str(r[1]), json.dumps(r[2], ensure_ascii=False)) for r in rows]
