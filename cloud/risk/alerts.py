"""Signals become alerts: dedupe, suppression, lifecycle, history and webhook messages.

Runs inside the risk worker's transaction, so an alert, its history row and
its webhook message commit together or not at all (the transactional outbox).

- Same ``(vehicle, rule, episode)``: the same alert (replays and late data
  change nothing; a higher severity escalates it).
- A new episode while the vehicle has an unresolved alert of the same rule:
  folded into it as a repeat (``occurrences`` + 1), no new webhook.
- A new episode within the rule's suppression window after an alert of the
  same rule was resolved: recorded as ``resolved``/``suppressed``, no webhook.
- ``Action.RESOLVE``: the episode's alert auto-resolves (``alert.resolved``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import msgspec
import psycopg

from cloud.metrics import ALERTS_OPENED
from cloud.risk.model import Action, Severity, Signal
from cloud.storage import counters

Conn = psycopg.Connection[Any]


class Notifier(Protocol):
    """The webhook outbox: writes a message in the caller's transaction."""

    def __call__(
        self,
        conn: Conn,
        tenant_id: str,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        message_id: str | None = None,
    ) -> str: ...


def no_webhooks(
    conn: Conn,
    tenant_id: str,
    event_type: str,
    payload: Mapping[str, Any],
    *,
    message_id: str | None = None,
) -> str:
    return message_id or ""


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    suppress: timedelta = timedelta(hours=1)
    suppress_by_rule: Mapping[str, timedelta] = field(default_factory=dict)

    def window(self, rule: str) -> timedelta:
        return self.suppress_by_rule.get(rule, self.suppress)


@dataclass(slots=True)
class Outcome:
    opened: int = 0
    escalated: int = 0
    repeated: int = 0
    suppressed: int = 0
    resolved: int = 0
    unchanged: int = 0


_COLS = (
    "id, tenant_id, vehicle_id, loan_id, device_id, rule, episode, severity, status, "
    "resolution, fired_at, opened_at, lat, lon, message, evidence, occurrences"
)
_SELECT_ONE = (
    "SELECT id, tenant_id, vehicle_id, loan_id, device_id, rule, episode, severity, status, "
    "resolution, fired_at, opened_at, lat, lon, message, evidence, occurrences "
    "FROM alerts WHERE id = %s"
)


def alert_payload(row: tuple[Any, ...]) -> dict[str, Any]:
    keys = [c.strip() for c in _COLS.split(",")]
    out = dict(zip(keys, row, strict=True))
    for k in ("fired_at", "opened_at"):
        out[k] = out[k].isoformat()
    return out


def _history(conn: Conn, alert_id: int, action: str, frm: str | None, to: str | None,
             detail: Mapping[str, Any] | None = None, actor: str = "engine") -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO alert_history (alert_id, actor, action, from_status, to_status, detail) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (alert_id, actor, action, frm, to, msgspec.json.encode(dict(detail or {})).decode()),
    )


def _notify(conn: Conn, notify: Notifier, tenant: str, event: str, alert_id: int) -> None:
    row = conn.execute(_SELECT_ONE, (alert_id,)).fetchone()
    assert row is not None
    notify(conn, tenant, event, {"type": event, "alert": alert_payload(row)},
           message_id=f"msg_alert_{alert_id}_{event.rsplit('.', maxsplit=1)[-1]}")  # fmt: skip


