"""A load generator that speaks the ``protocols`` contract like a fleet of trackers.

Each simulated device has a boot id and a sequence counter, produces fixes
along a random walk near a Chinese city, publishes them in ``FixBatch`` es
(QoS 1) and keeps each batch until a ``CommitAck`` covers it, resending after
a timeout, exactly as the edge agent's outbox does. One batch per device is in
flight at a time, which keeps a device's batches in order across ingest
workers. Survives broker restarts (reconnects and resends).

This is not the tracker simulator (that drives real edge agents); it is the
lightweight generator for ingest tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiomqtt

from firmware_sim.mqtt_device import AckBook, device_client, listen_acks
from protocols.messages import SCHEMA_VERSION, Fix, FixBatch, encode
from protocols.topics import Channel, device_topic

log = logging.getLogger(__name__)

# A few real city centres (lon, lat) to scatter devices around.
CITIES = (
    (121.4737, 31.2304),  # Shanghai
    (116.3975, 39.9087),  # Beijing
    (113.2644, 23.1291),  # Guangzhou
    (114.0579, 22.5431),  # Shenzhen
    (104.0665, 30.5723),  # Chengdu
    (118.7969, 32.0603),  # Nanjing
    (120.1551, 30.2741),  # Hangzhou
    (114.3054, 30.5931),  # Wuhan
)


@dataclass(frozen=True, slots=True)
class LoadPlan:
    host: str
    port: int
    device_ids: tuple[str, ...]
    fixes_per_device: int
    batch_size: int = 50
    fix_interval: timedelta = timedelta(seconds=1)
    ack_timeout_s: float = 5.0
    rate_per_device: float | None = None  # fixes/s; None = as fast as acks allow
    seed: int = 1
    username_is_device: bool = False
    passwords: dict[str, str] = field(default_factory=dict)
    start: datetime | None = None  # GNSS time of the first fix; default: now - duration


@dataclass(slots=True)
class DeviceReport:
    device_id: str
    boot_id: str
    sent: int = 0  # distinct fixes produced and published
    acked: int = 0  # distinct fixes covered by CommitAcks
    resends: int = 0
    reconnects: int = 0
    latencies_s: list[float] = field(default_factory=list)  # publish -> CommitAck, first tries


@dataclass(slots=True)
class LoadReport:
    devices: list[DeviceReport]
    elapsed_s: float

    @property
    def sent(self) -> int:
        return sum(d.sent for d in self.devices)

    @property
    def acked(self) -> int:
        return sum(d.acked for d in self.devices)

    def latency_percentile(self, q: float) -> float:
        lat = sorted(x for d in self.devices for x in d.latencies_s)
        if not lat:
            return math.nan
        return lat[min(len(lat) - 1, int(q * len(lat)))]


class _Walker:
    def __init__(self, rng: random.Random) -> None:
        lon, lat = rng.choice(CITIES)
        self.lon = lon + rng.uniform(-0.2, 0.2)
        self.lat = lat + rng.uniform(-0.2, 0.2)
        self.course = rng.uniform(0, 360)
        self.rng = rng

    def step(self, dt_s: float) -> tuple[float, float, float, float]:
        # Uniform noise (cheaper than gauss: the generator must not steal the CPU it measures).
        rnd = self.rng.random
        speed = 6.0 + 12.0 * rnd()
        self.course = (self.course + 20.0 * rnd() - 10.0) % 360
        dist = speed * dt_s
        rad = math.radians(self.course)
        self.lat += dist * math.cos(rad) / 111_320.0
        self.lon += dist * math.sin(rad) / (111_320.0 * math.cos(math.radians(self.lat)))
        return self.lon, self.lat, speed, self.course


class _SimDevice:
    """One simulated tracker: its outbox of one pending batch and its ack bookkeeping."""

    def __init__(self, plan: LoadPlan, index: int, report: DeviceReport, start: datetime) -> None:
        self.plan = plan
        self.report = report
        self.start = start
        self.rng = random.Random(plan.seed * 100_003 + index)
        self.walker = _Walker(self.rng)
        self.acks = AckBook()
        self.acked_seqs = self.acks.seqs(report.boot_id)
        self.seq = 0
        self.pending: list[Fix] = []
        self.pace = 1.0 / plan.rate_per_device if plan.rate_per_device else 0.0
        self.next_due = time.monotonic()

    @property
    def unfinished(self) -> bool:
        return self.seq < self.plan.fixes_per_device or bool(self.pending)

    async def fill(self) -> None:
        n = min(self.plan.batch_size, self.plan.fixes_per_device - self.seq)
        if self.pace:
            self.next_due += n * self.pace
            await asyncio.sleep(max(0.0, self.next_due - time.monotonic()))
        step = self.plan.fix_interval
        dt_s = step.total_seconds()
        dev, boot, rng = self.report.device_id, self.report.boot_id, self.rng
        # Sky quality changes slowly: one draw per batch.
        hdop, sats = round(rng.uniform(0.7, 1.6), 1), rng.randint(8, 18)
        t = self.start + step * self.seq
        for _ in range(n):
            lon, lat, speed, course = self.walker.step(dt_s)
            self.pending.append(
                Fix(
                    device_id=dev,
                    boot_id=boot,
                    seq=self.seq,
                    time=t,
                    lat=lat,
                    lon=lon,
                    speed_mps=speed,
                    course_deg=course,
                    alt_m=20.0,
                    hdop=hdop,
                    sats=sats,
                )
            )
            self.seq += 1
            t += step
        self.report.sent += n

    async def wait_acked(
        self, want: set[int], deadline: float, listener: asyncio.Task[None]
    ) -> bool:
        while not want <= self.acked_seqs:
            left = deadline - time.monotonic()
            if left <= 0 or listener.done():
                break
            try:
                await asyncio.wait_for(self.acks.changed.wait(), timeout=left)
            except TimeoutError:
                break
            self.acks.changed.clear()
        if listener.done():
            listener.result()  # re-raise the broker error
        return want <= self.acked_seqs

    async def session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        dev = self.report.device_id
        await client.subscribe(device_topic(dev, Channel.ACK), qos=1)
        fix_topic = device_topic(dev, Channel.FIX)
        listener = asyncio.create_task(listen_acks(client, self.acks), name=f"acks-{dev}")
        try:
            while not stop.is_set() and self.unfinished:
                first_try = not self.pending
                if first_try:
                    await self.fill()
                else:
                    self.report.resends += 1
                self.acks.changed.clear()
                sent_at = time.monotonic()
                payload = encode(FixBatch(v=SCHEMA_VERSION, fixes=self.pending))
                await client.publish(fix_topic, payload, qos=1)
                want = {f.seq for f in self.pending}
                if await self.wait_acked(want, sent_at + self.plan.ack_timeout_s, listener):
                    if first_try:
                        self.report.latencies_s.append(time.monotonic() - sent_at)
                    self.report.acked += len(want)
                    self.pending = []
        finally:
            listener.cancel()

    async def run(self, stop: asyncio.Event) -> None:
        dev, plan = self.report.device_id, self.plan
        backoff = 0.5
        while not stop.is_set() and self.unfinished:
            try:
                async with device_client(
                    plan.host,
                    plan.port,
                    identifier=f"load-{dev}",
                    username=dev if plan.username_is_device else None,
                    password=plan.passwords.get(dev),
                ) as client:
                    backoff = 0.5
                    await self.session(client, stop)
            except aiomqtt.MqttError as exc:
                self.report.reconnects += 1
                log.debug("device %s: broker connection lost (%s)", dev, exc)
                if stop.is_set():
                    break
                await asyncio.sleep(backoff * self.rng.uniform(0.5, 1.5))
                backoff = min(backoff * 2, 5.0)


async def run_load(
    plan: LoadPlan,
    *,
    stop: asyncio.Event | None = None,
    progress: Callable[[LoadReport], None] | None = None,
    progress_every_s: float = 1.0,
) -> LoadReport:
    """Run every device until all its fixes are acknowledged (or ``stop`` is set)."""
    stop = stop or asyncio.Event()
    total = plan.fix_interval * plan.fixes_per_device
    start = plan.start or (datetime.now(UTC) - total).replace(microsecond=0)
    reports = [DeviceReport(d, uuid.uuid4().hex[:12]) for d in plan.device_ids]
    began = time.monotonic()
    report = LoadReport(reports, 0.0)
    tasks = [
        asyncio.create_task(_SimDevice(plan, i, r, start).run(stop), name=f"dev-{r.device_id}")
        for i, r in enumerate(reports)
    ]
    try:
        while not all(t.done() for t in tasks):
            await asyncio.wait(tasks, timeout=progress_every_s)
            report.elapsed_s = time.monotonic() - began
            if progress is not None:
                progress(report)
        for t in tasks:
            t.result()
    finally:
        for t in tasks:
            t.cancel()
    report.elapsed_s = time.monotonic() - began
    return report
