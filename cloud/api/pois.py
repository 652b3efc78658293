"""``/v1/pois``: risk POIs (二押, 典当行, used-car markets…) and discovered candidates.

A tenant sees the global POIs and its own; it adds and deletes only its own
(a global one is ``409 poi_is_global``). Coordinates are stored in WGS-84:
a POI picked on a Gaode/Tencent map is sent with ``crs: gcj02`` and
converted (:func:`cloud.refdata.gcj02.gcj02_to_wgs84`). Candidates are the
places ``vgr cloud pois discover`` found where several overdue cars stopped
for hours (:mod:`cloud.refdata.discover`); confirming one gives it a
category, and the risk rules use it from their next reference-data reload
(at most 5 minutes). Changes are audited (``poi_created``, ``poi_deleted``,
``poi_confirmed``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import psycopg
from aiohttp import web
from psycopg_pool import ConnectionPool

from cloud.api import audit
from cloud.api.errors import ApiError, json_response
from cloud.api.fleet_params import BBox, FleetPageQuery, after, page, parse_bbox
from cloud.api.params import json_body, path_id, query_params
from cloud.api.policy import Caller, Routes
from cloud.api.state import CALLER, CLIENT_IP, POOL, SYNC_POOL
from cloud.refdata.gcj02 import gcj02_to_wgs84
from cloud.refdata.pois import MAX_RADIUS_M, MIN_RADIUS_M
from cloud.refdata.store import confirm_poi

routes = Routes()
# cloud.refdata.pois.CATEGORIES (a test checks they agree)
Category = Literal[
    "second_mortgage", "pawnshop", "used_car_market", "registration_office", "tow_yard", "private"
]
Radius = Annotated[float, msgspec.Meta(ge=MIN_RADIUS_M, le=MAX_RADIUS_M)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]*\S[^\x00]*$")]
SyncPool = ConnectionPool[psycopg.Connection[Any]]
DEFAULT_RADIUS_M = 150.0


class PoiQuery(FleetPageQuery, kw_only=True):
    bbox: BBox | None = None
    category: Category | None = None


class PoiOut(msgspec.Struct):
    id: int
    name: str
    category: str
    lat: float
    lon: float
    radius_m: float
    scope: Literal["global", "tenant"]
    source: str
    created_at: datetime


class PoiList(msgspec.Struct):
    items: list[PoiOut]
    next_cursor: str | None


class NewPoi(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    category: Category
    lat: Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
    lon: Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]
    radius_m: Radius = DEFAULT_RADIUS_M
    crs: Literal["wgs84", "gcj02"] = "wgs84"


class CandidateOut(msgspec.Struct):
    id: int
    name: str
    lat: float
    lon: float
    radius_m: float
    evidence: dict[str, Any]  # vehicles, stops, hours, first and last time
    created_at: datetime


class CandidateList(msgspec.Struct):
    items: list[CandidateOut]
    next_cursor: str | None


class Confirm(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    category: Category
    name: Name | None = None


_POI = ("SELECT id, name, category, lat, lon, radius_m, "
        "CASE WHEN tenant_id IS NULL THEN 'global' ELSE 'tenant' END, source, created_at "
        "FROM risk_pois")  # fmt: skip


async def _poi(conn: psycopg.AsyncConnection[Any], tenant: str, poi_id: int) -> PoiOut:
    cur = await conn.execute(_POI + " WHERE id = %s AND (tenant_id IS NULL OR tenant_id = %s)",
                             (poi_id, tenant))  # fmt: skip
    row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "poi_not_found", "no such POI")
    return PoiOut(*row)


@routes("GET", "/v1/pois", roles={"admin", "analyst", "recovery"}, query=PoiQuery,
        response=PoiList, errors=("invalid_parameter", "invalid_cursor"))  # fmt: skip
async def list_pois(request: web.Request) -> web.Response:
    """Confirmed risk POIs (global and the tenant's), by id; filters bbox and category."""
    caller = request[CALLER]
    q = query_params(request, PoiQuery)
    key = after("pois", q.cursor, (int,))
    box = parse_bbox(q.bbox)
    min_lon, min_lat, max_lon, max_lat = box or (0.0, 0.0, 0.0, 0.0)
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            _POI + " WHERE (tenant_id IS NULL OR tenant_id = %(tenant)s) AND confirmed "
            "AND (%(category)s::text IS NULL OR category = %(category)s) "
            "AND (NOT %(boxed)s OR (lon BETWEEN %(min_lon)s AND %(max_lon)s "
            "                       AND lat BETWEEN %(min_lat)s AND %(max_lat)s)) "
            "AND (%(after)s::bigint IS NULL OR id > %(after)s) ORDER BY id LIMIT %(limit)s",
            {"tenant": caller.tenant_id, "category": q.category, "boxed": box is not None,
             "min_lon": min_lon, "min_lat": min_lat, "max_lon": max_lon, "max_lat": max_lat,
             "after": None if key is None else key[0], "limit": q.limit + 1},
        )  # fmt: skip
        rows = [PoiOut(*r) for r in await cur.fetchall()]
    items, next_cursor = page(rows, q.limit, "pois", lambda p: (p.id,))
    return json_response(PoiList(list(items), next_cursor))


@routes("POST", "/v1/pois", roles={"admin", "analyst"}, body=NewPoi, response=PoiOut, status=201,
        errors=("invalid_request", "poi_exists"))  # fmt: skip
