"""The ingest stages, in order: decode → authorize → dedupe → plausibility.

Each stage does one thing and names what it drops; every drop is counted in
``vgr_ingest_dropped_total{stage, reason}``. Records that are not stored as
positions (implausible, unknown or revoked terminal) go to the quarantine
table with their reason, and are acknowledged like the rest: they are safe in
the database, so the tracker may forget them. Only exact replays are dropped
outright, because an identical row is already stored.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol

from cloud.ingest.model import (
    Delivery,
    EventRow,
    FixRow,
    QuarantineRow,
    SignalRow,
    Terminal,
    Work,
)
from cloud.metrics import INGEST_DELIVERIES, INGEST_DROPPED, SIGNALS_RAISED
from protocols.errors import SchemaError
from protocols.messages import Event, EventBatch, Fix, FixBatch, Status, decode, encode
from protocols.plausibility import DEFAULT_LIMITS, Limits, Strength, assess
from protocols.topics import Channel, parse_topic

# Flag on records a device uploaded from its backlog (``FixBatch.backlog``): the risk
# engine tells a blind area from an outage by it.
LATE_FLAG = "late"
MAX_RAW_KEPT = 64 * 1024
UNAUTHORIZED_SIGNAL = "unauthorized_terminal"


class TerminalDirectory(Protocol):
    """Who the devices are: the registry as seen by ingest."""

    def lookup(self, device_ids: Iterable[str]) -> dict[str, Terminal]: ...


def _drop(stage: str, reason: str, n: int = 1) -> None:
    INGEST_DROPPED.labels(stage=stage, reason=reason).inc(n)


MessageKey = tuple[str, str, str, int, str, int, int]


def message_key(device_id: str, channel: str, records: list[Fix] | list[Event]) -> MessageKey:
    """Identity of one device message: its first and last record and how many it holds."""
    first, last = records[0], records[-1]
    return (device_id, channel, first.boot_id, first.seq, last.boot_id, last.seq, len(records))


class Deduper:
    """Remembers the messages this worker recently committed (bounded LRU).

    A tracker that did not get its CommitAck in time resends the same batch;
    recognising the whole message costs one lookup instead of one per record.
    Anything this misses (a partly overlapping batch, a replay that went to
    another worker) is caught by the database's unique key.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._seen: OrderedDict[MessageKey, None] = OrderedDict()
        self._capacity = capacity

    def seen(self, key: MessageKey) -> bool:
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        return False

    def remember(self, keys: Iterable[MessageKey]) -> None:
        for key in keys:
            self._seen[key] = None
            self._seen.move_to_end(key)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)


