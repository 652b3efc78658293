"""Synthetic vehicle-days for the anomaly tests (helpers only, no tests): drives, parked spells,
a fake place lookup."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import count

from cloud.risk.geo import CHINA_TZ, distance_m
from cloud.risk.model import DeviceKind, FixIn, Poi

DAY = date(2025, 3, 4)
HOME = (31.2304, 121.4737)  # People's Square, Shanghai
OFFICE = (31.2304, 121.5737)  # ~9.5 km east, Pudong
HANGZHOU = (30.2741, 120.1551)
PAWNSHOP = (31.2504, 121.4737)  # ~2.2 km north of home

_seq = count(1)


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=CHINA_TZ)


def _fix(t: datetime, lat: float, lon: float, speed: float, device: str, kind: DeviceKind) -> FixIn:
    return FixIn(t, device, kind, next(_seq), lat, lon, speed_mps=speed)


def drive(
    start: datetime,
    a: tuple[float, float],
    b: tuple[float, float],
    *,
    speed_mps: float = 10.0,
    every_s: float = 15.0,
    device: str = "wired-1",
    kind: DeviceKind = "wired",
) -> list[FixIn]:
    """Straight from a to b at constant speed; the last fix is at b."""
    dist = distance_m(*a, *b)
    steps = max(1, math.ceil(dist / speed_mps / every_s))
    dt = dist / speed_mps / steps
    return [
        _fix(
            start + timedelta(seconds=dt * k),
            a[0] + (b[0] - a[0]) * k / steps,
            a[1] + (b[1] - a[1]) * k / steps,
            speed_mps if k < steps else 0.0,
            device,
            kind,
        )
        for k in range(1, steps + 1)
    ]


def end_of(track: Sequence[FixIn]) -> datetime:
    return track[-1].time


def park(
    start: datetime,
    end: datetime,
    where: tuple[float, float],
    *,
    every_s: float = 600.0,
    wander_m: float = 10.0,  # per axis: two parked fixes are < 30 m apart
    seed: int = 1,
    device: str = "wired-1",
    kind: DeviceKind = "wired",
) -> list[FixIn]:
    """Parked fixes from ``start`` (inclusive) to ``end`` (exclusive), wandering a few metres."""
    rng = random.Random(seed)
    out = []
    t = start
    while t < end:
        dlat = rng.uniform(-wander_m, wander_m) / 111_195
        dlon = rng.uniform(-wander_m, wander_m) / (111_195 * math.cos(math.radians(where[0])))
        out.append(_fix(t, where[0] + dlat, where[1] + dlon, 0.0, device, kind))
        t += timedelta(seconds=every_s)
    return out


def commute_day(
    day: date = DAY, *, device: str = "wired-1", kind: DeviceKind = "wired"
) -> list[FixIn]:
    """Home until 08:00, drive to the office, work until 18:00, drive home."""
    night = park(at(0, 0, day), at(8, 0, day), HOME, device=device, kind=kind)
    to_work = drive(at(8, 0, day), HOME, OFFICE, device=device, kind=kind)
    work = park(end_of(to_work), at(18, 0, day), OFFICE, seed=2, device=device, kind=kind)
    back = drive(at(18, 0, day), OFFICE, HOME, device=device, kind=kind)
    evening = park(
        end_of(back) + timedelta(minutes=10), at(0, 0, day + timedelta(days=1)), HOME,
        seed=3, device=device, kind=kind,
    )  # fmt: skip
    return [*night, *to_work, *work, *back, *evening]


@dataclass
class FakePlaces:
    """Shanghai east of 121.0 E, Zhejiang west of it; POIs as circles."""

    pois: list[Poi] = field(default_factory=list)
    lookups: int = 0

    def province_of(self, lat: float, lon: float) -> str | None:
        self.lookups += 1
        return "310000" if lon >= 121.0 else "330000"

    def city_of(self, lat: float, lon: float) -> str | None:
        return None

    def pois_near(self, lat: float, lon: float, radius_m: float) -> Sequence[Poi]:
        return [p for p in self.pois if distance_m(lat, lon, p.lat, p.lon) <= p.radius_m + radius_m]

    def ip_province(self, ip: str) -> str | None:
        return None

    def ip_is_foreign_or_hosting(self, ip: str) -> bool:
        return False


def pawnshop() -> Poi:
    return Poi("poi-1", "pawnshop", "典当行", PAWNSHOP[0], PAWNSHOP[1], 150.0)


def days(start: date, n: int) -> Iterator[date]:
    for k in range(n):
        yield start + timedelta(days=k)
