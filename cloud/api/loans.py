"""``/v1/loans``: the tenant's loans, and the lending core pushing their terms.

``PUT /v1/loans/{contract_id}`` (admin, or the lending core with its key)
creates or updates a loan: status, days overdue, principal and outstanding
balance (the exposure the recovery queue ranks by). Creating one needs the
``vin`` of a vehicle already registered in the tenant (the registry binds
devices to vehicles); a loan bound to another vehicle is not moved
(``409 vin_mismatch``). Fields left out keep their value. Every change is
audited (``loan_updated``, with the fields changed) in the same transaction.
Loans carry no position and no personal data of the borrower here.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
import psycopg
from aiohttp import web

from cloud.api import audit
from cloud.api.errors import ApiError, json_response
from cloud.api.fleet_params import FleetPageQuery, Search, after, like_prefix, money, page
from cloud.api.params import MAX_ID, json_body, query_params
from cloud.api.policy import Routes
from cloud.api.state import CALLER, CLIENT_IP, POOL
from cloud.registry.ids import contract_problem

routes = Routes()
AConn = psycopg.AsyncConnection[Any]
Status = Literal["current", "overdue", "default", "closed"]
Money = Annotated[float, msgspec.Meta(ge=0.0, le=999_999_999_999.99)]
VIN = Annotated[str, msgspec.Meta(pattern=r"^[A-HJ-NPR-Z0-9]{17}$")]


class LoanQuery(FleetPageQuery, kw_only=True):
    status: Status | None = None
    q: Search | None = None  # contract prefix
    vehicle_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)] | None = None


class LoanOut(msgspec.Struct):
    id: int
    contract: str
    status: str
    overdue_days: int | None
    principal: float | None
    outstanding: float | None
    exposure: float | None  # = outstanding: what the recovery queue ranks by
    vehicle_id: int | None
    vin: str | None
    declared_adcode: str | None
    created_at: datetime
    updated_at: datetime


class LoanList(msgspec.Struct):
    items: list[LoanOut]
    next_cursor: str | None


class LoanPut(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    status: Status
    vin: VIN | None = None  # required to create; must name a registered vehicle
    overdue_days: Annotated[int, msgspec.Meta(ge=0, le=36_500)] | None = None
    principal: Money | None = None
    outstanding: Money | None = None


_SELECT = """SELECT l.id, l.contract_id, l.status, l.overdue_days, l.principal, l.outstanding,
       l.vehicle_id, v.vin, l.declared_adcode, l.created_at, l.updated_at
FROM loans l LEFT JOIN vehicles v ON v.id = l.vehicle_id AND v.tenant_id = l.tenant_id"""


def loan_out(row: tuple[Any, ...]) -> LoanOut:
    lid, contract, status, overdue, principal, outstanding, vid, vin, adcode, created, upd = row
    return LoanOut(lid, contract, status, overdue, money(principal), money(outstanding),
                   money(outstanding), vid, vin, adcode, created, upd)  # fmt: skip


def _contract(request: web.Request, *, creating: bool = False) -> str:
    contract = request.match_info["contract_id"]
    problem = contract_problem(contract)
    if problem and creating:
        raise ApiError(400, "invalid_contract", problem)
    if problem:
        raise ApiError(404, "loan_not_found", "no such loan")
    return contract


async def _loan(conn: AConn, tenant: str, contract: str) -> LoanOut:
    cur = await conn.execute(_SELECT + " WHERE l.tenant_id = %s AND l.contract_id = %s",
                             (tenant, contract))  # fmt: skip
    row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "loan_not_found", "no such loan")
    return loan_out(row)


@routes("GET", "/v1/loans", roles={"admin", "analyst", "integration"}, query=LoanQuery,
        response=LoanList, errors=("invalid_parameter", "invalid_cursor"))  # fmt: skip
async def list_loans(request: web.Request) -> web.Response:
    """The tenant's loans by id; filters status, contract prefix, vehicle."""
    caller = request[CALLER]
    q = query_params(request, LoanQuery)
    key = after("loans", q.cursor, (int,))
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            _SELECT + " WHERE l.tenant_id = %(tenant)s "
            "AND (%(status)s::text IS NULL OR l.status = %(status)s) "
            "AND (%(q)s::text IS NULL OR l.contract_id LIKE %(q)s) "
            "AND (%(vid)s::bigint IS NULL OR l.vehicle_id = %(vid)s) "
            "AND (%(after)s::bigint IS NULL OR l.id > %(after)s) ORDER BY l.id LIMIT %(limit)s",
            {"tenant": caller.tenant_id, "status": q.status, "q": like_prefix(q.q),
             "vid": q.vehicle_id,
             "after": None if key is None else key[0], "limit": q.limit + 1},
        )  # fmt: skip
        rows = [loan_out(r) for r in await cur.fetchall()]
    items, next_cursor = page(rows, q.limit, "loans", lambda loan: (loan.id,))
    return json_response(LoanList(list(items), next_cursor))


