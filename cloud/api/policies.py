"""Region policies: the signed ones per device, and a vehicle's as a GeoJSON map overlay.

Policies are signed by the registry when a device is provisioned
(:mod:`cloud.registry.issue`); creating them stays there. ``/v1/policies``
lists the tenant's signed policies (newest version per device first within
each device), ``/v1/policies/{id}`` gives one with its document and JWS.
``/v1/vehicles/{id}/policy`` turns the vehicle's region policy into a
FeatureCollection for the map: the newest signed policy of its devices
(``source: signed``, the shapes the trackers enforce), else the areas
declared on its loan (``source: loan``, not signed yet). Each area is a
Feature with ``role`` (allowed | forbidden), ``name``, ``id``, ``adcode``;
a circle is drawn as its geodesic polygon and also carries ``center`` and
``radius_m``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

import msgspec
from aiohttp import web
from shapely.geometry import mapping

from cloud.api.errors import ApiError, json_response
from cloud.api.fleet_params import FleetPageQuery, after, page
from cloud.api.params import path_id, query_params
from cloud.api.policy import Routes
from cloud.api.scope import VISIBLE_VEHICLE_SQL, visible_params
from cloud.api.state import CALLER, POOL
from protocols.errors import RegionError
from protocols.geometry import circle
from protocols.policy import Area, Circle

routes = Routes()
MAX_POLICY_ID_CHARS = 64


class PolicyQuery(FleetPageQuery, kw_only=True):
    device_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64,
                                           pattern=r"^[^\x00]+$")] | None = None  # fmt: skip


class PolicyItem(msgspec.Struct):
    id: str
    device_id: str
    vehicle_id: int | None
    version: int
    hash: str
    created_at: datetime


class PolicyList(msgspec.Struct):
    items: list[PolicyItem]
    next_cursor: str | None


class PolicyOut(msgspec.Struct):
    id: str
    device_id: str
    vehicle_id: int | None
    version: int
    hash: str
    created_at: datetime
    document: dict[str, Any]
    jws: str


_COLUMNS = "p.id, p.device_id, d.vehicle_id, p.version, p.hash, p.created_at"
_FROM = "FROM policies p LEFT JOIN devices d ON d.id = p.device_id AND d.tenant_id = p.tenant_id"


@routes("GET", "/v1/policies", roles={"admin", "analyst"}, query=PolicyQuery,
        response=PolicyList, errors=("invalid_parameter", "invalid_cursor"))  # fmt: skip
async def list_policies(request: web.Request) -> web.Response:
    """The tenant's signed region policies, by device then newest version first."""
    caller = request[CALLER]
    q = query_params(request, PolicyQuery)
    key = after("policies", q.cursor, (str, int))
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            f"SELECT {_COLUMNS} {_FROM} WHERE p.tenant_id = %(tenant)s "
            "AND (%(device)s::text IS NULL OR p.device_id = %(device)s) "
            "AND (%(a_dev)s::text IS NULL OR (p.device_id > %(a_dev)s) "
            "     OR (p.device_id = %(a_dev)s AND p.version < %(a_ver)s)) "
            "ORDER BY p.device_id, p.version DESC LIMIT %(limit)s",
            {"tenant": caller.tenant_id, "device": q.device_id,
             "a_dev": None if key is None else key[0], "a_ver": None if key is None else key[1],
             "limit": q.limit + 1},
        )  # fmt: skip
        rows = [PolicyItem(*r) for r in await cur.fetchall()]
    items, next_cursor = page(rows, q.limit, "policies", lambda p: (p.device_id, p.version))
    return json_response(PolicyList(list(items), next_cursor))


@routes("GET", "/v1/policies/{id}", roles={"admin", "analyst"}, response=PolicyOut,
        errors=("policy_not_found",))  # fmt: skip
