"""Trips: a route between two places and how a vehicle drives it (pure, seeded).

A route is a polyline with a few waypoints: a grid-like staircase in town, a
jittered line between cities. Each leg has a road type with a cruise speed
(local 30-50, arterial 50-70, urban expressway 70-90, highway 90-100 km/h,
e-bike 12-25 km/h; slower at rush hour), and the vehicle accelerates, brakes
for turns and traffic lights and, now and then, drives through a short tunnel.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import NamedTuple

from firmware_sim.places import Place
from firmware_sim.receiver import M_PER_DEG_LAT, Environment
from protocols.plausibility import haversine_m

CHINA_TZ = timezone(timedelta(hours=8), "CST")


class VehicleKind(StrEnum):
    CAR = "car"
    EBIKE = "ebike"
    STATIC = "static"


class Road(StrEnum):
    LOCAL = "local"
    ARTERIAL = "arterial"
    EXPRESSWAY = "expressway"
    HIGHWAY = "highway"
    EBIKE = "ebike"


CRUISE_KMH: dict[Road, tuple[float, float]] = {
    Road.LOCAL: (30.0, 50.0),
    Road.ARTERIAL: (50.0, 70.0),
    Road.EXPRESSWAY: (70.0, 90.0),
    Road.HIGHWAY: (90.0, 100.0),
    Road.EBIKE: (12.0, 25.0),
}


class Motion(NamedTuple):
    lon: float
    lat: float
    alt_m: float
    speed_mps: float
    course_deg: float
    environment: Environment


@dataclass(frozen=True, slots=True)
class _Phase:
    t0: float  # seconds after departure
    s0: float  # metres along the path
    v0: float  # m/s
    a: float  # m/s²


@dataclass(frozen=True, slots=True)
class Trip:
    origin: Place
    dest: Place
    depart: datetime
    arrive: datetime
    ignition_on: datetime | None
    ignition_off: datetime | None
    points: tuple[tuple[float, float], ...]  # (lon, lat) polyline
    cum_m: tuple[float, ...]  # distance along the path at each point
    roads: tuple[Road, ...]  # per leg
    envs: tuple[Environment, ...]  # per leg
    phases: tuple[_Phase, ...]
    tunnels: tuple[tuple[float, float], ...]  # seconds after departure

    @property
    def length_m(self) -> float:
        return self.cum_m[-1]

    def kinematics(self, t: datetime) -> tuple[float, float]:
        """(metres along the path, speed m/s) at ``t``."""
        tau = min(max((t - self.depart).total_seconds(), 0.0), self.phases[-1].t0)
        i = bisect.bisect_right(self.phases, tau, key=lambda p: p.t0) - 1
        ph = self.phases[max(i, 0)]
        dt = tau - ph.t0
        return (
            min(self.length_m, ph.s0 + ph.v0 * dt + 0.5 * ph.a * dt * dt),
            max(0.0, ph.v0 + ph.a * dt),
        )

    def leg_at(self, s: float) -> int:
        return min(max(bisect.bisect_right(self.cum_m, s) - 1, 0), len(self.points) - 2)


def bearing_deg(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def distance_m(a: Place, b: Place) -> float:
    return haversine_m(a.lat, a.lon, b.lat, b.lon)


def local_time(t: datetime) -> datetime:
    return t.astimezone(CHINA_TZ)


def trip_course(trip: Trip, leg: int) -> float:
    (lon1, lat1), (lon2, lat2) = trip.points[leg], trip.points[leg + 1]
    return bearing_deg(lon1, lat1, lon2, lat2)


def trip_motion(trip: Trip, t: datetime) -> Motion:
    """Where a trip has the vehicle at ``t``."""
    s, v = trip.kinematics(t)
    leg = trip.leg_at(s)
    (lon1, lat1), (lon2, lat2) = trip.points[leg], trip.points[leg + 1]
    seg = trip.cum_m[leg + 1] - trip.cum_m[leg]
    f = 0.0 if seg <= 0 else (s - trip.cum_m[leg]) / seg
    tau = (t - trip.depart).total_seconds()
    env = trip.envs[leg]
    if any(a <= tau < b for a, b in trip.tunnels):
        env = Environment.TUNNEL
    alt = trip.origin.alt_m + (trip.dest.alt_m - trip.origin.alt_m) * s / max(trip.length_m, 1.0)
    return Motion(
        lon1 + f * (lon2 - lon1), lat1 + f * (lat2 - lat1), alt, v, trip_course(trip, leg), env
    )


# ---------------------------------------------------------------- trip building


def _path(rng: random.Random, a: Place, b: Place) -> list[tuple[float, float]]:
    """A plausible route: a staircase through the street grid in town, a jittered line beyond."""
    dist = distance_m(a, b)
    kx = M_PER_DEG_LAT * math.cos(math.radians((a.lat + b.lat) / 2))
    dx, dy = (b.lon - a.lon) * kx, (b.lat - a.lat) * M_PER_DEG_LAT
    pts: list[tuple[float, float]] = [(0.0, 0.0)]
    if dist > 40_000.0:
        k = min(8, max(2, int(dist / 25_000.0)))
        for j in range(1, k + 1):
            f = (j + rng.uniform(-0.2, 0.2)) / (k + 1)
            off = rng.gauss(0.0, 0.03 * dist)
            pts.append((f * dx - off * dy / dist, f * dy + off * dx / dist))
    elif dist > 300.0:
        k = min(6, max(1, int(dist / 1500.0)))
        cuts_x = sorted(rng.uniform(0, 1) for _ in range(k - 1))
        cuts_y = sorted(rng.uniform(0, 1) for _ in range(k - 1))
        x_first = rng.random() < 0.5
        for fx, fy in zip([*cuts_x, 1.0], [*cuts_y, 1.0], strict=True):
            x, y = pts[-1]
            if x_first:
                pts += [(fx * dx, y), (fx * dx, fy * dy)]
            else:
                pts += [(x, fy * dy), (fx * dx, fy * dy)]
    pts.append((dx, dy))
    merged = [pts[0]]
    for p in pts[1:-1]:  # drop legs under 200 m so every leg has room to speed up and brake
        if math.hypot(p[0] - merged[-1][0], p[1] - merged[-1][1]) >= 200.0:
            merged.append(p)
    if len(merged) > 1 and math.hypot(dx - merged[-1][0], dy - merged[-1][1]) < 200.0:
        merged.pop()
    merged.append((dx, dy))
    return [(a.lon + x / kx, a.lat + y / M_PER_DEG_LAT) for x, y in merged]


def _roads(rng: random.Random, cum: Sequence[float], kind: VehicleKind) -> list[Road]:
    n = len(cum) - 1
    if kind is VehicleKind.EBIKE:
        return [Road.EBIKE] * n
    intercity = cum[-1] > 40_000.0
    roads: list[Road] = []
    for i in range(n):
        length = cum[i + 1] - cum[i]
        if length < 800.0 or (i in (0, n - 1) and n > 2 and length < 3_000.0):
            roads.append(Road.LOCAL)
        elif intercity and length > 10_000.0:
            roads.append(Road.HIGHWAY)
        elif length > 3_000.0 and rng.random() < 0.5:
            roads.append(Road.EXPRESSWAY)
        else:
            roads.append(Road.ARTERIAL)
    return roads


@dataclass(slots=True)
class _Kin:
    acc: float
    dec: float
    t: float = 0.0
    s: float = 0.0
    phases: list[_Phase] = field(default_factory=list)

    def add(self, v0: float, a: float, duration: float, distance: float) -> None:
        if duration > 1e-6:
            self.phases.append(_Phase(self.t, self.s, v0, a))
            self.t += duration
            self.s += distance

    def leg(self, length: float, v_in: float, v_cruise: float, v_out: float) -> None:
        acc, dec = self.acc, self.dec
        d_acc = max(0.0, (v_cruise**2 - v_in**2) / (2 * acc))
        d_dec = max(0.0, (v_cruise**2 - v_out**2) / (2 * dec))
        vp = v_cruise
        if d_acc + d_dec > length:
            vp = math.sqrt((2 * acc * dec * length + dec * v_in**2 + acc * v_out**2) / (acc + dec))
            vp = max(vp, v_in, v_out)
            d_acc = max(0.0, (vp**2 - v_in**2) / (2 * acc))
            d_dec = max(0.0, (vp**2 - v_out**2) / (2 * dec))
        cruise = max(0.0, length - d_acc - d_dec)
        start_s = self.s
        self.add(v_in, acc, (vp - v_in) / acc, d_acc)
        self.add(vp, 0.0, cruise / vp, cruise)
        self.add(vp, -dec, (vp - v_out) / dec, d_dec)
        self.s = start_s + length  # absorb rounding so legs line up with the path


def _traffic(rng: random.Random, road: Road, rush: bool) -> float:
    """Share of the free-flow speed that traffic allows (cars in town, at rush hour)."""
    if road in (Road.EBIKE, Road.HIGHWAY):
        return 1.0
    return rng.uniform(0.45, 0.7) if rush else rng.uniform(0.8, 1.0)


def build_trip(rng: random.Random, a: Place, b: Place, depart: datetime, kind: VehicleKind) -> Trip:
    points = _path(rng, a, b)
    cum = [0.0]
    for (lon1, lat1), (lon2, lat2) in itertools.pairwise(points):
        cum.append(cum[-1] + haversine_m(lat1, lon1, lat2, lon2))
    roads = _roads(rng, cum, kind)
    kin = _Kin(acc=rng.uniform(1.0, 2.0), dec=rng.uniform(1.5, 2.5))
    hour = local_time(depart).hour + local_time(depart).minute / 60.0
    rush = 7.0 <= hour < 9.5 or 17.0 <= hour < 19.5
    cruise = [
        max(25.0 / 3.6, rng.uniform(*CRUISE_KMH[r]) / 3.6 * _traffic(rng, r, rush)) for r in roads
    ]
    tunnels: list[tuple[float, float]] = []
    v = 0.0
    for i, road in enumerate(roads):
        last = i == len(roads) - 1
        stop = not last and road in (Road.LOCAL, Road.ARTERIAL) and rng.random() < 0.5
        turn = rng.uniform(15.0, 30.0) / 3.6
        v_out = 0.0 if last or stop else min(turn, cruise[i], cruise[i + 1])
        t_leg = kin.t
        kin.leg(cum[i + 1] - cum[i], v, cruise[i], v_out)
        dur = kin.t - t_leg
        if road not in (Road.EBIKE, Road.HIGHWAY) and dur > 120.0 and rng.random() < 0.08:
            t0 = t_leg + rng.uniform(0.3, 0.5) * dur
            tunnels.append((t0, t0 + rng.uniform(20.0, 50.0)))
        if stop:
            kin.add(0.0, 0.0, rng.uniform(20.0, 100.0 if rush else 70.0), 0.0)
        v = v_out
    kin.phases.append(_Phase(kin.t, cum[-1], 0.0, 0.0))
    arrive = depart + timedelta(seconds=kin.t)
    car = kind is VehicleKind.CAR
    envs = tuple(
        Environment.OPEN
        if r is Road.HIGHWAY or (r is Road.EXPRESSWAY and rng.random() < 0.5)
        else Environment.URBAN
        for r in roads
    )
    return Trip(
        origin=a,
        dest=b,
        depart=depart,
        arrive=arrive,
        ignition_on=depart - timedelta(seconds=rng.uniform(15, 120)) if car else None,
        ignition_off=arrive + timedelta(seconds=rng.uniform(5, 30)) if car else None,
        points=tuple(points),
        cum_m=tuple(cum),
        roads=tuple(roads),
        envs=envs,
        phases=tuple(kin.phases),
        tunnels=tuple(tunnels),
    )
