"""The anomaly model's daily scoring, run by the risk worker.

When a China day has ended, every tenant with a model gets its vehicle-days
scored: yesterday, and the days missed since the latest model last scored (at
most :data:`CATCH_UP_DAYS`), as ``vgr cloud score-days`` without ``--day``
does. Then each vehicle with an anomalous day gets its risk score recomputed,
so the day shows in ``vehicle_risk`` and, when the band changes, as
``vehicle.risk_changed`` to the lending core.

Several workers may run: a tenant is scored under a transaction-level
advisory lock and a worker that cannot take it skips the tenant (another is
on it). A tenant's failure is logged and retried at the next check; it never
stops the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from cloud.risk import alerts, scoring

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]
CATCH_UP_DAYS = 7
_LOCK_CLASS = 7302  # advisory lock namespace: daily scoring of one tenant


def days_to_score(
    last_scored: date | None, today: date, catch_up: int = CATCH_UP_DAYS
) -> list[date]:
    """The ended days not yet scored by the latest model, oldest first (pure)."""
    yesterday = today - timedelta(days=1)
    first = yesterday - timedelta(days=catch_up - 1)
    if last_scored is not None:
        first = max(first, last_scored + timedelta(days=1))
    return [first + timedelta(days=i) for i in range((yesterday - first).days + 1)]


@dataclass(frozen=True, slots=True)
class DailyOutcome:
    tenant_id: str
    days: tuple[date, ...]
    scored: int
    anomalous_vehicles: int


def score_due(
    conn: Conn,
    notify: alerts.Notifier,
    *,
    today: date,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[DailyOutcome]:
    """Score what is due for every tenant with a model.

    Everything runs in ``conn.transaction()`` blocks, so the connection is left
    idle (never "idle in transaction") whether or not it is in autocommit mode.
    """
    from cloud.refdata.store import load_places
    from cloud.risk.anomaly import store
    from cloud.risk.anomaly.jobs import score_tenant_days

    outcomes = []
    with conn.transaction():
        tenants = [r[0] for r in conn.execute("SELECT DISTINCT tenant_id FROM anomaly_models")]
    for tenant in tenants:
        try:
            with conn.transaction():
                locked = conn.execute(
                    "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, tenant)
                ).fetchone()
                if not (locked and locked[0]):
                    continue
                model = store.latest_model(conn, tenant)
                if model is None:
                    continue
                days = days_to_score(store.last_scored_day(conn, tenant, model.version), today)
                if not days:
                    continue
                places = load_places(conn, tenant, levels=("province",))
                result = score_tenant_days(conn, tenant, days, places=places,
                                           places_source="refdata")  # fmt: skip
                for warning in result.warnings:
                    log.warning("daily scoring of %s: %s", tenant, warning)
                vehicles = sorted({vehicle for vehicle, _, _ in result.anomalies})
                for vehicle in vehicles:
                    row = conn.execute(
                        "SELECT id FROM loans WHERE vehicle_id = %s ORDER BY id DESC LIMIT 1",
                        (vehicle,),
                    ).fetchone()
                    scoring.update(conn, tenant, vehicle, row[0] if row else None, now(), notify)
        except (psycopg.Error, ValueError):
            log.exception("daily scoring of tenant %s failed (retried at the next check)", tenant)
            continue
        log.info("tenant %s: %d vehicle-days of %s scored, %d vehicles anomalous", tenant,
                 result.scored, ", ".join(map(str, days)), len(vehicles))  # fmt: skip
        outcomes.append(DailyOutcome(tenant, tuple(days), result.scored, len(vehicles)))
    return outcomes
