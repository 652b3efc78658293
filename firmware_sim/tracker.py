"""A tracker model: a vehicle, a GNSS receiver and the hardware I/O an agent reads.

Step it once per simulated second with :meth:`Tracker.tick`; each
:class:`Tick` carries the NMEA lines the receiver wrote, the hardware signals
of :mod:`protocols.hwio` raised in that second, and what is powered. Reporting
(fix intervals, heartbeats, stored-and-forward uploads) is the edge agent's
job, not the model's.

- **wired**: on vehicle power with a backup battery. The receiver and modem
  run all the time. Signals: ignition edges with the car's trips, power
  lost/restored (with ``ext_v``), battery level every 5 minutes while on
  battery (and when ``low`` flips), antenna cut/ok, link up/down (tunnels,
  blind areas and a few short coverage drops a day). When the battery is empty
  the tracker falls silent.
- **wireless**: its own battery; wakes ``wakes_per_day`` times a day (or every
  ``every_hours``) for 3-7 minutes, when receiver and modem are powered
  (:meth:`Tracker.awake`, :meth:`Tracker.wake_windows`); a tamper (light
  sensor) wakes it for a 3-minute alarm window. No ignition line.

Faults are injected at times: :class:`CutPower`, :class:`RestorePower`,
:class:`Remove` (silence from then on), :class:`TamperWith`, :class:`Jam` (no
fix, link stays up), :class:`Spoof` (the NMEA positions teleport and follow
the car from there), :class:`BlindArea` (no fix and link down), and
:class:`MoveToVehicle` (positions follow another vehicle, e.g. an e-bike;
a wired unit loses vehicle power and the ignition line).

The public address a tracker's connection shows comes from its SIM's
province, not from where the car is (``sim_province``), one address per link
session: see :data:`PROVINCE_IP_BLOCKS` (SYNTHETIC documentation ranges).
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from firmware_sim.faults import (
    BlindArea,
    CutAntenna,
    CutPower,
    Fault,
    Jam,
    MoveToVehicle,
    Remove,
    RestorePower,
    Spoof,
    TamperWith,
)
from firmware_sim.receiver import (
    Environment,
    Receiver,
    ReceiverConfig,
    StartKind,
    Talker,
    TrueState,
)
from firmware_sim.vehicle import CHINA_TZ, Vehicle, VehicleState
from protocols.hwio import Antenna, Battery, HwSignal, Ignition, Link, Power, Tamper

# SYNTHETIC: one /28 of the documentation ranges (RFC 5737) per mainland province,
# for tests and demos only. Real deployments use a commercial IP geolocation table.
_PROVINCES = (
    *("110000", "120000", "130000", "140000", "150000", "210000", "220000", "230000"),
    *("310000", "320000", "330000", "340000", "350000", "360000", "370000", "410000"),
    *("420000", "430000", "440000", "450000", "460000", "500000", "510000", "520000"),
    *("530000", "540000", "610000", "620000", "630000", "640000", "650000"),
)
PROVINCE_IP_BLOCKS: dict[str, ipaddress.IPv4Network] = {
    prov: ipaddress.IPv4Network(f"{'198.51.100' if i < 16 else '203.0.113'}.{(i % 16) * 16}/28")
    for i, prov in enumerate(_PROVINCES)
}
HOSTING_BLOCK = ipaddress.IPv4Network("192.0.2.0/24")  # SYNTHETIC "data centre / abroad"

STATUS_EVERY = timedelta(minutes=5)
ALARM_WINDOW = timedelta(minutes=3)
REGISTER_DELAY = timedelta(seconds=5)


def province_of_ip(ip: str) -> str | None:
    addr = ipaddress.IPv4Address(ip)
    return next((p for p, net in PROVINCE_IP_BLOCKS.items() if addr in net), None)


class TrackerKind(StrEnum):
    WIRED = "wired"
    WIRELESS = "wireless"


@dataclass(frozen=True, slots=True)
class TrackerSpec:
    device_id: str
    kind: TrackerKind = TrackerKind.WIRED
    talker: Talker = "GN"
    sim_province: str = "310000"
    wakes_per_day: int = 2  # wireless, 1-4
    every_hours: float | None = None  # wireless, instead of wakes_per_day (e.g. 72)
    corrupt_rate: float = 0.0
    link_drops_per_day: float = 4.0  # wired: short coverage losses (10-120 s)


@dataclass(frozen=True, slots=True)
class Tick:
    time: datetime
    nmea: tuple[bytes, ...]
    io: tuple[HwSignal, ...]
    alive: bool  # has power (vehicle or battery) and was not removed
    awake: bool  # receiver and modem powered
    link_up: bool
    ip: str | None  # public address of the current link session
    truth: VehicleState  # where the device really is


@dataclass(slots=True)
class _Battery:
    soc: float
    full_hours: float  # running time on a full charge while awake

    @property
    def volts(self) -> float:
        return round(3.3 + 0.9 * float(max(self.soc, 0.0) ** 0.8), 3)

    @property
    def low(self) -> bool:
        return self.soc < 0.2


@dataclass(slots=True)
class _State:
    first: bool = True
    removed: bool = False
    power_cut: bool = False
    moved: MoveToVehicle | None = None
    alive: bool = True
    awake: bool = False
    ext: bool = False
    ignition: bool = False
    antenna_ok: bool = True
    link_up: bool = False
    sessions: int = 0
    last: datetime | None = None
    status_due: datetime | None = None
    batt_low: bool = False
    woke_at: datetime | None = None
    alarms: list[datetime] = field(default_factory=list)
    applied: int = 0


class Tracker:
    """One tracker on one vehicle between ``start`` and ``end``; call :meth:`tick` each second."""

    def __init__(
        self,
        spec: TrackerSpec,
        vehicle: Vehicle,
        *,
        seed: int | str,
        start: datetime,
        end: datetime,
        faults: Sequence[Fault] = (),
    ) -> None:
        self.spec = spec
        self.vehicle = vehicle
        self.seed = seed
        self.start, self.end = start, end
        self.faults = sorted(faults, key=lambda f: f.at)
        rng = random.Random(f"{seed}:{spec.device_id}")
        self._rng = rng
        self.receiver = Receiver(
            random.Random(f"{seed}:{spec.device_id}:gnss"),
            ReceiverConfig(talker=spec.talker, corrupt_rate=spec.corrupt_rate),
        )
        wired = spec.kind is TrackerKind.WIRED
        self.battery = (
            _Battery(rng.uniform(0.9, 1.0), rng.uniform(6.0, 12.0))
            if wired
            else _Battery(rng.uniform(0.5, 1.0), rng.uniform(120.0, 200.0))
        )
        period_h = spec.every_hours or 24.0 / max(1, min(4, spec.wakes_per_day))
        self._period = timedelta(hours=period_h)
        self._phase = timedelta(hours=rng.uniform(0.0, period_h))
        self._drops = self._link_drops(rng) if wired else []
        self._drop_starts = [a for a, _ in self._drops]
        self._jams = [f for f in self.faults if isinstance(f, Jam)]
        self._spoofs = [f for f in self.faults if isinstance(f, Spoof)]
        self._blinds = [f for f in self.faults if isinstance(f, BlindArea)]
        self._cuts = [f for f in self.faults if isinstance(f, CutAntenna)]
        self._s = _State()

    # ------------------------------------------------------------ schedules

    def _link_drops(self, rng: random.Random) -> list[tuple[datetime, datetime]]:
        drops: list[tuple[datetime, datetime]] = []
        rate = self.spec.link_drops_per_day / 86_400.0
        t = self.start
        while rate > 0.0:
            t += timedelta(seconds=rng.expovariate(rate))
            if t >= self.end:
                break
            drops.append((t, t + timedelta(seconds=rng.uniform(10.0, 120.0))))
        return drops

    def wake_windows(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Scheduled wake windows of a wireless unit overlapping ``[start, end)``."""
        if self.spec.kind is TrackerKind.WIRED:
            return [(start, end)]
        anchor = datetime.combine(self.start.astimezone(CHINA_TZ).date(), datetime.min.time(),
                                  CHINA_TZ) + self._phase  # fmt: skip
        k = max(0, int((start - anchor) / self._period) - 1)
        out: list[tuple[datetime, datetime]] = []
        while (begin := anchor + k * self._period) < end:
            length = random.Random(f"{self.seed}:{self.spec.device_id}:wake:{k}").uniform(3, 7)
            stop = begin + timedelta(minutes=length)
            if stop > start:
                out.append((begin, stop))
            k += 1
        return out

    def awake(self, t: datetime) -> bool:
        """Receiver and modem powered at ``t`` (alarm windows count once raised)."""
        if self.spec.kind is TrackerKind.WIRED:
            return True
        if any(a <= t < a + ALARM_WINDOW for a in self._s.alarms):
            return True
        return bool(self.wake_windows(t, t + timedelta(seconds=1)))

    @functools.lru_cache(maxsize=4)  # noqa: B019 - a handful of entries per tracker
    def ip_for_session(self, n: int) -> str:
        """The public address of link session ``n`` (from the SIM's province block)."""
        net = PROVINCE_IP_BLOCKS.get(self.spec.sim_province, HOSTING_BLOCK)
        rnd = random.Random(f"{self.seed}:{self.spec.device_id}:ip:{n}")
        return str(net.network_address + rnd.randint(1, net.num_addresses - 2))

    # ------------------------------------------------------------ stepping

    def _active(self, windows: Sequence[Jam | Spoof | BlindArea], t: datetime) -> bool:
        return any(w.at <= t < w.until for w in windows)

    def _antenna_ok(self, t: datetime) -> bool:
        return not any(c.at <= t and (c.until is None or t < c.until) for c in self._cuts)

    def _ext_power(self, t: datetime) -> bool:
        s = self._s
        if self.spec.kind is TrackerKind.WIRELESS or s.power_cut:
            return False
        if s.moved is not None:
            after = s.moved.powered_after
            return after is not None and t >= s.moved.at + after
        return True

    def tick(self, t: datetime) -> Tick:
        """Advance to ``t`` (strictly after the previous tick, normally one second)."""
        s = self._s
        io: list[HwSignal] = []
        while s.applied < len(self.faults) and self.faults[s.applied].at <= t:
            self._apply(self.faults[s.applied], io)
            s.applied += 1
        source = s.moved.vehicle if s.moved is not None else self.vehicle
        state = source.state_at(t)
        ext = self._ext_power(t)
        dt = 0.0 if s.last is None else max(0.0, (t - s.last).total_seconds())
        s.last = t
        self._drain(dt, ext, s.awake)
        alive = not s.removed and (ext or self.battery.soc > 0.0)
        if not alive:  # removed or flat: silence
            if s.alive:
                self.receiver.power_off()
            s.alive = s.awake = s.link_up = False
            return Tick(t, (), (), False, False, False, None, state)
        if not s.alive:  # power came back to a flat unit: it boots and reports afresh
            s.alive, s.first = True, True
        awake = self.awake(t)
        if awake and not s.awake:
            self._wake(t)
        elif s.awake and not awake:
            self.receiver.power_off()
            s.link_up = False
        s.awake = awake
        if not awake:
            return Tick(t, (), tuple(io), True, False, False, None, state)
        if self.spec.kind is TrackerKind.WIRED:
            self._wired_signals(t, state, ext, io)
        self._battery_signals(t, ext, io)
        antenna_ok = self._antenna_ok(t)
        if antenna_ok != s.antenna_ok or s.first:
            io.append(Antenna(state="ok" if antenna_ok else "cut"))
            s.antenna_ok = antenna_ok
        blind = self._active(self._blinds, t)
        link = self._link(t, state, blind)
        if link != s.link_up or (s.first and self.spec.kind is TrackerKind.WIRED):
            s.sessions += int(link)
            io.append(Link(up=link, ip=self.ip_for_session(s.sessions) if link else None))
            s.link_up = link
        s.first = False
        nmea = tuple(self.receiver.epoch(self._true_state(t, state, blind, antenna_ok)))
        ip = self.ip_for_session(s.sessions) if link else None
        return Tick(t, nmea, tuple(io), True, True, link, ip, state)

    def _link(self, t: datetime, state: VehicleState, blind: bool) -> bool:
        if blind or state.environment is Environment.TUNNEL:
            return False
        if self.spec.kind is TrackerKind.WIRELESS:  # the modem registers a few seconds after waking
            return self._s.woke_at is not None and t >= self._s.woke_at + REGISTER_DELAY
        i = bisect.bisect_right(self._drop_starts, t) - 1
        return i < 0 or t >= self._drops[i][1]

    def _wake(self, t: datetime) -> None:
        s = self._s
        s.woke_at = t
        start: StartKind | None = None
        if self.receiver.stats.epochs == 0:  # installed and running before the simulation
            start = StartKind.HOT if self.spec.kind is TrackerKind.WIRED else StartKind.WARM
        self.receiver.power_on(t, start)
        if self.spec.kind is TrackerKind.WIRELESS:
            s.first = True  # each wake reports its state afresh

    def _apply(self, fault: Fault, io: list[HwSignal]) -> None:
        s = self._s
        if isinstance(fault, CutPower):
            s.power_cut = True
        elif isinstance(fault, RestorePower):
            s.power_cut = False
        elif isinstance(fault, Remove):
            s.removed = True
        elif isinstance(fault, TamperWith):
            s.alarms.append(fault.at)
            if s.alive:
                io.append(Tamper(source=fault.source))
        elif isinstance(fault, MoveToVehicle):
            s.moved = fault

    def _wired_signals(
        self, t: datetime, state: VehicleState, ext: bool, io: list[HwSignal]
    ) -> None:
        s = self._s
        ignition = ext and state.ignition
        if ext != s.ext or s.first:
            if ext or not s.first:
                volts = self._ext_volts(ignition) if ext else 0.0
                io.append(Power(state="restored" if ext else "lost", ext_v=volts))
            s.ext = ext
            s.status_due = t  # report the battery now that the supply changed
        if ignition != s.ignition or s.first:
            io.append(Ignition(on=ignition))
            s.ignition = ignition

    def _ext_volts(self, ignition: bool) -> float:
        return round(
            self._rng.uniform(13.8, 14.4) if ignition else self._rng.uniform(12.3, 12.8), 2
        )

    def _battery_signals(self, t: datetime, ext: bool, io: list[HwSignal]) -> None:
        """At start, when ``low`` flips, when the supply changes, every 5 min on battery."""
        s = self._s
        low = self.battery.low
        due = s.status_due is not None and t >= s.status_due
        if s.first or low != s.batt_low or due:
            io.append(Battery(batt_v=self.battery.volts, low=low))
            s.batt_low = low
            on_battery = self.spec.kind is TrackerKind.WIRELESS or not ext
            s.status_due = t + STATUS_EVERY if on_battery else None

    def _drain(self, dt: float, ext: bool, awake: bool) -> None:
        b = self.battery
        if ext:
            b.soc = min(1.0, b.soc + dt / (2 * 3600.0))
        elif awake or self.spec.kind is TrackerKind.WIRED:
            b.soc -= dt / (b.full_hours * 3600.0)
        else:
            b.soc -= dt / (3 * 365 * 86_400.0)  # asleep: years

    def _true_state(
        self, t: datetime, state: VehicleState, blind: bool, antenna_ok: bool
    ) -> TrueState:
        lon, lat = state.lon, state.lat
        for spoof in self._spoofs:
            if spoof.at <= t < spoof.until:
                origin = self._spoof_origin(spoof)
                lon, lat = spoof.lon + lon - origin[0], spoof.lat + lat - origin[1]
        return TrueState(
            time=t,
            lon=lon,
            lat=lat,
            alt_m=state.alt_m,
            speed_mps=state.speed_mps,
            course_deg=state.course_deg,
            environment=Environment.TUNNEL if blind else state.environment,
            jammed=self._active(self._jams, t),
            antenna_ok=antenna_ok,
        )

    def _spoof_origin(self, spoof: Spoof) -> tuple[float, float]:
        source = self._s.moved.vehicle if self._s.moved is not None else self.vehicle
        at = source.state_at(spoof.at)
        return at.lon, at.lat
