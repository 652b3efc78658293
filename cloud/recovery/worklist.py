"""The recovery queue: a tenant's cars at risk, most urgent first, with what a team needs.

:func:`queue` ranks every vehicle of the tenant that has a loan not closed
(:mod:`cloud.recovery.ranking`), then fills in the requested page: the loan,
the risk score with its reasons, open alerts, each tracker's last fix and
live status, where the car is likely to be (its resident point and recent
stays) and its recovery case, if any. Every statement filters on the tenant.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeGuard

import psycopg

from cloud.recovery.ranking import RANKED_STATUSES, Candidate, rank
from cloud.recovery.stays import Stay, stay_points
from cloud.storage.queries import track

Conn = psycopg.Connection[Any]

MAX_LIMIT = 500
TOP_ALERTS = 3
STAY_WINDOW = timedelta(days=7)
RECENT_STAYS = 5
RESIDENT_RULE = "resident_learned"


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    rule: str
    severity: str
    status: str
    fired_at: datetime
    message: str


@dataclass(frozen=True, slots=True)
class Tracker:
    """One of the vehicle's devices: its last stored fix and its live status."""

    device_id: str
    kind: str
    revoked: bool
    fix_time: datetime | None  # GNSS time of the last fix; None when it never reported
    lat: float | None
    lon: float | None
    speed_mps: float | None
    age: timedelta | None  # now - fix_time
    state: str | None  # device_status: online | offline | unauthorized; None when unknown
    outbox_depth: int | None
    status_at: datetime | None


@dataclass(frozen=True, slots=True)
class Place:
    lat: float
    lon: float
    source: str  # "resident_learned" (the rule's point) or "declared" (the loan's address)
    since: datetime | None  # when the resident point was learned


@dataclass(frozen=True, slots=True)
class CaseRef:
    id: int
    status: str
    assignee: str | None


@dataclass(frozen=True, slots=True)
class QueueEntry:
    rank: int  # 1-based position in the whole queue
    priority: float
    vehicle_id: int
    vin: str
    plate: str | None
    loan_id: int
    contract_id: str
    loan_status: str
    outstanding: Decimal | None
    score: float
    band: str | None
    reasons: list[Any]
    open_alerts: int
    top_alerts: tuple[Alert, ...]
    trackers: tuple[Tracker, ...]
    resident: Place | None
    stays: tuple[Stay, ...]  # most recent first
    case: CaseRef | None

    @property
    def last_seen(self) -> Tracker | None:
        """The tracker with the newest fix."""
        seen = [t for t in self.trackers if t.fix_time is not None]
        return max(seen, key=lambda t: t.fix_time or datetime.min.replace(tzinfo=UTC), default=None)


_CANDIDATES = """SELECT v.id, l.id, l.status, l.outstanding, COALESCE(r.score, 0)
FROM vehicles v
CROSS JOIN LATERAL (
    SELECT id, status, outstanding FROM loans l
    WHERE l.tenant_id = v.tenant_id AND l.vehicle_id = v.id AND l.status = ANY(%(statuses)s)
    ORDER BY l.created_at DESC, l.id DESC LIMIT 1
) l
LEFT JOIN vehicle_risk r ON r.vehicle_id = v.id AND r.tenant_id = v.tenant_id
WHERE v.tenant_id = %(tenant)s"""

_DETAILS = """SELECT v.id, v.vin, v.plate, l.id, l.contract_id, l.declared_lat, l.declared_lon,
       r.band, r.reasons, c.id, c.status, c.assignee
FROM vehicles v
JOIN loans l ON l.id = ANY(%(loans)s) AND l.vehicle_id = v.id AND l.tenant_id = v.tenant_id
LEFT JOIN vehicle_risk r ON r.vehicle_id = v.id AND r.tenant_id = v.tenant_id
LEFT JOIN recovery_cases c ON c.vehicle_id = v.id AND c.tenant_id = v.tenant_id
     AND c.status <> 'closed'
WHERE v.tenant_id = %(tenant)s AND v.id = ANY(%(ids)s)"""

_ALERTS = """SELECT vehicle_id, id, rule, severity, status, fired_at, message, n FROM (
    SELECT vehicle_id, id, rule, severity, status, fired_at, message,
           count(*) OVER w_all AS n,
           row_number() OVER (w_all ORDER BY CASE severity WHEN 'critical' THEN 4
               WHEN 'high' THEN 3 WHEN 'warn' THEN 2 ELSE 1 END DESC, fired_at DESC, id DESC) AS k
    FROM alerts
    WHERE tenant_id = %(tenant)s AND vehicle_id = ANY(%(ids)s)
      AND status IN ('open', 'acknowledged')
    WINDOW w_all AS (PARTITION BY vehicle_id)
) a WHERE k <= %(top)s ORDER BY vehicle_id, k"""

_TRACKERS = """SELECT d.vehicle_id, d.id, d.kind, d.revoked, f.time, f.lat, f.lon, f.speed_mps,
       s.state, s.outbox_depth, s.updated_at
FROM devices d
LEFT JOIN LATERAL (
    SELECT time, lat, lon, speed_mps FROM fixes f
    WHERE f.device_id = d.id AND f.tenant_id = d.tenant_id
    ORDER BY f.time DESC LIMIT 1
) f ON true
LEFT JOIN device_status s ON s.device_id = d.id
WHERE d.tenant_id = %(tenant)s AND d.vehicle_id = ANY(%(ids)s)
ORDER BY d.vehicle_id, d.revoked, d.id"""

