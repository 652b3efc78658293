"""Stay points: where a car stood still for a while, from its fixes alone.

Pure code. A stay is a run of *consecutive* fixes that all lie within
``radius_m`` of the run's first fix and span at least ``min_duration``
(Li et al., "Mining user similarity based on location history", 2008: the
anchor-based stay-point test). The defaults, 200 m and 30 minutes, hold a
parked car's GNSS wander (3-15 m, occasional 50-300 m urban jumps) and skip
traffic lights and short errands. A gap in the data inside the radius does
not split a stay: a wireless tracker that sleeps for hours reports the same
parked car.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from protocols.plausibility import haversine_m

DEFAULT_RADIUS_M = 200.0
DEFAULT_MIN_DURATION = timedelta(minutes=30)


class Located(Protocol):
    """Anything with a GNSS time and a WGS-84 position (a fix, a track point)."""

    @property
    def time(self) -> datetime: ...
    @property
    def lat(self) -> float: ...
    @property
    def lon(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Stay:
    """A place the car stood: the mean of the run's fixes, from the first to the last of them."""

    lat: float
    lon: float
    arrived: datetime
    left: datetime  # time of the last fix inside the radius (the car may have left later)
    fixes: int

    @property
    def duration(self) -> timedelta:
        return self.left - self.arrived


def stay_points(
    points: Iterable[Located],
    *,
    radius_m: float = DEFAULT_RADIUS_M,
    min_duration: timedelta = DEFAULT_MIN_DURATION,
) -> list[Stay]:
    """The stays in ``points`` (any order; sorted by time here), oldest first.

    From each fix, the run grows while the next fix is within ``radius_m`` of
    the run's first fix. A run spanning ``min_duration`` or more is a stay and
    the search goes on after it; a shorter run is dropped and the search
    moves on by one fix.
    """
    if radius_m <= 0:
        raise ValueError(f"radius_m must be positive (got {radius_m})")
    if min_duration <= timedelta(0):
        raise ValueError(f"min_duration must be positive (got {min_duration})")
    pts: Sequence[Located] = sorted(points, key=lambda p: p.time)
    stays: list[Stay] = []
    i, n = 0, len(pts)
    while i < n:
        anchor = pts[i]
        j = i + 1
        while j < n and haversine_m(anchor.lat, anchor.lon, pts[j].lat, pts[j].lon) <= radius_m:
            j += 1
        if pts[j - 1].time - anchor.time >= min_duration:
            stays.append(_stay(pts[i:j]))
            i = j
        else:
            i += 1
    return stays


def _stay(run: Sequence[Located]) -> Stay:
    count = len(run)
    return Stay(
        lat=sum(p.lat for p in run) / count,
        lon=sum(p.lon for p in run) / count,
        arrived=run[0].time,
        left=run[-1].time,
        fixes=count,
    )
