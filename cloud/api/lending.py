"""The lending core's pull endpoint: a loan's current risk and the reasons behind it.

``GET /v1/loans/{contract_id}/risk`` with ``Authorization: Bearer <integration key>``;
scoped to the key's tenant (another tenant's loan is ``404 loan_not_found``, the
same answer as a loan that does not exist). It returns risk, not location.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web

from cloud.api.errors import ApiError, json_response
from cloud.api.policy import Routes
from cloud.api.state import CALLER, POOL

routes = Routes()
_MAX_CONTRACT = 64


class AlertBrief(msgspec.Struct):
    """An alert as the lending core and the recovery queue see it (no position, no evidence)."""

    id: int
    rule: str
    severity: str
    status: str
    fired_at: datetime
    message: str


class LoanRisk(msgspec.Struct):
    """The answer of ``GET /v1/loans/{contract_id}/risk`` (documentation; built as a dict)."""

    loan_id: int
    contract_id: str
    loan_status: str
    vehicle_id: int | None
    vin: str | None
    score: float
    band: str
    reasons: list[Any]
    scored_at: datetime | None
    open_alerts: list[AlertBrief]  # newest first, at most 20


@routes("GET", "/v1/loans/{contract_id}/risk", roles={"integration"}, response=LoanRisk,
        summary="A loan's current risk score, band, reasons and open alerts",
        errors=("loan_not_found",))  # fmt: skip
async def loan_risk(request: web.Request) -> web.Response:
    caller = request[CALLER]
    contract = request.match_info["contract_id"]
    if len(contract) > _MAX_CONTRACT or "\x00" in contract:
        raise ApiError(404, "loan_not_found", "no such loan")
    async with request.app[POOL].connection() as conn:
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
    return json_response({
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
    })  # fmt: skip
