"""``/v1/vehicles`` and ``/v1/fleet/positions``: the fleet, one vehicle, where the cars are.

Lists and details carry no coordinates; positions come only from audited
routes, each writing its audit row in the same transaction as it reads the
fixes (no audit row, no position): ``/v1/vehicles/{id}/position``
(``viewed_location``) and ``/v1/fleet/positions`` (one ``viewed_locations``
row per call naming every vehicle it returned). Another tenant's vehicle, or
one outside a recovery agent's assigned cases, is ``404 vehicle_not_found``
and never listed (:mod:`cloud.api.scope`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from aiohttp import web

from cloud.api import audit
from cloud.api.devices import DeviceOut, vehicle_devices
from cloud.api.errors import ApiError, json_response
from cloud.api.fleet_params import (
    CURRENT_LOAN,
    OPEN_ALERTS,
    VEHICLE_ONLINE,
    BBox,
    Cursor,
    FleetPageQuery,
    Search,
    after,
    like_prefix,
    loan_doc,
    page,
    parse_bbox,
)
from cloud.api.params import path_id, query_params
from cloud.api.policy import Routes
from cloud.api.scope import VISIBLE_VEHICLE_SQL, vehicle_visible, visible_params
from cloud.api.state import CALLER, CLIENT_IP, POOL

routes = Routes()
_VISIBLE = VISIBLE_VEHICLE_SQL.format(col="v.id")
MAX_POSITIONS = 10_000
DEFAULT_POSITIONS = 1000


class VehicleQuery(FleetPageQuery, kw_only=True):
    q: Search | None = None  # prefix of the VIN, the plate or a loan contract
    risk_min: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)] | None = None
    online: bool | None = None


class VehicleItem(msgspec.Struct):
    id: int
    vin: str
    plate: str | None
    label: str
    contract: str | None
    loan_status: str | None
    risk_score: float | None
    risk_level: str | None
    open_alerts: int
    online: bool


class VehicleList(msgspec.Struct):
    items: list[VehicleItem]
    next_cursor: str | None


class LoanSummary(msgspec.Struct):
    id: int
    contract: str
    status: str
    overdue_days: int | None
    principal: float | None
    outstanding: float | None
    exposure: float | None  # the outstanding balance: what the recovery queue ranks by


class Risk(msgspec.Struct):
    score: float
    level: str
    reasons: list[Any]
    updated_at: datetime


class VehicleOut(msgspec.Struct):
    id: int
    vin: str
    plate: str | None
    label: str
    model: str | None
    loan: LoanSummary | None
    devices: list[DeviceOut]
    risk: Risk | None
    open_alerts: int


class PositionQuery(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_POSITIONS)] = DEFAULT_POSITIONS
    cursor: Cursor | None = None
    bbox: BBox | None = None


class PositionItem(msgspec.Struct):
    vehicle_id: int
    lat: float
    lon: float
    time: datetime
    speed_mps: float
    course_deg: float | None
    risk_score: float | None
    risk_level: str | None
    online: bool


class PositionList(msgspec.Struct):
    items: list[PositionItem]
    next_cursor: str | None


def label_of(vin: str, plate: str | None) -> str:
    """What a person calls the car: its plate, else its VIN."""
    return plate or vin


_LIST = f"""SELECT v.id, v.vin, v.plate, l.contract_id, l.status, r.score, r.band,
       {OPEN_ALERTS}, {VEHICLE_ONLINE}
FROM vehicles v
LEFT JOIN LATERAL ({CURRENT_LOAN}) l ON true
LEFT JOIN vehicle_risk r ON r.vehicle_id = v.id AND r.tenant_id = v.tenant_id
WHERE v.tenant_id = %(tenant)s AND {_VISIBLE}
  AND (%(after)s::bigint IS NULL OR v.id > %(after)s)
  AND (%(q)s::text IS NULL OR v.vin LIKE upper(%(q)s) OR v.plate ILIKE %(q)s
       OR EXISTS (SELECT 1 FROM loans ql WHERE ql.tenant_id = v.tenant_id
                  AND ql.vehicle_id = v.id AND ql.contract_id LIKE %(q)s))
  AND (%(risk_min)s::float8 IS NULL OR r.score >= %(risk_min)s)
  AND (%(online)s::boolean IS NULL OR {VEHICLE_ONLINE} = %(online)s)
