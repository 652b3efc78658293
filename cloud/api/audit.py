"""The audit log: who viewed which vehicle's location, who logged in, who changed what.

Location is sensitive personal information under China's PIPL, so every
route that returns a position writes ``viewed_location`` in the same
transaction as it reads it (no audit row, no position); the fleet routes
write ``viewed_locations`` (one row per call, the vehicle ids in ``detail``),
``viewed_track`` and ``viewed_places`` the same way (docs/api-fleet.md lists
their other actions: users, keys, loans, POIs, tenant). Rows are append-only
(a trigger refuses UPDATE and DELETE). ``GET /v1/audit`` pages through one
tenant's rows, newest first, for admins only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import msgspec
import psycopg
from aiohttp import web
from psycopg.types.json import Jsonb

from cloud.api.cursor import encode_cursor
from cloud.api.errors import json_response
from cloud.api.pages import PageQuery, id_key
from cloud.api.params import query_params
from cloud.api.policy import Caller, Routes
from cloud.api.state import CALLER, POOL

routes = Routes()
_INSERT = (
    "INSERT INTO audit_log (tenant_id, user_id, username, action, object_type, object_id, "
    "detail, ip) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


Filter = Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[^\x00]*$")]


class AuditQuery(PageQuery, forbid_unknown_fields=True, kw_only=True):
    action: Filter | None = None  # e.g. viewed_location
    object_type: Filter | None = None  # vehicle, alert, user, case, webhook_endpoint…
    object_id: Annotated[str, msgspec.Meta(max_length=128, pattern=r"^[^\x00]*$")] | None = None


class AuditRow(msgspec.Struct):
    id: int
    time: datetime
    user_id: int | None
    username: str | None
    action: str
    object_type: str | None
    object_id: str | None
    detail: dict[str, Any]
    ip: str | None


class AuditPage(msgspec.Struct):
    items: list[AuditRow]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Entry:
    action: str
    tenant_id: str | None
    user_id: int | None
    username: str | None
    ip: str | None
    object_type: str | None = None
    object_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def by(cls, caller: Caller, ip: str | None, action: str, object_type: str | None = None,
           object_id: str | int | None = None, **detail: Any) -> Entry:  # fmt: skip
        oid = None if object_id is None else str(object_id)
        return cls(action, caller.tenant_id, caller.user_id, caller.username, ip, object_type,
                   oid, detail)  # fmt: skip

    def params(self) -> tuple[Any, ...]:
        return (self.tenant_id, self.user_id, self.username, self.action, self.object_type,
                self.object_id, Jsonb(self.detail), self.ip)  # fmt: skip


async def write(conn: psycopg.AsyncConnection[Any], entry: Entry) -> None:
    """Append ``entry`` in the caller's transaction."""
    await conn.execute(_INSERT, entry.params())


def write_sync(conn: psycopg.Connection[Any], entry: Entry) -> None:
    conn.execute(_INSERT, entry.params())


@routes(
    "GET", "/v1/audit", roles={"admin"},
    summary="The tenant's audit log, newest first (who saw which car's position, who changed what)",
    query=AuditQuery, response=AuditPage,
)  # fmt: skip
async def list_audit(request: web.Request) -> web.Response:
    caller = request[CALLER]
    query = query_params(request, AuditQuery)
    limit = query.limit
    after = id_key("audit", query.cursor)
    filters = {"action": query.action or None, "object_type": query.object_type or None}
    object_id = query.object_id or None
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            "SELECT id, time, user_id, username, action, object_type, object_id, detail, "
            "host(ip) FROM audit_log WHERE tenant_id = %(tenant)s "
            "AND (%(after)s::bigint IS NULL OR id < %(after)s) "
            "AND (%(action)s::text IS NULL OR action = %(action)s) "
            "AND (%(otype)s::text IS NULL OR object_type = %(otype)s) "
            "AND (%(oid)s::text IS NULL OR object_id = %(oid)s) "
            "ORDER BY id DESC LIMIT %(limit)s",
            {"tenant": caller.tenant_id, "after": after, "action": filters["action"],
             "otype": filters["object_type"], "oid": object_id, "limit": limit + 1},
        )  # fmt: skip
        rows = await cur.fetchall()
    items = [
        {"id": i, "time": t.isoformat(), "user_id": u, "username": n, "action": a,
         "object_type": ot, "object_id": oi, "detail": d, "ip": ip}
        for i, t, u, n, a, ot, oi, d, ip in rows[:limit]
    ]  # fmt: skip
    more = len(rows) > limit
    next_cursor = encode_cursor("audit", (items[-1]["id"],)) if more else None
    return json_response({"items": items, "next_cursor": next_cursor})
