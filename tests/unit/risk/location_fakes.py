"""Fakes and builders for the location-rule tests: regions, places, timed fix sequences.

Coordinates are real (WGS-84): People's Square in Shanghai, West Lake in
Hangzhou. Report intervals follow DOMAIN.md: a wired unit reports every
10-30 s while moving and every 5-15 min parked; parked positions wander
3-15 m; urban canyons give occasional 50-300 m jumps.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec

from cloud.risk.geo import distance_m
from cloud.risk.model import (
    Action,
    Device,
    DeviceKind,
    EventIn,
    FixIn,
    JsonValue,
    Poi,
    RuleInput,
    Signal,
    Tick,
    VehicleContext,
)

SHANGHAI = (31.2304, 121.4737)  # People's Square
HANGZHOU = (30.2741, 120.1551)  # West Lake
# 2025-03-03 08:00 China time (Monday morning)
T0 = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)

S = TypeVar("S", bound=msgspec.Struct)
C = TypeVar("C", bound=msgspec.Struct)
Step = Callable[[S, RuleInput, VehicleContext, C], tuple[S, Sequence[Signal]]]


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point ``north_m`` / ``east_m`` metres from (lat, lon) (flat-earth, fine < 100 km)."""
    dlat = north_m / 111_194.9
    dlon = east_m / (111_194.9 * math.cos(math.radians(lat)))
    return lat + dlat, lon + dlon


class FakeRegion:
    """Allowed areas and forbidden zones as circles (lat, lon, radius_m)."""

    def __init__(
        self,
        allowed: Sequence[tuple[float, float, float]] = (),
        forbidden: Mapping[str, tuple[float, float, float]] | None = None,
    ) -> None:
        self.allowed = list(allowed)
        self.forbidden = dict(forbidden or {})

    def metres_outside_allowed(self, lat: float, lon: float) -> float:
        if not self.allowed:
            return 0.0
        return max(0.0, min(distance_m(lat, lon, a, b) - r for a, b, r in self.allowed))

    def forbidden_zone_at(self, lat: float, lon: float) -> str | None:
        for name in sorted(self.forbidden):
            a, b, r = self.forbidden[name]
            if distance_m(lat, lon, a, b) <= r:
                return name
        return None


class FakePlaces:
    """Risk POIs and cities (circles), with a count of POI look-ups."""

    def __init__(
        self,
        pois: Sequence[Poi] = (),
        cities: Mapping[str, tuple[float, float, float]] | None = None,
    ) -> None:
        self.pois = list(pois)
        self.cities = dict(cities or {})
        self.poi_lookups = 0

    def province_of(self, lat: float, lon: float) -> str | None:
        return None

    def city_of(self, lat: float, lon: float) -> str | None:
        for code in sorted(self.cities):
            a, b, r = self.cities[code]
            if distance_m(lat, lon, a, b) <= r:
                return code
        return None

    def pois_near(self, lat: float, lon: float, radius_m: float) -> Sequence[Poi]:
        self.poi_lookups += 1
        return [p for p in self.pois if distance_m(lat, lon, p.lat, p.lon) <= p.radius_m + radius_m]

    def ip_province(self, ip: str) -> str | None:
        return None

    def ip_is_foreign_or_hosting(self, ip: str) -> bool:
        return False


CITIES = {
    "310100": (*SHANGHAI, 60_000.0),  # Shanghai
    "330100": (*HANGZHOU, 50_000.0),  # Hangzhou
}


def context(
    region: FakeRegion | None = None,
    places: FakePlaces | None = None,
    declared: tuple[float, float] | None = None,
) -> VehicleContext:
    devices = {
        "wired-1": Device("wired-1", "wired"),
        "wireless-1": Device("wireless-1", "wireless"),
    }
    return VehicleContext(
        tenant_id="t1",
        vehicle_id=7,
        devices=devices,
        region=region or FakeRegion(),
        places=places or FakePlaces(cities=CITIES),
        declared_lat=None if declared is None else declared[0],
        declared_lon=None if declared is None else declared[1],
    )


