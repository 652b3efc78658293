"""``/v1/vehicles/{id}/track`` and ``/places``: where a car went and where it usually is.

Both read locations, so each writes its audit row (``viewed_track``,
``viewed_places``) in the same transaction as it reads the fixes. They run
on the blocking pool in a worker thread, reusing the stored-fix queries
(:func:`cloud.storage.queries.track`) and the stay detection of the recovery
queue (:func:`cloud.recovery.stays.stay_points`).

**Track**: at most 31 days (default: the last 24 hours). The fixes come
raw, or pre-thinned by :func:`~cloud.storage.queries.track` to
:data:`PRE_POINTS` time buckets on very long ranges; stays are found on
them, then :func:`cloud.api.downsample.simplify_indices` (Douglas-Peucker in
metres) keeps at most ``max_points`` points, always the first, the last and
the arrival and departure of every stay. ``total`` counts the fixes stored
in the range, ``downsampled`` says whether fewer points came back.

**Places**: the resident places the risk engine learned (rule ``resident``
state: main place and secondary ones, with the nights seen there), else the
point of its last ``resident_learned`` alert, else the loan's declared
address; the stays of the seven days before the car's last fix (a car gone
silent still shows where it stood before); the risk POIs it visited.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
import psycopg
from aiohttp import web
from psycopg_pool import ConnectionPool

from cloud.api import audit
from cloud.api.downsample import simplify_indices
from cloud.api.errors import ApiError, json_response
from cloud.api.fleet_params import check_aware
from cloud.api.params import path_id, query_params
from cloud.api.policy import Caller, Routes
from cloud.api.scope import vehicle_visible_sync
from cloud.api.state import CALLER, CLIENT_IP, SYNC_POOL
from cloud.recovery.stays import Stay, stay_points
from cloud.recovery.worklist import RESIDENT_RULE, STAY_WINDOW, resident_point
from cloud.risk.engine import ENGINE_VERSION, VehicleState
from cloud.risk.rules.resident import RESIDENT, ResidentConfig, ResidentState
from cloud.storage.queries import TrackPoint, track

routes = Routes()
Conn = psycopg.Connection[Any]
SyncPool = ConnectionPool[Conn]
MAX_RANGE = timedelta(days=31)
DEFAULT_RANGE = timedelta(hours=24)
DEFAULT_MAX_POINTS = 2000
MAX_POINTS = 10_000
PRE_POINTS = 50_000  # longer ranges are time-bucketed in the database first
RECENT_STAYS = 10
POIS_VISITED = 20


class TrackQuery(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    from_: datetime | None = msgspec.field(default=None, name="from")
    to: datetime | None = None
    max_points: Annotated[int, msgspec.Meta(ge=2, le=MAX_POINTS)] = DEFAULT_MAX_POINTS


class TrackPointOut(msgspec.Struct):
    t: datetime
    lat: float
    lon: float
    speed_mps: float
    course_deg: float | None


class StayOut(msgspec.Struct):
    start: datetime
    end: datetime
    lat: float
    lon: float
    duration_s: float
    fixes: int


class TrackOut(msgspec.Struct):
    vehicle_id: int
    from_: datetime = msgspec.field(name="from")
    to: datetime
    total: int
    downsampled: bool
    points: list[TrackPointOut]
    stays: list[StayOut]


class ResidentPlace(msgspec.Struct):
    lat: float
    lon: float
    radius_m: float
    nights: int | None  # nights seen there (None when not known)
    share: float | None  # of the night dwell
    kind: Literal["resident", "secondary", "declared"]
    since: datetime | None  # when the risk engine learned it, when known


class PoiVisited(msgspec.Struct):
    id: int
    name: str
    category: str
    lat: float
    lon: float
    radius_m: float
    visits: int
    last_visit: datetime


class PlacesOut(msgspec.Struct):
    vehicle_id: int
    resident: list[ResidentPlace]
    recent_stays: list[StayOut]
    pois_visited: list[PoiVisited]


def _stay_out(s: Stay) -> StayOut:
    return StayOut(s.arrived, s.left, s.lat, s.lon, s.duration.total_seconds(), s.fixes)


def _range(q: TrackQuery, now: datetime) -> tuple[datetime, datetime]:
    end = now if q.to is None else check_aware(q.to, "to")
    start = end - DEFAULT_RANGE if q.from_ is None else check_aware(q.from_, "from")
    if not start < end:
        raise ApiError(400, "invalid_parameter", "from must be before to")
    if end - start > MAX_RANGE:
        raise ApiError(400, "invalid_parameter", f"a track spans at most {MAX_RANGE.days} days")
    return start, end


def thin(points: list[TrackPoint], max_points: int) -> tuple[list[TrackPoint], list[Stay]]:
    """The points to draw and the stays among them (stay boundaries always kept)."""
    stays = stay_points(points)
    index = {p.time: i for i, p in enumerate(points)}
    keep = [index[t] for s in stays for t in (s.arrived, s.left)]
    kept = simplify_indices([p.lat for p in points], [p.lon for p in points], max_points,
                            keep=keep)  # fmt: skip
    return [points[i] for i in kept], stays


@dataclass(frozen=True, slots=True)
class _Ask:
    caller: Caller
    ip: str | None
    vehicle_id: int


def _visible(conn: Conn, ask: _Ask) -> None:
    if not vehicle_visible_sync(conn, ask.caller, ask.vehicle_id):
        raise ApiError(404, "vehicle_not_found", "no such vehicle")


def _track_sync(pool: SyncPool, ask: _Ask, start: datetime, end: datetime,
                max_points: int) -> TrackOut:  # fmt: skip
    with pool.connection() as conn, conn.transaction():
        _visible(conn, ask)
        points = track(conn, ask.caller.tenant_id, ask.vehicle_id, start, end,
                       max_points=PRE_POINTS)  # fmt: skip
        total = sum(p.fixes for p in points)
        drawn, stays = thin(points, max_points)
        audit.write_sync(conn, audit.Entry.by(
            ask.caller, ask.ip, "viewed_track", "vehicle", ask.vehicle_id,
            start=start.isoformat(), end=end.isoformat(), points=len(drawn)))  # fmt: skip
    return TrackOut(
        vehicle_id=ask.vehicle_id, from_=start, to=end, total=total,
        downsampled=len(drawn) < total,
        points=[TrackPointOut(p.time, p.lat, p.lon, p.speed_mps, p.course_deg) for p in drawn],
        stays=[_stay_out(s) for s in stays],
    )  # fmt: skip


@routes("GET", "/v1/vehicles/{id}/track", roles={"admin", "analyst", "recovery"},
        query=TrackQuery, response=TrackOut,
        errors=("vehicle_not_found", "invalid_parameter"))  # fmt: skip
async def vehicle_track(request: web.Request) -> web.Response:
    """The vehicle's track over at most 31 days, thinned, with its stays (audited)."""
    q = query_params(request, TrackQuery)
    ask = _Ask(request[CALLER], request[CLIENT_IP], path_id(request, "id", "vehicle_not_found"))
    start, end = _range(q, datetime.now(UTC))
    out = await asyncio.to_thread(_track_sync, request.app[SYNC_POOL], ask, start, end,
                                  q.max_points)  # fmt: skip
    return json_response(out)


