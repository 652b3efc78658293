"""``GET /v1/cockpit?window=&top=``: the data cockpit, one JSON document per call.

For admins and analysts: fleet size and how much of it is online, fixes per
minute (``time_bucket`` over the fixes hypertable, by GNSS time), unresolved
alerts by rule and severity now and over the window, the risk-score
distribution, the riskiest vehicles (no coordinates) and webhook delivery
health per endpoint. Every number is counted from the database, for the
caller's tenant only, in one read-only snapshot. The shape is
:class:`cloud.api.cockpit_doc.Cockpit`; docs/cockpit.md says what each
number means.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from psycopg import AsyncConnection

from cloud.api import cockpit_doc as doc
from cloud.api.errors import json_response
from cloud.api.params import query_params
from cloud.api.policy import Routes
from cloud.api.state import CALLER, POOL

routes = Routes()
Conn = AsyncConnection[Any]

_FLEET = """SELECT
    (SELECT count(*) FROM vehicles WHERE tenant_id = %(tenant)s),
    count(d.id),
    count(d.id) FILTER (WHERE s.state = 'online'),
    count(DISTINCT v.id) FILTER (WHERE s.state = 'online'),
    (SELECT count(DISTINCT vehicle_id) FROM fixes WHERE tenant_id = %(tenant)s
     AND vehicle_id IS NOT NULL AND time > %(now)s - interval '15 minutes' AND time <= %(now)s)
FROM devices d
LEFT JOIN device_status s ON s.device_id = d.id
LEFT JOIN vehicles v ON v.id = d.vehicle_id AND v.tenant_id = d.tenant_id
WHERE d.tenant_id = %(tenant)s AND NOT d.revoked"""

_FIXES = """SELECT time_bucket(make_interval(secs => %(bucket)s), time) AS t, count(*)
FROM fixes WHERE tenant_id = %(tenant)s AND time >= %(start)s AND time <= %(now)s
GROUP BY 1"""

_LAST_MINUTE = """SELECT count(*) FROM fixes
WHERE tenant_id = %(tenant)s AND time > %(now)s - interval '1 minute' AND time <= %(now)s"""

_ALERTS_NOW = """SELECT rule, severity, count(*) FILTER (WHERE status = 'open'),
       count(*) FILTER (WHERE status = 'acknowledged')
FROM alerts WHERE tenant_id = %(tenant)s AND status <> 'resolved'
GROUP BY 1, 2 ORDER BY 1, 2"""

_ALERTS_OPENED = """SELECT rule, count(*) FROM alerts
WHERE tenant_id = %(tenant)s AND opened_at >= %(start)s AND opened_at <= %(now)s
AND resolution IS DISTINCT FROM 'suppressed'
GROUP BY 1 ORDER BY 2 DESC, 1"""

# Unresolved at each instant: opened by then and not yet resolved (suppressed ones never open).
_ALERT_SERIES = """WITH a AS (
    SELECT rule, severity, opened_at, resolved_at FROM alerts
    WHERE tenant_id = %(tenant)s AND opened_at <= %(now)s
    AND (resolved_at IS NULL OR resolved_at > %(start)s)
    AND resolution IS DISTINCT FROM 'suppressed')
SELECT g.at, a.rule, a.severity, count(*)
FROM unnest(%(ends)s::timestamptz[]) AS g(at)
JOIN a ON a.opened_at <= g.at AND (a.resolved_at IS NULL OR a.resolved_at > g.at)
GROUP BY 1, 2, 3"""

_RISK = """SELECT LEAST(floor(r.score / %(width)s)::int, %(last)s), r.band, count(*)
FROM vehicle_risk r JOIN vehicles v ON v.id = r.vehicle_id AND v.tenant_id = r.tenant_id
WHERE r.tenant_id = %(tenant)s GROUP BY 1, 2"""

_TOP = """SELECT v.id, v.vin, v.plate, r.score, r.band, r.reasons, r.updated_at,
    (SELECT count(*) FROM alerts a WHERE a.tenant_id = r.tenant_id AND a.vehicle_id = v.id
     AND a.status <> 'resolved')
