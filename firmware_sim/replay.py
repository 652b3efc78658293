"""Publish simulated worlds through a real broker, much faster than real time.

:func:`replay` turns worlds into their trackers' messages
(:func:`firmware_sim.reporter.report_worlds`), connects one MQTT client per
device (username = device id, password from ``ReplayPlan.passwords``) and
publishes the messages in ``publish_at`` order, paced at ``speed`` x real time
or as fast as commits allow. Like the edge agent, a device keeps each message
until a ``CommitAck`` covers its records and resends it after
``ack_timeout_s``; :func:`replay` returns once everything is committed (or
nothing moved for ``settle_timeout_s``), so the caller knows the data is stored.

Flow control: at most ``window`` messages per device and ``max_in_flight``
over all devices wait for their commit (Mosquitto drops QoS 1 messages
beyond ``max_queued_messages``, 1000 by default, queued for one subscriber).
A device's messages go out in order; across devices the order is
``publish_at`` order up to that in-flight window. ``window = 1`` is the
agent's own discipline (one batch in flight, so a device's batches are
committed in order even across ingest workers).

Worlds must lie in the past (GNSS time never ahead of the wall clock):
:func:`place_before` shifts a scenario by whole days (China time of day kept)
so that it ends before a given time. The cloud's plausibility stage accepts
GNSS times up to 400 days old (``protocols.plausibility.Limits.reject_older``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiomqtt

from firmware_sim.firmware import FirmwareRules, Outgoing
from firmware_sim.mqtt_device import AckBook, device_client, listen_acks
from firmware_sim.reporter import DeviceInfo, devices_of, labels_of, report_worlds
from firmware_sim.scenarios import Scenario, build, shifted
from firmware_sim.world import ResolvedLabel, World
from protocols.topics import Channel, device_topic

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    host: str = "127.0.0.1"
    port: int = 1883
    speed: float | None = None  # x real time between publish_at moments; None: as fast as allowed
    passwords: Mapping[str, str] = field(default_factory=dict)  # by device id
    window: int = 32  # messages of one device waiting for their CommitAck
    max_in_flight: int = 800  # messages of all devices waiting for their CommitAck
    ack_timeout_s: float = 10.0  # resend a message whose records are not committed by then
    settle_timeout_s: float = 120.0  # give up when no commit arrives for this long
    client_prefix: str = "replay"  # MQTT client id: <prefix>-<device id>
    boot_salt: str | None = None  # see firmware_sim.reporter.report
    rules: FirmwareRules | None = None


@dataclass(slots=True)
class ReplayStatus:
    """Progress, and at the end the summary."""

    total_messages: int = 0
    total_records: int = 0
    published: int = 0  # distinct messages published
    records: int = 0  # records in those
    acked: int = 0  # records covered by CommitAcks
    resends: int = 0
    reconnects: int = 0
    gave_up: int = 0  # devices that stopped waiting for acks
    sim_time: datetime | None = None  # publish_at of the latest message handed to a device
    elapsed_s: float = 0.0
    generate_s: float = 0.0


@dataclass(slots=True)
class ReplayResult:
    labels: list[ResolvedLabel]  # ground truth of every world
    devices: list[DeviceInfo]  # device id, kind, vehicle, scenario
    status: ReplayStatus
    start: datetime
    end: datetime

    @property
    def complete(self) -> bool:
        s = self.status
        return s.published == s.total_messages and s.acked == s.total_records


def place_before(s: Scenario, end_at: datetime) -> Scenario:
    """``s`` shifted by whole days so that it ends at or before ``end_at``."""
    days = math.floor((end_at - s.end) / timedelta(days=1))
    return shifted(s, days)


def build_worlds(scenarios: Iterable[Scenario], end_at: datetime) -> list[World]:
    """Worlds of ``scenarios``, each moved to end within the day before ``end_at``."""
    return [build(place_before(s, end_at)) for s in scenarios]


@dataclass(slots=True)
class _Sent:
    msg: Outgoing
    sent_at: float


class _Device:
    """One device's MQTT client: its queue, its messages awaiting commit, reconnects."""

    def __init__(self, device_id: str, plan: ReplayPlan, status: ReplayStatus,
                 slots: asyncio.Semaphore) -> None:  # fmt: skip
        self.device_id = device_id
        self.plan = plan
        self.status = status
        self.slots = slots
        self.queue: asyncio.Queue[Outgoing | None] = asyncio.Queue()
        self.window = asyncio.Semaphore(plan.window)
        self.book = AckBook()
        self.pending: list[_Sent] = []
        self.queue_done = False
        self.finished = False
        self.last_progress = time.monotonic()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not self.finished and not stop.is_set():
            try:
                async with device_client(
                    self.plan.host, self.plan.port,
                    identifier=f"{self.plan.client_prefix}-{self.device_id}",
                    username=self.device_id, password=self.plan.passwords.get(self.device_id),
                ) as client:  # fmt: skip
                    await client.subscribe(device_topic(self.device_id, Channel.ACK), qos=1)
                    backoff = 0.5
                    await self._session(client, stop)
            except aiomqtt.MqttError as exc:
                self.status.reconnects += 1
                log.warning("device %s: broker connection lost (%s)", self.device_id, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        for sent in self.pending:  # not committed before the connection was lost
            await self._publish(client, sent, resend=True)
        tasks = {
            asyncio.create_task(listen_acks(client, self.book), name=f"acks-{self.device_id}"),
            asyncio.create_task(self._send(client), name=f"send-{self.device_id}"),
        }
        settle = asyncio.create_task(self._settle(client, stop), name=f"settle-{self.device_id}")
        tasks.add(settle)
        try:
            while not settle.done():
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # re-raise a broker error
                tasks -= done
        finally:
            for task in tasks:
                task.cancel()

    async def _send(self, client: aiomqtt.Client) -> None:
        while not self.queue_done:
            msg = await self.queue.get()
            if msg is None:
                self.queue_done = True
                self.book.changed.set()  # let the settler see the end
                return
            if not msg.records:  # a Status: PUBACK is all it gets
                await client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
                self.status.published += 1
                continue
            await self.window.acquire()
            if not self.pending:  # the commit clock starts with the first message waiting
                self.last_progress = time.monotonic()
            sent = _Sent(msg, time.monotonic())
            self.pending.append(sent)
            self.status.published += 1
            self.status.records += msg.records
            await self._publish(client, sent, resend=False)

    async def _publish(self, client: aiomqtt.Client, sent: _Sent, *, resend: bool) -> None:
        if resend:
            self.status.resends += 1
        sent.sent_at = time.monotonic()
        msg = sent.msg
        await client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)

    async def _settle(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Retire committed messages, resend overdue ones; return when all are committed."""
        plan = self.plan
        while not stop.is_set():
            self.book.changed.clear()
            keep: list[_Sent] = []
            for sent in self.pending:
                if self.book.covers(sent.msg.keys):
                    self.status.acked += sent.msg.records
                    self.window.release()
                    self.slots.release()
                    self.last_progress = time.monotonic()
                else:
                    keep.append(sent)
            self.pending = keep
            if self.queue_done and not keep:
                self.finished = True
                return
            now = time.monotonic()
            if keep and now - self.last_progress > plan.settle_timeout_s:
                log.warning("device %s: no commit for %.0f s; giving up on %d messages",
                            self.device_id, plan.settle_timeout_s, len(keep))  # fmt: skip
                self.status.gave_up += 1
                for _ in keep:
                    self.window.release()
                    self.slots.release()
                self.pending = []
                if self.queue_done:
                    self.finished = True
                    return
                self.last_progress = now
            for sent in keep:
                if now - sent.sent_at > plan.ack_timeout_s:
                    await self._publish(client, sent, resend=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.book.changed.wait(), timeout=1.0)


async def _schedule(messages: Sequence[Outgoing], devices: Mapping[str, _Device],
                    plan: ReplayPlan, slots: asyncio.Semaphore, status: ReplayStatus,
                    stop: asyncio.Event) -> None:  # fmt: skip
    """Hand the messages to their devices in publish_at order, paced at ``plan.speed``."""
    began = time.monotonic()
    first = messages[0].publish_at if messages else None
    for msg in messages:
        if stop.is_set():
            break
        if plan.speed and first is not None:
            due = began + (msg.publish_at - first).total_seconds() / plan.speed
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        if msg.records:
            await slots.acquire()
        devices[msg.device_id].queue.put_nowait(msg)
        status.sim_time = msg.publish_at
    for dev in devices.values():
        dev.queue.put_nowait(None)


async def replay(
    worlds: Sequence[World],
    plan: ReplayPlan,
    *,
    progress: Callable[[ReplayStatus], None] | None = None,
    progress_every_s: float = 2.0,
    stop: asyncio.Event | None = None,
    now: datetime | None = None,
) -> ReplayResult:
    """Publish everything the worlds' trackers send; return the worlds' labels and devices.

    Raises ValueError when a world ends after ``now`` (default: the wall clock).
    A world's trackers are consumed (see :func:`firmware_sim.reporter.report`).
    """
    now = now or datetime.now(UTC)
    if not worlds:
        raise ValueError("no worlds to replay")
    late = [w.scenario.name for w in worlds if w.end > now]
    if late:
        raise ValueError(f"worlds end after {now.isoformat()} (GNSS time would be in the "
                         f"future): {', '.join(late)}; see place_before()")  # fmt: skip
    devices = devices_of(worlds)
    stop = stop or asyncio.Event()
    status = ReplayStatus()
    began = time.monotonic()

    def generate() -> list[Outgoing]:
        return list(report_worlds(worlds, boot_salt=plan.boot_salt, rules=plan.rules))

    messages = await asyncio.to_thread(generate)
    status.generate_s = time.monotonic() - began
    status.total_messages = len(messages)
    status.total_records = sum(m.records for m in messages)
    slots = asyncio.Semaphore(plan.max_in_flight)
    senders = {m.device_id for m in messages}
    devs = {d.device_id: _Device(d.device_id, plan, status, slots)
            for d in devices if d.device_id in senders}  # fmt: skip
    tasks = [asyncio.create_task(d.run(stop), name=f"dev-{d.device_id}") for d in devs.values()]
    tasks.append(asyncio.create_task(_schedule(messages, devs, plan, slots, status, stop),
                                     name="schedule"))  # fmt: skip
    try:
        while not all(t.done() for t in tasks):
            await asyncio.wait(tasks, timeout=progress_every_s)
            status.elapsed_s = time.monotonic() - began
            if progress is not None:
                progress(status)
            for t in tasks:
                if t.done():
                    t.result()  # a failed device or scheduler fails the replay
            if stop.is_set():
                break
    finally:
        for t in tasks:
            t.cancel()
    status.elapsed_s = time.monotonic() - began
    return ReplayResult(labels_of(worlds), devices, status,
                        min(w.start for w in worlds), max(w.end for w in worlds))  # fmt: skip
