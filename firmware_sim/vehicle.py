"""A vehicle model: a commuter's week in a Chinese city, planned up front from a seed.

``Vehicle(...)`` plans every trip between ``start`` and ``end`` at
construction (no clock, no sleeps); :meth:`Vehicle.state_at` then answers
for any instant: position, speed, course, ignition, whether it is on a trip,
and the environment the GNSS antenna sees.

The routine, in China time (GMT+8):

- cars: on workdays leave home 07:30-08:30 for work, sometimes a lunch trip,
  leave work 18:00-19:30 for home, sometimes an evening trip (back by about
  22:00); at weekends usually one daytime trip and sometimes an evening one;
  parked otherwise, at home every night;
- e-bikes: 3-6 short hops a day between 07:00 and 21:00 around where they
  started, ignition never on;
- static: parked where it started (a decoy car, say).

:class:`Visit` and :class:`Relocation` bend the routine: a visit leaves for a
place at ``at``, stays there, and returns to wherever the routine would have
the car by then; a relocation makes every day that starts after ``at`` use the
new home and work. Trips follow a polyline with a few waypoints (a grid-like
staircase in town, a jittered line between cities) with speed profiles per
road type: local 30-50, arterial 50-70, urban expressway 70-90, highway
90-100 km/h, e-bike 12-25 km/h; acceleration, braking, slow turns, traffic
lights, and now and then a short tunnel.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from enum import StrEnum

from firmware_sim.places import CITIES, RISK_KINDS, Place, PlaceKind
from firmware_sim.receiver import M_PER_DEG_LAT, Environment
from protocols.plausibility import haversine_m

CHINA_TZ = timezone(timedelta(hours=8), "CST")
MIN_DWELL = timedelta(minutes=2)
DAY_STARTS = time(3, 0)  # a planning day runs 03:00-03:00 China time


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


@dataclass(frozen=True, slots=True)
class VehicleState:
    time: datetime
    lon: float
    lat: float
    alt_m: float
    speed_mps: float
    course_deg: float
    ignition: bool
    moving: bool  # on a trip (it may be standing at a traffic light)
    environment: Environment
    place: str | None  # id of the place it is parked at; None while on a trip


@dataclass(frozen=True, slots=True)
class Visit:
    at: datetime
    place: Place
    stay: timedelta


@dataclass(frozen=True, slots=True)
class Relocation:
    at: datetime
    home: Place
    work: Place


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
        i = bisect.bisect_right([p.t0 for p in self.phases], tau) - 1
        ph = self.phases[max(i, 0)]
        dt = tau - ph.t0
        return (
            min(self.length_m, ph.s0 + ph.v0 * dt + 0.5 * ph.a * dt * dt),
            max(0.0, ph.v0 + ph.a * dt),
        )

    def leg_at(self, s: float) -> int:
        return min(max(bisect.bisect_right(self.cum_m, s) - 1, 0), len(self.points) - 2)


@dataclass(frozen=True, slots=True)
class Stay:
    place: Place
    start: datetime
    end: datetime
    course_deg: float
    ignition_until: datetime | None  # the arriving trip's ignition-off
    ignition_from: datetime | None  # the next trip's ignition-on


@dataclass(slots=True)
class _Req:
    planned: datetime  # estimated departure, for ordering and visit insertion
    dest: Place
    depart: datetime | None = None  # leave at (or after) this time
    dwell: timedelta | None = None  # ...or this long after arriving


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


class Vehicle:
    """One vehicle's plan between ``start`` and ``end``; ask :meth:`state_at` anything inside."""

    def __init__(
        self,
        *,
        seed: int | str,
        home: Place,
        work: Place,
        start: datetime,
        end: datetime,
        kind: VehicleKind = VehicleKind.CAR,
        visits: Sequence[Visit] = (),
        relocations: Sequence[Relocation] = (),
        start_at: Place | None = None,
    ) -> None:
        self.seed = seed
        self.kind = kind
        self.home, self.work = home, work
        self.start, self.end = start, end
        self._leisure_n = 0
        reqs = self._routine(sorted(relocations, key=lambda r: r.at))
        for visit in sorted(visits, key=lambda v: v.at):
            reqs = self._insert_visit(reqs, visit)
        self.trips: list[Trip] = []
        self.stays: list[Stay] = []
        self._materialise(start_at or home, reqs)
        self._starts = [s.start for s in self.stays]

    # ------------------------------------------------------------ planning

    def _plan_from(self) -> datetime:
        day = local_time(self.start).date() - timedelta(days=1)
        return datetime.combine(day, DAY_STARTS, CHINA_TZ)

    def _routine(self, relocations: Sequence[Relocation]) -> list[_Req]:
        reqs: list[_Req] = []
        day0 = self._plan_from()
        n_days = (self.end - day0).days + 1
        for n in range(n_days):
            start = day0 + timedelta(days=n)
            home, work = self.home, self.work
            for r in relocations:
                if r.at <= start:
                    home, work = r.home, r.work
            rng = random.Random(f"{self.seed}:day:{start.date().isoformat()}")
            if self.kind is VehicleKind.CAR:
                reqs += self._car_day(rng, start.date(), home, work)
            elif self.kind is VehicleKind.EBIKE:
                reqs += self._ebike_day(rng, start.date(), home)
        return reqs

    def _leisure(self, rng: random.Random, city_id: str, near: Place | None = None) -> Place:
        """A point between two catalogue points of the city, > 1 km from its risk places."""
        city = CITIES[city_id]
        pool = [*city.homes, *city.works, city.centre]
        risky = list(city.risk.values())
        while True:
            a = near or rng.choice(pool)
            b = rng.choice(pool)
            u = rng.uniform(0.2, 0.8)
            lon = a.lon + u * (b.lon - a.lon) + rng.uniform(-0.004, 0.004)
            lat = a.lat + u * (b.lat - a.lat) + rng.uniform(-0.004, 0.004)
            if all(haversine_m(lat, lon, r.lat, r.lon) > 1000.0 for r in risky):
                break
        self._leisure_n += 1
        env = Environment.CARPARK if rng.random() < 0.4 else Environment.URBAN
        return Place(f"{city_id}.leisure.{self._leisure_n}", PlaceKind.LEISURE, lon, lat,
                     a.alt_m, city_id, env)  # fmt: skip

    @staticmethod
    def _at(rng: random.Random, day: date, hour: float, until: float) -> datetime:
        """A uniformly drawn China time between ``hour`` and ``until`` on ``day``."""
        h = rng.uniform(hour, until)
        return datetime.combine(day, time(0), CHINA_TZ) + timedelta(hours=h)

    def _car_day(self, rng: random.Random, day: date, home: Place, work: Place) -> list[_Req]:
        out: list[_Req] = []

        def go(at: datetime, dest: Place) -> None:
            out.append(_Req(at, dest, depart=at))

        if day.weekday() < 5:
            go(self._at(rng, day, 7.5, 8.5), work)
            if rng.random() < 0.15:
                go(self._at(rng, day, 12.0, 12.5), self._leisure(rng, work.city, work))
                go(self._at(rng, day, 13.1, 13.4), work)
            go(self._at(rng, day, 18.0, 19.5), home)
            if rng.random() < 0.2:
                go(self._at(rng, day, 19.9, 20.4), self._leisure(rng, home.city))
                go(self._at(rng, day, 21.0, 21.6), home)
            return out
        if rng.random() < 0.65:
            leave = self._at(rng, day, 9.5, 15.0)
            go(leave, self._leisure(rng, home.city))
            go(leave + timedelta(hours=rng.uniform(1.0, 3.5)), home)
        if rng.random() < 0.3:
            go(self._at(rng, day, 18.5, 19.5), self._leisure(rng, home.city))
            go(self._at(rng, day, 20.8, 21.5), home)
        return out

    def _ebike_day(self, rng: random.Random, day: date, home: Place) -> list[_Req]:
        out: list[_Req] = []
        hours = sorted(rng.uniform(7.0, 20.5) for _ in range(rng.randint(3, 6)))
        for h in hours:
            at = datetime.combine(day, time(0), CHINA_TZ) + timedelta(hours=h)
            out.append(_Req(at, self._leisure(rng, home.city, home), depart=at))
        at = datetime.combine(day, time(21, 0), CHINA_TZ)
        out.append(_Req(at, home, depart=at))
        return out

    def _insert_visit(self, reqs: list[_Req], visit: Visit) -> list[_Req]:
        travel = timedelta(seconds=distance_m(self.home, visit.place) / 15.0) + timedelta(hours=1)
        until = visit.at + travel + visit.stay
        before = [r for r in reqs if r.planned < visit.at]
        during = [r for r in reqs if visit.at <= r.planned < until]
        after = [r for r in reqs if r.planned >= until]
        back = during[-1].dest if during else (before[-1].dest if before else self.home)
        return [
            *before,
            _Req(visit.at, visit.place, depart=visit.at),
            _Req(until, back, dwell=visit.stay),
            *after,
        ]

    def _materialise(self, here: Place, reqs: list[_Req]) -> None:
        # A car's plan starts the day before ``start`` so that it is wherever its routine
        # puts it at ``start``; other kinds are at ``start_at`` when the plan begins.
        free = self._plan_from() if self.kind is VehicleKind.CAR else self.start
        course = random.Random(f"{self.seed}:course").uniform(0.0, 360.0)
        ign_until: datetime | None = None
        for req in reqs:
            if distance_m(here, req.dest) < 30.0:
                continue
            if self.kind is not VehicleKind.CAR and req.depart is not None and req.depart < free:
                continue  # planned before this vehicle's plan begins
            if req.depart is not None:
                depart = max(req.depart, free + MIN_DWELL)
            else:
                depart = free + max(req.dwell or MIN_DWELL, MIN_DWELL)
            if depart >= self.end:
                break
            rng = random.Random(f"{self.seed}:trip:{depart.timestamp():.0f}")
            trip = _build_trip(rng, here, req.dest, depart, self.kind)
            self.stays.append(Stay(here, free, depart, course, ign_until, trip.ignition_on))
            self.trips.append(trip)
            here, free, ign_until = req.dest, trip.arrive, trip.ignition_off
            course = trip_course(trip, len(trip.points) - 2)
        far = max(self.end, free) + timedelta(days=3650)
        self.stays.append(Stay(here, free, far, course, ign_until, None))

    # ------------------------------------------------------------ queries

    def state_at(self, t: datetime) -> VehicleState:
        i = max(bisect.bisect_right(self._starts, t) - 1, 0)
        stay = self.stays[i]
        if t < stay.end or i >= len(self.trips):
            ign = (stay.ignition_until is not None and t <= stay.ignition_until) or (
                stay.ignition_from is not None and t >= stay.ignition_from
            )
            p = stay.place
            return VehicleState(
                t, p.lon, p.lat, p.alt_m, 0.0, stay.course_deg, ign, False, p.environment, p.id
            )
        return _trip_state(self.trips[i], t)

    def parked_interval(self, t: datetime) -> tuple[datetime, datetime] | None:
        """The parked period containing ``t``, else the next one starting before ``end``."""
        for stay in self.stays[max(bisect.bisect_right(self._starts, t) - 1, 0) :]:
            if stay.end > t and stay.start < self.end:
                return max(stay.start, t), stay.end
        return None

    def next_trip(self, t: datetime) -> Trip | None:
        """The trip under way at ``t``, else the next one."""
        return next((trip for trip in self.trips if trip.arrive > t), None)