# ---------------------------------------------------------------- places


def learned_homes(raw: bytes | None, engine_version: int | None,
                  radius_m: float) -> list[ResidentPlace]:  # fmt: skip
    """The resident places in a vehicle's stored rule state (none if the layout is older)."""
    if raw is None or engine_version != ENGINE_VERSION:
        return []
    state = VehicleState.decode(raw, None, None, {RESIDENT.name: RESIDENT}).rules.get(RESIDENT.name)
    if not isinstance(state, ResidentState):
        return []
    return [
        ResidentPlace(h.lat, h.lon, radius_m, h.nights, h.share,
                      "resident" if i == 0 else "secondary", None)
        for i, h in enumerate(state.homes)
    ]  # fmt: skip


_PLACES = """SELECT rs.state, rs.engine_version, rs.updated_at, l.declared_lat, l.declared_lon,
       (SELECT max(time) FROM fixes f WHERE f.tenant_id = v.tenant_id AND f.vehicle_id = v.id)
FROM vehicles v
LEFT JOIN rule_state rs ON rs.vehicle_id = v.id AND rs.tenant_id = v.tenant_id
LEFT JOIN LATERAL (
    SELECT declared_lat, declared_lon FROM loans l WHERE l.tenant_id = v.tenant_id
    AND l.vehicle_id = v.id ORDER BY l.status = 'closed', l.created_at DESC, l.id DESC LIMIT 1
) l ON true
WHERE v.tenant_id = %s AND v.id = %s"""

