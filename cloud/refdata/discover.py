"""Candidate risk POIs: places where several cars with bad loans stopped for hours.

Cars whose loans are overdue or in default tend to end up at the same few
places (second-mortgage lenders, pawnshops, used-car markets). From their fixes
we find *long stops* (the car stays within ``stop_radius_m`` of where it
stopped, at walking speed or less, for at least ``min_stop_h``; a sleeping
wireless tracker's two fixes hours apart at one place count), cluster the
stops' centres with DBSCAN on the haversine metric (``eps_m``, two stops make a
core point), and keep clusters visited by at least ``min_vehicles`` different
cars. Each becomes an unconfirmed candidate for a person to confirm or drop:
a residential car park used by two such borrowers is a cluster too.

Pure code: fixes in, candidates out (the database side is in ``store``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from protocols.plausibility import EARTH_RADIUS_M, haversine_m

__all__ = ["Candidate", "DiscoverSettings", "Stop", "StopFix", "cluster_stops", "find_stops"]


@dataclass(frozen=True, slots=True)
class DiscoverSettings:
    min_stop_h: float = 2.0
    stop_radius_m: float = 100.0
    max_speed_mps: float = 1.5  # parked positions wander; slower than this counts as still
    eps_m: float = 150.0
    min_vehicles: int = 2
    default_radius_m: float = 150.0
    max_radius_m: float = 500.0


@dataclass(frozen=True, slots=True)
class StopFix:
    vehicle_id: int
    time: datetime
    lat: float
    lon: float
    speed_mps: float


@dataclass(frozen=True, slots=True)
class Stop:
    vehicle_id: int
    lat: float
    lon: float
    start: datetime
    end: datetime

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600.0


@dataclass(frozen=True, slots=True)
class Candidate:
    lat: float
    lon: float
    radius_m: float
    vehicles: tuple[int, ...]
    stops: tuple[Stop, ...] = field(repr=False)

    @property
    def evidence(self) -> dict[str, object]:
        return {
            "vehicles": len(self.vehicles),
            "vehicle_ids": list(self.vehicles),
            "stops": len(self.stops),
            "stop_hours": round(sum(s.hours for s in self.stops), 1),
            "first": min(s.start for s in self.stops).isoformat(),
            "last": max(s.end for s in self.stops).isoformat(),
        }


def _close(run: list[StopFix], min_duration: timedelta) -> Stop | None:
    if len(run) < 2 or run[-1].time - run[0].time < min_duration:
        return None
    return Stop(
        run[0].vehicle_id,
        float(np.mean([f.lat for f in run])),
        float(np.mean([f.lon for f in run])),
        run[0].time,
        run[-1].time,
    )


def find_stops(fixes: Iterable[StopFix], settings: DiscoverSettings) -> list[Stop]:
    """Long stops of each vehicle; ``fixes`` ordered by (vehicle_id, time)."""
    min_duration = timedelta(hours=settings.min_stop_h)
    stops: list[Stop] = []
    run: list[StopFix] = []
    for fix in fixes:
        still = fix.speed_mps <= settings.max_speed_mps
        same_run = (
            run
            and still
            and fix.vehicle_id == run[0].vehicle_id
            and haversine_m(run[0].lat, run[0].lon, fix.lat, fix.lon) <= settings.stop_radius_m
        )
        if same_run:
            run.append(fix)
            continue
        if (stop := _close(run, min_duration)) is not None:
            stops.append(stop)
        run = [fix] if still else []
    if (stop := _close(run, min_duration)) is not None:
        stops.append(stop)
    return stops


def cluster_stops(stops: list[Stop], settings: DiscoverSettings) -> list[Candidate]:
    """Clusters of stops (DBSCAN, haversine) visited by at least ``min_vehicles`` cars."""
    if len(stops) < 2:
        return []
    from sklearn.cluster import DBSCAN  # heavy: only when there is something to cluster

    coords = np.radians([[s.lat, s.lon] for s in stops])
    labels = DBSCAN(
        eps=settings.eps_m / EARTH_RADIUS_M,
        min_samples=2,
        metric="haversine",
        algorithm="ball_tree",
    ).fit_predict(coords)
    candidates: list[Candidate] = []
    for label in sorted(set(labels.tolist()) - {-1}):
        members = [s for s, lab in zip(stops, labels.tolist(), strict=True) if lab == label]
        vehicles = tuple(sorted({s.vehicle_id for s in members}))
        if len(vehicles) < settings.min_vehicles:
            continue
        lat = float(np.mean([s.lat for s in members]))
        lon = float(np.mean([s.lon for s in members]))
        spread = max(haversine_m(lat, lon, s.lat, s.lon) for s in members)
        radius = min(settings.max_radius_m, max(settings.default_radius_m, math.ceil(spread) + 50))
        candidates.append(Candidate(lat, lon, float(radius), vehicles, tuple(members)))
    candidates.sort(key=lambda c: (-len(c.vehicles), -len(c.stops)))
    return candidates