def trip_course(trip: Trip, leg: int) -> float:
    (lon1, lat1), (lon2, lat2) = trip.points[leg], trip.points[leg + 1]
    return bearing_deg(lon1, lat1, lon2, lat2)


def _trip_state(trip: Trip, t: datetime) -> VehicleState:
    s, v = trip.kinematics(t)
    leg = trip.leg_at(s)
    (lon1, lat1), (lon2, lat2) = trip.points[leg], trip.points[leg + 1]
    seg = trip.cum_m[leg + 1] - trip.cum_m[leg]
    f = 0.0 if seg <= 0 else (s - trip.cum_m[leg]) / seg
    tau = (t - trip.depart).total_seconds()
    env = trip.envs[leg]
    if any(a <= tau < b for a, b in trip.tunnels):
        env = Environment.TUNNEL
    ign = trip.ignition_on is not None
    alt = trip.origin.alt_m + (trip.dest.alt_m - trip.origin.alt_m) * s / max(trip.length_m, 1.0)
    return VehicleState(
        t,
        lon1 + f * (lon2 - lon1),
        lat1 + f * (lat2 - lat1),
        alt,
        v,
        trip_course(trip, leg),
        ign,
        True,
        env,
        None,
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


def _build_trip(
    rng: random.Random, a: Place, b: Place, depart: datetime, kind: VehicleKind
) -> Trip:
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


__all__ = [
    "CHINA_TZ",
    "RISK_KINDS",
    "Relocation",
    "Road",
    "Stay",
    "Trip",
    "Vehicle",
    "VehicleKind",
    "VehicleState",
    "Visit",
]
