"""``/v1/cases``: recovery cases over HTTP, through the service of :mod:`cloud.recovery.cases`.

Every change goes through the service functions (which lock the case, check
the workflow and append ``case_history``) and writes one ``case_changed``
audit row. Moves that send commands (chase on or off) commit the case and
the command rows first and publish afterwards, as the command line does; the
audit row follows once they are committed. A move the workflow refuses is
``409 invalid_transition``.

Who may do what: admins and analysts open, assign and move every case of
their tenant; a recovery agent sees only the cases assigned to it that are
still being worked, and moves them along (chase, stop the chase, located,
recovered, failed) but does not close or cancel them. ``POST …/transition``
takes the status to reach::

    assigned   chasing -> assigned (chase mode off; use /assign to give a case to someone)
    chasing    chase mode on for chase_minutes (default 60) on every tracker of the car
    located    found at lat/lon, or at the car's last known position when none is given
    recovered, failed
    closed     a finished case, or an unfinished one cancelled (the note is the reason)
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
import psycopg
from aiohttp import web

from cloud.api import audit
from cloud.api.commands import (
    COMMANDER,
    CommanderFactory,
    CommandItem,
    SentCommand,
    SyncPool,
    autocommit,
    command_status,
    sent,
)
from cloud.api.errors import ApiError, json_response
from cloud.api.pages import Page, PageQuery, Text, id_key, page_of
from cloud.api.params import json_body, path_id, query_params
from cloud.api.policy import Caller, Routes
from cloud.api.scope import SCOPED_ROLES, WORKED_STATUSES, vehicle_visible_sync
from cloud.api.state import CALLER, CLIENT_IP, POOL, SYNC_POOL
from cloud.recovery import cases as service
from cloud.recovery.casedb import Case, CommandRecord, HistoryEntry
from cloud.recovery.commands import Commander
from cloud.recovery.workflow import MAX_CHASE_S, CaseError, Status, allowed_actions

routes = Routes()
Conn = psycopg.Connection[Any]
CaseStatus = Literal["open", "assigned", "chasing", "located", "recovered", "failed", "closed"]
Target = Literal["assigned", "chasing", "located", "recovered", "failed", "closed"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[^\x00]+$")]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
AGENT_TARGETS = frozenset({"assigned", "chasing", "located", "recovered", "failed"})
NEEDS_COMMANDER = frozenset({"assigned", "chasing"})
# The recovery scope for cases: an agent's own cases that are still being worked.
_VISIBLE = "(NOT %(scoped)s OR (c.assignee = %(username)s AND c.status = ANY(%(worked)s)))"
_CASE_COLUMNS = (
    "c.id, c.vehicle_id, v.vin, v.plate, c.loan_id, l.contract_id, c.status, c.assignee, "
    "c.opened_by, c.opened_at, c.updated_at, c.closed_at, c.outcome"
)
_CASE_FROM = (
    "recovery_cases c JOIN vehicles v ON v.id = c.vehicle_id AND v.tenant_id = c.tenant_id "
    "LEFT JOIN loans l ON l.id = c.loan_id"
)


class CaseQuery(PageQuery, forbid_unknown_fields=True, kw_only=True):
    status: CaseStatus | None = None
    assignee: Name | None = None


class OpenCaseRequest(msgspec.Struct, forbid_unknown_fields=True):
    vehicle_id: Id
    loan_id: Id | None = None  # default: the vehicle's newest loan that is not closed
    note: Text = ""


class AssignRequest(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Id  # a recovery agent of the caller's tenant
    note: Text = ""


class TransitionRequest(msgspec.Struct, forbid_unknown_fields=True):
    to: Target
    note: Text = ""
    chase_minutes: Annotated[int, msgspec.Meta(ge=1, le=MAX_CHASE_S // 60)] | None = None
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None  # WGS-84, for located
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None


class CaseSummary(msgspec.Struct):
    id: int
    vehicle_id: int
    vin: str
    plate: str | None
    loan_id: int | None
    contract_id: str | None
    status: CaseStatus
    assignee: str | None
    opened_by: str
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    outcome: str | None


class HistoryItem(msgspec.Struct):
    id: int
    time: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    detail: dict[str, Any]


class Located(msgspec.Struct):
    lat: float
    lon: float
    at: datetime | None


class CaseDetail(msgspec.Struct):
    case: CaseSummary
    notes: str
    located: Located | None
    allowed: list[Target]  # the statuses this caller's transition may go to now
    history: list[HistoryItem]
    commands: list[CommandItem]
    sent: list[SentCommand] = []  # commands this request sent, with how publishing went


# ---------------------------------------------------------------- pure helpers


def allowed_targets(status: str) -> list[Target]:
    """The ``to`` values the workflow accepts from ``status`` (``assign`` has its own route)."""
    to: dict[str, Target] = {"chase": "chasing", "locate": "located", "recover": "recovered",
                             "fail": "failed", "close": "closed", "cancel": "closed"}  # fmt: skip
    out: list[Target] = []
    for action in allowed_actions(Status(status)):
        target = "assigned" if action == "stop_chase" and status == "chasing" else to.get(action)
        if target is not None and target not in out:
            out.append(target)
    return out


def case_error(exc: CaseError, not_found: str = "case_not_found") -> ApiError:
    status, code = {
        "not_found": (404, not_found),
        "forbidden_transition": (409, "invalid_transition"),
        "already_open": (409, "case_already_open"),
        "no_devices": (409, "no_devices"),
        "missing_field": (400, "invalid_request"),
        "invalid_field": (400, "invalid_request"),
        "no_signing_key": (503, "commands_unavailable"),
    }.get(exc.code, (400, "invalid_request"))
    return ApiError(status, code, exc.message)


def _visible_params(caller: Caller) -> dict[str, Any]:
    return {"scoped": caller.role in SCOPED_ROLES, "username": caller.username,
            "worked": list(WORKED_STATUSES), "tenant": caller.tenant_id}  # fmt: skip


def _summary(row: tuple[Any, ...]) -> CaseSummary:
    return CaseSummary(*row)


# ---------------------------------------------------------------- reads


def _load_summary(conn: Conn, caller: Caller, case_id: int, *, lock: bool = False) -> CaseSummary:
    row = conn.execute(
        f"SELECT {_CASE_COLUMNS} FROM {_CASE_FROM} WHERE c.id = %(id)s "  # noqa: S608
        f"AND c.tenant_id = %(tenant)s AND {_VISIBLE}" + (" FOR UPDATE OF c" if lock else ""),
        {"id": case_id, **_visible_params(caller)},
    ).fetchone()
    if row is None:
        raise ApiError(404, "case_not_found", "no such case")
    return _summary(row)


def _detail(conn: Conn, caller: Caller, summary: CaseSummary) -> CaseDetail:
    case = service.get_case(conn, caller.tenant_id, summary.id)
    history = service.history(conn, caller.tenant_id, summary.id)
    commands = service.case_commands(conn, caller.tenant_id, summary.id)
    now = datetime.now(UTC)
    located = None
    if case.located_lat is not None and case.located_lon is not None:
        located = Located(case.located_lat, case.located_lon, case.located_at)
    allowed = [t for t in allowed_targets(case.status)
               if caller.role not in SCOPED_ROLES or t in AGENT_TARGETS]  # fmt: skip
    return CaseDetail(summary, case.notes, located, allowed,
                      [_history_item(h) for h in history],
                      [_command_item(c, case.id, now) for c in commands])  # fmt: skip


def _history_item(h: HistoryEntry) -> HistoryItem:
    return HistoryItem(h.id, h.time, h.actor, h.action, h.from_status, h.to_status, h.detail)


def _command_item(c: CommandRecord, case_id: int, now: datetime) -> CommandItem:
    status = command_status(c.published_at, c.publish_note, c.ack_ok, c.expires_at, now)
    return CommandItem(c.id, c.device_id, case_id, c.cmd, dict(c.args), status, c.issued_at,
                       c.expires_at, c.issued_by, c.published_at, c.publish_note, c.ack_ok,
                       c.ack_reason, c.ack_at)  # fmt: skip


def _show_sync(pool: SyncPool, caller: Caller, ip: str | None, case_id: int) -> CaseDetail:
    with pool.connection() as conn, conn.transaction():
        detail = _detail(conn, caller, _load_summary(conn, caller, case_id))
        if detail.located is not None:  # the case shows where the car was found
            audit.write_sync(conn, audit.Entry.by(caller, ip, "viewed_location", "vehicle",
                                                  detail.case.vehicle_id, case_id=case_id,
                                                  source="case"))  # fmt: skip
    return detail


@routes(
    "GET", "/v1/cases", roles={"admin", "analyst", "recovery"},
    summary="Recovery cases, newest first (recovery agents: their own cases being worked)",
    query=CaseQuery, response=Page[CaseSummary],
)  # fmt: skip
async def list_cases(request: web.Request) -> web.Response:
    caller = request[CALLER]
    query = query_params(request, CaseQuery)
    after = id_key("cases", query.cursor)
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            f"SELECT {_CASE_COLUMNS} FROM {_CASE_FROM} WHERE c.tenant_id = %(tenant)s "  # noqa: S608
            "AND (%(status)s::text IS NULL OR c.status = %(status)s) "
            "AND (%(assignee)s::text IS NULL OR c.assignee = %(assignee)s) "
            "AND (%(after)s::bigint IS NULL OR c.id < %(after)s) "
            f"AND {_VISIBLE} ORDER BY c.id DESC LIMIT %(limit)s",
            {"status": query.status, "assignee": query.assignee, "after": after,
             "limit": query.limit + 1, **_visible_params(caller)},
        )  # fmt: skip
        rows = [_summary(r) for r in await cur.fetchall()]
    return json_response(page_of("cases", rows, query.limit, lambda c: (c.id,)))


@routes(
    "GET", "/v1/cases/{id}", roles={"admin", "analyst", "recovery"},
    summary="A case with its history and the commands it sent",
    response=CaseDetail, errors=("case_not_found",),
)  # fmt: skip
async def show_case(request: web.Request) -> web.Response:
    case_id = path_id(request, "id", "case_not_found")
    doc = await asyncio.to_thread(_show_sync, request.app[SYNC_POOL], request[CALLER],
                                  request[CLIENT_IP], case_id)  # fmt: skip
    return json_response(doc)


# ---------------------------------------------------------------- changes


def _audit_change(conn: Conn, caller: Caller, ip: str | None, before: str | None, after: Case,
                  change: str, **detail: Any) -> None:  # fmt: skip
    audit.write_sync(conn, audit.Entry.by(
        caller, ip, "case_changed", "case", after.id, change=change, from_status=before,
        to_status=after.status, vehicle_id=after.vehicle_id, **detail,
    ))  # fmt: skip


def _open_sync(pool: SyncPool, caller: Caller, ip: str | None, body: OpenCaseRequest) -> CaseDetail:
    with autocommit(pool) as conn, conn.transaction():
        if not vehicle_visible_sync(conn, caller, body.vehicle_id):
            raise ApiError(404, "vehicle_not_found", "no such vehicle")
        try:
            case = service.open_case(conn, caller.tenant_id, body.vehicle_id, caller.username,
                                     loan_id=body.loan_id, note=body.note)  # fmt: skip
        except CaseError as exc:
            raise case_error(exc, "loan_not_found") from None
        _audit_change(conn, caller, ip, None, case, "opened", loan_id=case.loan_id,
                      note=body.note)  # fmt: skip
        return _detail(conn, caller, _load_summary(conn, caller, case.id))


@routes(
    "POST", "/v1/cases", roles={"admin", "analyst"},
    summary="Open a recovery case for a vehicle (one open case per vehicle)",
    body=OpenCaseRequest, response=CaseDetail, status=201,
    errors=("vehicle_not_found", "loan_not_found", "case_already_open"),
)  # fmt: skip
async def open_case(request: web.Request) -> web.Response:
    body = await json_body(request, OpenCaseRequest)
    doc = await asyncio.to_thread(_open_sync, request.app[SYNC_POOL], request[CALLER],
                                  request[CLIENT_IP], body)  # fmt: skip
    return json_response(doc, status=201)


def _assign_sync(pool: SyncPool, caller: Caller, ip: str | None, case_id: int,
                 body: AssignRequest) -> CaseDetail:  # fmt: skip
    with autocommit(pool) as conn, conn.transaction():
        before = _load_summary(conn, caller, case_id, lock=True)
        agent = conn.execute(
            "SELECT username FROM users WHERE id = %s AND tenant_id = %s AND role = 'recovery' "
            "AND NOT disabled",
            (body.user_id, caller.tenant_id),
        ).fetchone()
        if agent is None:
            raise ApiError(400, "invalid_assignee",
                           "user_id is not an active recovery agent of this tenant")  # fmt: skip
        try:
            case = service.assign(conn, caller.tenant_id, case_id, caller.username, agent[0],
                                  note=body.note)  # fmt: skip
        except CaseError as exc:
            raise case_error(exc) from None
        _audit_change(conn, caller, ip, before.status, case, "assigned", assignee=agent[0],
                      previous_assignee=before.assignee, note=body.note)  # fmt: skip
        return _detail(conn, caller, _load_summary(conn, caller, case_id))


@routes(
    "POST", "/v1/cases/{id}/assign", roles={"admin", "analyst"},
    summary="Give the case to a recovery agent of the tenant (again, to reassign it)",
    body=AssignRequest, response=CaseDetail,
    errors=("case_not_found", "invalid_assignee", "invalid_transition"),
)  # fmt: skip
async def assign_case(request: web.Request) -> web.Response:
    case_id = path_id(request, "id", "case_not_found")
    body = await json_body(request, AssignRequest)
    doc = await asyncio.to_thread(_assign_sync, request.app[SYNC_POOL], request[CALLER],
                                  request[CLIENT_IP], case_id, body)  # fmt: skip
    return json_response(doc)


def _last_fix(conn: Conn, tenant_id: str, vehicle_id: int) -> tuple[float, float] | None:
    row = conn.execute(
        "SELECT lat, lon FROM fixes WHERE tenant_id = %s AND vehicle_id = %s "
        "ORDER BY time DESC LIMIT 1",
        (tenant_id, vehicle_id),
    ).fetchone()
    return None if row is None else (float(row[0]), float(row[1]))


def _apply(conn: Conn, caller: Caller, ip: str | None, case: CaseSummary, body: TransitionRequest,
           commander: Commander | None) -> service.Result:  # fmt: skip
    """Run the service function that reaches ``body.to`` (CaseError when the workflow says no)."""
    t, cid, by, note = caller.tenant_id, case.id, caller.username, body.note
    if body.to == "assigned":
        if case.status != "chasing":
            raise CaseError("forbidden_transition", f"a {case.status} case does not go back to "
                            "assigned; POST /v1/cases/{id}/assign gives it to someone")  # fmt: skip
        assert commander is not None
        return service.stop_chase(conn, t, cid, by, commander, note=note)
    if body.to == "chasing":
        assert commander is not None
        minutes = body.chase_minutes or 60
        return service.start_chase(conn, t, cid, by, commander, duration_s=minutes * 60, note=note)
    if body.to == "located":
        return service.Result(_locate(conn, caller, ip, case, body))
    if body.to in ("recovered", "failed"):
        outcome: Literal["recovered", "failed"] = (
            "recovered" if body.to == "recovered" else "failed"
        )
        return service.finish(conn, t, cid, by, outcome, commander=commander, note=note)
    return service.close(conn, t, cid, by, reason=note or None, commander=commander)


def _locate(conn: Conn, caller: Caller, ip: str | None, case: CaseSummary,
            body: TransitionRequest) -> Case:  # fmt: skip
    if (body.lat is None) != (body.lon is None):
        raise ApiError(400, "invalid_request", "give both lat and lon, or neither")
    with conn.transaction():
        if body.lat is not None and body.lon is not None:
            point = (body.lat, body.lon)
        else:
            found = _last_fix(conn, caller.tenant_id, case.vehicle_id)
            if found is None:
                raise ApiError(400, "invalid_request",
                               "the car has no known position: give lat and lon")  # fmt: skip
            point = found
            audit.write_sync(conn, audit.Entry.by(caller, ip, "viewed_location", "vehicle",
                                                  case.vehicle_id, case_id=case.id,
                                                  source="case_located"))  # fmt: skip
        return service.mark_located(conn, caller.tenant_id, case.id, caller.username, *point,
                                    note=body.note)  # fmt: skip


def _transition_sync(
    pool: SyncPool,
    factory: CommanderFactory | None,
    caller: Caller,
    ip: str | None,
    case_id: int,
    body: TransitionRequest,
) -> CaseDetail:
    with autocommit(pool) as conn:
        before = _load_summary(conn, caller, case_id)
        if factory is None and body.to in NEEDS_COMMANDER:
            raise ApiError(503, "commands_unavailable",
                           "this API has no command signing key or broker configured")  # fmt: skip
        if factory is None:
            result = _apply(conn, caller, ip, before, body, None)
        else:
            with factory() as commander:
                result = _apply(conn, caller, ip, before, body, commander)
        with conn.transaction():
            _audit_change(conn, caller, ip, before.status, result.case, f"to_{body.to}",
                          note=body.note, command_ids=[c.id for c in result.commands])  # fmt: skip
        after = conn.execute(
            f"SELECT {_CASE_COLUMNS} FROM {_CASE_FROM} WHERE c.id = %s AND c.tenant_id = %s",  # noqa: S608
            (case_id, caller.tenant_id),
        ).fetchone()
        assert after is not None
        detail = _detail(conn, caller, _summary(after))
    if result.report is not None:
        detail.sent = sent(list(result.commands), result.report)
    return detail


@routes(
    "POST", "/v1/cases/{id}/transition", roles={"admin", "analyst", "recovery"},
    summary="Move a case along the workflow (chase mode on/off, located, recovered, failed, "
            "closed)",
    body=TransitionRequest, response=CaseDetail,
    errors=("case_not_found", "invalid_transition", "no_devices", "commands_unavailable"),
)  # fmt: skip
async def transition(request: web.Request) -> web.Response:
    caller = request[CALLER]
    case_id = path_id(request, "id", "case_not_found")
    body = await json_body(request, TransitionRequest)
    if caller.role in SCOPED_ROLES and body.to not in AGENT_TARGETS:
        raise ApiError(403, "forbidden", f"recovery agents do not move cases to {body.to}")
    if body.to != "chasing" and body.chase_minutes is not None:
        raise ApiError(400, "invalid_request", "chase_minutes goes with to=chasing only")
    try:
        doc = await asyncio.to_thread(_transition_sync, request.app[SYNC_POOL],
                                      request.app.get(COMMANDER), caller,
                                      request[CLIENT_IP], case_id, body)  # fmt: skip
    except CaseError as exc:
        raise case_error(exc) from None
    return json_response(doc)