_LEARNED_ALERT = """SELECT fired_at, evidence, lat, lon FROM alerts
WHERE tenant_id = %s AND vehicle_id = %s AND rule = %s ORDER BY fired_at DESC, id DESC LIMIT 1"""

_POIS = """SELECT p.id, p.name, p.category, p.lat, p.lon, p.radius_m, count(*), max(pv.time)
FROM poi_visits pv
JOIN risk_pois p ON p.id::text = pv.poi_id AND (p.tenant_id IS NULL OR p.tenant_id = pv.tenant_id)
WHERE pv.tenant_id = %s AND pv.vehicle_id = %s
GROUP BY p.id ORDER BY max(pv.time) DESC LIMIT %s"""


def _resident(conn: Conn, ask: _Ask, row: tuple[Any, ...]) -> list[ResidentPlace]:
    raw, version, updated, declared_lat, declared_lon, _ = row
    radius = ResidentConfig().place_radius_m
    homes = learned_homes(None if raw is None else bytes(raw), version, radius)
    if homes:
        return [msgspec.structs.replace(h, since=updated) for h in homes]
    params = (ask.caller.tenant_id, ask.vehicle_id, RESIDENT_RULE)
    alert = conn.execute(_LEARNED_ALERT, params).fetchone()
    if alert is not None:
        point = resident_point(alert[1], alert[2], alert[3])
        if point is not None:
            return [ResidentPlace(point[0], point[1], radius, None, None, "resident", alert[0])]
    if declared_lat is not None and declared_lon is not None:
        return [ResidentPlace(declared_lat, declared_lon, radius, None, None, "declared", None)]
    return []


def _places_sync(pool: SyncPool, ask: _Ask) -> PlacesOut:
    tenant = ask.caller.tenant_id
    with pool.connection() as conn, conn.transaction():
        _visible(conn, ask)
        row = conn.execute(_PLACES, (tenant, ask.vehicle_id)).fetchone()
        assert row is not None, "visible vehicles exist"
        resident = _resident(conn, ask, row)
        last_fix: datetime | None = row[5]
        stays: list[Stay] = []
        if last_fix is not None:
            end = last_fix + timedelta(microseconds=1)
            points = track(conn, tenant, ask.vehicle_id, end - STAY_WINDOW, end,
                           max_points=PRE_POINTS)  # fmt: skip
            stays = list(reversed(stay_points(points)))[:RECENT_STAYS]
        pois = [PoiVisited(*r) for r in
                conn.execute(_POIS, (tenant, ask.vehicle_id, POIS_VISITED)).fetchall()]  # fmt: skip
        audit.write_sync(conn, audit.Entry.by(ask.caller, ask.ip, "viewed_places", "vehicle",
                                              ask.vehicle_id))  # fmt: skip
    return PlacesOut(ask.vehicle_id, resident, [_stay_out(s) for s in stays], pois)


@routes("GET", "/v1/vehicles/{id}/places", roles={"admin", "analyst", "recovery"},
        response=PlacesOut, errors=("vehicle_not_found",))  # fmt: skip
async def vehicle_places(request: web.Request) -> web.Response:
    """Where the car usually is: resident places, recent stays, risk POIs visited (audited)."""
    ask = _Ask(request[CALLER], request[CLIENT_IP], path_id(request, "id", "vehicle_not_found"))
    return json_response(await asyncio.to_thread(_places_sync, request.app[SYNC_POOL], ask))
