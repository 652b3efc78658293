"""``GET /metrics``: the pipeline's counts in Prometheus text, for operators and checks.

Not behind a session (Prometheus scrapes it) but answered only to clients in
``[api] metrics_allow`` (loopback by default; the address is the one
:mod:`cloud.api.clientip` works out, so ``trusted_proxies`` apply); anyone
else gets ``403 forbidden``. Every tenant's numbers are in one scrape: this is
the operator's view, not a tenant's.

The counters come from the database (``pipeline_counters``, written by ingest
and the risk worker in the transactions that store what they count; see
:mod:`cloud.storage.counters`), so they are global across workers, exact, and
survive restarts. The gauges are counted from the tables at scrape time.
``vgr_api_requests_total`` is this API process's own.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg import AsyncConnection

from cloud.api.clientip import Network, parse_networks
from cloud.api.errors import ApiError
from cloud.api.policy import Routes, Scope
from cloud.api.state import CLIENT_IP, POOL, SETTINGS
from cloud.storage import counters

routes = Routes()
FOLD_EVERY_S = 600.0  # fold rows of gone backends at most this often per API process

# name in pipeline_counters -> help text (the Prometheus name is vgr_<name>_total)
COUNTER_HELP: Final = {
    counters.FIXES_INGESTED: "Fixes newly stored in the fixes hypertable (replays not counted).",
    counters.EVENTS_INGESTED: "Device events newly stored.",
    counters.QUARANTINED: "Records ingest kept in quarantine instead of storing, by reason.",
    counters.ALERTS_OPENED: "Alerts opened by the risk engine (after dedupe and suppression).",
}

_GAUGES: Final = (
    ("vgr_vehicles", "Vehicles registered.", ("tenant",),
     "SELECT tenant_id, count(*) FROM vehicles GROUP BY 1"),
    ("vgr_devices", "Trackers not revoked, by last reported state (unknown: never reported).",
     ("tenant", "state"),
     "SELECT d.tenant_id, COALESCE(s.state, 'unknown'), count(*) FROM devices d "
     "LEFT JOIN device_status s ON s.device_id = d.id WHERE NOT d.revoked GROUP BY 1, 2"),
    ("vgr_alerts_unresolved", "Alerts open or acknowledged now.",
     ("tenant", "rule", "severity", "status"),
     "SELECT tenant_id, rule, severity, status, count(*) FROM alerts "
     "WHERE status <> 'resolved' GROUP BY 1, 2, 3, 4"),
    ("vgr_webhook_deliveries_undelivered",
     "Webhook deliveries not (yet) delivered: pending, failed (to be retried), dead.",
     ("tenant", "state"),
     "SELECT tenant_id, state, count(*) FROM webhook_deliveries WHERE state <> 'succeeded' "
     "GROUP BY 1, 2"),
    ("vgr_fix_newest_timestamp_seconds", "GNSS time of the newest stored fix (Unix seconds).",
     ("tenant",),
     "SELECT t.id, extract(epoch FROM f.newest) FROM tenants t CROSS JOIN LATERAL "
     "(SELECT max(time) AS newest FROM fixes WHERE tenant_id = t.id) f WHERE f.newest IS NOT NULL"),
    ("vgr_risk_inbox_pending_rows", "Ingest hand-offs the risk engine has not run yet.", (),
     "SELECT count(*) FROM risk_inbox"),
)  # fmt: skip


@dataclass(slots=True)
class ScrapeState:
    """Per application: which clients may scrape, this process's request counter, folding."""

    allow: tuple[Network, ...]
    registry: CollectorRegistry
    requests: Counter
    last_fold: float = float("-inf")


SCRAPE: Final = web.AppKey("api_metrics", ScrapeState)


def install(app: web.Application) -> None:
    """Set up ``/metrics`` state on ``app`` (after its settings) and count every response."""
    registry = CollectorRegistry(auto_describe=True)
    requests = Counter(
        "vgr_api_requests",
        "HTTP requests answered by this API process, by route template and status.",
        ["method", "route", "status"],
        registry=registry,
    )
    app[SCRAPE] = ScrapeState(parse_networks(app[SETTINGS].metrics_allow), registry, requests)
    app.on_response_prepare.append(_count_response)


async def _count_response(request: web.Request, response: web.StreamResponse) -> None:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    request.app[SCRAPE].requests.labels(request.method, route, str(response.status)).inc()


def allowed(ip: str | None, allow: Sequence[Network]) -> bool:
    """Is the client address inside one of ``allow``? No address (a Unix socket): no."""
    if ip is None:
        return False
    addr = ipaddress.ip_address(ip)
    return any(addr.version == net.version and addr in net for net in allow)


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def counter_families(rows: Iterable[tuple[str, str, dict[str, str], int]]) -> list[Metric]:
    """``pipeline_counters`` totals as counter families; the known ones even with no rows yet."""
    by_name: dict[str, list[tuple[str, dict[str, str], int]]] = {n: [] for n in COUNTER_HELP}
    for name, tenant, labels, value in rows:
        by_name.setdefault(name, []).append((tenant, labels, value))
    out: list[Metric] = []
    for name, samples in sorted(by_name.items()):
        keys = sorted({k for _, labels, _ in samples for k in labels})
        if not samples:  # known counters always show their labels in HELP/TYPE
            keys = ["rule"] if name == counters.ALERTS_OPENED else (
                ["reason"] if name == counters.QUARANTINED else [])  # fmt: skip
        family = CounterMetricFamily(
            f"vgr_{name}",
            COUNTER_HELP.get(name, f"Pipeline counter {name}."),
            labels=["tenant", *keys],
        )
        for tenant, labels, value in samples:
            family.add_metric([tenant, *(str(labels.get(k, "")) for k in keys)], value)
        out.append(family)
    return out


def gauge_family(name: str, help_text: str, labels: Sequence[str],
                 rows: Iterable[Sequence[Any]]) -> Metric:  # fmt: skip
    family = GaugeMetricFamily(name, help_text, labels=list(labels))
    for row in rows:
        family.add_metric([str(v) for v in row[: len(labels)]], float(row[len(labels)]))
    return family


async def _fold(conn: AsyncConnection[Any], state: ScrapeState) -> None:
    now = time.monotonic()
    if now - state.last_fold < FOLD_EVERY_S:
        return
    state.last_fold = now
    async with conn.transaction():
        await conn.execute(counters.FOLD)


async def read_families(conn: AsyncConnection[Any]) -> list[Metric]:
    """Every database-backed family, read in one snapshot."""
    families: list[Metric] = []
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur = await conn.execute(counters.TOTALS)
        families += counter_families((n, t, dict(lbl), int(v)) for n, t, lbl, v in
                                     await cur.fetchall())  # fmt: skip
        for name, help_text, labels, query in _GAUGES:
            cur = await conn.execute(query)
            families.append(gauge_family(name, help_text, labels, await cur.fetchall()))
    return families


@routes("GET", "/metrics", scope=Scope.PUBLIC, summary="Prometheus metrics (allowed networks only)",
        errors=("forbidden",))  # fmt: skip
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of the pipeline's counters and gauges."""
    state = request.app[SCRAPE]
    if not allowed(request[CLIENT_IP], state.allow):
        raise ApiError(403, "forbidden", "this address may not read /metrics ([api] metrics_allow)")
    async with request.app[POOL].connection() as conn:
        await _fold(conn, state)
        families = await read_families(conn)
    body = generate_latest(_Families(families)) + generate_latest(state.registry)
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp
