"""Per vehicle and China-time day: what the car did, as a fixed vector of floats.

Pure: the day's fixes, a :class:`~cloud.risk.model.PlaceLookup` and the
vehicle's resident point in, a :class:`DayFeatures` out. No clock, no I/O.

One track per day. A car may carry a wired and a wireless unit; their fixes
are never mixed (two receivers side by side make a zig-zag that would count
as driving). The day's track is the wired device with the most fixes, or
when no wired device reported, the wireless device with the most fixes.

Definitions (thresholds in :class:`FeatureConfig`, defaults from DOMAIN.md):

- **steps**: great-circle distance from the anchor (the last point that
  moved the track). A point whose implied speed from the previous accepted
  point exceeds 300 km/h is a teleport: it is skipped. After
  three consecutive skipped points that are plausible among themselves the
  car really is there (e.g. carried on a truck while silent): the track
  re-anchors without counting the jump. A step under 30 m with both ends
  slow (< 2 m/s) is parked wander: the point is kept but the anchor stays, so
  wander never adds up to kilometres.
- **km_driven**, **night_km**: the accepted steps; a step is "night" when the
  midpoint between the point and the previous accepted point falls in
  22:00-06:00 China time.
- **stay_clusters**: stays are runs of points within 200 m of their first
  point lasting at least 15 minutes; stays whose centres are within 200 m of
  each other are one place. A commute home → work → home gives 2.
- **max_km_from_home**, **mean_km_from_home**: distance of the track's points
  from the resident point; the mean is time-weighted (trapezoids between
  consecutive points) so a parked car's sparse reports weigh as much as the
  dense fixes of a drive. Without a resident point the reference is the
  day's median night position, or the day's median position when the day has
  no night points.
- **risk_poi_hours**: time between consecutive slow points (< 3 m/s) that are
  both inside a risk POI's area.
- **offline_hours**: the total length of gaps between consecutive reports of
  the day's track's device (its fixes, and its heartbeats and other events
  when the caller passes them: a unit parked where it gets no fix still
  reports) that are longer than the device's allowance; the day's start and
  end count as reports, so a car silent from 18:00 has at least 6 offline
  hours. Allowance: wired ``max(2 x heartbeat, 30 min)``; wireless two
  scheduled intervals (``2 x 24 h / wakes per day``), as the offline rule.
  A report uploaded late from a blind area fills its gap: it was out of
  coverage, not offline.
- **provinces_visited**: distinct provinces of the track, looked up at the
  first and last points and whenever the car is 1 km from the last lookup.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import date, datetime, time, timedelta

from cloud.risk.geo import CHINA_TZ, distance_m, is_night
from cloud.risk.model import Device, DeviceKind, FixIn, PlaceLookup

__all__ = [
    "FEATURE_NAMES",
    "DayFeatures",
    "FeatureConfig",
    "Stay",
    "choose_track",
    "day_bounds",
    "day_features",
    "stays",
]

DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class DayFeatures:
    """One vehicle-day. Field order is the model's column order: append, never reorder."""

    km_driven: float
    night_km: float
    stay_clusters: float
    max_km_from_home: float
    mean_km_from_home: float
    risk_poi_hours: float
    offline_hours: float
    provinces_visited: float

    def vector(self) -> tuple[float, ...]:
        return tuple(float(v) for v in astuple(self))

    @classmethod
    def from_vector(cls, values: Sequence[float]) -> DayFeatures:
        if len(values) != len(FEATURE_NAMES):
            raise ValueError(f"expected {len(FEATURE_NAMES)} values, got {len(values)}")
        return cls(*(float(v) for v in values))


FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in fields(DayFeatures))


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    max_step_kmh: float = 300.0
    rejoin_after: int = 3  # consecutive self-consistent teleports that move the anchor
    jitter_m: float = 30.0
    slow_mps: float = 2.0
    stay_radius_m: float = 200.0
    stay_min: timedelta = timedelta(minutes=15)
    night_start_hour: int = 22
    night_end_hour: int = 6
    poi_max_speed_mps: float = 3.0
    province_step_m: float = 1000.0
    wired_min_allowance: timedelta = timedelta(minutes=30)
    wired_heartbeats: float = 2.0  # missed heartbeats before a wired gap counts
    wireless_missed_reports: float = 2.0


