"""``GET /v1/recovery/queue``: the cars to recover, most urgent first, with where to find them.

The order is :mod:`cloud.recovery.ranking`'s (risk score cubed x exposure x
loan status); each entry is :mod:`cloud.recovery.worklist`'s (loan, score and
reasons, open alerts, each tracker's last fix and live status, the resident
point and recent stays, the case). Recovery agents get only the vehicles of
their own cases being worked, in the same order.

Pages are keyset pages over the ranking: the cursor is the sort key of the
last car handed out (priority, score, loan status, exposure, vehicle id), so
a car whose priority changes while a client pages moves in the order rather
than shifting every later page. The whole call reads one snapshot
(REPEATABLE READ) and writes ONE ``viewed_locations`` audit row naming every
vehicle of the page, in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import psycopg
from aiohttp import web

from cloud.api import audit
from cloud.api.commands import SyncPool
from cloud.api.cursor import PageError, decode_cursor, encode_cursor
from cloud.api.errors import json_response
from cloud.api.lending import AlertBrief
from cloud.api.pages import Page, PageQuery
from cloud.api.params import query_params
from cloud.api.policy import Caller, Routes
from cloud.api.scope import VISIBLE_VEHICLE_SQL, visible_params
from cloud.api.state import CALLER, CLIENT_IP, SYNC_POOL
from cloud.recovery.ranking import RANKED_STATUSES, Candidate, Ranked, rank, status_factor
from cloud.recovery.worklist import QueueEntry, Tracker
from cloud.recovery.worklist import queue as worklist_queue

log = logging.getLogger(__name__)
routes = Routes()
Conn = psycopg.Connection[Any]
OrderKey = tuple[float, float, float, float, int]

# The vehicles worklist.queue ranks (each one's newest loan that is not closed),
# narrowed to what the caller may see.
_CANDIDATES = (
    "SELECT v.id, l.status, l.outstanding, COALESCE(r.score, 0) FROM vehicles v "
    "CROSS JOIN LATERAL (SELECT status, outstanding FROM loans l WHERE l.tenant_id = v.tenant_id "
    "  AND l.vehicle_id = v.id AND l.status = ANY(%(statuses)s) "
    "  ORDER BY l.created_at DESC, l.id DESC LIMIT 1) l "
    "LEFT JOIN vehicle_risk r ON r.vehicle_id = v.id AND r.tenant_id = v.tenant_id "
    "WHERE v.tenant_id = %(tenant)s"
)


class QueueQuery(PageQuery, forbid_unknown_fields=True, kw_only=True):
    pass


class QueueVehicle(msgspec.Struct):
    id: int
    vin: str
    plate: str | None


class QueueLoan(msgspec.Struct):
    id: int
    contract_id: str
    status: str
    outstanding: Decimal | None


class QueueCase(msgspec.Struct):
    id: int
    status: str
    assignee: str | None


class LastPosition(msgspec.Struct):
    device_id: str
    time: datetime
    lat: float
    lon: float
    speed_mps: float | None
    age_s: float


class Place(msgspec.Struct):
    lat: float
    lon: float
    kind: str  # resident_learned | declared | stay
    since: datetime | None = None  # resident point: when it was learned
    arrived: datetime | None = None  # stay
    left: datetime | None = None
    duration_s: float | None = None


class TrackerStatus(msgspec.Struct):
    device_id: str
    kind: str
    revoked: bool
    state: str | None  # online | offline | unauthorized; null when never reported
    fix_time: datetime | None
    age_s: float | None
    outbox_depth: int | None
    status_at: datetime | None


class LiveStatus(msgspec.Struct):
    online: bool  # at least one tracker online
    trackers: list[TrackerStatus]


class QueueItem(msgspec.Struct):
    rank: int  # position in the caller's queue, 1 = most urgent
    priority: float
    score: float
    band: str | None
    reasons: list[Any]
    vehicle: QueueVehicle
    loan: QueueLoan
    open_alerts: int
    top_alerts: list[AlertBrief]
    case: QueueCase | None
    last_position: LastPosition | None
    likely_places: list[Place]
    live: LiveStatus


# ---------------------------------------------------------------- pure


def order_key(r: Ranked) -> OrderKey:
    """The total order :func:`cloud.recovery.ranking.rank` sorts by, as a comparable tuple."""
    c = r.candidate
    return (-r.priority, -c.score, -status_factor(c.loan_status), -r.exposure, c.vehicle_id)


def encode_key(key: OrderKey) -> str:
    *floats, vehicle_id = key
    return encode_cursor("queue", (*(float(f).hex() for f in floats), int(vehicle_id)))


def decode_key(cursor: str) -> OrderKey:
    values = decode_cursor("queue", cursor, (str, str, str, str, int))
    try:
        a, b, c, d = (float.fromhex(str(v)) for v in values[:4])
    except ValueError:
        raise PageError("invalid_cursor", "cursor is not one this list handed out") from None
    return (a, b, c, d, int(values[4]))


def _seconds(entry_age: Any) -> float | None:
    return None if entry_age is None else float(entry_age.total_seconds())


def _tracker(t: Tracker) -> TrackerStatus:
    return TrackerStatus(t.device_id, t.kind, t.revoked, t.state, t.fix_time, _seconds(t.age),
                         t.outbox_depth, t.status_at)  # fmt: skip


def queue_item(rank_no: int, e: QueueEntry) -> QueueItem:
    seen = e.last_seen
    last = None
    if seen is not None and seen.fix_time is not None and seen.lat is not None:
        assert seen.lon is not None
        last = LastPosition(seen.device_id, seen.fix_time, seen.lat, seen.lon, seen.speed_mps,
                            _seconds(seen.age) or 0.0)  # fmt: skip
    places = []
    if e.resident is not None:
        places.append(Place(e.resident.lat, e.resident.lon, e.resident.source, e.resident.since))
    places += [Place(s.lat, s.lon, "stay", arrived=s.arrived, left=s.left,
                     duration_s=s.duration.total_seconds()) for s in e.stays]  # fmt: skip
    trackers = [_tracker(t) for t in e.trackers]
    return QueueItem(
        rank=rank_no, priority=e.priority, score=e.score, band=e.band, reasons=e.reasons,
        vehicle=QueueVehicle(e.vehicle_id, e.vin, e.plate),
        loan=QueueLoan(e.loan_id, e.contract_id, e.loan_status, e.outstanding),
        open_alerts=e.open_alerts,
        top_alerts=[AlertBrief(a.id, a.rule, a.severity, a.status, a.fired_at, a.message)
                    for a in e.top_alerts],
        case=None if e.case is None else QueueCase(e.case.id, e.case.status, e.case.assignee),
        last_position=last, likely_places=places,
        live=LiveStatus(any(t.state == "online" and not t.revoked for t in e.trackers), trackers),
    )  # fmt: skip


def runs(indexes: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted ``indexes`` as ``(start, length)``."""
    out: list[tuple[int, int]] = []
    for i in indexes:
        if out and out[-1][0] + out[-1][1] == i:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


