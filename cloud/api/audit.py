"""The audit log: who viewed which vehicle's location, who logged in, who changed what.

Location is sensitive personal information under China's PIPL, so every
route that returns a position writes ``viewed_location`` in the same
transaction as it reads it (no audit row, no position). Rows are append-only
(a trigger refuses UPDATE and DELETE). ``GET /v1/audit`` pages through one
tenant's rows, newest first, for admins only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from aiohttp import web
from psycopg.types.json import Jsonb

from cloud.api.cursor import decode_cursor, encode_cursor, page_params
from cloud.api.errors import json_response
from cloud.api.params import optional_text
from cloud.api.policy import Caller, Routes
from cloud.api.state import CALLER, POOL

routes = Routes()
_INSERT = (
    "INSERT INTO audit_log (tenant_id, user_id, username, action, object_type, object_id, "
    "detail, ip) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


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


@routes("GET", "/v1/audit", roles={"admin"})
async def list_audit(request: web.Request) -> web.Response:
    caller = request[CALLER]
    limit, cursor = page_params(request.query)
    after = None if cursor is None else int(decode_cursor("audit", cursor, (int,))[0])
    filters = {k: optional_text(request.query, k, 64) for k in ("action", "object_type")}
    object_id = optional_text(request.query, "object_id", 128)
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