async def get_policy(request: web.Request) -> web.Response:
    """One signed policy: its document and its JWS as the tracker received it."""
    policy_id = request.match_info["id"]
    if len(policy_id) > MAX_POLICY_ID_CHARS or "\x00" in policy_id:
        raise ApiError(404, "policy_not_found", "no such policy")
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            f"SELECT {_COLUMNS}, p.document, p.jws {_FROM} WHERE p.tenant_id = %s AND p.id = %s",
            (request[CALLER].tenant_id, policy_id),
        )
        row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "policy_not_found", "no such policy")
    return json_response(PolicyOut(*row))


# ---------------------------------------------------------------- the map overlay


def area_feature(area: Area, role: str) -> dict[str, Any]:
    """One area as a GeoJSON Feature (a circle as its geodesic polygon, with its centre)."""
    props: dict[str, Any] = {"role": role, "name": area.name, "id": area.id,
                             "adcode": area.adcode}  # fmt: skip
    shape = area.shape
    if isinstance(shape, Circle):
        props |= {"shape": "circle", "center": [shape.lon, shape.lat], "radius_m": shape.radius_m}
        try:
            geometry: Any = mapping(circle(shape.lon, shape.lat, shape.radius_m))
        except RegionError:  # a pole or the antimeridian: the centre alone
            geometry = {"type": "Point", "coordinates": [shape.lon, shape.lat]}
    else:
        props["shape"] = "geojson"
        geometry = shape.geometry
    return {"type": "Feature", "geometry": geometry, "properties": props}


def policy_collection(allowed: list[Area], forbidden: list[Area],
                      meta: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    features = [area_feature(a, "allowed") for a in allowed]
    features += [area_feature(a, "forbidden") for a in forbidden]
    return {"type": "FeatureCollection", "features": features, **meta}


_VEHICLE_POLICY = f"""SELECT
  (SELECT jsonb_build_array(p.id, p.version, p.created_at, p.document) FROM policies p
   JOIN devices d ON d.id = p.device_id AND d.tenant_id = p.tenant_id
   WHERE p.tenant_id = v.tenant_id AND d.vehicle_id = v.id AND NOT d.revoked
   ORDER BY p.created_at DESC, p.version DESC LIMIT 1),
  (SELECT jsonb_build_array(l.id, l.contract_id, l.allowed_areas, l.forbidden_areas)
   FROM loans l WHERE l.tenant_id = v.tenant_id AND l.vehicle_id = v.id
   ORDER BY l.status = 'closed', l.created_at DESC, l.id DESC LIMIT 1)
FROM vehicles v WHERE v.tenant_id = %(tenant)s AND v.id = %(vid)s
  AND {VISIBLE_VEHICLE_SQL.format(col="v.id")}"""  # noqa: S608


def _overlay(vehicle_id: int, signed: list[Any] | None, loan: list[Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"vehicle_id": vehicle_id, "source": None, "policy_id": None,
                            "version": None, "loan_contract": None}  # fmt: skip
    if loan is not None:
        meta["loan_contract"] = loan[1]
    if signed is not None:
        policy_id, version, _created, document = signed
        meta |= {"source": "signed", "policy_id": policy_id, "version": version}
        allowed = msgspec.convert(document.get("allowed", []), list[Area])
        forbidden = msgspec.convert(document.get("forbidden", []), list[Area])
    elif loan is not None:
        meta["source"] = "loan"
        allowed = msgspec.convert(loan[2], list[Area])
        forbidden = msgspec.convert(loan[3], list[Area])
    else:
        allowed, forbidden = [], []
    return policy_collection(allowed, forbidden, meta)


@routes("GET", "/v1/vehicles/{id}/policy", roles={"admin", "analyst", "recovery"},
        errors=("vehicle_not_found",))  # fmt: skip
async def vehicle_policy(request: web.Request) -> web.Response:
    """The vehicle's region policy as a GeoJSON FeatureCollection (allowed and forbidden)."""
    caller = request[CALLER]
    vehicle_id = path_id(request, "id", "vehicle_not_found")
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(_VEHICLE_POLICY, {"vid": vehicle_id, **visible_params(caller)})
        row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "vehicle_not_found", "no such vehicle")
    doc = await asyncio.to_thread(_overlay, vehicle_id, row[0], row[1])
    return json_response(doc)
