"""``/v1/devices``: trackers and their health, never their positions.

Health comes from the registry (``devices``: kind, binding, revocation,
credentials), the retained status topic (``device_status``: online /
offline / unauthorized, agent version, outbox depth) and the last stored fix
(time and voltages only: installers may call these routes, and they see no
positions). Another tenant's device is ``404 device_not_found``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import psycopg
from aiohttp import web

from cloud.api.errors import ApiError, json_response
from cloud.api.fleet_params import FleetPageQuery, after, page
from cloud.api.params import MAX_ID, query_params
from cloud.api.policy import Routes
from cloud.api.state import CALLER, POOL

routes = Routes()
AConn = psycopg.AsyncConnection[Any]
MAX_DEVICE_ID_CHARS = 64


class DeviceOut(msgspec.Struct):
    id: str
    imei: str
    kind: str  # wired | wireless
    vehicle_id: int | None
    vin: str | None
    loan_contract: str | None
    revoked: bool
    revoked_at: datetime | None
    has_credentials: bool
    token_expires_at: datetime | None
    heartbeat_s: int
    wakes_per_day: float | None
    state: str | None  # device_status: online | offline | unauthorized; None: never reported
    online: bool
    authorized: bool  # not revoked, has credentials, and the broker did not refuse it
    firmware: str | None  # the edge agent's version
    outbox_depth: int | None
    status_reason: str | None
    status_at: datetime | None
    last_fix_at: datetime | None  # GNSS time of the last stored fix
    last_seen: datetime | None  # the later of the last fix's arrival and the last status
    battery: float | None  # volts, the tracker's own battery, from the last fix
    main_power: float | None  # volts, the vehicle supply, from the last fix
    created_at: datetime


class DeviceList(msgspec.Struct):
    items: list[DeviceOut]
    next_cursor: str | None


class DeviceQuery(FleetPageQuery, kw_only=True):
    kind: Literal["wired", "wireless"] | None = None
    state: Literal["online", "offline", "unauthorized", "unknown"] | None = None
    vehicle_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)] | None = None
    revoked: bool | None = None


_HEALTH = """SELECT d.id, d.kind, d.vehicle_id, v.vin, l.contract_id, d.revoked, d.revoked_at,
       d.credential_hash IS NOT NULL, d.token_expires_at, d.heartbeat_s, d.wakes_per_day,
       s.state, s.agent_version, s.outbox_depth, s.reason, s.updated_at,
       f.time, f.received_at, f.batt_v, f.ext_v, d.created_at
FROM devices d
LEFT JOIN vehicles v ON v.id = d.vehicle_id AND v.tenant_id = d.tenant_id
LEFT JOIN loans l ON l.id = d.loan_id AND l.tenant_id = d.tenant_id
LEFT JOIN device_status s ON s.device_id = d.id
LEFT JOIN LATERAL (
    SELECT time, received_at, batt_v, ext_v FROM fixes f
    WHERE f.device_id = d.id AND f.tenant_id = d.tenant_id ORDER BY f.time DESC LIMIT 1
) f ON true
WHERE d.tenant_id = %(tenant)s"""


def device_out(row: Sequence[Any]) -> DeviceOut:
    (dev_id, kind, vehicle_id, vin, contract, revoked, revoked_at, has_cred, token_exp,
     heartbeat, wakes, state, version, depth, reason, status_at, fix_t, fix_rx, batt, ext,
     created) = row  # fmt: skip
    seen = [t for t in (fix_rx, status_at) if t is not None]
    return DeviceOut(
        id=dev_id, imei=dev_id, kind=kind, vehicle_id=vehicle_id, vin=vin, loan_contract=contract,
        revoked=revoked, revoked_at=revoked_at, has_credentials=has_cred,
        token_expires_at=token_exp, heartbeat_s=heartbeat, wakes_per_day=wakes, state=state,
        online=state == "online" and not revoked,
        authorized=not revoked and has_cred and state != "unauthorized",
        firmware=version, outbox_depth=depth, status_reason=reason, status_at=status_at,
        last_fix_at=fix_t, last_seen=max(seen, default=None), battery=batt, main_power=ext,
        created_at=created,
    )  # fmt: skip


async def vehicle_devices(conn: AConn, tenant_id: str, vehicle_id: int) -> list[DeviceOut]:
    """The health of a vehicle's devices (revoked last), for ``/v1/vehicles/{id}``."""
    cur = await conn.execute(
        _HEALTH + " AND d.vehicle_id = %(vid)s ORDER BY d.revoked, d.id",
        {"tenant": tenant_id, "vid": vehicle_id},
    )
    return [device_out(r) for r in await cur.fetchall()]


@routes("GET", "/v1/devices", roles={"admin", "analyst", "installer"}, query=DeviceQuery,
        response=DeviceList, errors=("invalid_parameter", "invalid_cursor"))  # fmt: skip
async def list_devices(request: web.Request) -> web.Response:
    """The tenant's devices with their health, by id; filters kind, state, vehicle, revoked."""
    caller = request[CALLER]
    q = query_params(request, DeviceQuery)
    key = after("devices", q.cursor, (str,))
    state = None if q.state == "unknown" else q.state
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            _HEALTH + " AND (%(kind)s::text IS NULL OR d.kind = %(kind)s) "
            "AND (%(vid)s::bigint IS NULL OR d.vehicle_id = %(vid)s) "
            "AND (%(revoked)s::boolean IS NULL OR d.revoked = %(revoked)s) "
            "AND (NOT %(unknown)s OR s.state IS NULL) "
            "AND (%(state)s::text IS NULL OR s.state = %(state)s) "
            "AND (%(after)s::text IS NULL OR d.id > %(after)s) ORDER BY d.id LIMIT %(limit)s",
            {"tenant": caller.tenant_id, "kind": q.kind, "vid": q.vehicle_id,
             "revoked": q.revoked, "unknown": q.state == "unknown", "state": state,
             "after": None if key is None else key[0], "limit": q.limit + 1},
        )  # fmt: skip
        rows = [device_out(r) for r in await cur.fetchall()]
    items, next_cursor = page(rows, q.limit, "devices", lambda d: (d.id,))
    return json_response(DeviceList(list(items), next_cursor))


@routes("GET", "/v1/devices/{id}", roles={"admin", "analyst", "installer"}, response=DeviceOut,
        errors=("device_not_found",))  # fmt: skip
async def get_device(request: web.Request) -> web.Response:
    """One device with its health."""
    device_id = request.match_info["id"]
    if len(device_id) > MAX_DEVICE_ID_CHARS or "\x00" in device_id:
        raise ApiError(404, "device_not_found", "no such device")
    async with request.app[POOL].connection() as conn:
        params = {"tenant": request[CALLER].tenant_id, "id": device_id}
        cur = await conn.execute(_HEALTH + " AND d.id = %(id)s", params)
        row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "device_not_found", "no such device")
    return json_response(device_out(row))
