"""The feed's database queries: one of each per polling round for all connected tenants.

Every query covers all the tenants that have a client at once (``tenant_id =
ANY(...)``), so the cost of a round does not grow with the number of clients.
Changes are found by watermark (:mod:`cloud.live.versions`) on the indexes of
migration 0013: ``fixes (received_at)`` (only chunks of the last
:data:`FIX_HORIZON` are searched), ``alerts (updated_at)``,
``recovery_cases (updated_at)``, ``vehicle_risk (updated_at)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from cloud.api.scope import WORKED_STATUSES
from cloud.live.messages import Alert, CaseChange, Position, RiskChange

AConn = psycopg.AsyncConnection[Any]
# A fix older than this is not looked for by the change query (a backlog older than a
# week is history, not a live position); the first load of a tenant has no such limit.
FIX_HORIZON = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Stamps:
    """The newest change stamp of each table now: the watermarks a feed starts from."""

    fixes: datetime
    alerts: datetime
    cases: datetime
    risk: datetime


async def current_stamps(conn: AConn) -> Stamps:
    cur = await conn.execute(
        "SELECT coalesce((SELECT max(received_at) FROM fixes WHERE time > now() - %s), now()), "
        "coalesce((SELECT max(updated_at) FROM alerts), now()), "
        "coalesce((SELECT max(updated_at) FROM recovery_cases), now()), "
        "coalesce((SELECT max(updated_at) FROM vehicle_risk), now())",
        (FIX_HORIZON,),
    )
    row = await cur.fetchone()
    assert row is not None
    return Stamps(*row)


def _position(row: tuple[Any, ...]) -> Position:
    tenant, vid, t, lat, lon, speed, course, score, band = row
    return Position(tenant, int(vid), t, float(lat), float(lon), speed, course,
                    None if score is None else float(score), band)  # fmt: skip


async def latest_positions(conn: AConn, tenant_id: str) -> list[Position]:
    """Every vehicle's newest fix in one tenant (a tenant's first client loads these)."""
    cur = await conn.execute(
        "SELECT v.tenant_id, v.id, f.time, f.lat, f.lon, f.speed_mps, f.course_deg, r.score, "
        "r.band FROM vehicles v CROSS JOIN LATERAL (SELECT time, lat, lon, speed_mps, "
        "course_deg FROM fixes WHERE vehicle_id = v.id AND tenant_id = v.tenant_id "
        "ORDER BY time DESC LIMIT 1) f LEFT JOIN vehicle_risk r ON r.vehicle_id = v.id "
        "WHERE v.tenant_id = %s",
        (tenant_id,),
    )
    return [_position(row) for row in await cur.fetchall()]


async def changed_positions(conn: AConn, tenants: list[str],
                            since: datetime) -> tuple[list[Position], datetime | None]:  # fmt: skip
    """Each vehicle's newest fix among those received after ``since``, and the newest stamp."""
    cur = await conn.execute(
        "SELECT f.tenant_id, f.vehicle_id, f.time, f.lat, f.lon, f.speed_mps, f.course_deg, "
        "r.score, r.band, f.newest FROM (SELECT DISTINCT ON (vehicle_id) tenant_id, vehicle_id, "
        "time, lat, lon, speed_mps, course_deg, max(received_at) OVER () AS newest FROM fixes "
        "WHERE received_at > %(since)s AND time > now() - %(horizon)s "
        "AND tenant_id = ANY(%(tenants)s) AND vehicle_id IS NOT NULL "
        "ORDER BY vehicle_id, time DESC) f LEFT JOIN vehicle_risk r ON r.vehicle_id = f.vehicle_id",
        {"since": since, "horizon": FIX_HORIZON, "tenants": tenants},
    )
    rows = await cur.fetchall()
    newest = max((row[-1] for row in rows), default=None)
    return [_position(row[:-1]) for row in rows], newest


async def changed_alerts(conn: AConn, tenants: list[str],
                         since: datetime) -> list[Alert]:  # fmt: skip
    cur = await conn.execute(
        "SELECT tenant_id, id, vehicle_id, rule, severity, status, opened_at, updated_at, "
        "message FROM alerts WHERE updated_at > %s AND tenant_id = ANY(%s) ORDER BY updated_at",
        (since, tenants),
    )
    return [Alert(*row) for row in await cur.fetchall()]


async def changed_cases(conn: AConn, tenants: list[str], since: datetime) -> list[CaseChange]:
    cur = await conn.execute(
        "SELECT tenant_id, id, vehicle_id, status, assignee, updated_at FROM recovery_cases "
        "WHERE updated_at > %s AND tenant_id = ANY(%s) ORDER BY updated_at",
        (since, tenants),
    )
    return [CaseChange(*row) for row in await cur.fetchall()]


async def changed_risk(conn: AConn, tenants: list[str], since: datetime) -> list[RiskChange]:
    cur = await conn.execute(
        "SELECT tenant_id, vehicle_id, score, band, updated_at FROM vehicle_risk "
        "WHERE updated_at > %s AND tenant_id = ANY(%s) ORDER BY updated_at",
        (since, tenants),
    )
    return [RiskChange(t, int(v), float(s), b, u) for t, v, s, b, u in await cur.fetchall()]


async def worked_cases(conn: AConn, tenants: list[str]) -> list[tuple[str, str, int, str]]:
    """(tenant, assignee, vehicle_id, status) of the cases being worked in these tenants."""
    cur = await conn.execute(
        "SELECT tenant_id, assignee, vehicle_id, status FROM recovery_cases "
        "WHERE tenant_id = ANY(%s) AND status = ANY(%s) AND assignee IS NOT NULL",
        (tenants, list(WORKED_STATUSES)),
    )
    return [(t, a, int(v), s) for t, a, v, s in await cur.fetchall()]
