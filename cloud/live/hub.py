"""One polling loop per API process feeding every connected live-map client.

The hub keeps, per tenant with at least one client, the newest position of
each vehicle (so a new client gets the whole fleet at once, and a fix older
than the one shown is never sent), and runs one round of queries
(:mod:`cloud.live.source`) every ``live_poll_s`` for all those tenants
together. Each event goes into the buffer of every client allowed to see it
(:mod:`cloud.live.scope`); a client's sender (``cloud.api.live``) drains its
buffer at the pace of its socket (:mod:`cloud.live.buffer`).

Every ``live_session_check_s`` the hub checks each client's session (one
query per client, not per round); a session that has ended (logout, timeout,
user disabled) disconnects its client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool

from cloud.api import sessions
from cloud.config import ApiSettings
from cloud.live import source
from cloud.live.buffer import LatestBuffer
from cloud.live.messages import ALERT, CASE, POSITION, SCOPE, Position, RiskChange, encoded
from cloud.live.scope import (
    Assignments,
    Audience,
    assignments,
    sees_alert,
    sees_case,
    sees_position,
    visible_vehicles,
)
from cloud.live.versions import Versions, Watermark

log = logging.getLogger(__name__)
Pool = AsyncConnectionPool[psycopg.AsyncConnection[Any]]


@dataclass(eq=False, slots=True)
class LiveClient:
    """One open WebSocket: who it is, what waits for it, and why it must close (if it must)."""

    who: Audience
    session_token: str
    buffer: LatestBuffer
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    visible: frozenset[int] | None = None
    closing: str | None = None  # "session_ended", "shutdown"

    def put(self, kind: str, object_id: Hashable, doc: object) -> None:
        self.buffer.put(kind, object_id, doc)
        self.wake.set()

    def close(self, reason: str) -> None:
        self.closing = reason
        self.wake.set()


@dataclass(slots=True)
class _Marks:
    fixes: Watermark
    alerts: Watermark
    cases: Watermark
    risk: Watermark
    alert_versions: Versions = field(default_factory=Versions)
    case_versions: Versions = field(default_factory=Versions)
    risk_versions: Versions = field(default_factory=Versions)

    def rewind(self, stamps: source.Stamps) -> None:
        """Read again from ``stamps`` (older states are dropped as already seen)."""
        for mark, stamp in ((self.fixes, stamps.fixes), (self.alerts, stamps.alerts),
                            (self.cases, stamps.cases), (self.risk, stamps.risk)):  # fmt: skip
            mark.seen = min(mark.seen, stamp)


class TooManyClientsError(Exception):
    """The process already serves ``live_max_clients`` clients."""


class Hub:
    def __init__(self, pool: Pool, settings: ApiSettings) -> None:
        self._pool = pool
        self._settings = settings
        self._overlap = timedelta(seconds=settings.live_overlap_s)
        self._clients: dict[str, set[LiveClient]] = {}
        self._positions: dict[str, dict[int, Position]] = {}  # tenant -> vehicle -> newest
        self._encoded: dict[str, dict[int, msgspec.Raw]] = {}  # the same, as sent (encoded once)
        self._assigned: Assignments = {}
        self._marks: _Marks | None = None
        self._lock = asyncio.Lock()
        self.rounds = 0  # completed polling rounds (for tests and /metrics)

    @property
    def clients(self) -> list[LiveClient]:
        return [c for group in self._clients.values() for c in group]

    async def subscribe(self, who: Audience, session_token: str) -> LiveClient:
        """Register a client and queue the current position of every vehicle it may see."""
        if len(self.clients) >= self._settings.live_max_clients:
            raise TooManyClientsError
        client = LiveClient(who, session_token, LatestBuffer(self._settings.live_client_buffer))
        tenant = who.tenant_id
        # The slow reads happen outside the lock, so the other tenants' rounds go on meanwhile;
        # the watermarks are read first, so nothing committed during the load is missed.
        async with self._pool.connection() as conn:
            fresh = tenant not in self._positions
            stamps = await source.current_stamps(conn) if fresh or self._marks is None else None
            loaded = await source.latest_positions(conn, tenant) if fresh else None
            worked = await source.worked_cases(conn, [tenant]) if who.scoped else []
        async with self._lock:
            if self._marks is None:
                if stamps is None:  # every client left during the load: read them again
                    async with self._pool.connection() as conn:
                        stamps = await source.current_stamps(conn)
                self._marks = self._start_marks(stamps)
            elif stamps is not None:  # a tenant joins: read again from before its load
                self._marks.rewind(stamps)
            if tenant not in self._positions:
                if loaded is None:  # the tenant's last client left during the load
                    async with self._pool.connection() as conn:
                        loaded = await source.latest_positions(conn, tenant)
                self._positions[tenant] = {p.vehicle_id: p for p in loaded}
                self._encoded[tenant] = {p.vehicle_id: encoded(p.doc()) for p in loaded}
            if who.scoped:
                self._assigned = {**self._assigned, **assignments(worked)}
            client.visible = visible_vehicles(who, self._assigned)
            self._clients.setdefault(who.tenant_id, set()).add(client)
            if client.visible is not None:
                client.put(SCOPE, 0, {"vehicle_ids": sorted(client.visible)})
            sent = self._encoded[who.tenant_id]
            for pos in self._positions[who.tenant_id].values():
                if sees_position(who, pos, client.visible):
                    client.put(POSITION, pos.vehicle_id, sent[pos.vehicle_id])
        return client

    def unsubscribe(self, client: LiveClient) -> None:
        group = self._clients.get(client.who.tenant_id)
        if group is None:
            return
        group.discard(client)
        if not group:  # nobody left in this tenant: forget its fleet until the next client
            del self._clients[client.who.tenant_id]
            self._positions.pop(client.who.tenant_id, None)
            self._encoded.pop(client.who.tenant_id, None)
        if not self._clients:
            self._marks = None

    def _start_marks(self, stamps: source.Stamps) -> _Marks:
        o = self._overlap
        return _Marks(Watermark(stamps.fixes, o), Watermark(stamps.alerts, o),
                      Watermark(stamps.cases, o), Watermark(stamps.risk, o))  # fmt: skip

    async def run(self) -> None:
        """Poll until cancelled; a failed round is logged and the next one tries again."""
        loop = asyncio.get_running_loop()
        next_check = loop.time() + self._settings.live_session_check_s
        while True:
            await asyncio.sleep(self._settings.live_poll_s)
            try:
                await self.tick()
                if loop.time() >= next_check:
                    next_check = loop.time() + self._settings.live_session_check_s
                    await self.check_sessions()
            except Exception:  # a bad round must not end the feed for every client
                log.exception("live feed round failed; retrying")

    async def tick(self) -> None:
        """One round: read what changed for every connected tenant, hand it to the clients."""
        async with self._lock:
            marks, tenants = self._marks, sorted(self._clients)
            if marks is None or not tenants:
                return
            async with self._pool.connection() as conn:
                positions, newest = await source.changed_positions(
                    conn, tenants, marks.fixes.read_from()
                )
                alerts = await source.changed_alerts(conn, tenants, marks.alerts.read_from())
                cases = await source.changed_cases(conn, tenants, marks.cases.read_from())
                risk = await source.changed_risk(conn, tenants, marks.risk.read_from())
                scoped = sorted({c.who.tenant_id for c in self.clients if c.who.scoped})
                if scoped:
                    self._assigned = assignments(await source.worked_cases(conn, scoped))
            marks.fixes.advance(newest)
            self._update_scopes()
            self._send_positions(positions)
            self._send_risk(marks, risk)
            for alert in alerts:
                marks.alerts.advance(alert.updated_at)
                if marks.alert_versions.is_new(alert.id, alert.updated_at):
                    doc = encoded(alert.doc())
                    for c in self._clients.get(alert.tenant_id, ()):
                        if sees_alert(c.who, alert, c.visible):
                            c.put(ALERT, alert.id, doc)
            for case in cases:
                marks.cases.advance(case.updated_at)
                if marks.case_versions.is_new(case.id, case.updated_at):
                    doc = encoded(case.doc())
                    for c in self._clients.get(case.tenant_id, ()):
                        if sees_case(c.who, case, c.visible):
                            c.put(CASE, case.id, doc)
            for mark, versions in ((marks.alerts, marks.alert_versions),
                                   (marks.cases, marks.case_versions),
                                   (marks.risk, marks.risk_versions)):  # fmt: skip
                versions.forget_before(mark.read_from())
            self.rounds += 1

    def _update_scopes(self) -> None:
        for c in self.clients:
            if not c.who.scoped:
                continue
            now = visible_vehicles(c.who, self._assigned)
            if now == c.visible:
                continue
            before = c.visible or frozenset()
            c.visible = now
            assert now is not None
            for gone in before - now:
                c.buffer.discard(POSITION, gone)
            c.put(SCOPE, 0, {"vehicle_ids": sorted(now)})
            cached = self._encoded.get(c.who.tenant_id, {})
            for vid in sorted(now - before):
                if vid in cached:
                    c.put(POSITION, vid, cached[vid])

    def _send_positions(self, positions: list[Position]) -> None:
        for pos in positions:
            cache = self._positions.get(pos.tenant_id)
            if cache is None:
                continue
            shown = cache.get(pos.vehicle_id)
            if shown is not None and pos.time <= shown.time:
                continue  # already sent (read again by the overlap) or older than shown
            cache[pos.vehicle_id] = pos
            self._fan_out(pos)

    def _send_risk(self, marks: _Marks, risk: list[RiskChange]) -> None:
        for change in risk:
            marks.risk.advance(change.updated_at)
            if not marks.risk_versions.is_new(change.vehicle_id, change.updated_at):
                continue
            cache = self._positions.get(change.tenant_id, {})
            shown = cache.get(change.vehicle_id)
            if shown is None:
                continue
            if (shown.risk_score, shown.risk_level) == (change.score, change.level):
                continue
            cache[change.vehicle_id] = pos = shown.with_risk(change.score, change.level)
            self._fan_out(pos)

    def _fan_out(self, pos: Position) -> None:
        doc = self._encoded[pos.tenant_id][pos.vehicle_id] = encoded(pos.doc())
        vid = pos.vehicle_id
        for c in self._clients.get(pos.tenant_id, ()):  # same tenant: only the scope to check
            if c.visible is None or vid in c.visible:
                c.put(POSITION, vid, doc)

    async def check_sessions(self) -> None:
        """Disconnect the clients whose session has ended (each check counts as activity)."""
        idle_s = self._settings.session_idle_s
        for c in self.clients:
            async with self._pool.connection() as conn:
                if await sessions.resume(conn, c.session_token, idle_s) is None:
                    c.close("session_ended")

    def close_all(self, reason: str) -> None:
        for c in self.clients:
            c.close(reason)