# ---------------------------------------------------------------- I/O


def _ranked(conn: Conn, caller: Caller, *, scoped: bool) -> list[Ranked]:
    visible = VISIBLE_VEHICLE_SQL.format(col="v.id") if scoped else "true"
    rows = conn.execute(
        f"{_CANDIDATES} AND {visible}",
        {"statuses": list(RANKED_STATUSES), **visible_params(caller)},
    ).fetchall()
    return rank([Candidate(int(v), s, o, float(score)) for v, s, o, score in rows])


def _entries(conn: Conn, caller: Caller, wanted: list[int], tenant_order: list[int],
             now: datetime) -> dict[int, QueueEntry]:  # fmt: skip
    """worklist entries of the ``wanted`` vehicles, read in runs of the tenant-wide order."""
    position = {vid: i for i, vid in enumerate(tenant_order)}
    found: dict[int, QueueEntry] = {}
    for start, length in runs(sorted(position[v] for v in wanted)):
        for entry in worklist_queue(conn, caller.tenant_id, limit=length, offset=start, now=now):
            found[entry.vehicle_id] = entry
    missing = set(wanted) - set(found)
    if missing:  # the two rankings disagree: a bug, not bad input
        msg = f"recovery queue: worklist and ranking disagree on vehicles {sorted(missing)}"
        raise RuntimeError(msg)
    return found


def _queue_sync(pool: SyncPool, caller: Caller, ip: str | None,
                query: QueueQuery) -> Page[QueueItem]:  # fmt: skip
    after = None if query.cursor is None else decode_key(query.cursor)
    now = datetime.now(UTC)
    with pool.connection() as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        tenant_wide = _ranked(conn, caller, scoped=False)
        mine = tenant_wide
        if visible_params(caller)["scoped"]:
            mine = _ranked(conn, caller, scoped=True)
        numbered = list(enumerate(mine, start=1))
        if after is not None:
            numbered = [(n, r) for n, r in numbered if order_key(r) > after]
        page = numbered[: query.limit + 1]
        shown = page[: query.limit]
        ids = [r.candidate.vehicle_id for _, r in shown]
        entries = _entries(conn, caller, ids, [r.candidate.vehicle_id for r in tenant_wide], now)
        items = [queue_item(n, entries[r.candidate.vehicle_id]) for n, r in shown]
        if ids:  # one row for the whole page, in the transaction that read the positions
            entry = audit.Entry.by(caller, ip, "viewed_locations", "vehicle", None,
                                   vehicle_ids=ids, source="recovery_queue")  # fmt: skip
            audit.write_sync(conn, entry)
    next_cursor = encode_key(order_key(shown[-1][1])) if len(page) > query.limit else None
    return Page(items, next_cursor)


@routes(
    "GET", "/v1/recovery/queue", roles={"admin", "analyst", "recovery"},
    summary="The recovery queue: cars at risk by expected loss, with last position, likely "
            "places and live status (audited as one viewed_locations row)",
    query=QueueQuery, response=Page[QueueItem],
)  # fmt: skip
async def recovery_queue(request: web.Request) -> web.Response:
    query = query_params(request, QueueQuery)
    doc = await asyncio.to_thread(_queue_sync, request.app[SYNC_POOL], request[CALLER],
                                  request[CLIENT_IP], query)  # fmt: skip
    return json_response(doc)
