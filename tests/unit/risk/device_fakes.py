"""Fakes and a timed-sequence builder for the device-rule tests.

``Timeline`` collects fixes, events and ticks at offsets from :data:`T0` and
returns them in the engine's order (GNSS time, events before fixes, then
ticks). ``drive`` steps one rule over them; ``assert_restart_safe`` checks
that a msgpack round trip of the state at every step, and a replay of the
tail from an earlier state, give exactly the signals of an uninterrupted run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from cloud.risk.model import (
    Action,
    Device,
    DeviceKind,
    EventIn,
    FixIn,
    NoRegion,
    Poi,
    RuleInput,
    Signal,
    Tick,
    VehicleContext,
)
from cloud.risk.rules.base import Rule

T0 = datetime(2025, 3, 4, 1, 30, tzinfo=UTC)  # 09:30 China time, a Tuesday
WIRED = "860000000000001"
WIRELESS = "860000000000002"
HOME = (30.2741, 120.1551)  # Hangzhou, Zhejiang (330000)
M_PER_DEG = 111_320.0

AnyRule = Rule[Any, Any]
# DOMAIN.md's tracker behaviour: moving, a fix every 10-30 s; parked, every 5-15 min
# plus a heartbeat every 1-3 min.
MOVING = timedelta(seconds=15)
PARKED = timedelta(minutes=10)
HEARTBEAT = timedelta(minutes=2)


def s(x: float) -> timedelta:
    return timedelta(seconds=x)


def m(x: float) -> timedelta:
    return timedelta(minutes=x)


def h(x: float) -> timedelta:
    return timedelta(hours=x)


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point ``north_m`` / ``east_m`` metres from ``(lat, lon)`` (flat-earth, fine < 100 km)."""
    return (
        lat + north_m / M_PER_DEG,
        lon + east_m / (M_PER_DEG * math.cos(math.radians(lat))),
    )


class FakePlaces:
    """Provinces by longitude band; IP provinces and hosting ranges from tables."""

    def __init__(
        self,
        bands: Sequence[tuple[float, float, str]] = (
            (119.0, 121.0, "330000"),  # "Zhejiang"
            (121.0, 122.5, "310000"),  # "Shanghai"
            (113.0, 116.0, "420000"),  # "Hubei"
        ),
        ips: Mapping[str, str | None] | None = None,
        hosting: Iterable[str] = (),
    ) -> None:
        self.bands = tuple(bands)
        self.ips = dict(ips or {})
        self.hosting = frozenset(hosting)
        self.calls = 0

    def province_of(self, lat: float, lon: float) -> str | None:
        self.calls += 1
        return next((code for lo, hi, code in self.bands if lo <= lon < hi), None)

    def city_of(self, lat: float, lon: float) -> str | None:
        return None

    def pois_near(self, lat: float, lon: float, radius_m: float) -> Sequence[Poi]:
        return ()

    def ip_province(self, ip: str) -> str | None:
        return self.ips.get(ip)

    def ip_is_foreign_or_hosting(self, ip: str) -> bool:
        return ip in self.hosting


def make_ctx(*devices: Device, places: FakePlaces | None = None) -> VehicleContext:
    devs = devices or (Device(WIRED, "wired"),)
    return VehicleContext(
        tenant_id="bank",
        vehicle_id=7,
        devices={d.id: d for d in devs},
        region=NoRegion(),
        places=places or FakePlaces(),
    )


BOTH = (Device(WIRED, "wired"), Device(WIRELESS, "wireless", wakes_per_day=4))


class Timeline:
    """A vehicle's inputs at offsets from ``start``; :meth:`inputs` sorts them like the engine."""

    def __init__(self, start: datetime = T0) -> None:
        self.start = start
        self._items: list[tuple[tuple[datetime, int, str, int], RuleInput]] = []
        self._seq = 0

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def fix(
        self,
        at: timedelta,
        *,
        device: str = WIRED,
        kind: DeviceKind = "wired",
        pos: tuple[float, float] = HOME,
        speed_kmh: float = 0.0,
        ignition: bool | None = None,
        ext_v: float | None = None,
        hdop: float | None = 1.0,
        sats: int | None = 12,
        alt_m: float | None = 20.0,
        batt_v: float | None = None,
        flags: tuple[str, ...] = (),
    ) -> Timeline:
        t = self.start + at
        n = self._next()
        fix = FixIn(
            t,
            device,
            kind,
            n,
            pos[0],
            pos[1],
            speed_kmh / 3.6,
            None,
            alt_m,
            "3d",
            hdop,
            sats,
            ignition,
            ext_v,
            batt_v,
            flags,
        )
        self._items.append(((t, 1, device, n), fix))
        return self

    def event(
        self,
        at: timedelta,
        kind: str,
        *,
        device: str = WIRED,
        dev_kind: DeviceKind = "wired",
        pos: tuple[float, float] | None = None,
        flags: tuple[str, ...] = (),
        **detail: str | int | float | bool | None,
    ) -> Timeline:
        t = self.start + at
        n = self._next()
        lat, lon = pos if pos is not None else (None, None)
        ev = EventIn(t, device, dev_kind, n, kind, lat, lon, detail, flags)
        self._items.append(((t, 0, device, n), ev))
        return self

    def tick(self, at: timedelta) -> Timeline:
        t = self.start + at
        self._items.append(((t, 2, "", self._next()), Tick(t)))
        return self

    def ticks(self, start: timedelta, end: timedelta, every: timedelta) -> Timeline:
        at = start
        while at <= end:
            self.tick(at)
            at += every
        return self

    def heartbeats(
        self, start: timedelta, end: timedelta, every: timedelta = HEARTBEAT, **kw: Any
    ) -> Timeline:
        at = start
        while at <= end:
            self.event(at, "heartbeat", **kw)
            at += every
        return self

    def park(
        self,
        start: timedelta,
        end: timedelta,
        every: timedelta = PARKED,
        *,
        pos: tuple[float, float] = HOME,
        **kw: Any,
    ) -> Timeline:
        """Parked fixes wandering a few metres around ``pos``."""
        at, i = start, 0
        kw.setdefault("ignition", False)
        while at <= end:
            wander = offset(pos[0], pos[1], 6.0 * math.sin(i), 6.0 * math.cos(i * 1.3))
            self.fix(at, pos=wander, speed_kmh=0.1, **kw)
            at, i = at + every, i + 1
        return self

    def drive(
        self,
        start: timedelta,
        end: timedelta,
        every: timedelta = MOVING,
        *,
        pos: tuple[float, float] = HOME,
        speed_kmh: float = 50.0,
        heading_deg: float = 90.0,
        **kw: Any,
    ) -> Timeline:
        """Fixes along a straight line from ``pos`` at ``speed_kmh``; returns the builder."""
        kw.setdefault("ignition", True)
        at = start
        while at <= end:
            dist = speed_kmh / 3.6 * (at - start).total_seconds()
            rad = math.radians(heading_deg)
            here = offset(pos[0], pos[1], dist * math.cos(rad), dist * math.sin(rad))
            self.fix(at, pos=here, speed_kmh=speed_kmh, **kw)
            at += every
        return self

    def inputs(self) -> list[RuleInput]:
        return [inp for _, inp in sorted(self._items, key=lambda p: p[0])]


def drive(
    rule: AnyRule,
    inputs: Iterable[RuleInput],
    ctx: VehicleContext | None = None,
    cfg: msgspec.Struct | None = None,
    state: msgspec.Struct | None = None,
) -> tuple[Any, list[Signal]]:
    """Step ``rule`` over ``inputs``; the final state and every signal, in order."""
    ctx = ctx or make_ctx()
    cfg = cfg if cfg is not None else rule.config_type()
    st = state if state is not None else rule.state_type()
    out: list[Signal] = []
    for inp in inputs:
        st, sigs = rule.step(st, inp, ctx, cfg)
        out.extend(sigs)
    return st, out


def roundtrip(rule: AnyRule, state: msgspec.Struct) -> Any:
    return msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=rule.state_type)


def assert_restart_safe(
    rule: AnyRule,
    inputs: Sequence[RuleInput],
    ctx: VehicleContext | None = None,
    cfg: msgspec.Struct | None = None,
    splits: int = 7,
) -> list[Signal]:
    """(4) a msgpack round trip of the state after every input changes nothing;
    (5) re-running the tail from an earlier (decoded) state gives the same signals
    with the same episode keys as the uninterrupted run. Returns those signals."""
    ctx = ctx or make_ctx()
    cfg = cfg if cfg is not None else rule.config_type()
    st: Any = rule.state_type()
    states: list[Any] = [st]
    per_step: list[list[Signal]] = []
    for inp in inputs:
        st, sigs = rule.step(st, inp, ctx, cfg)
        states.append(st)
        per_step.append(list(sigs))
    full = [sig for sigs in per_step for sig in sigs]

    rt: Any = roundtrip(rule, rule.state_type())
    rt_out: list[Signal] = []
    for inp in inputs:
        rt, sigs = rule.step(rt, inp, ctx, cfg)
        rt_out.extend(sigs)
        rt = roundtrip(rule, rt)
    assert rt_out == full, "msgpack round trip of the state changed the signals"
    assert roundtrip(rule, st) == st

    n = len(inputs)
    for k in sorted({0, n // 3, n // 2, (2 * n) // 3, n - 1, *range(0, n, max(1, n // splits))}):
        tail = [sig for sigs in per_step[k:] for sig in sigs]
        for _ in range(2):  # twice from the same snapshot: the same answer each time
            _, again = drive(rule, inputs[k:], ctx, cfg, roundtrip(rule, states[k]))
            assert again == tail, f"replay from input {k} differs"
    return full


def opens(signals: Iterable[Signal], rule: str | None = None) -> list[Signal]:
    return [x for x in signals if x.action is Action.OPEN and (rule is None or x.rule == rule)]


def resolves(signals: Iterable[Signal], rule: str | None = None) -> list[Signal]:
    return [x for x in signals if x.action is Action.RESOLVE and (rule is None or x.rule == rule)]


def keys(signals: Iterable[Signal]) -> set[str]:
    return {x.episode for x in signals}