DEFAULT_CONFIG = FeatureConfig()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The China-time day ``[00:00, 24:00)`` as aware datetimes."""
    start = datetime.combine(day, time(0), tzinfo=CHINA_TZ)
    return start, start + DAY


def choose_track(fixes: Sequence[FixIn]) -> list[FixIn]:
    """The fixes of the day's one device: the busiest wired unit, else the busiest wireless."""
    counts: dict[tuple[DeviceKind, str], int] = {}
    for fix in fixes:
        key = (fix.device_kind, fix.device_id)
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return []
    # wired before wireless, then most fixes, then device id for a stable answer
    kind, device = min(counts, key=lambda k: (k[0] != "wired", -counts[k], k[1]))
    track = sorted(
        (f for f in fixes if f.device_id == device and f.device_kind == kind),
        key=lambda f: (f.time, f.seq),
    )
    out: list[FixIn] = []
    for fix in track:  # one point per epoch
        if not out or fix.time > out[-1].time:
            out.append(fix)
    return out


def _dist(a: FixIn, b: FixIn) -> float:
    return distance_m(a.lat, a.lon, b.lat, b.lon)


def _kmh(a: FixIn, b: FixIn) -> float:
    dt = (b.time - a.time).total_seconds()
    return _dist(a, b) / dt * 3.6 if dt > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class _Track:
    points: list[FixIn]  # teleports removed
    km: float
    night_km: float


def _clean(track: Sequence[FixIn], cfg: FeatureConfig) -> _Track:
    kept = [track[0]]
    anchor = track[0]
    skipped: list[FixIn] = []
    metres = night_metres = 0.0
    for fix in track[1:]:
        prev = kept[-1]  # the anchor may be hours old while parked: speeds and times use prev
        if _kmh(prev, fix) > cfg.max_step_kmh:
            if skipped and _kmh(skipped[-1], fix) > cfg.max_step_kmh:
                skipped = []
            skipped.append(fix)
            if len(skipped) >= cfg.rejoin_after:  # the car really is over there
                kept.extend(skipped)
                anchor, skipped = fix, []
            continue
        skipped = []
        kept.append(fix)
        step = _dist(anchor, fix)
        slow = anchor.speed_mps < cfg.slow_mps and fix.speed_mps < cfg.slow_mps
        if step < cfg.jitter_m and slow:
            continue
        metres += step
        mid = prev.time + (fix.time - prev.time) / 2
        if is_night(mid, cfg.night_start_hour, cfg.night_end_hour):
            night_metres += step
        anchor = fix
    return _Track(kept, metres / 1000, night_metres / 1000)


@dataclass(frozen=True, slots=True)
class Stay:
    lat: float
    lon: float
    start: datetime
    end: datetime


def stays(points: Sequence[FixIn], cfg: FeatureConfig = DEFAULT_CONFIG) -> list[Stay]:
    """Runs of points within ``stay_radius_m`` of their first point for ``stay_min`` or longer."""
    found: list[Stay] = []
    i, n = 0, len(points)
    while i < n:
        j = i + 1
        while j < n and _dist(points[i], points[j]) <= cfg.stay_radius_m:
            j += 1
        run = points[i:j]
        if run[-1].time - run[0].time >= cfg.stay_min:
            lat = statistics.fmean(p.lat for p in run)
            lon = statistics.fmean(p.lon for p in run)
            found.append(Stay(lat, lon, run[0].time, run[-1].time))
            i = j
        else:
            i += 1
    return found


def _places_of_stays(found: Sequence[Stay], radius_m: float) -> int:
    centres: list[tuple[float, float, float]] = []  # lat, lon, weight (seconds)
    for stay in found:
        w = max(1.0, (stay.end - stay.start).total_seconds())
        for k, (lat, lon, total) in enumerate(centres):
            if distance_m(lat, lon, stay.lat, stay.lon) <= radius_m:
                s = total + w
                centres[k] = ((lat * total + stay.lat * w) / s, (lon * total + stay.lon * w) / s, s)
                break
        else:
            centres.append((stay.lat, stay.lon, w))
    return len(centres)


def _reference(
    points: Sequence[FixIn], resident: tuple[float, float] | None, cfg: FeatureConfig
) -> tuple[float, float]:
    if resident is not None:
        return resident
    night = [p for p in points if is_night(p.time, cfg.night_start_hour, cfg.night_end_hour)]
    use = night or points
    return statistics.median(p.lat for p in use), statistics.median(p.lon for p in use)


