"""Recovery-case rows as typed records, read and appended within one tenant.

The service functions in :mod:`cloud.recovery.cases` decide what may change;
this module only reads rows (always filtered on the tenant, so another
tenant's case is ``not_found``) and appends to the audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import psycopg
from psycopg.rows import class_row

from cloud.recovery.workflow import CaseError

Conn = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class Case:
    id: int
    tenant_id: str
    vehicle_id: int
    loan_id: int | None
    status: str
    assignee: str | None
    opened_by: str
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    outcome: str | None  # recovered | failed | cancelled
    notes: str
    located_lat: float | None
    located_lon: float | None
    located_at: datetime | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: int
    time: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CommandRecord:
    id: int
    device_id: str
    cmd: str
    args: dict[str, Any]
    nonce: str
    issued_at: datetime
    expires_at: datetime
    issued_by: str
    published_at: datetime | None
    publish_note: str | None
    ack_ok: bool | None
    ack_reason: str | None
    ack_at: datetime | None


_SELECT_CASE = (
    "SELECT id, tenant_id, vehicle_id, loan_id, status, assignee, opened_by, opened_at, "
    "updated_at, closed_at, outcome, notes, located_lat, located_lon, located_at "
    "FROM recovery_cases WHERE id = %s AND tenant_id = %s"
)


def load(conn: Conn, tenant_id: str, case_id: int, *, for_update: bool = False) -> Case:
    """The case, or CaseError ``not_found`` (also for another tenant's case)."""
    query = _SELECT_CASE + (" FOR UPDATE" if for_update else "")
    with conn.cursor(row_factory=class_row(Case)) as cur:
        cur.execute(query, (case_id, tenant_id))
        case = cur.fetchone()
    if case is None:
        raise CaseError("not_found", f"case {case_id} not found")
    return case


def history(conn: Conn, tenant_id: str, case_id: int) -> list[HistoryEntry]:
    """The case's audit trail, oldest first."""
    load(conn, tenant_id, case_id)
    with conn.cursor(row_factory=class_row(HistoryEntry)) as cur:
        cur.execute(
            "SELECT id, time, actor, action, from_status, to_status, detail FROM case_history "
            "WHERE case_id = %s ORDER BY time, id",
            (case_id,),
        )
        return cur.fetchall()


def commands(conn: Conn, tenant_id: str, case_id: int) -> list[CommandRecord]:
    """The commands the case sent, oldest first, with the trackers' answers."""
    with conn.cursor(row_factory=class_row(CommandRecord)) as cur:
        cur.execute(
            "SELECT id, device_id, cmd, args, nonce, issued_at, expires_at, issued_by, "
            "published_at, publish_note, ack_ok, ack_reason, ack_at FROM commands "
            "WHERE tenant_id = %s AND case_id = %s ORDER BY issued_at, id",
            (tenant_id, case_id),
        )
        return cur.fetchall()


def append_history(
    conn: Conn,
    case_id: int,
    actor: str,
    action: str,
    frm: str | None,
    to: str | None,
    detail: Mapping[str, object],
) -> None:
    """One audit row; ``time`` is the transaction's ``now()``, like the case's own columns."""
    conn.execute(
        "INSERT INTO case_history (case_id, actor, action, from_status, to_status, detail) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (case_id, actor, action, frm, to, msgspec.json.encode(dict(detail)).decode()),
    )


def note_line(actor: str, note: str) -> str:
    """A note as appended to ``recovery_cases.notes``: ``actor: text``, one line."""
    text = " ".join(note.split())
    return f"{actor}: {text}\n" if text else ""