FROM vehicle_risk r JOIN vehicles v ON v.id = r.vehicle_id AND v.tenant_id = r.tenant_id
WHERE r.tenant_id = %(tenant)s ORDER BY r.score DESC, v.id LIMIT %(top)s"""

_ENDPOINTS = """SELECT e.id, e.description, e.enabled,
    count(d.id) FILTER (WHERE d.state = 'succeeded'), count(d.id) FILTER (WHERE d.state = 'failed'),
    count(d.id) FILTER (WHERE d.state = 'dead'), count(d.id) FILTER (WHERE d.state = 'pending')
FROM webhook_endpoints e
LEFT JOIN webhook_deliveries d ON d.endpoint_id = e.id AND d.tenant_id = e.tenant_id
     AND d.created_at >= %(start)s AND d.created_at <= %(now)s
WHERE e.tenant_id = %(tenant)s GROUP BY e.id ORDER BY e.id"""

_BACKLOG = """SELECT count(*) FROM webhook_deliveries
WHERE tenant_id = %(tenant)s AND state IN ('pending', 'failed')"""

# Delivery latency: from the delivery's creation (the outbox commit) to the end of the
# attempt that succeeded; ROLLUP adds the all-endpoints row (endpoint NULL).
_DELIVERY_LATENCY = """SELECT x.endpoint_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY x.ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY x.ms)
FROM (SELECT d.endpoint_id, COALESCE(a.latency_ms, 0)
             + extract(epoch FROM a.started_at - d.created_at) * 1000 AS ms
      FROM webhook_deliveries d JOIN webhook_attempts a ON a.delivery_id = d.id
      WHERE d.tenant_id = %(tenant)s AND d.created_at >= %(start)s AND d.created_at <= %(now)s
      AND a.outcome = 'succeeded') x
