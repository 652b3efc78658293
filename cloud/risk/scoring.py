"""Keeps ``vehicle_risk`` and ``risk_history`` current from a vehicle's alerts and anomaly days.

Called by the risk worker after a vehicle's signals were applied (and on each
tick, so scores decay), inside the worker's transaction. A score that moves
enough (band change or ten points, :func:`cloud.risk.score.risk_changed`)
writes a ``vehicle.risk_changed`` webhook message in the same transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
import psycopg

from cloud.risk.alerts import Notifier
from cloud.risk.geo import CHINA_TZ
from cloud.risk.model import Severity
from cloud.risk.score import (
    Band,
    Reason,
    RiskScore,
    RiskSignal,
    anomaly_signal,
    risk_changed,
    risk_score,
)

Conn = psycopg.Connection[Any]
LOOKBACK = timedelta(days=180)  # beyond this every signal has decayed below 2 %


def _signals(conn: Conn, vehicle_id: int, now: datetime) -> list[RiskSignal]:
    rows = conn.execute(
        "SELECT rule, severity, fired_at, resolved_at, episode FROM alerts WHERE vehicle_id = %s "
        "AND fired_at > %s AND resolution IS DISTINCT FROM 'suppressed'",
        (vehicle_id, now - LOOKBACK),
    ).fetchall()
    out = [RiskSignal(r, Severity[s.upper()], t, res, ep) for r, s, t, res, ep in rows]
    for day, score, flagged in conn.execute(
        "SELECT day, score, is_anomaly FROM anomaly_scores WHERE vehicle_id = %s AND day > %s",
        (vehicle_id, (now - LOOKBACK).date()),
    ).fetchall():
        day_end = datetime.combine(day, datetime.min.time(), CHINA_TZ) + timedelta(days=1)
        sig = anomaly_signal(day_end, score=score, is_anomaly=flagged, episode=str(day))
        if sig is not None:
            out.append(sig)
    return out


def _reasons_json(reasons: tuple[Reason, ...]) -> str:
    return msgspec.json.encode([
        {"rule": r.rule, "severity": r.severity.label, "episode": r.episode,
         "time": r.time.isoformat(), "resolved": r.resolved, "points": r.points}
        for r in reasons
    ]).decode()  # fmt: skip


def update(
    conn: Conn,
    tenant_id: str,
    vehicle_id: int,
    loan_id: int | None,
    now: datetime,
    notify: Notifier,
) -> RiskScore:
    """Recompute the vehicle's score at ``now`` (GNSS time of its newest input or tick)."""
    new = risk_score(_signals(conn, vehicle_id, now), now)
    row = conn.execute(
        "SELECT score, band FROM vehicle_risk WHERE vehicle_id = %s", (vehicle_id,)
    ).fetchone()
    old = None if row is None else RiskScore(float(row[0]), Band(row[1]), ())
    reasons = _reasons_json(new.reasons)
    if old is not None and old.score == new.score and old.band == new.band:
        return new
    conn.execute(
        "INSERT INTO vehicle_risk (vehicle_id, tenant_id, score, band, reasons, updated_at) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (vehicle_id) DO UPDATE SET "
        "score = EXCLUDED.score, band = EXCLUDED.band, reasons = EXCLUDED.reasons, "
        "updated_at = EXCLUDED.updated_at",
        (vehicle_id, tenant_id, new.score, new.band.value, reasons, now),
    )
    conn.execute(
        "INSERT INTO risk_history (time, vehicle_id, tenant_id, score, band, reasons) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (now, vehicle_id, tenant_id, new.score, new.band.value, reasons),
    )
    if risk_changed(old, new):
        contract = conn.execute(
            "SELECT contract_id FROM loans WHERE id = %s", (loan_id,)
        ).fetchone()
        notify(
            conn, tenant_id, "vehicle.risk_changed",
            {"vehicle_id": vehicle_id, "loan_id": loan_id,
             "contract_id": contract[0] if contract else None, "score": new.score,
             "band": new.band.value, "previous_score": old.score if old else None,
             "previous_band": old.band.value if old else None,
             "reasons": msgspec.json.decode(reasons), "time": now.isoformat()},
            message_id=f"msg_risk_{vehicle_id}_{int(now.timestamp())}",
        )  # fmt: skip
    return new