@routes("GET", "/v1/loans/{contract_id}", roles={"admin", "analyst", "integration"},
        response=LoanOut, errors=("loan_not_found",))  # fmt: skip
async def get_loan(request: web.Request) -> web.Response:
    """One loan by its contract id."""
    contract = _contract(request)
    async with request.app[POOL].connection() as conn:
        return json_response(await _loan(conn, request[CALLER].tenant_id, contract))


def _changes(old: tuple[Any, ...] | None, body: LoanPut,
             vehicle_id: int | None) -> dict[str, Any]:  # fmt: skip
    """The fields the body changes: name -> [old, new] (old None when creating)."""
    new = {"status": body.status, "overdue_days": body.overdue_days, "principal": body.principal,
           "outstanding": body.outstanding, "vehicle_id": vehicle_id}  # fmt: skip
    before = dict(zip(new, old or (None,) * len(new), strict=True))
    out: dict[str, Any] = {}
    for name, value in new.items():
        if value is None:
            continue
        was = before[name]
        was = float(was) if isinstance(was, Decimal) else was
        if old is None or was != value:
            out[name] = [was, value]
    return out


@routes("PUT", "/v1/loans/{contract_id}", roles={"admin", "integration"}, body=LoanPut,
        response=LoanOut, errors=("invalid_contract", "invalid_request", "vin_required",
                                  "vehicle_not_registered", "vin_mismatch"))  # fmt: skip
async def put_loan(request: web.Request) -> web.Response:
    """Create or update a loan's status and terms (the lending core's push; audited)."""
    caller = request[CALLER]
    contract = _contract(request, creating=True)
    body = await json_body(request, LoanPut)
    async with request.app[POOL].connection() as conn, conn.transaction():
        vehicle_id = None
        if body.vin is not None:
            cur = await conn.execute("SELECT id FROM vehicles WHERE tenant_id = %s AND vin = %s",
                                     (caller.tenant_id, body.vin))  # fmt: skip
            found = await cur.fetchone()
            if found is None:
                raise ApiError(
                    409,
                    "vehicle_not_registered",
                    "no vehicle with this VIN in the tenant; bind a device to it first",
                )
            vehicle_id = int(found[0])
        cur = await conn.execute(
            "SELECT status, overdue_days, principal, outstanding, vehicle_id FROM loans "
            "WHERE tenant_id = %s AND contract_id = %s FOR UPDATE",
            (caller.tenant_id, contract),
        )
        old = await cur.fetchone()
        if old is None and vehicle_id is None:
            raise ApiError(400, "vin_required", "a new loan needs the vin of its vehicle")
        if old is not None and vehicle_id is not None and old[4] not in (None, vehicle_id):
            raise ApiError(409, "vin_mismatch", "the loan is bound to another vehicle")
        changes = _changes(old, body, vehicle_id)
        params = {"tenant": caller.tenant_id, "contract": contract, "status": body.status,
                  "overdue": body.overdue_days, "principal": body.principal,
                  "outstanding": body.outstanding, "vid": vehicle_id}  # fmt: skip
        if old is None:
            await conn.execute(
                "INSERT INTO loans (tenant_id, contract_id, vehicle_id, status, overdue_days, "
                "principal, outstanding) VALUES (%(tenant)s, %(contract)s, %(vid)s, %(status)s, "
                "%(overdue)s, %(principal)s, %(outstanding)s)",
                params,
            )
        elif changes:
            await conn.execute(
                "UPDATE loans SET status = %(status)s, "
                "overdue_days = COALESCE(%(overdue)s, overdue_days), "
                "principal = COALESCE(%(principal)s, principal), "
                "outstanding = COALESCE(%(outstanding)s, outstanding), "
                "vehicle_id = COALESCE(%(vid)s, vehicle_id), updated_at = now() "
                "WHERE tenant_id = %(tenant)s AND contract_id = %(contract)s",
                params,
            )
        if old is None or changes:
            await audit.write(conn, audit.Entry.by(caller, request[CLIENT_IP], "loan_updated",
                                                   "loan", contract, created=old is None,
                                                   changes=changes))  # fmt: skip
        loan = await _loan(conn, caller.tenant_id, contract)
    return json_response(loan, status=201 if old is None else 200)
