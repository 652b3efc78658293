"""A simulated world turned into the MQTT messages its trackers would publish.

The second device model next to the fleet runner's (NMEA into real edge
agents): trackers that run their own firmware and speak the wire protocol
directly (:mod:`firmware_sim.firmware`). :func:`report` steps the world's
:class:`~firmware_sim.tracker.Tracker` models (vehicle, receiver, hardware I/O,
faults), reads each receiver epoch as a structured solution instead of
rendering NMEA, and yields :class:`Outgoing` messages in ``publish_at`` order:
the scenario-time moment each would be sent. Fast enough to turn multi-day
labelled scenarios into cloud input in seconds (``vgr sim replay`` publishes
them, :mod:`firmware_sim.replay`).

**Stepping.** The reference is one tick per second for every tracker. Where
nothing can change, the stepper jumps ahead instead: a wired unit parked on
vehicle power with a settled receiver (fixed, or without any sky) is only
woken for its own timers (next report, heartbeat, watchdog) and for the next
*edge* of its schedule (a fault starting or ending, a link drop, a trip, an
ignition change, a wake window); a sleeping wireless unit and a dead one
jump to the next edge; a removed unit is done. Around every edge the stepper
ticks each second (one before, two after), so changes land on exactly the
second a 1 Hz run sees them. The receiver advances its noise processes by the
seconds elapsed (see :mod:`firmware_sim.receiver`), so parked positions still
wander 3-15 m between reports. Records, their kinds and times are those of
the 1 Hz run; only noise draws after a jump differ (``coarse=False`` gives
the 1 Hz run, e.g. to compare).

A world's trackers are stateful: a world can be reported once (build it again
for another run).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from firmware_sim.faults import (
    BlindArea,
    CutAntenna,
    Jam,
    MoveToVehicle,
    Remove,
    Spoof,
    TamperWith,
)
from firmware_sim.firmware import Firmware, FirmwareRules, Outgoing, boot_id_for
from firmware_sim.receiver import Environment
from firmware_sim.tracker import ALARM_WINDOW, STATUS_EVERY, Tick, Tracker, TrackerKind
from firmware_sim.world import ResolvedLabel, World
from protocols import hwio

STEP = timedelta(seconds=1)
AFTER_EDGE = timedelta(seconds=2)  # tick each second this long after an edge
CHUNK = timedelta(hours=1)  # simulated time a tracker runs ahead before yielding
LOW_SOC = 0.2  # the tracker's battery is "low" below this charge

__all__ = [
    "DeviceInfo",
    "FirmwareRules",
    "Outgoing",
    "ReportStats",
    "boot_id_for",
    "devices_of",
    "labels_of",
    "report",
    "report_tracker",
    "report_worlds",
]


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A tracker of a world, as a registry needs it."""

    device_id: str
    kind: str  # wired | wireless
    vehicle_id: str
    scenario: str
    wakes_per_day: float | None = None  # wireless: scheduled reports a day (devices.wakes_per_day)


@dataclass(slots=True)
class ReportStats:
    """How much stepping a report took (for measurements)."""

    ticks: int = 0
    trackers: int = 0
    messages: int = 0
    records: int = 0
    by_tracker: dict[str, int] = field(default_factory=dict)  # ticks per device


def devices_of(worlds: Iterable[World]) -> list[DeviceInfo]:
    """Every tracker of ``worlds`` with its kind and vehicle; raises on a duplicate id."""
    out: list[DeviceInfo] = []
    seen: set[str] = set()
    for w in worlds:
        for tid, tracker in w.trackers.items():
            if tid in seen:
                raise ValueError(f"device {tid} appears in more than one world")
            seen.add(tid)
            spec = tracker.spec
            wakes = None
            if spec.kind is TrackerKind.WIRELESS:  # the tracker's own period
                wakes = 24.0 / (spec.every_hours or 24.0 / max(1, min(4, spec.wakes_per_day)))
            out.append(DeviceInfo(tid, spec.kind.value, w.vehicle_of[tid], w.scenario.name, wakes))
    return out


def labels_of(worlds: Iterable[World]) -> list[ResolvedLabel]:
    return [lab for w in worlds for lab in w.labels]