async def create_poi(request: web.Request) -> web.Response:
    """Add one of the tenant's own risk POIs (GCJ-02 input converted to WGS-84; audited)."""
    caller = request[CALLER]
    body = await json_body(request, NewPoi)
    lat, lon = (body.lat, body.lon) if body.crs == "wgs84" else gcj02_to_wgs84(body.lat, body.lon)
    async with request.app[POOL].connection() as conn, conn.transaction():
        cur = await conn.execute(
            "INSERT INTO risk_pois (tenant_id, category, name, lat, lon, radius_m, source, "
            "confirmed, confirmed_at) VALUES (%s, %s, %s, %s, %s, %s, 'api', true, now()) "
            "ON CONFLICT DO NOTHING RETURNING id",
            (caller.tenant_id, body.category, body.name, lat, lon, body.radius_m),
        )
        row = await cur.fetchone()
        if row is None:
            raise ApiError(409, "poi_exists", "the tenant already has this POI")
        poi_id = int(row[0])
        await audit.write(conn, audit.Entry.by(caller, request[CLIENT_IP], "poi_created", "poi",
                                               poi_id, name=body.name, category=body.category,
                                               crs=body.crs))  # fmt: skip
        poi = await _poi(conn, caller.tenant_id, poi_id)
    return json_response(poi, status=201)


@routes("GET", "/v1/pois/candidates", roles={"admin", "analyst"}, query=FleetPageQuery,
        response=CandidateList, errors=("invalid_parameter", "invalid_cursor"))  # fmt: skip
async def list_candidates(request: web.Request) -> web.Response:
    """Places discovered from overdue cars' long stops, waiting for a person to confirm."""
    caller = request[CALLER]
    q = query_params(request, FleetPageQuery)
    key = after("poi-candidates", q.cursor, (int,))
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            "SELECT id, name, lat, lon, radius_m, evidence, created_at FROM risk_pois "
            "WHERE tenant_id = %s AND NOT confirmed AND (%s::bigint IS NULL OR id > %s) "
            "ORDER BY id LIMIT %s",
            (caller.tenant_id, *(2 * [None if key is None else key[0]]), q.limit + 1),
        )
        rows = [CandidateOut(*r) for r in await cur.fetchall()]
    items, next_cursor = page(rows, q.limit, "poi-candidates", lambda c: (c.id,))
    return json_response(CandidateList(list(items), next_cursor))


def _confirm_sync(pool: SyncPool, caller: Caller, ip: str | None, poi_id: int,
                  body: Confirm) -> None:  # fmt: skip
    with pool.connection() as conn, conn.transaction():
        row = conn.execute(
            "SELECT 1 FROM risk_pois WHERE id = %s AND tenant_id = %s AND NOT confirmed FOR UPDATE",
            (poi_id, caller.tenant_id),
        ).fetchone()
        if row is None:
            raise ApiError(404, "candidate_not_found", "no such POI candidate")
        problem = confirm_poi(conn, poi_id, tenant_id=caller.tenant_id, category=body.category,
                              name=body.name)  # fmt: skip
        if problem is not None:  # cannot happen after the check above; never half-confirm
            raise ApiError(409, "not_confirmed", problem)
        audit.write_sync(conn, audit.Entry.by(caller, ip, "poi_confirmed", "poi", poi_id,
                                              category=body.category, name=body.name))  # fmt: skip


@routes("POST", "/v1/pois/candidates/{id}/confirm", roles={"admin", "analyst"}, body=Confirm,
        response=PoiOut, errors=("candidate_not_found", "invalid_request"))  # fmt: skip
async def confirm_candidate(request: web.Request) -> web.Response:
    """Confirm a discovered candidate with its category (and a name); audited."""
    caller = request[CALLER]
    poi_id = path_id(request, "id", "candidate_not_found")
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            "SELECT 1 FROM risk_pois WHERE id = %s AND tenant_id = %s AND NOT confirmed",
            (poi_id, caller.tenant_id),
        )
        if await cur.fetchone() is None:  # 404 before any complaint about the body
            raise ApiError(404, "candidate_not_found", "no such POI candidate")
    body = await json_body(request, Confirm)
    await asyncio.to_thread(_confirm_sync, request.app[SYNC_POOL], caller, request[CLIENT_IP],
                            poi_id, body)  # fmt: skip
    async with request.app[POOL].connection() as conn:
        return json_response(await _poi(conn, caller.tenant_id, poi_id))


@routes("DELETE", "/v1/pois/{id}", roles={"admin", "analyst"}, response=PoiOut,
        errors=("poi_not_found", "poi_is_global"))  # fmt: skip
async def delete_poi(request: web.Request) -> web.Response:
    """Delete one of the tenant's own POIs or candidates (audited); its past visits stay."""
    caller = request[CALLER]
    poi_id = path_id(request, "id", "poi_not_found")
    async with request.app[POOL].connection() as conn, conn.transaction():
        poi = await _poi(conn, caller.tenant_id, poi_id)
        if poi.scope == "global":
            raise ApiError(409, "poi_is_global", "global POIs are managed with vgr cloud pois")
        await conn.execute("DELETE FROM risk_pois WHERE id = %s AND tenant_id = %s",
                           (poi_id, caller.tenant_id))  # fmt: skip
        entry = audit.Entry.by(caller, request[CLIENT_IP], "poi_deleted", "poi", poi_id,
                               name=poi.name, category=poi.category)  # fmt: skip
        await audit.write(conn, entry)
    return json_response(poi)
