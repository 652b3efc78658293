"""``/v1/tenant``: the caller's own institution, with counts; an admin may rename it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from aiohttp import web

from cloud.api import audit
from cloud.api.errors import json_response
from cloud.api.params import json_body
from cloud.api.policy import Caller, Routes
from cloud.api.state import CALLER, CLIENT_IP, POOL

routes = Routes()
_NAME = r"^[^\x00]*\S[^\x00]*$"  # not blank, no NUL


class TenantCounts(msgspec.Struct):
    vehicles: int
    devices: int  # not revoked
    loans: int  # not closed
    users: int  # people, not disabled
    open_alerts: int  # open or acknowledged
    open_cases: int  # recovery cases not closed


class TenantOut(msgspec.Struct):
    id: str
    name: str
    retention_days: int
    created_at: datetime
    counts: TenantCounts


class TenantPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=_NAME)]


_TENANT = """SELECT t.id, t.name, t.retention_days, t.created_at,
  (SELECT count(*) FROM vehicles WHERE tenant_id = t.id),
  (SELECT count(*) FROM devices WHERE tenant_id = t.id AND NOT revoked),
  (SELECT count(*) FROM loans WHERE tenant_id = t.id AND status <> 'closed'),
  (SELECT count(*) FROM users WHERE tenant_id = t.id AND role <> 'integration' AND NOT disabled),
  (SELECT count(*) FROM alerts WHERE tenant_id = t.id AND status IN ('open', 'acknowledged')),
  (SELECT count(*) FROM recovery_cases WHERE tenant_id = t.id AND status <> 'closed')
FROM tenants t WHERE t.id = %s"""


async def _tenant(request: web.Request, caller: Caller) -> TenantOut:
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(_TENANT, (caller.tenant_id,))
        row = await cur.fetchone()
    assert row is not None, "a caller's tenant exists (users reference it)"
    tenant_id, name, retention_days, created_at = row[:4]
    return TenantOut(tenant_id, name, retention_days, created_at, TenantCounts(*row[4:]))


@routes("GET", "/v1/tenant", roles={"admin", "analyst"}, response=TenantOut)
async def get_tenant(request: web.Request) -> web.Response:
    """The caller's tenant: id, name, retention and counts."""
    return json_response(await _tenant(request, request[CALLER]))


@routes("PATCH", "/v1/tenant", roles={"admin"}, body=TenantPatch, response=TenantOut,
        errors=("invalid_request",))  # fmt: skip
async def patch_tenant(request: web.Request) -> web.Response:
    """Rename the tenant (audited ``tenant_updated``)."""
    caller = request[CALLER]
    body = await json_body(request, TenantPatch)
    async with request.app[POOL].connection() as conn, conn.transaction():
        cur = await conn.execute(
            "UPDATE tenants t SET name = %s FROM tenants old WHERE t.id = %s AND old.id = t.id "
            "RETURNING old.name",
            (body.name, caller.tenant_id),
        )
        row = await cur.fetchone()
        old = None if row is None else row[0]
        await audit.write(conn, audit.Entry.by(caller, request[CLIENT_IP], "tenant_updated",
                                               "tenant", caller.tenant_id, from_name=old,
                                               to_name=body.name))  # fmt: skip
    return json_response(await _tenant(request, caller))