def apply(
    conn: Conn,
    tenant_id: str,
    vehicle_id: int,
    loan_id: int | None,
    signal: Signal,
    *,
    policy: AlertPolicy,
    notify: Notifier,
    outcome: Outcome,
) -> None:
    """Fold one rule signal into the alerts table."""
    if signal.action is Action.RESOLVE:
        _resolve(conn, tenant_id, vehicle_id, signal, notify, outcome)
        return
    sev = signal.severity.label
    existing = conn.execute(
        "SELECT id, severity, status FROM alerts WHERE tenant_id = %s AND vehicle_id = %s "
        "AND rule = %s AND episode = %s",
        (tenant_id, vehicle_id, signal.rule, signal.episode),
    ).fetchone()
    if existing is not None:
        alert_id, old_sev, status = existing
        if Severity[old_sev.upper()] < signal.severity:
            conn.execute(
                "UPDATE alerts SET severity = %s, message = %s, evidence = %s, updated_at = now() "
                "WHERE id = %s",
                (sev, signal.message, _json(signal.evidence), alert_id),
            )
            _history(conn, alert_id, "escalated", status, status, {"from": old_sev, "to": sev})
            outcome.escalated += 1
        else:
            outcome.unchanged += 1
        return
    live = conn.execute(
        "SELECT id, status FROM alerts WHERE tenant_id = %s AND vehicle_id = %s AND rule = %s "
        "AND status <> 'resolved' ORDER BY id DESC LIMIT 1",
        (tenant_id, vehicle_id, signal.rule),
    ).fetchone()
    if live is not None:
        conn.execute(
            "UPDATE alerts SET occurrences = occurrences + 1, updated_at = now() WHERE id = %s",
            (live[0],),
        )
        _history(conn, live[0], "repeated", live[1], live[1], {"episode": signal.episode})
        outcome.repeated += 1
        return
    recent = conn.execute(
        "SELECT 1 FROM alerts WHERE tenant_id = %s AND vehicle_id = %s AND rule = %s "
        "AND status = 'resolved' AND resolved_at > %s LIMIT 1",
        (tenant_id, vehicle_id, signal.rule, signal.time - policy.window(signal.rule)),
    ).fetchone()
    suppressed = recent is not None
    row = conn.execute(
        "INSERT INTO alerts (tenant_id, vehicle_id, loan_id, device_id, rule, episode, severity, "
        "status, resolution, fired_at, resolved_at, lat, lon, message, evidence) VALUES "
        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (tenant_id, vehicle_id, loan_id, signal.device_id, signal.rule, signal.episode, sev,
         "resolved" if suppressed else "open", "suppressed" if suppressed else None,
         signal.time, signal.time if suppressed else None, signal.lat, signal.lon,
         signal.message, _json(signal.evidence)),
    ).fetchone()  # fmt: skip
    assert row is not None
    if suppressed:
        _history(conn, row[0], "suppressed", None, "resolved")
        outcome.suppressed += 1
        return
    _history(conn, row[0], "opened", None, "open")
    ALERTS_OPENED.labels(tenant=tenant_id, rule=signal.rule).inc()
    counters.alert_opened(conn, tenant_id, signal.rule)  # /metrics, in this transaction
    _notify(conn, notify, tenant_id, "alert.opened", row[0])
    if signal.rule == "offline" and signal.device_id is not None:
        evidence = dict(signal.evidence)
        notify(
            conn, tenant_id, "device.offline",
            {"device_id": signal.device_id, "vehicle_id": vehicle_id, "loan_id": loan_id,
             "last_seen_at": evidence.get("last_seen"), "last_lat": signal.lat,
             "last_lon": signal.lon, "reason": signal.message},
            message_id=f"msg_alert_{row[0]}_device_offline",
        )  # fmt: skip
    outcome.opened += 1


def _resolve(conn: Conn, tenant_id: str, vehicle_id: int, signal: Signal, notify: Notifier,
             outcome: Outcome) -> None:  # fmt: skip
    row = conn.execute(
        "SELECT id, status FROM alerts WHERE tenant_id = %s AND vehicle_id = %s AND rule = %s "
        "AND episode = %s AND status <> 'resolved' FOR UPDATE",
        (tenant_id, vehicle_id, signal.rule, signal.episode),
    ).fetchone()
    if row is None:
        outcome.unchanged += 1
        return
    conn.execute(
        "UPDATE alerts SET status = 'resolved', resolution = 'auto', resolved_at = %s, "
        "resolved_by = 'engine', updated_at = now() WHERE id = %s",
        (signal.time, row[0]),
    )
    _history(conn, row[0], "resolved", row[1], "resolved", {"by": "rule"})
    _notify(conn, notify, tenant_id, "alert.resolved", row[0])
    outcome.resolved += 1


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def set_status(conn: Conn, tenant_id: str, alert_id: int, to: str, actor: str,
               note: str = "", notify: Notifier = no_webhooks) -> bool:  # fmt: skip
    """A person acknowledges or resolves an alert; False when it is not theirs or not open."""
    allowed = {"acknowledged": ("open",), "resolved": ("open", "acknowledged")}[to]
    row = conn.execute(
        "SELECT status FROM alerts WHERE id = %s AND tenant_id = %s FOR UPDATE",
        (alert_id, tenant_id),
    ).fetchone()
    if row is None or row[0] not in allowed:
        return False
    if to == "acknowledged":
        conn.execute(
            "UPDATE alerts SET status = 'acknowledged', acknowledged_at = now(), "
            "acknowledged_by = %s, updated_at = now() WHERE id = %s",
            (actor, alert_id),
        )
    else:
        conn.execute(
            "UPDATE alerts SET status = 'resolved', resolution = 'manual', resolved_at = now(), "
            "resolved_by = %s, updated_at = now() WHERE id = %s",
            (actor, alert_id),
        )
    _history(conn, alert_id, to, row[0], to, {"note": note} if note else None, actor=actor)
    if to == "resolved":
        _notify(conn, notify, tenant_id, "alert.resolved", alert_id)
    return True