def _distances_km(points: Sequence[FixIn], ref: tuple[float, float]) -> tuple[float, float]:
    """Max and time-weighted mean distance from ``ref`` in km."""
    d = [distance_m(ref[0], ref[1], p.lat, p.lon) / 1000 for p in points]
    total_s = 0.0
    area = 0.0
    for k in range(1, len(points)):
        dt = (points[k].time - points[k - 1].time).total_seconds()
        total_s += dt
        area += (d[k] + d[k - 1]) / 2 * dt
    mean = area / total_s if total_s > 0 else statistics.fmean(d)
    return max(d), mean


def _poi_hours(points: Sequence[FixIn], places: PlaceLookup, cfg: FeatureConfig) -> float:
    inside = [
        p.speed_mps < cfg.poi_max_speed_mps and bool(places.pois_near(p.lat, p.lon, 0.0))
        for p in points
    ]
    seconds = sum(
        (points[k].time - points[k - 1].time).total_seconds()
        for k in range(1, len(points))
        if inside[k] and inside[k - 1]
    )
    return seconds / 3600


def _provinces(points: Sequence[FixIn], places: PlaceLookup, cfg: FeatureConfig) -> int:
    seen: set[str] = set()
    last: FixIn | None = None
    for k, p in enumerate(points):
        due = last is None or k == len(points) - 1 or _dist(last, p) >= cfg.province_step_m
        if due:
            code = places.province_of(p.lat, p.lon)
            if code is not None:
                seen.add(code)
            last = p
    return len(seen)


def _allowance(fix: FixIn, devices: Mapping[str, Device], cfg: FeatureConfig) -> timedelta:
    device = devices.get(fix.device_id, Device(fix.device_id, fix.device_kind))
    if fix.device_kind == "wired":
        return max(cfg.wired_min_allowance, timedelta(seconds=device.heartbeat_s) * 2)
    per_day = max(device.wakes_per_day, 1e-3)
    return DAY / per_day * cfg.wireless_missed_reports


def _offline_hours(
    track: Sequence[FixIn], heard: Sequence[datetime], day: date, allowance: timedelta
) -> float:
    start, end = day_bounds(day)
    inside = (t for t in heard if start <= t < end)
    times = sorted([start, *(f.time for f in track), *inside, end])
    gaps = (b - a for a, b in itertools.pairwise(times))
    return sum((g for g in gaps if g > allowance), timedelta()) / timedelta(hours=1)


def day_features(
    day: date,
    fixes: Sequence[FixIn],
    places: PlaceLookup,
    resident: tuple[float, float] | None,
    *,
    devices: Mapping[str, Device] | None = None,
    heard: Mapping[str, Sequence[datetime]] | None = None,
    config: FeatureConfig = DEFAULT_CONFIG,
) -> DayFeatures | None:
    """The features of China-time ``day``, or None when no fix falls in it.

    ``fixes`` may hold several devices and fixes outside the day (ignored).
    ``devices`` gives heartbeat periods and wake schedules (defaults of
    :class:`~cloud.risk.model.Device` otherwise). ``heard`` gives, per
    device, the times of its other reports (heartbeats and events, GNSS
    time): a unit that reports without a position is not offline.
    ``resident`` is ``(lat, lon)`` of the resident area or the declared address.
    """
    start, end = day_bounds(day)
    track = choose_track([f for f in fixes if start <= f.time < end])
    if not track:
        return None
    cleaned = _clean(track, config)
    points = cleaned.points
    max_km, mean_km = _distances_km(points, _reference(points, resident, config))
    allowance = _allowance(track[0], devices or {}, config)
    reports = (heard or {}).get(track[0].device_id, ())
    return DayFeatures(
        km_driven=cleaned.km,
        night_km=cleaned.night_km,
        stay_clusters=float(_places_of_stays(stays(points, config), config.stay_radius_m)),
        max_km_from_home=max_km,
        mean_km_from_home=mean_km,
        risk_poi_hours=_poi_hours(points, places, config),
        offline_hours=_offline_hours(track, reports, day, allowance),
        provinces_visited=float(_provinces(points, places, config)),
    )