ORDER BY v.id LIMIT %(limit)s"""  # noqa: S608 (constants only)


@routes("GET", "/v1/vehicles", roles={"admin", "analyst", "recovery"}, query=VehicleQuery,
        response=VehicleList, errors=("invalid_parameter", "invalid_cursor"))  # fmt: skip
async def list_vehicles(request: web.Request) -> web.Response:
    """The vehicles the caller may see, by id, with loan, risk, alerts and online state."""
    caller = request[CALLER]
    q = query_params(request, VehicleQuery)
    key = after("vehicles", q.cursor, (int,))
    params = {"after": None if key is None else key[0], "q": like_prefix(q.q),
              "risk_min": q.risk_min,
              "online": q.online, "limit": q.limit + 1, **visible_params(caller)}  # fmt: skip
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(_LIST, params)
        rows = [
            VehicleItem(vid, vin, plate, label_of(vin, plate), contract, status, score, band,
                        alerts, online)
            for vid, vin, plate, contract, status, score, band, alerts, online
            in await cur.fetchall()
        ]  # fmt: skip
    items, next_cursor = page(rows, q.limit, "vehicles", lambda v: (v.id,))
    return json_response(VehicleList(list(items), next_cursor))


_ONE = f"""SELECT v.id, v.vin, v.plate, v.model, l.*, r.score, r.band, r.reasons, r.updated_at,
       {OPEN_ALERTS}
FROM vehicles v
LEFT JOIN LATERAL ({CURRENT_LOAN}) l ON true
LEFT JOIN vehicle_risk r ON r.vehicle_id = v.id AND r.tenant_id = v.tenant_id
WHERE v.tenant_id = %(tenant)s AND v.id = %(vid)s AND {_VISIBLE}"""  # noqa: S608


@routes("GET", "/v1/vehicles/{id}", roles={"admin", "analyst", "recovery"}, response=VehicleOut,
        errors=("vehicle_not_found",))  # fmt: skip
async def get_vehicle(request: web.Request) -> web.Response:
    """One vehicle: its loan, its devices' health, its risk and open alerts (no position)."""
    caller = request[CALLER]
    vehicle_id = path_id(request, "id", "vehicle_not_found")
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(_ONE, {"vid": vehicle_id, **visible_params(caller)})
        row = await cur.fetchone()
        if row is None:
            raise ApiError(404, "vehicle_not_found", "no such vehicle")
        devices = await vehicle_devices(conn, caller.tenant_id, vehicle_id)
    vid, vin, plate, model = row[:4]
    loan = loan_doc(row[4:10])
    score, band, reasons, updated, alerts = row[10:]
    return json_response(VehicleOut(
        id=vid, vin=vin, plate=plate, label=label_of(vin, plate), model=model,
        loan=None if loan is None else LoanSummary(**loan), devices=devices,
        risk=None if score is None else Risk(float(score), band, list(reasons or []), updated),
        open_alerts=alerts,
    ))  # fmt: skip


@routes("GET", "/v1/vehicles/{id}/position", roles={"admin", "analyst", "recovery"},
        errors=("vehicle_not_found",))  # fmt: skip