def report(
    world: World,
    *,
    boot_salt: str | None = None,
    rules: FirmwareRules | None = None,
    coarse: bool = True,
    stats: ReportStats | None = None,
) -> Iterator[Outgoing]:
    """The messages of every tracker of ``world``, in ``publish_at`` order.

    ``boot_salt`` names the run: boot ids are derived from it (default: the
    scenario's name and seed), so the same world and salt give the same
    records (a re-publish is an idempotent replay) and another salt new ones.
    """
    return report_worlds([world], boot_salt=boot_salt, rules=rules, coarse=coarse, stats=stats)


def report_worlds(
    worlds: Iterable[World],
    *,
    boot_salt: str | None = None,
    rules: FirmwareRules | None = None,
    coarse: bool = True,
    stats: ReportStats | None = None,
) -> Iterator[Outgoing]:
    """:func:`report` over several worlds, merged in ``publish_at`` order."""
    streams: list[Iterator[Outgoing]] = []
    worlds = list(worlds)
    devices_of(worlds)  # refuse duplicate device ids up front
    for w in worlds:
        salt = boot_salt if boot_salt is not None else f"{w.scenario.name}:{w.scenario.seed}"
        for tracker in w.trackers.values():
            if tracker.receiver.stats.epochs:
                raise ValueError(f"tracker {tracker.spec.device_id} was already stepped; "
                                 "build the world again")  # fmt: skip
            streams.append(
                report_tracker(tracker, w.start, w.end, boot_salt=salt,
                               rules=rules or FirmwareRules(), coarse=coarse, stats=stats)
            )  # fmt: skip
    return heapq.merge(*streams, key=lambda o: o.publish_at)


def report_tracker(
    tracker: Tracker,
    start: datetime,
    end: datetime,
    *,
    boot_salt: str,
    rules: FirmwareRules,
    coarse: bool = True,
    stats: ReportStats | None = None,
) -> Iterator[Outgoing]:
    """One tracker's messages between ``start`` and ``end`` (ticks on ``start`` + k seconds)."""
    rx = tracker.receiver
    rx.config = replace(rx.config, nmea=False)  # the firmware reads the solution itself
    fw = Firmware(tracker.spec.device_id, tracker.spec.kind, boot_salt=boot_salt, rules=rules)
    sched = _Schedule(tracker, start, end)
    ticks = 0
    t: datetime | None = start
    # Step an hour at a time before handing the messages over: trackers interleaved
    # second by second would keep evicting each other from Tracker's (class-wide)
    # session-address cache.
    buffer: list[Outgoing] = []
    hand_over = start + CHUNK
    while t is not None and t < end:
        epochs = rx.stats.epochs
        tick = tracker.tick(t)
        ticks += 1
        solution = rx.last_solution if rx.stats.epochs > epochs else None
        buffer += fw.step(tick, solution)
        t = sched.next_tick(tick, fw) if coarse else t + STEP
        if t is None or t >= hand_over:
            _count(stats, buffer)
            yield from buffer
            buffer.clear()
            hand_over = (t or end) + CHUNK
    _count(stats, buffer)
    yield from buffer
    if stats is not None:
        stats.trackers += 1
        stats.ticks += ticks
        stats.by_tracker[tracker.spec.device_id] = ticks


def _count(stats: ReportStats | None, msgs: list[Outgoing]) -> None:
    if stats is not None:
        stats.messages += len(msgs)
        stats.records += sum(m.records for m in msgs)


