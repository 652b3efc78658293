"""``/v1/vehicles/{id}/position``: a vehicle's last known position, audited.

The position is read and the ``viewed_location`` audit row is written in one
transaction: if the audit row cannot be written, no position is returned.
Another tenant's vehicle, or one outside a recovery agent's assigned cases,
is ``404 vehicle_not_found``.
"""

from __future__ import annotations

from aiohttp import web

from cloud.api import audit
from cloud.api.errors import ApiError, json_response
from cloud.api.params import path_id
from cloud.api.policy import Routes
from cloud.api.scope import vehicle_visible
from cloud.api.state import CALLER, CLIENT_IP, POOL

routes = Routes()


@routes("GET", "/v1/vehicles/{id}/position", roles={"admin", "analyst", "recovery"})
async def position(request: web.Request) -> web.Response:
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
