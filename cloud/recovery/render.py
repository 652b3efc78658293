"""Plain-text views for the CLI: the queue as a table, a case with its history. Pure code."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from datetime import timedelta

from cloud.recovery.casedb import Case, CommandRecord, HistoryEntry
from cloud.recovery.worklist import QueueEntry, Tracker

QUEUE_COLUMNS = (
    "#",
    "VEHICLE",
    "CONTRACT",
    "LOAN",
    "OUTSTANDING",
    "SCORE",
    "PRIORITY",
    "ALERTS",
    "LAST SEEN",
    "TRACKERS",
    "LIKELY PLACES",
    "CASE",
)


def age(delta: timedelta | None) -> str:
    """``45s``, ``12m``, ``3h``, ``2d4h``; ``-`` when unknown; ``ahead`` for a future fix."""
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "ahead"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    days, hours = divmod(seconds // 3600, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def _point(lat: float, lon: float) -> str:
    return f"{lat:.5f},{lon:.5f}"


def _tracker(t: Tracker) -> str:
    state = "revoked" if t.revoked else (t.state or "unknown")
    depth = "" if t.outbox_depth is None else f" q={t.outbox_depth}"
    return f"{t.device_id} {t.kind} {state}{depth}"


def queue_rows(entries: Sequence[QueueEntry]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for e in entries:
        top = e.top_alerts[0] if e.top_alerts else None
        alerts = str(e.open_alerts) + (f" {top.rule}({top.severity})" if top else "")
        seen = e.last_seen
        last = (
            "never"
            if seen is None or seen.lat is None or seen.lon is None
            else (f"{_point(seen.lat, seen.lon)} {age(seen.age)} ago")
        )
        places = []
        if e.resident is not None:
            tag = "home" if e.resident.source == "resident_learned" else "declared"
            places.append(f"{tag} {_point(e.resident.lat, e.resident.lon)}")
        if e.stays:
            s = e.stays[0]
            places.append(f"stay {_point(s.lat, s.lon)} {age(s.duration)} (+{len(e.stays) - 1})")
        rows.append(
            (
                str(e.rank),
                e.plate or e.vin,
                e.contract_id,
                e.loan_status,
                "-" if e.outstanding is None else f"{e.outstanding:,.2f}",
                f"{e.score:.0f} {e.band or ''}".strip(),
                f"{e.priority:,.0f}",
                alerts,
                last,
                "; ".join(_tracker(t) for t in e.trackers) or "none",
                "; ".join(places) or "-",
                "-" if e.case is None else f"#{e.case.id} {e.case.status}",
            )
        )
    return rows


def width(text: str) -> int:
    """Terminal columns of ``text``: CJK (wide) characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [width(h) for h in header]
    for row in rows:
        widths = [max(w, width(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = []
    for row in (header, *rows):
        cells = [cell + " " * (w - width(cell)) for cell, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def queue_table(entries: Sequence[QueueEntry]) -> str:
    if not entries:
        return "no vehicles with an open loan"
    return table(QUEUE_COLUMNS, queue_rows(entries))


def case_text(
    case: Case, history: Sequence[HistoryEntry], commands: Sequence[CommandRecord]
) -> str:
    lines = [
        f"case {case.id}  tenant {case.tenant_id}  vehicle {case.vehicle_id}  loan {case.loan_id}",
        f"status {case.status}  assignee {case.assignee or '-'}  outcome {case.outcome or '-'}",
        f"opened {case.opened_at.isoformat()} by {case.opened_by}  "
        f"updated {case.updated_at.isoformat()}"
        + (f"  closed {case.closed_at.isoformat()}" if case.closed_at else ""),
    ]
    if case.located_lat is not None and case.located_lon is not None:
        when = case.located_at.isoformat() if case.located_at else "?"
        lines.append(f"located at {_point(case.located_lat, case.located_lon)} ({when})")
    if case.notes:
        lines += ["notes:", *(f"  {n}" for n in case.notes.splitlines())]
    lines += ["", "history:"]
    rows: list[tuple[str, ...]] = [
        (
            h.time.isoformat(timespec="seconds"),
            h.actor,
            h.action,
            f"{h.from_status or ''}->{h.to_status or ''}" if h.from_status or h.to_status else "",
            json.dumps(h.detail, ensure_ascii=False, sort_keys=True),
        )
        for h in history
    ]
    lines.append(table(("TIME", "ACTOR", "ACTION", "STATUS", "DETAIL"), rows))
    if commands:
        rows = [
            (
                str(c.id),
                c.device_id,
                c.cmd,
                json.dumps(c.args, sort_keys=True),
                c.issued_at.isoformat(timespec="seconds"),
                "-" if c.published_at is None else "yes",
                "-" if c.ack_ok is None else ("ok" if c.ack_ok else f"refused {c.ack_reason}"),
            )
            for c in commands
        ]
        lines += ["", "commands:"]
        lines.append(table(("ID", "DEVICE", "CMD", "ARGS", "ISSUED", "PUBLISHED", "ACK"), rows))
    return "\n".join(lines)