class _Schedule:
    """When a tracker's behaviour can change, from its faults, vehicles and timetables."""

    def __init__(self, tracker: Tracker, start: datetime, end: datetime) -> None:
        self.tracker = tracker
        self.start, self.end = start, end
        faults = tracker.faults
        edges: list[datetime] = [end]
        vehicles = [tracker.vehicle]
        for f in faults:
            edges.append(f.at)
            until = f.until if isinstance(f, Jam | Spoof | BlindArea | CutAntenna) else None
            if until is not None:
                edges.append(until)
            if isinstance(f, TamperWith):
                edges.append(f.at + ALARM_WINDOW)
            elif isinstance(f, MoveToVehicle):
                vehicles.append(f.vehicle)
                if f.powered_after is not None:
                    edges.append(f.at + f.powered_after)
        for v in vehicles:
            for stay in v.stays:
                edges += [stay.start, stay.end]
                edges += [x for x in (stay.ignition_until, stay.ignition_from) if x is not None]
            for trip in v.trips:  # tunnels: no sky and no link
                edges += [trip.depart + timedelta(seconds=s) for tunnel in trip.tunnels
                          for s in tunnel]  # fmt: skip
        # The tracker's short coverage losses (wired): a schedule drawn at construction.
        for a, b in tracker._drops:  # firmware_sim internals, read only
            edges += [a, b]
        if tracker.spec.kind is TrackerKind.WIRELESS:
            for a, b in tracker.wake_windows(start, end):
                edges += [a, b]
        self.edges = sorted(e for e in edges if start <= e <= end)
        self.removed_at = min((f.at for f in faults if isinstance(f, Remove)), default=None)
        self._no_sky = [f for f in faults if isinstance(f, Jam | BlindArea)]
        self._cuts = [f for f in faults if isinstance(f, CutAntenna)]
        self._battery_at: datetime | None = None  # the last battery signal

    def _grid_ceil(self, t: datetime) -> datetime:
        n = (t - self.start) // STEP
        at = self.start + n * STEP
        return at if at >= t else at + STEP

    def _before_edge(self, t: datetime) -> datetime:
        """The grid tick just before the first edge that ``t`` has not yet left behind."""
        i = bisect.bisect_right(self.edges, t - AFTER_EDGE)
        edge = self.edges[i] if i < len(self.edges) else self.end
        return self._grid_ceil(edge) - STEP

    def _sky(self, t: datetime, env: Environment) -> bool:
        if env is Environment.TUNNEL or any(f.at <= t < f.until for f in self._no_sky):
            return False
        return not any(c.at <= t and (c.until is None or t < c.until) for c in self._cuts)

    def next_tick(self, tick: Tick, fw: Firmware) -> datetime | None:
        """The next time to tick (None: this tracker will never send again)."""
        t = tick.time
        if any(isinstance(sig, hwio.Battery) for sig in tick.io):
            self._battery_at = t
        nxt = t + STEP
        if not tick.alive:
            if self.removed_at is not None and self.removed_at <= t:
                return None
            target = self._before_edge(t)
        elif not tick.awake:  # a sleeping wireless unit
            target = self._before_edge(t)
        elif self._quiet(tick, fw):
            target = min(self._before_edge(t), self._battery_edge(t, fw))
            due = fw.next_due(t)
            if due is not None:
                target = min(target, self._grid_ceil(due))
        else:
            return nxt
        return max(nxt, target)

    def _battery_edge(self, t: datetime, fw: Firmware) -> datetime:
        """A wired unit's battery: when ``low`` flips, it runs flat, or reports (on battery).

        Mirrors :class:`~firmware_sim.tracker.Tracker`'s battery: low below 20 %, a
        full charge in 2 h on vehicle power, ``full_hours`` of running on battery,
        a battery signal every ``STATUS_EVERY`` on battery. Predicted flips get a
        2 s margin and are then stepped each second.
        """
        b = self.tracker.battery
        if fw.ext_on:
            if not b.low:
                return self.end
            flip = t + timedelta(hours=2 * (LOW_SOC - b.soc))
            return self._grid_ceil(flip) - AFTER_EDGE
        drain = timedelta(hours=b.full_hours)  # per unit of charge
        edges = [t + drain * max(b.soc, 0.0)]  # flat
        if not b.low:
            edges.append(t + drain * (b.soc - LOW_SOC))
        margin = self._grid_ceil(min(edges)) - AFTER_EDGE
        status = self._battery_at + STATUS_EVERY if self._battery_at is not None else margin
        return min(margin, self._grid_ceil(status))

    def _quiet(self, tick: Tick, fw: Firmware) -> bool:
        """On vehicle power or battery, parked or driving with the ignition on (so "moving"
        cannot flip between edges), with a settled receiver: only timers and edges matter."""
        if self.tracker.spec.kind is not TrackerKind.WIRED or fw.ext_on is None:
            return False
        if tick.truth.moving and not (fw.ignition and tick.truth.ignition):
            return False
        if fw.last_verdict in ("accepted", "hdop_too_high"):
            return True
        # No fix: settled only when there is no sky to find one in.
        return fw.last_verdict == "no_fix" and not self._sky(tick.time, tick.truth.environment)