class Pipeline:
    """Turns a list of deliveries into one unit of work for the writer."""

    def __init__(
        self,
        directory: TerminalDirectory,
        *,
        deduper: Deduper | None = None,
        limits: Limits = DEFAULT_LIMITS,
        now: Callable[[], datetime],
    ) -> None:
        self._directory = directory
        self._deduper = deduper or Deduper()
        self._limits = limits
        self._now = now

    @property
    def deduper(self) -> Deduper:
        return self._deduper

    def run(self, deliveries: list[Delivery]) -> Work:
        work = Work()
        decoded: list[tuple[Delivery, str, list[Fix], list[Event], tuple[str, ...]]] = []
        for d in deliveries:
            got = self._decode(d, work)
            if got is not None:
                decoded.append((d, *got))
        terminals = self._directory.lookup({dev for _, dev, _, _, _ in decoded})
        now = self._now()
        for d, device_id, fixes, events, marks in decoded:
            terminal = self._authorize(d, device_id, terminals.get(device_id), fixes, events, work)
            keys = work.acks.setdefault(device_id, [])
            keys.extend((r.boot_id, r.seq) for r in fixes)
            keys.extend((r.boot_id, r.seq) for r in events)
            if terminal is None:
                continue
            records: list[Fix] | list[Event] = fixes or events
            if not records:
                continue
            mkey = message_key(device_id, "fix" if fixes else "event", records)
            if self._deduper.seen(mkey):
                _drop("dedupe", "duplicate", len(records))
                continue
            work.message_keys.append(mkey)
            for fix in fixes:
                self._fix(d, fix, terminal, now, work, marks)
            work.events.extend(
                EventRow(e, terminal.tenant_id, terminal.vehicle_id, marks) for e in events
            )
        return work

    # -- stage 1: decode -------------------------------------------------------------------
    def _decode(
        self, d: Delivery, work: Work
    ) -> tuple[str, list[Fix], list[Event], tuple[str, ...]] | None:
        parsed = parse_topic(d.topic)
        if parsed is None:
            INGEST_DELIVERIES.labels(channel="unknown").inc()
            self._reject_payload(d, None, "bad_topic", work)
            return None
        INGEST_DELIVERIES.labels(channel=parsed.channel.value).inc()
        fixes: list[Fix] = []
        events: list[Event] = []
        backlog = False
        try:
            if parsed.channel is Channel.FIX:
                fix_batch = decode(d.payload, FixBatch)
                fixes, backlog = list(fix_batch.fixes), fix_batch.backlog
            elif parsed.channel is Channel.EVENT:
                event_batch = decode(d.payload, EventBatch)
                events, backlog = list(event_batch.events), event_batch.backlog
            elif parsed.channel is Channel.STATUS:
                status = decode(d.payload, Status)
                if status.device_id != parsed.device_id:
                    self._reject_payload(d, parsed.device_id, "device_mismatch", work)
                else:
                    work.status.append((parsed.device_id, d.payload))
                return None
            else:
                self._reject_payload(d, parsed.device_id, "unexpected_channel", work)
                return None
        except SchemaError as exc:
            self._reject_payload(d, parsed.device_id, exc.reason, work)
            return None
        claimed = {f.device_id for f in fixes} | {e.device_id for e in events}
        if claimed - {parsed.device_id}:
            # A payload claiming another device's identity: keep it, store none of it.
            self._reject_payload(d, parsed.device_id, "device_mismatch", work)
            return None
        return parsed.device_id, fixes, events, (LATE_FLAG,) if backlog else ()

    def _reject_payload(self, d: Delivery, device_id: str | None, reason: str, work: Work) -> None:
        _drop("decode", reason)
        work.quarantine.append(
            QuarantineRow(reason, device_id, None, d.topic, None, d.payload[:MAX_RAW_KEPT])
        )

    # -- stage 2: authorize (before plausibility: an unknown device's data is quarantined whole)
    def _authorize(
        self,
        d: Delivery,
        device_id: str,
        terminal: Terminal | None,
        fixes: list[Fix],
        events: list[Event],
        work: Work,
    ) -> Terminal | None:
        if terminal is not None and not terminal.revoked:
            return terminal
        reason = "unknown_device" if terminal is None else "revoked_device"
        tenant = None if terminal is None else terminal.tenant_id
        records: list[Fix | Event] = [*fixes, *events]
        _drop("authorize", reason, len(records))
        for rec in records:
            work.quarantine.append(
                QuarantineRow(reason, device_id, tenant, d.topic, encode(rec), None)
            )
        SIGNALS_RAISED.labels(kind=UNAUTHORIZED_SIGNAL).inc()
        work.signals.append(
            SignalRow(
                time=d.received_at,
                kind=UNAUTHORIZED_SIGNAL,
                device_id=device_id,
                tenant_id=tenant,
                vehicle_id=None if terminal is None else terminal.vehicle_id,
                detail={"reason": reason, "records": str(len(records))},
            )
        )
        return None

    # -- stage 4: plausibility (dedupe, stage 3, is per message in run) -------------------------
    def _fix(
        self,
        d: Delivery,
        fix: Fix,
        terminal: Terminal,
        now: datetime,
        work: Work,
        marks: tuple[str, ...] = (),
    ) -> None:
        findings = assess(fix, now=now, limits=self._limits)
        rejecting = next((f for f in findings if f.strength is Strength.REJECT), None)
        if rejecting is not None:
            _drop("plausibility", rejecting.reason)
            work.quarantine.append(
                QuarantineRow(
                    rejecting.reason, fix.device_id, terminal.tenant_id, d.topic, encode(fix), None
                )
            )
            return
        flags = (*(f.reason for f in findings), *marks)
        work.fixes.append(FixRow(fix, terminal.tenant_id, terminal.vehicle_id, flags))