class Track:
    """A timed fix sequence of one device, built leg by leg (deterministic jitter)."""

    def __init__(
        self,
        start: datetime,
        at: tuple[float, float],
        *,
        device: str = "wired-1",
        kind: DeviceKind = "wired",
        seed: int = 1,
    ) -> None:
        self.now = start
        self.lat, self.lon = at
        self.device = device
        self.kind: DeviceKind = kind
        self.rng = random.Random(seed)
        self.seq = 0
        self.fixes: list[FixIn] = []

    def fix(
        self, at: tuple[float, float] | None = None, speed_mps: float = 0.0, **kw: Any
    ) -> FixIn:
        """One fix now, at ``at`` (default: the current position); time does not advance."""
        lat, lon = at if at is not None else (self.lat, self.lon)
        self.seq += 1
        f = FixIn(self.now, self.device, self.kind, self.seq, lat, lon, speed_mps, **kw)
        self.fixes.append(f)
        return f

    def wait(self, dt: timedelta) -> Track:
        self.now += dt
        return self

    def move_to(self, at: tuple[float, float]) -> Track:
        """Teleport the track's position (no fixes): e.g. after a gap."""
        self.lat, self.lon = at
        return self

    def park(
        self,
        duration: timedelta,
        every_s: tuple[float, float] = (300.0, 900.0),
        wander_m: float = 15.0,
    ) -> Track:
        """Fixes every 5-15 min (default) wandering up to ``wander_m`` around the position."""
        end = self.now + duration
        while True:
            north, east = (self.rng.uniform(-wander_m, wander_m) for _ in range(2))
            self.fix(offset(self.lat, self.lon, north, east))
            step = timedelta(seconds=self.rng.uniform(*every_s))
            if self.now + step > end:
                self.now = end
                return self
            self.now += step

    def drive_to(
        self, at: tuple[float, float], speed_kmh: float = 50.0, every_s: float = 20.0
    ) -> Track:
        """Fixes every ``every_s`` along the straight line to ``at``; ends there, one fix."""
        dist = distance_m(self.lat, self.lon, *at)
        speed = speed_kmh / 3.6
        n = max(1, math.ceil(dist / speed / every_s))
        lat0, lon0 = self.lat, self.lon
        for i in range(1, n + 1):
            self.now += timedelta(seconds=dist / speed / n)
            k = i / n
            here = (lat0 + (at[0] - lat0) * k, lon0 + (at[1] - lon0) * k)
            self.fix(here, speed_mps=speed if i < n else 0.0)
        self.lat, self.lon = at
        return self

    def jump(self, metres: float) -> Track:
        """One urban-canyon fix ``metres`` east of the position, a minute later."""
        self.now += timedelta(seconds=60)
        self.fix(offset(self.lat, self.lon, 0.0, metres))
        return self


def ordered(*streams: Iterable[RuleInput]) -> list[RuleInput]:
    """Merge input streams in GNSS time order (events before fixes, as the engine does)."""
    items = [i for s in streams for i in s]
    return sorted(items, key=lambda i: (i.time, 0 if isinstance(i, EventIn | Tick) else 1))


def run(
    step: Step[S, C], state: S, inputs: Iterable[RuleInput], ctx: VehicleContext, cfg: C
) -> tuple[S, list[Signal]]:
    out: list[Signal] = []
    for inp in inputs:
        state, signals = step(state, inp, ctx, cfg)
        out.extend(signals)
    return state, out


def roundtrip(state: S) -> S:
    return msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=type(state))


def assert_restartable(
    step: Step[S, C],
    initial: S,
    inputs: Sequence[RuleInput],
    ctx: VehicleContext,
    cfg: C,
    splits: Iterable[int] | None = None,
) -> list[Signal]:
    """Restart and replay give the uninterrupted run's signals; returns those signals.

    For each split point the state after the prefix goes through msgpack and
    the rest runs from it (a worker restart / takeover), then the rest runs a
    second time from the same pre-split state (a replay from a snapshot).
    """
    _, full = run(step, initial, inputs, ctx, cfg)
    points = (
        list(splits)
        if splits is not None
        else sorted({1, len(inputs) // 3, len(inputs) // 2, len(inputs) - 1})
    )
    for k in points:
        snap, head = run(step, initial, inputs[:k], ctx, cfg)
        restored = roundtrip(snap)
        assert restored == snap, f"state does not round-trip at input {k}"
        _, tail = run(step, restored, inputs[k:], ctx, cfg)
        assert head + tail == full, f"restart at input {k} changed the signals"
        _, again = run(step, snap, inputs[k:], ctx, cfg)
        assert again == tail, f"replay from input {k} changed the signals"
    return full


def opens(signals: Iterable[Signal], rule: str | None = None) -> list[Signal]:
    return [s for s in signals if s.action is Action.OPEN and (rule is None or s.rule == rule)]


def resolves(signals: Iterable[Signal], rule: str | None = None) -> list[Signal]:
    return [s for s in signals if s.action is Action.RESOLVE and (rule is None or s.rule == rule)]


Place = tuple[float, float]


def daily_life(
    t: Track,
    days: int,
    sleep: Callable[[int], Place],
    work: Callable[[int], Place] | None = None,
    every_s: tuple[float, float] = (600.0, 900.0),
) -> Track:
    """``days`` days of commuting from ``t.now`` (08:00 China time) at the first night's place.

    Each day: leave at 08:00, park at work until 18:30, drive to the night's
    place ``sleep(day)`` and park there (fixes every 10-15 min) until 08:00.
    Work is 7 km from the night's place unless ``work`` says otherwise.
    """
    base = t.now
    for day in range(days):
        day0 = base + timedelta(days=day)
        t.now = max(t.now, day0)
        office = work(day) if work is not None else offset(*sleep(day), 4_000.0, 6_000.0)
        t.drive_to(office, speed_kmh=40, every_s=30)
        t.park(day0 + timedelta(hours=10.5) - t.now, every_s=every_s)
        t.drive_to(sleep(day), speed_kmh=40, every_s=30)
        t.park(day0 + timedelta(days=1) - t.now, every_s=every_s)
    return t


def num(value: JsonValue) -> float:
    """An evidence value that must be a number."""
    assert isinstance(value, int | float), value
    return float(value)
