"""Recovery cases: the service functions, each one a checked, audited transition.

Every function takes a connection, the tenant and the acting user. It locks
the case row (``FOR UPDATE``) in the tenant, asks :mod:`cloud.recovery.workflow`
whether the move is allowed, updates the case and appends one
``case_history`` row (who, when, from, to, detail) in one transaction; a
refused move raises :class:`CaseError` and changes nothing. Another tenant's
case is ``not_found``, exactly as a case that does not exist.

Commands to trackers are recorded in that same transaction and published
after it commits (:mod:`cloud.recovery.commands`); how that went is appended
to the history as ``commands_published``. Pass an autocommit connection (or
one outside a transaction) so "after it commits" holds.

Chase mode when a case leaves ``chasing``:

- to ``located``: it stays on until its duration runs out, so the team sees
  the car if it moves while they approach; the history row says until when
  (``chase_on_until``). ``stop_chase`` switches it off in ``located`` too.
- to ``assigned`` (``stop_chase``), ``failed``, ``recovered`` or ``closed``:
  a ``chase_mode`` off command goes to every tracker of the car while a chase
  may still be running. Without a :class:`Commander` it cannot be sent; the
  history row then records ``chase_on_until`` with ``chase_stopped: false``
  and the tracker's chase ends by itself at that time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg

from cloud.recovery import casedb
from cloud.recovery import commands as cmds
from cloud.recovery.casedb import Case, CommandRecord, HistoryEntry
from cloud.recovery.commands import Commander, IssuedCommand, PublishReport
from cloud.recovery.workflow import (
    HISTORY_ACTION,
    Action,
    CaseError,
    Move,
    Status,
    check_input,
    transition,
)

Conn = psycopg.Connection[Any]


__all__ = [
    "Case",
    "CaseError",
    "CommandRecord",
    "Commander",
    "HistoryEntry",
    "Result",
    "assign",
    "case_commands",
    "close",
    "finish",
    "get_case",
    "history",
    "mark_located",
    "open_case",
    "start_chase",
    "stop_chase",
]


@dataclass(frozen=True, slots=True)
class Result:
    """The case after the change, and the commands it sent (if any) with how publishing went."""

    case: Case
    commands: tuple[IssuedCommand, ...] = ()
    report: PublishReport | None = None


def open_case(
    conn: Conn,
    tenant_id: str,
    vehicle_id: int,
    actor: str,
    *,
    loan_id: int | None = None,
    note: str = "",
) -> Case:
    """Open a case for one of the tenant's vehicles (one case per vehicle until it is closed).

    The loan is ``loan_id`` (it must be the vehicle's) or the vehicle's
    newest loan that is not closed.
    """
    check_input(actor, {"note": note})
    with conn.transaction():
        if (
            conn.execute(
                "SELECT 1 FROM vehicles WHERE id = %s AND tenant_id = %s", (vehicle_id, tenant_id)
            ).fetchone()
            is None
        ):
            raise CaseError("not_found", f"vehicle {vehicle_id} not found")
        loan = conn.execute(
            "SELECT id, contract_id FROM loans WHERE tenant_id = %s AND vehicle_id = %s "
            "AND (id = %s OR (%s::bigint IS NULL AND status <> 'closed')) "
            "ORDER BY created_at DESC, id DESC LIMIT 1",
            (tenant_id, vehicle_id, loan_id, loan_id),
        ).fetchone()
        if loan_id is not None and loan is None:
            raise CaseError("not_found", f"loan {loan_id} of vehicle {vehicle_id} not found")
        existing = conn.execute(
            "SELECT id FROM recovery_cases WHERE vehicle_id = %s AND status <> 'closed'",
            (vehicle_id,),
        ).fetchone()
        if existing is not None:
            raise CaseError("already_open", f"vehicle {vehicle_id} has open case {existing[0]}")
        try:
            with conn.transaction():
                row = conn.execute(
                    "INSERT INTO recovery_cases (tenant_id, vehicle_id, loan_id, opened_by, notes) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                    (
                        tenant_id,
                        vehicle_id,
                        None if loan is None else loan[0],
                        actor,
                        casedb.note_line(actor, note),
                    ),
                ).fetchone()
        except psycopg.errors.UniqueViolation:
            raise CaseError("already_open", f"vehicle {vehicle_id} has an open case") from None
        assert row is not None
        detail = {
            "vehicle_id": vehicle_id,
            "loan_id": None if loan is None else loan[0],
            "contract_id": None if loan is None else loan[1],
            "note": note,
        }
        casedb.append_history(conn, row[0], actor, "opened", None, Status.OPEN.value, detail)
        return casedb.load(conn, tenant_id, row[0])


def assign(
    conn: Conn, tenant_id: str, case_id: int, actor: str, assignee: str, *, note: str = ""
) -> Case:
    """Give the case to a person or team (again, to reassign it)."""
    with conn.transaction():
        case = casedb.load(conn, tenant_id, case_id, for_update=True)
        move = transition(case.status, Action.ASSIGN, actor, {"assignee": assignee, "note": note})
        conn.execute(
            "UPDATE recovery_cases SET assignee = %s, status = %s, notes = notes || %s, "
            "updated_at = now() WHERE id = %s",
            (assignee, move.to_status.value, casedb.note_line(actor, note), case_id),
        )
        detail = {"assignee": assignee, "previous_assignee": case.assignee, "note": note}
        _record(conn, case, move, actor, detail)
        return casedb.load(conn, tenant_id, case_id)


def start_chase(
    conn: Conn,
    tenant_id: str,
    case_id: int,
    actor: str,
    commander: Commander,
    *,
    duration_s: int = 3600,
    note: str = "",
) -> Result:
    """Put every tracker of the car into chase mode for ``duration_s`` (also to re-send it).

    One signed ``chase_mode`` command per non-revoked device of the vehicle;
    refused with ``no_devices`` when it has none. The case is ``chasing``
    even if publishing fails (the report says which device did not get it;
    ``chase`` again re-sends).
    """
    with conn.transaction():
        case = casedb.load(conn, tenant_id, case_id, for_update=True)
        move = transition(
            case.status, Action.CHASE, actor, {"duration_s": duration_s, "note": note}
        )
        devices = cmds.active_devices(conn, tenant_id, case.vehicle_id)
        if not devices:
            raise CaseError("no_devices", f"vehicle {case.vehicle_id} has no active tracker")
        issued = cmds.issue(
            conn,
            commander.key,
            tenant_id=tenant_id,
            case_id=case_id,
            device_ids=devices,
            cmd=cmds.CHASE,
            args=cmds.chase_args(duration_s),
            validity=cmds.chase_validity(duration_s),
            issued_by=actor,
            now=commander.clock(),
        )
        _set_status(conn, case_id, move, actor, note)
        detail = {"duration_s": duration_s, "note": note, "commands": _listing(issued)}
        _record(conn, case, move, actor, detail)
    return _publish(conn, tenant_id, case_id, actor, commander, issued)


def stop_chase(
    conn: Conn, tenant_id: str, case_id: int, actor: str, commander: Commander, *, note: str = ""
) -> Result:
    """Switch chase mode off on every tracker: ``chasing`` -> ``assigned``, ``located`` stays."""
    with conn.transaction():
        case = casedb.load(conn, tenant_id, case_id, for_update=True)
        move = transition(case.status, Action.STOP_CHASE, actor, {"note": note})
        issued = _chase_off(conn, case, actor, commander)
        _set_status(conn, case_id, move, actor, note)
        _record(conn, case, move, actor, {"note": note, "commands": _listing(issued)})
    return _publish(conn, tenant_id, case_id, actor, commander, issued)


def mark_located(
    conn: Conn,
    tenant_id: str,
    case_id: int,
    actor: str,
    lat: float,
    lon: float,
    *,
    note: str = "",
) -> Case:
    """The team has found the car at ``lat``/``lon`` (WGS-84); a running chase stays on."""
    with conn.transaction():
        case = casedb.load(conn, tenant_id, case_id, for_update=True)
        move = transition(case.status, Action.LOCATE, actor, {"lat": lat, "lon": lon, "note": note})
        until = _chase_running_until(conn, case_id, None)
        conn.execute(
            "UPDATE recovery_cases SET status = %s, located_lat = %s, located_lon = %s, "
            "located_at = now(), notes = notes || %s, updated_at = now() WHERE id = %s",
            (move.to_status.value, lat, lon, casedb.note_line(actor, note), case_id),
        )
        detail = {
            "lat": lat,
            "lon": lon,
            "note": note,
            "chase_on_until": None if until is None else until.isoformat(),
        }
        _record(conn, case, move, actor, detail)
        return casedb.load(conn, tenant_id, case_id)


def finish(
    conn: Conn,
    tenant_id: str,
    case_id: int,
    actor: str,
    outcome: Literal["recovered", "failed"],
    *,
    commander: Commander | None = None,
    note: str = "",
) -> Result:
    """Recovered (from ``located``) or failed (from ``chasing``/``located``); chase goes off."""
    action = {"recovered": Action.RECOVER, "failed": Action.FAIL}.get(outcome)
    if action is None:
        raise CaseError("invalid_field", f"outcome must be recovered or failed (got {outcome!r})")
    return _end(
        conn, tenant_id, case_id, actor, lambda _case: (action, outcome), commander, {"note": note}
    )


def close(
    conn: Conn,
    tenant_id: str,
    case_id: int,
    actor: str,
    *,
    reason: str | None = None,
    commander: Commander | None = None,
) -> Result:
    """Close a finished case, or cancel an unfinished one (``reason`` required then)."""

    def choose(case: Case) -> tuple[Action, str | None]:
        if case.status in (Status.RECOVERED, Status.FAILED):
            return Action.CLOSE, case.outcome
        return Action.CANCEL, "cancelled"

    return _end(conn, tenant_id, case_id, actor, choose, commander, {"reason": reason})


def get_case(conn: Conn, tenant_id: str, case_id: int) -> Case:
    return casedb.load(conn, tenant_id, case_id)


def history(conn: Conn, tenant_id: str, case_id: int) -> list[HistoryEntry]:
    return casedb.history(conn, tenant_id, case_id)


def case_commands(conn: Conn, tenant_id: str, case_id: int) -> list[CommandRecord]:
    return casedb.commands(conn, tenant_id, case_id)


# ---------------------------------------------------------------- internals


def _end(
    conn: Conn,
    tenant_id: str,
    case_id: int,
    actor: str,
    choose: Callable[[Case], tuple[Action, str | None]],
    commander: Commander | None,
    fields: dict[str, object],
) -> Result:
    """Recover, fail, close or cancel: ``choose`` names the action and outcome for the case."""
    with conn.transaction():
        case = casedb.load(conn, tenant_id, case_id, for_update=True)
        action, outcome = choose(case)
        move = transition(case.status, action, actor, fields)
        issued: list[IssuedCommand] = []
        until = _chase_running_until(conn, case_id, commander)
        if until is not None and commander is not None:
            issued = _chase_off(conn, case, actor, commander)
        closing = move.to_status is Status.CLOSED
        note = str(fields.get("note") or fields.get("reason") or "")
        conn.execute(
            "UPDATE recovery_cases SET status = %s, outcome = %s, notes = notes || %s, "
            "closed_at = CASE WHEN %s THEN now() END, updated_at = now() WHERE id = %s",
            (move.to_status.value, outcome, casedb.note_line(actor, note), closing, case_id),
        )
        detail: dict[str, object] = {**fields, "outcome": outcome}
        if issued:
            detail.update(chase_stopped=True, commands=_listing(issued))
        elif until is not None:
            detail.update(chase_stopped=False, chase_on_until=until.isoformat())
        _record(conn, case, move, actor, detail)
    if commander is None:
        return Result(casedb.load(conn, tenant_id, case_id))
    return _publish(conn, tenant_id, case_id, actor, commander, issued)


def _chase_running_until(conn: Conn, case_id: int, commander: Commander | None) -> datetime | None:
    """When a chase this case started may still be running, if it may be running now."""
    until = cmds.chase_on_until(conn, case_id)
    now = commander.clock() if commander is not None else cmds.utcnow()
    return until if until is not None and until > now else None


def _chase_off(conn: Conn, case: Case, actor: str, commander: Commander) -> list[IssuedCommand]:
    devices = cmds.active_devices(conn, case.tenant_id, case.vehicle_id)
    return cmds.issue(
        conn,
        commander.key,
        tenant_id=case.tenant_id,
        case_id=case.id,
        device_ids=devices,
        cmd=cmds.CHASE,
        args=cmds.chase_args(None),
        validity=cmds.chase_validity(None),
        issued_by=actor,
        now=commander.clock(),
    )


def _publish(
    conn: Conn,
    tenant_id: str,
    case_id: int,
    actor: str,
    commander: Commander,
    issued: list[IssuedCommand],
) -> Result:
    if not issued:
        return Result(casedb.load(conn, tenant_id, case_id))
    with conn.transaction():
        report = cmds.publish_all(conn, commander.publisher, issued)
        casedb.append_history(
            conn, case_id, actor, "commands_published", None, None, report.detail()
        )
    return Result(casedb.load(conn, tenant_id, case_id), tuple(issued), report)


def _set_status(conn: Conn, case_id: int, move: Move, actor: str, note: str) -> None:
    conn.execute(
        "UPDATE recovery_cases SET status = %s, notes = notes || %s, updated_at = now() "
        "WHERE id = %s",
        (move.to_status.value, casedb.note_line(actor, note), case_id),
    )


def _record(conn: Conn, case: Case, move: Move, actor: str, detail: Mapping[str, object]) -> None:
    action = HISTORY_ACTION[move.action]
    casedb.append_history(
        conn, case.id, actor, action, move.from_status.value, move.to_status.value, detail
    )


def _listing(issued: list[IssuedCommand]) -> list[dict[str, object]]:
    return [
        {
            "command_id": c.id,
            "device_id": c.device_id,
            "args": dict(c.args),
            "nonce": c.nonce,
            "expires_at": c.expires_at.isoformat(),
        }
        for c in issued
    ]
