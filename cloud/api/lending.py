"""The lending core's pull endpoint: a loan's current risk and the reasons behind it.

``GET /v1/loans/{contract_id}/risk`` with ``Authorization: Bearer <integration key>``;
scoped to the key's tenant (another tenant's loan is ``404 loan_not_found``, the
same answer as a loan that does not exist).
"""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from cloud.api.keys import caller_by_key

log = logging.getLogger(__name__)

POOL: Final = web.AppKey("api_pool", AsyncConnectionPool)
_MAX_CONTRACT = 64


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error(status: int, code: str, message: str) -> web.Response:
    body = msgspec.json.encode({"error": {"code": code, "message": message}})
    resp = web.Response(status=status, body=body, content_type="application/json")
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="vgr-api"'
    return resp


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every failure is JSON with a stable code; only our own bugs are 500."""
    try:
        response: web.StreamResponse = await handler(request)
    except ApiError as exc:
        return error(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        return error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error(500, "internal", "internal error; it has been logged")
    return response


async def loan_risk(request: web.Request) -> web.Response:
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <integration key>")
    contract = request.match_info["contract_id"]
    if len(contract) > _MAX_CONTRACT:
        raise ApiError(404, "loan_not_found", "no such loan")
    async with request.app[POOL].connection() as conn:
        caller = await caller_by_key(conn, auth.removeprefix("Bearer ").strip())
        if caller is None:
            raise ApiError(401, "unauthorized", "unknown or disabled key")
        cur = await conn.execute(
            "SELECT l.id, l.contract_id, l.status, l.vehicle_id, v.vin, r.score, r.band, "
            "r.reasons, r.updated_at FROM loans l LEFT JOIN vehicles v ON v.id = l.vehicle_id "
            "LEFT JOIN vehicle_risk r ON r.vehicle_id = l.vehicle_id "
            "WHERE l.tenant_id = %s AND l.contract_id = %s",
            (caller.tenant_id, contract),
        )
        row = await cur.fetchone()
        if row is None:
            raise ApiError(404, "loan_not_found", "no such loan")
        loan_id, contract_id, status, vehicle_id, vin, score, band, reasons, updated = row
        cur = await conn.execute(
            "SELECT id, rule, severity, status, fired_at, message FROM alerts "
            "WHERE tenant_id = %s AND vehicle_id = %s AND status <> 'resolved' "
            "ORDER BY fired_at DESC LIMIT 20",
            (caller.tenant_id, vehicle_id),
        )
        open_alerts = [
            {"id": a, "rule": r, "severity": s, "status": st, "fired_at": t.isoformat(),
             "message": m}
            for a, r, s, st, t, m in await cur.fetchall()
        ]  # fmt: skip
    doc = {
        "loan_id": loan_id,
        "contract_id": contract_id,
        "loan_status": status,
        "vehicle_id": vehicle_id,
        "vin": vin,
        "score": 0.0 if score is None else float(score),
        "band": band or "low",
        "reasons": reasons or [],
        "scored_at": None if updated is None else updated.isoformat(),
        "open_alerts": open_alerts,
    }
    return web.Response(body=msgspec.json.encode(doc), content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/loans/{contract_id}/risk", loan_risk)
