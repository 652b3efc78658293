"""``/v1/regions``: administrative regions (GB/T 2260) for pickers and an offline base map.

Regions are national reference data shared by every tenant
(``vgr cloud regions import``, :mod:`cloud.refdata`): WGS-84 polygons in
``regions``. The list carries no geometry; ``/v1/regions/{adcode}`` answers
one region as a GeoJSON Feature simplified to ``tolerance`` degrees;
``/v1/regions/basemap`` one FeatureCollection of every province (0.01°) or
city (0.005°) for the map's offline base layer. The basemap's encoded bytes
are kept in the application (:class:`BasemapCache`) until the stored regions
of that level change, and sent with an ``ETag``: a client that already has
them gets ``304 Not Modified``.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec
import numpy as np
import shapely
from aiohttp import web
from shapely.geometry import mapping

from cloud.api.errors import ApiError, json_response
from cloud.api.fleet_params import FleetPageQuery, after, page
from cloud.api.params import query_params
from cloud.api.policy import Routes
from cloud.api.state import POOL

routes = Routes()
Level = Literal["province", "city", "district"]
Adcode = Annotated[str, msgspec.Meta(pattern=r"^[1-9][0-9]{5}$")]
BASEMAP_TOLERANCE: Final = {"province": 0.01, "city": 0.005}
DEFAULT_TOLERANCE = 0.001
DECIMALS = 5  # ~1 m: far below any simplification tolerance served here


class RegionQuery(FleetPageQuery, kw_only=True):
    level: Level | None = None
    parent: Adcode | None = None


class RegionItem(msgspec.Struct):
    adcode: str
    name: str
    level: str
    parent: str | None


class RegionList(msgspec.Struct):
    items: list[RegionItem]
    next_cursor: str | None


class RegionShapeQuery(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    level: Level | None = None  # when one adcode names two levels (municipalities)
    tolerance: Annotated[float, msgspec.Meta(ge=0.0, le=0.1)] = DEFAULT_TOLERANCE


class BasemapQuery(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    level: Literal["province", "city"] = "province"


@dataclass(slots=True)
class _Basemap:
    version: tuple[int, datetime | None]
    body: bytes
    etag: str


@dataclass(slots=True)
class BasemapCache:
    """Encoded basemaps per level, with the stored-regions version they were made from."""

    entries: dict[str, _Basemap] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


BASEMAPS: Final = web.AppKey("api_basemaps", BasemapCache)


def simplified(wkb: bytes, tolerance: float) -> dict[str, Any]:
    """GeoJSON geometry of a WKB polygon, simplified (topology kept) and rounded."""
    geom = shapely.from_wkb(wkb)
    if tolerance > 0:
        geom = shapely.simplify(geom, tolerance, preserve_topology=True)
    geom = shapely.transform(geom, lambda xy: np.round(xy, DECIMALS))
    return dict(mapping(geom))


def feature(adcode: str, name: str, level: str, parent: str | None, wkb: bytes,
            tolerance: float) -> dict[str, Any]:  # fmt: skip
    return {"type": "Feature", "id": adcode, "geometry": simplified(wkb, tolerance),
            "properties": {"adcode": adcode, "name": name, "level": level,
                           "parent": parent}}  # fmt: skip


@routes("GET", "/v1/regions", roles={"admin", "analyst", "recovery"}, query=RegionQuery,
        response=RegionList, errors=("invalid_parameter", "invalid_cursor"))  # fmt: skip
async def list_regions(request: web.Request) -> web.Response:
    """Regions by adcode (no geometry); filters level and parent."""
    q = query_params(request, RegionQuery)
    key = after("regions", q.cursor, (str, str))
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            "SELECT adcode, name, level, parent FROM regions "
            "WHERE (%(level)s::text IS NULL OR level = %(level)s) "
            "AND (%(parent)s::text IS NULL OR parent = %(parent)s) "
            "AND (%(a_code)s::text IS NULL OR (adcode, level) > (%(a_code)s, %(a_level)s)) "
            "ORDER BY adcode, level LIMIT %(limit)s",
            {"level": q.level, "parent": q.parent, "a_code": None if key is None else key[0],
             "a_level": None if key is None else key[1], "limit": q.limit + 1},
        )  # fmt: skip
        rows = [RegionItem(*r) for r in await cur.fetchall()]
    items, next_cursor = page(rows, q.limit, "regions", lambda r: (r.adcode, r.level))
    return json_response(RegionList(list(items), next_cursor))


async def _basemap(request: web.Request, level: str) -> _Basemap:
    cache = request.app[BASEMAPS]
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            "SELECT count(*), max(imported_at) FROM regions WHERE level = %s", (level,)
        )
        row = await cur.fetchone()
        assert row is not None
        version = (int(row[0]), row[1])
        async with cache.lock:
            entry = cache.entries.get(level)
            if entry is not None and entry.version == version:
                return entry
            cur = await conn.execute(
                "SELECT adcode, name, level, parent, geom FROM regions WHERE level = %s "
                "ORDER BY adcode",
                (level,),
            )
            rows = await cur.fetchall()
            tolerance = BASEMAP_TOLERANCE[level]

            def encode() -> bytes:
                features = [feature(a, n, lv, p, bytes(g), tolerance) for a, n, lv, p, g in rows]
                return msgspec.json.encode({"type": "FeatureCollection", "level": level,
                                            "tolerance_deg": tolerance,
                                            "features": features})  # fmt: skip

            body = await asyncio.to_thread(encode)
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            entry = cache.entries[level] = _Basemap(version, body, etag)
            return entry


@routes("GET", "/v1/regions/basemap", roles={"admin", "analyst", "recovery"},
        query=BasemapQuery, errors=("invalid_parameter",))  # fmt: skip
async def basemap(request: web.Request) -> web.Response:
    """Every province (or city) as one simplified FeatureCollection, with an ETag."""
    q = query_params(request, BasemapQuery)
    entry = await _basemap(request, q.level)
    headers = {"ETag": entry.etag, "Cache-Control": "private, no-cache"}
    if entry.etag in {t.strip() for t in request.headers.get("If-None-Match", "").split(",")}:
        return web.Response(status=304, headers=headers)
    return web.Response(body=entry.body, content_type="application/json", headers=headers)


@routes("GET", "/v1/regions/{adcode}", roles={"admin", "analyst", "recovery"},
        query=RegionShapeQuery, errors=("region_not_found", "invalid_parameter"))  # fmt: skip
async def get_region(request: web.Request) -> web.Response:
    """One region as a GeoJSON Feature simplified to ``tolerance`` degrees."""
    adcode = request.match_info["adcode"]
    q = query_params(request, RegionShapeQuery)
    if not (len(adcode) == 6 and adcode.isascii() and adcode.isdigit()):
        raise ApiError(404, "region_not_found", "no such region")
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            "SELECT adcode, name, level, parent, geom FROM regions WHERE adcode = %s "
            "AND (%s::text IS NULL OR level = %s) ORDER BY CASE level WHEN 'province' THEN 0 "
            "WHEN 'city' THEN 1 ELSE 2 END LIMIT 1",
            (adcode, q.level, q.level),
        )
        row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "region_not_found", "no such region")
    code, name, level, parent, geom = row
    doc = await asyncio.to_thread(feature, code, name, level, parent, bytes(geom), q.tolerance)
    return json_response(doc)
