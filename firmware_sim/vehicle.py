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
new home and work. How each trip is driven (route, road types, speeds,
tunnels) is :mod:`firmware_sim.trips`.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from firmware_sim.places import CITIES, Place, PlaceKind
from firmware_sim.receiver import Environment
from firmware_sim.trips import (
    CHINA_TZ,
    Trip,
    VehicleKind,
    bearing_deg,
    build_trip,
    distance_m,
    local_time,
    trip_course,
    trip_motion,
)
from protocols.plausibility import haversine_m

MIN_DWELL = timedelta(minutes=2)
DAY_STARTS = time(3, 0)  # a planning day runs 03:00-03:00 China time


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
            trip = build_trip(rng, here, req.dest, depart, self.kind)
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
        trip = self.trips[i]
        m = trip_motion(trip, t)
        ign = trip.ignition_on is not None
        return VehicleState(
            t, m.lon, m.lat, m.alt_m, m.speed_mps, m.course_deg, ign, True, m.environment, None
        )

    def parked_interval(self, t: datetime) -> tuple[datetime, datetime] | None:
        """The parked period containing ``t``, else the next one starting before ``end``."""
        for stay in self.stays[max(bisect.bisect_right(self._starts, t) - 1, 0) :]:
            if stay.end > t and stay.start < self.end:
                return max(stay.start, t), stay.end
        return None

    def next_trip(self, t: datetime) -> Trip | None:
        """The trip under way at ``t``, else the next one."""
        return next((trip for trip in self.trips if trip.arrive > t), None)


__all__ = [
    "CHINA_TZ",
    "Relocation",
    "Stay",
    "Trip",
    "Vehicle",
    "VehicleKind",
    "VehicleState",
    "Visit",
    "bearing_deg",
    "local_time",
]