GROUP BY ROLLUP (x.endpoint_id)"""

_ATTEMPT_LATENCY = """SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a.latency_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY a.latency_ms)
FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
WHERE d.tenant_id = %(tenant)s AND a.started_at >= %(start)s AND a.started_at <= %(now)s
AND a.latency_ms IS NOT NULL"""


async def _rows(conn: Conn, query: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query, params)
    return await cur.fetchall()


async def _one(conn: Conn, query: str, params: dict[str, Any]) -> tuple[Any, ...]:
    rows = await _rows(conn, query, params)
    return rows[0]


async def _fleet(conn: Conn, p: dict[str, Any]) -> doc.Fleet:
    vehicles, devices, online_devices, online_vehicles, reporting = await _one(conn, _FLEET, p)
    return doc.Fleet(vehicles, devices, online_devices, online_vehicles,
                     doc.rate(online_vehicles, vehicles), reporting)  # fmt: skip


async def _fixes(conn: Conn, p: dict[str, Any], starts: list[datetime]) -> doc.Fixes:
    counts = {t: int(n) for t, n in await _rows(conn, _FIXES, p)}
    (last_minute,) = await _one(conn, _LAST_MINUTE, p)
    total = sum(counts.values())
    window_minutes = (p["now"] - starts[0]).total_seconds() / 60
    return doc.Fixes(int(last_minute), round(total / window_minutes, 2) if window_minutes else 0.0,
                     total, doc.fix_series(starts, p["bucket"], counts))  # fmt: skip


async def _alerts(conn: Conn, p: dict[str, Any], starts: list[datetime],
                  ends: list[datetime]) -> doc.Alerts:  # fmt: skip
    now = [doc.AlertCount(r, s, int(o), int(a)) for r, s, o, a in await _rows(conn, _ALERTS_NOW, p)]
    opened = [doc.RuleCount(r, int(n)) for r, n in await _rows(conn, _ALERTS_OPENED, p)]
    series_rows = await _rows(conn, _ALERT_SERIES, {**p, "ends": ends})
    series = doc.alert_series(starts, ends, ((t, r, s, int(n)) for t, r, s, n in series_rows))
    n_open, n_ack = sum(c.open for c in now), sum(c.acknowledged for c in now)
    return doc.Alerts(n_open + n_ack, n_open, n_ack, now, opened, series)


async def _risk(conn: Conn, p: dict[str, Any], vehicles: int) -> doc.Risk:
    buckets: dict[int, int] = {}
    bands: dict[str, int] = {}
    params = {**p, "width": doc.RISK_BUCKET_WIDTH, "last": 100 // doc.RISK_BUCKET_WIDTH - 1}
    for index, band, n in await _rows(conn, _RISK, params):
        buckets[int(index)] = buckets.get(int(index), 0) + int(n)
        bands[band] = bands.get(band, 0) + int(n)
    scored = sum(buckets.values())
    return doc.Risk(scored, max(vehicles - scored, 0), bands, doc.risk_buckets(buckets))


async def _top(conn: Conn, p: dict[str, Any]) -> list[doc.RiskyVehicle]:
    return [
        doc.RiskyVehicle(int(vid), vin, plate, round(float(score), 1), band,
                         doc.public_reasons(reasons), int(n_alerts), updated)
        for vid, vin, plate, score, band, reasons, updated, n_alerts in await _rows(conn, _TOP, p)
    ]  # fmt: skip


async def _webhooks(conn: Conn, p: dict[str, Any]) -> doc.Webhooks:
    latency = {ep: (doc.ms(p50), doc.ms(p95)) for ep, p50, p95 in
               await _rows(conn, _DELIVERY_LATENCY, p)}  # fmt: skip
    endpoints = [
        doc.EndpointHealth(ep, desc, enabled, int(s), int(f), int(d), int(n),
                           *latency.get(ep, (None, None)))
        for ep, desc, enabled, s, f, d, n in await _rows(conn, _ENDPOINTS, p)
    ]  # fmt: skip
    (backlog,) = await _one(conn, _BACKLOG, p)
    attempt_p50, attempt_p95 = await _one(conn, _ATTEMPT_LATENCY, p)
    return doc.Webhooks(
        sum(e.succeeded for e in endpoints), sum(e.failed for e in endpoints),
        sum(e.dead for e in endpoints), sum(e.pending for e in endpoints), int(backlog),
        *latency.get(None, (None, None)), doc.ms(attempt_p50), doc.ms(attempt_p95), endpoints,
    )  # fmt: skip


async def build(conn: Conn, tenant_id: str, query: doc.CockpitQuery) -> doc.Cockpit:
    """The cockpit of ``tenant_id``, read in one repeatable-read snapshot."""
    window_s, bucket_s = doc.WINDOWS[query.window]
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        (now,) = await _one(conn, "SELECT now()", {})
        starts = doc.bucket_starts(now, window_s, bucket_s)
        ends = doc.bucket_ends(starts, bucket_s, now)
        p: dict[str, Any] = {"tenant": tenant_id, "now": now, "start": starts[0],
                             "bucket": bucket_s, "top": query.top}  # fmt: skip
        fleet = await _fleet(conn, p)
        return doc.Cockpit(
            tenant_id=tenant_id, generated_at=now, window=query.window,
            window_start=starts[0], bucket_s=bucket_s, fleet=fleet,
            fixes=await _fixes(conn, p, starts), alerts=await _alerts(conn, p, starts, ends),
            risk=await _risk(conn, p, fleet.vehicles), top_risky=await _top(conn, p),
            webhooks=await _webhooks(conn, p),
        )  # fmt: skip


@routes("GET", "/v1/cockpit", roles={"admin", "analyst"}, query=doc.CockpitQuery,
        response=doc.Cockpit, summary="The data cockpit: fleet, fixes, alerts, risk, webhooks",
        errors=("invalid_parameter",))  # fmt: skip
async def cockpit(request: web.Request) -> web.Response:
    """The data cockpit of the caller's tenant over ``window`` (15m, 1h, 6h, 24h, 7d)."""
    query = query_params(request, doc.CockpitQuery)
    async with request.app[POOL].connection() as conn:
        result = await build(conn, request[CALLER].tenant_id, query)
    return json_response(result)