async def position(request: web.Request) -> web.Response:
    """A vehicle's last known position (audited ``viewed_location``)."""
    caller = request[CALLER]
    vehicle_id = path_id(request, "id", "vehicle_not_found")
    async with request.app[POOL].connection() as conn, conn.transaction():
        if not await vehicle_visible(conn, caller, vehicle_id):
            raise ApiError(404, "vehicle_not_found", "no such vehicle")
        cur = await conn.execute(
            "SELECT time, lat, lon, speed_mps, course_deg, hdop, sats, device_id, received_at "
            "FROM fixes WHERE tenant_id = %s AND vehicle_id = %s ORDER BY time DESC LIMIT 1",
            (caller.tenant_id, vehicle_id),
        )
        row = await cur.fetchone()
        fix_time = None if row is None else row[0].isoformat()
        entry = audit.Entry.by(caller, request[CLIENT_IP], "viewed_location", "vehicle",
                               vehicle_id, fix_time=fix_time)  # fmt: skip
        await audit.write(conn, entry)
    pos = None
    if row is not None:
        t, lat, lon, speed, course, hdop, sats, device_id, received = row
        pos = {"time": t.isoformat(), "lat": lat, "lon": lon, "speed_mps": speed,
               "course_deg": course, "hdop": hdop, "sats": sats, "device_id": device_id,
               "received_at": received.isoformat()}  # fmt: skip
    return json_response({"vehicle_id": vehicle_id, "position": pos})


# The last fix of each vehicle by a LATERAL probe of the (vehicle_id, time DESC) index,
# newest chunk first, as cloud.storage.queries.last_positions (measurements there):
# one statement for the whole page, however long a car has been silent.
_POSITIONS = f"""SELECT v.id, f.lat, f.lon, f.time, f.speed_mps, f.course_deg, r.score, r.band,
       {VEHICLE_ONLINE}
FROM vehicles v
CROSS JOIN LATERAL (
    SELECT lat, lon, time, speed_mps, course_deg FROM fixes f
    WHERE f.vehicle_id = v.id AND f.tenant_id = v.tenant_id ORDER BY f.time DESC LIMIT 1
) f
LEFT JOIN vehicle_risk r ON r.vehicle_id = v.id AND r.tenant_id = v.tenant_id
WHERE v.tenant_id = %(tenant)s AND {_VISIBLE}
  AND (%(after)s::bigint IS NULL OR v.id > %(after)s)
  AND (NOT %(boxed)s OR (f.lon BETWEEN %(min_lon)s AND %(max_lon)s
                         AND f.lat BETWEEN %(min_lat)s AND %(max_lat)s))
ORDER BY v.id LIMIT %(limit)s"""  # noqa: S608


@routes("GET", "/v1/fleet/positions", roles={"admin", "analyst", "recovery"},
        query=PositionQuery, response=PositionList,
        errors=("invalid_parameter", "invalid_cursor"))  # fmt: skip
async def fleet_positions(request: web.Request) -> web.Response:
    """The last position of every vehicle the caller may see (one ``viewed_locations`` row)."""
    caller = request[CALLER]
    q = query_params(request, PositionQuery)
    key = after("positions", q.cursor, (int,))
    box = parse_bbox(q.bbox)
    min_lon, min_lat, max_lon, max_lat = box or (0.0, 0.0, 0.0, 0.0)
    params = {"after": None if key is None else key[0], "boxed": box is not None,
              "min_lon": min_lon, "min_lat": min_lat, "max_lon": max_lon, "max_lat": max_lat,
              "limit": q.limit + 1, **visible_params(caller)}  # fmt: skip
    async with request.app[POOL].connection() as conn, conn.transaction():
        cur = await conn.execute(_POSITIONS, params)
        rows = [PositionItem(*r) for r in await cur.fetchall()]
        items, next_cursor = page(rows, q.limit, "positions", lambda p: (p.vehicle_id,))
        entry = audit.Entry.by(caller, request[CLIENT_IP], "viewed_locations", "vehicle", None,
                               vehicle_ids=[p.vehicle_id for p in items], bbox=q.bbox)  # fmt: skip
        await audit.write(conn, entry)
    return json_response(PositionList(list(items), next_cursor))