_RESIDENT = """SELECT DISTINCT ON (vehicle_id) vehicle_id, fired_at, evidence, lat, lon
FROM alerts
WHERE tenant_id = %(tenant)s AND vehicle_id = ANY(%(ids)s) AND rule = %(rule)s
ORDER BY vehicle_id, fired_at DESC, id DESC"""


def queue(
    conn: Conn, tenant_id: str, *, limit: int = 20, offset: int = 0, now: datetime | None = None
) -> list[QueueEntry]:
    """One page of the tenant's recovery queue, in the order of :func:`ranking.rank`.

    ``now`` (default: the wall clock) sets the ages of the last fixes and the
    seven-day window of recent stays.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1..{MAX_LIMIT} (got {limit})")
    if offset < 0:
        raise ValueError(f"offset must not be negative (got {offset})")
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rows = conn.execute(_CANDIDATES, {"tenant": tenant_id, "statuses": list(RANKED_STATUSES)})
    loans: dict[int, int] = {}
    candidates = []
    for vehicle_id, loan_id, status, outstanding, score in rows.fetchall():
        loans[vehicle_id] = loan_id
        candidates.append(Candidate(vehicle_id, status, outstanding, float(score)))
    page = rank(candidates)[offset : offset + limit]
    if not page:
        return []
    ids = [r.candidate.vehicle_id for r in page]
    params = {"tenant": tenant_id, "ids": ids, "loans": [loans[i] for i in ids]}
    details = {row[0]: row for row in conn.execute(_DETAILS, params).fetchall()}
    alerts = _alerts(conn, params)
    trackers = _trackers(conn, params, now)
    resident = _resident(conn, params)
    entries = []
    for position, ranked in enumerate(page, start=offset + 1):
        c = ranked.candidate
        d = details[c.vehicle_id]
        count, top = alerts.get(c.vehicle_id, (0, ()))
        place = resident.get(c.vehicle_id)
        if place is None and d[5] is not None and d[6] is not None:
            place = Place(float(d[5]), float(d[6]), "declared", None)
        points = track(conn, tenant_id, c.vehicle_id, now - STAY_WINDOW, now)
        stays = tuple(reversed(stay_points(points)))[:RECENT_STAYS]
        entries.append(
            QueueEntry(
                rank=position,
                priority=ranked.priority,
                vehicle_id=c.vehicle_id,
                vin=d[1],
                plate=d[2],
                loan_id=d[3],
                contract_id=d[4],
                loan_status=c.loan_status,
                outstanding=None if c.outstanding is None else Decimal(c.outstanding),
                score=c.score,
                band=d[7],
                reasons=list(d[8] or []),
                open_alerts=count,
                top_alerts=top,
                trackers=tuple(trackers.get(c.vehicle_id, ())),
                resident=place,
                stays=stays,
                case=None if d[9] is None else CaseRef(d[9], d[10], d[11]),
            )
        )
    return entries


def _alerts(conn: Conn, params: Mapping[str, Any]) -> dict[int, tuple[int, tuple[Alert, ...]]]:
    found: dict[int, list[Alert]] = defaultdict(list)
    counts: dict[int, int] = {}
    for row in conn.execute(_ALERTS, {**params, "top": TOP_ALERTS}).fetchall():
        found[row[0]].append(Alert(*row[1:7]))
        counts[row[0]] = int(row[7])
    return {v: (counts[v], tuple(a)) for v, a in found.items()}


def _trackers(conn: Conn, params: Mapping[str, Any], now: datetime) -> dict[int, list[Tracker]]:
    found: dict[int, list[Tracker]] = defaultdict(list)
    for row in conn.execute(_TRACKERS, params).fetchall():
        fix_time = row[4]
        found[row[0]].append(
            Tracker(
                device_id=row[1],
                kind=row[2],
                revoked=row[3],
                fix_time=fix_time,
                lat=row[5],
                lon=row[6],
                speed_mps=row[7],
                age=None if fix_time is None else now - fix_time,
                state=row[8],
                outbox_depth=row[9],
                status_at=row[10],
            )
        )
    return found


def _resident(conn: Conn, params: Mapping[str, Any]) -> dict[int, Place]:
    found = {}
    for vehicle_id, fired_at, evidence, lat, lon in conn.execute(
        _RESIDENT, {**params, "rule": RESIDENT_RULE}
    ).fetchall():
        point = resident_point(evidence, lat, lon)
        if point is not None:
            found[vehicle_id] = Place(point[0], point[1], RESIDENT_RULE, fired_at)
    return found


def resident_point(
    evidence: object, alert_lat: float | None, alert_lon: float | None
) -> tuple[float, float] | None:
    """``(lat, lon)`` of a ``resident_learned`` alert: its evidence's, else the alert's own."""
    if isinstance(evidence, Mapping):
        lat, lon = evidence.get("lat"), evidence.get("lon")
        if _coordinate(lat, 90.0) and _coordinate(lon, 180.0):
            return float(lat), float(lon)
    if alert_lat is not None and alert_lon is not None:
        return float(alert_lat), float(alert_lon)
    return None


def _coordinate(value: object, bound: float) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and abs(value) <= bound
