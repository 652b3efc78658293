"""``/v1/alerts``: list (paginated, filtered), acknowledge, resolve.

Scoped to the caller's tenant; a recovery agent sees and acknowledges only
the alerts of its assigned vehicles (:mod:`cloud.api.scope`). Another
tenant's alert, or one outside the agent's scope, is ``404 alert_not_found``.
Status changes go through :func:`cloud.risk.alerts.set_status` (alert_history,
and ``alert.resolved`` to the webhook outbox on a manual resolve) with an
audit row, all in one transaction. Alerts are listed without their
coordinates or evidence: positions are served only by audited routes.
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
from cloud.api.cursor import encode_cursor
from cloud.api.errors import ApiError, json_response
from cloud.api.pages import PageQuery, datetime_key
from cloud.api.params import json_body, path_id, query_params
from cloud.api.policy import Caller, Routes
from cloud.api.scope import VISIBLE_VEHICLE_SQL, visible_params
from cloud.api.state import CALLER, CLIENT_IP, POOL, SYNC_POOL
from cloud.risk.alerts import set_status
from cloud.webhooks import enqueue

routes = Routes()
AlertStatus = Literal["open", "acknowledged", "resolved"]
_VISIBLE = VISIBLE_VEHICLE_SQL.format(col="a.vehicle_id")
_COLUMNS = (
    "a.id, a.vehicle_id, a.loan_id, a.device_id, a.rule, a.severity, a.status, a.resolution, "
    "a.fired_at, a.opened_at, a.updated_at, a.acknowledged_at, a.acknowledged_by, "
    "a.resolved_at, a.resolved_by, a.message, a.occurrences"
)
_NAMES = [c.strip().removeprefix("a.") for c in _COLUMNS.split(",")]
_OPENED = _NAMES.index("opened_at")


class ChangeRequest(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(max_length=500, pattern=r"^[^\x00]*$")] = ""


Rule = Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[^\x00]*$")]
Timestamp = Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]


class AlertQuery(PageQuery, forbid_unknown_fields=True, kw_only=True):
    status: AlertStatus | None = None
    rule: Rule | None = None  # empty: any rule


class Alert(msgspec.Struct):
    """An alert without its coordinates or evidence (positions are served by audited routes)."""

    id: int
    vehicle_id: int | None
    loan_id: int | None
    device_id: str | None
    rule: str
    severity: str
    status: AlertStatus
    resolution: str | None
    fired_at: Timestamp
    opened_at: Timestamp
    updated_at: Timestamp
    acknowledged_at: Timestamp | None
    acknowledged_by: str | None
    resolved_at: Timestamp | None
    resolved_by: str | None
    message: str
    occurrences: int


class AlertPage(msgspec.Struct):
    items: list[Alert]
    next_cursor: str | None


def alert_doc(row: tuple[Any, ...]) -> dict[str, Any]:
    doc = dict(zip(_NAMES, row, strict=True))
    for key, value in doc.items():
        if isinstance(value, datetime):
            doc[key] = value.isoformat()
    return doc


@routes(
    "GET", "/v1/alerts", roles={"admin", "analyst", "recovery"},
    summary="Alerts, newest first, without positions (recovery agents: their vehicles')",
    query=AlertQuery, response=AlertPage,
)  # fmt: skip
async def list_alerts(request: web.Request) -> web.Response:
    caller = request[CALLER]
    query = query_params(request, AlertQuery)
    limit = query.limit
    after_t, after_id = datetime_key("alerts", query.cursor)
    params = {
        "status": query.status, "rule": query.rule or None,
        "after_t": after_t, "after_id": after_id, "limit": limit + 1,
        **visible_params(caller),
    }  # fmt: skip
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM alerts a WHERE a.tenant_id = %(tenant)s "  # noqa: S608 (constants)
            "AND (%(status)s::text IS NULL OR a.status = %(status)s) "
            "AND (%(rule)s::text IS NULL OR a.rule = %(rule)s) "
            "AND (%(after_t)s::timestamptz IS NULL "
            "     OR (a.opened_at, a.id) < (%(after_t)s::timestamptz, %(after_id)s::bigint)) "
            f"AND {_VISIBLE} ORDER BY a.opened_at DESC, a.id DESC LIMIT %(limit)s",
            params,
        )
        rows = await cur.fetchall()
    page = rows[:limit]
    more = len(rows) > limit
    next_cursor = (encode_cursor("alerts", (page[-1][_OPENED].isoformat(), int(page[-1][0])))
                   if more else None)  # fmt: skip
    return json_response({"items": [alert_doc(r) for r in page], "next_cursor": next_cursor})


def _change_sync(pool: ConnectionPool[psycopg.Connection[Any]], caller: Caller, ip: str | None,
                 alert_id: int, to: str, note: str) -> dict[str, Any]:  # fmt: skip
    action = {"acknowledged": "alert_acknowledged", "resolved": "alert_resolved"}[to]
    with pool.connection() as conn, conn.transaction():
        row = conn.execute(
            f"SELECT a.status FROM alerts a WHERE a.id = %(id)s AND a.tenant_id = %(tenant)s "  # noqa: S608
            f"AND {_VISIBLE} FOR UPDATE",
            {"id": alert_id, **visible_params(caller)},
        ).fetchone()
        if row is None:
            raise ApiError(404, "alert_not_found", "no such alert")
        if not set_status(conn, caller.tenant_id, alert_id, to, caller.username, note,
                          notify=enqueue):  # fmt: skip
            raise ApiError(409, "invalid_transition", f"the alert is {row[0]}; cannot make it {to}")
        audit.write_sync(conn, audit.Entry.by(caller, ip, action, "alert", alert_id,
                                              from_status=row[0], note=note))  # fmt: skip
        query = f"SELECT {_COLUMNS} FROM alerts a WHERE a.id = %s"  # noqa: S608
        doc = conn.execute(query, (alert_id,)).fetchone()
    assert doc is not None
    return alert_doc(doc)


async def _change(request: web.Request, to: str) -> web.Response:
    caller = request[CALLER]
    alert_id = path_id(request, "id", "alert_not_found")
    body = await json_body(request, ChangeRequest) if request.body_exists else ChangeRequest()
    doc = await asyncio.to_thread(_change_sync, request.app[SYNC_POOL], caller,
                                  request[CLIENT_IP], alert_id, to, body.note)  # fmt: skip
    return json_response(doc)


@routes(
    "POST", "/v1/alerts/{id}/ack", roles={"admin", "analyst", "recovery"},
    summary="Acknowledge an alert (optional note)", body=ChangeRequest, response=Alert,
    errors=("alert_not_found", "invalid_transition"),
)  # fmt: skip
async def acknowledge(request: web.Request) -> web.Response:
    return await _change(request, "acknowledged")


@routes(
    "POST", "/v1/alerts/{id}/resolve", roles={"admin", "analyst"},
    summary="Resolve an alert by hand (optional note); sends alert.resolved to webhooks",
    body=ChangeRequest, response=Alert, errors=("alert_not_found", "invalid_transition"),
)  # fmt: skip
async def resolve(request: web.Request) -> web.Response:
    return await _change(request, "resolved")
