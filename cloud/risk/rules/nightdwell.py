"""Night dwell: where a vehicle spends its nights, measured from pairs of fixes.

Shared by the resident-area rule (``resident.py``) and the long-stationary
rule (``stationary.py``) so both mean the same thing by "where the car sleeps".

Night is 22:00-06:00 China time by default (``DOMAIN.md``, resident area).
Each night is tallied from consecutive fixes of the vehicle, whatever device
sent them:

- **dwell**: two fixes at most ``spot_radius_m`` apart with an implied speed
  below ``min_speed_mps`` mean the car stood there in between; the part of the
  interval that falls inside the night window is dwell at the earlier fix's
  position. Sparse data is fine: a wireless unit's 20:00 and 08:00 fixes at the
  same place give a whole night of dwell. Pairs more than ``max_gap_s`` apart
  say nothing (the car may have left and come back).
- **moved**: pairs at least ``min_step_m`` apart at ``min_speed_mps`` or more
  add their distance to the night's driving (parked wander of 3-15 m and urban
  jumps at walking pace do not).

A night's dwell is kept as at most ``max_spots`` spots (positions merged within
``spot_radius_m``, most dwell first); a night is *observed* when it holds at
least ``min_dwell_s``. Nights are closed when a later fix passes the night's
end; a :class:`Tick` closes one only when no fix could still add to it (past
its end and ``max_gap_s`` after the last fix), so the result never depends on
when ticks arrive.

:func:`places_of` clusters closed nights into places by dwell: the resident
area of ``DOMAIN.md`` is a place holding at least 50 % of night dwell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import msgspec

from cloud.risk.geo import CHINA_TZ, china_time

_M_PER_DEG = 6_371_008.8 * math.pi / 180.0


def near_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Metres between two points, equirectangular: within 0.1 % of the great circle up to
    ~100 km, and several times cheaper than ``geo.distance_m``; for per-fix checks."""
    x = (lon2 - lon1) * math.cos(math.radians((lat1 + lat2) * 0.5))
    return _M_PER_DEG * math.hypot(x, lat2 - lat1)


class DwellParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How night dwell is measured (the night window is DOMAIN.md's; the rest are ours)."""

    night_start_hour: int = 22
    night_end_hour: int = 6
    spot_radius_m: float = 300.0  # parked wander 3-15 m, urban jumps 50-300 m
    min_speed_mps: float = 1.5  # below this implied speed a pair is parked, above it moving
    min_step_m: float = 30.0  # shorter steps never count as driving
    max_gap_s: float = 14 * 3600.0  # a wireless unit waking twice a day still counts
    max_spots: int = 3
    min_dwell_s: float = 2 * 3600.0  # a quarter of the night; a night with less is unobserved

    def __post_init__(self) -> None:
        if not 0 <= self.night_end_hour < self.night_start_hour <= 23:
            raise ValueError("the night window must cross midnight (end hour < start hour)")
        if self.max_gap_s > 16 * 3600 or self.max_spots < 1:
            raise ValueError("max_gap_s must be <= 16 h and max_spots >= 1")


class Spot(msgspec.Struct, frozen=True, gc=False, array_like=True):
    lat: float
    lon: float
    dwell_s: float


class Night(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """A closed night: its key (the evening's China date), dwell spots, driving."""

    night: str
    spots: tuple[Spot, ...]  # most dwell first
    moved_m: float = 0.0

    @property
    def dwell_s(self) -> float:
        return sum(s.dwell_s for s in self.spots)

    @property
    def main(self) -> Spot:
        return self.spots[0]


class NightTally(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """The night being tallied and the last fix seen (all times UTC)."""

    prev_time: datetime | None = None
    prev_lat: float = 0.0
    prev_lon: float = 0.0
    night: str = ""  # key of the current window ("" before the first fix)
    start: datetime | None = None
    end: datetime | None = None
    spots: tuple[Spot, ...] = ()
    moved_m: float = 0.0


def window_of(t: datetime, start_hour: int, end_hour: int) -> tuple[str, datetime, datetime]:
    """The night window containing ``t``, or the next one: (key, start, end) in UTC.

    The window runs from ``start_hour`` to ``end_hour`` China time across midnight;
    its key is the evening's date, as ``geo.night_of`` gives it.
    """
    local = china_time(t)
    day = local.date()
    if local.hour < end_hour:
        day -= timedelta(days=1)
    start = datetime(day.year, day.month, day.day, start_hour, tzinfo=CHINA_TZ)
    end = datetime(day.year, day.month, day.day, end_hour, tzinfo=CHINA_TZ) + timedelta(days=1)
    return day.isoformat(), start.astimezone(UTC), end.astimezone(UTC)


def touches_night(a: datetime, b: datetime, start_hour: int, end_hour: int) -> bool:
    """Whether the interval [a, b] (b >= a) overlaps a night window."""
    _, start, _ = window_of(a, start_hour, end_hour)
    return a >= start or b > start


def night_end(key: str, p: DwellParams) -> datetime:
    """When the night ``key`` ends (UTC): the time signals about a closed night carry."""
    day = date.fromisoformat(key) + timedelta(days=1)
    return datetime(day.year, day.month, day.day, p.night_end_hour, tzinfo=CHINA_TZ).astimezone(UTC)


def nights_between(a: str, b: str) -> int:
    """Whole nights from night ``a`` to night ``b`` (keys are ISO dates)."""
    return (date.fromisoformat(b) - date.fromisoformat(a)).days


def add_dwell(
    spots: tuple[Spot, ...], lat: float, lon: float, secs: float, p: DwellParams
) -> tuple[Spot, ...]:
    """Add ``secs`` of dwell at a position: merged into the first spot in range, or new."""
    best = -1
    for i, s in enumerate(spots):  # most dwell first: usually the first one matches
        if near_m(s.lat, s.lon, lat, lon) <= p.spot_radius_m:
            best = i
            break
    if best < 0:
        merged = [*spots, Spot(lat, lon, secs)]
    else:
        s = spots[best]
        w = s.dwell_s + secs
        moved = Spot((s.lat * s.dwell_s + lat * secs) / w, (s.lon * s.dwell_s + lon * secs) / w, w)
        merged = [*spots[:best], moved, *spots[best + 1 :]]
    merged.sort(key=lambda s: -s.dwell_s)
    return tuple(merged[: p.max_spots])


def _advance(t: NightTally, after: datetime, p: DwellParams) -> NightTally:
    key, start, end = window_of(after, p.night_start_hour, p.night_end_hour)
    return msgspec.structs.replace(t, night=key, start=start, end=end, spots=(), moved_m=0.0)


def tally_fix(
    t: NightTally, time: datetime, lat: float, lon: float, p: DwellParams
) -> tuple[NightTally, list[Night]]:
    """Account the interval since the previous fix; return the nights it closed (0-2)."""
    closed: list[Night] = []
    if t.start is None or t.end is None:
        t = _advance(t, time, p)
    elif time <= t.start:  # before the night: only the last fix moves on
        return msgspec.structs.replace(t, prev_time=time, prev_lat=lat, prev_lon=lon), closed
    else:
        key, start, end, spots, moved = t.night, t.start, t.end, t.spots, t.moved_m
        prev = t.prev_time if t.prev_time is not None else time
        gap = (time - prev).total_seconds()
        usable = 0 < gap <= p.max_gap_s
        d = near_m(t.prev_lat, t.prev_lon, lat, lon) if usable else 0.0
        while time > start:
            overlap = (min(time, end) - max(prev, start)).total_seconds()
            if usable and overlap > 0:
                if d <= p.spot_radius_m and d / gap < p.min_speed_mps:
                    spots = add_dwell(spots, t.prev_lat, t.prev_lon, overlap, p)
                elif d >= p.min_step_m and d / gap >= p.min_speed_mps:
                    moved += d * overlap / gap  # a pair across the window's edge: pro rata
            if time < end:
                break
            if spots or moved:
                closed.append(Night(key, spots, moved))
            key, start, end = window_of(
                end if usable else time, p.night_start_hour, p.night_end_hour
            )
            spots, moved = (), 0.0
        return msgspec.structs.replace(
            t, night=key, start=start, end=end, spots=spots, moved_m=moved,
            prev_time=time, prev_lat=lat, prev_lon=lon,
        ), closed  # fmt: skip
    return msgspec.structs.replace(t, prev_time=time, prev_lat=lat, prev_lon=lon), closed


def tally_tick(t: NightTally, time: datetime, p: DwellParams) -> tuple[NightTally, Night | None]:
    """Close the current night once no fix can add to it any more: past its end, and
    past the last fix + ``max_gap_s`` (a later fix would be too far from it to count)."""
    if t.end is None or t.prev_time is None:
        return t, None
    if time < t.end or time < t.prev_time + timedelta(seconds=p.max_gap_s):
        return t, None
    night = Night(t.night, t.spots, t.moved_m) if t.spots or t.moved_m else None
    return _advance(t, time, p), night


@dataclass(slots=True)
class Place:
    """A cluster of night dwell (not persisted: recomputed from nights when needed)."""

    lat: float
    lon: float
    dwell_s: float
    nights: set[str]


def places_of(nights: Iterable[Night], radius_m: float) -> tuple[list[Place], float]:
    """Cluster the nights' spots within ``radius_m`` by dwell; (places by dwell, total dwell).

    Deterministic leader clustering: spots in order of dwell join the first
    place whose dwell-weighted centre is within ``radius_m``, else start one.
    Cost is O(spots x places); callers run it once per closed night, not per fix.
    """
    spots = sorted(
        ((s, n.night) for n in nights for s in n.spots),
        key=lambda p: (-p[0].dwell_s, p[1], p[0].lat, p[0].lon),
    )
    places: list[Place] = []
    total = 0.0
    for s, key in spots:
        total += s.dwell_s
        for pl in places:
            if near_m(pl.lat, pl.lon, s.lat, s.lon) <= radius_m:
                w = pl.dwell_s + s.dwell_s
                pl.lat = (pl.lat * pl.dwell_s + s.lat * s.dwell_s) / w
                pl.lon = (pl.lon * pl.dwell_s + s.lon * s.dwell_s) / w
                pl.dwell_s = w
                pl.nights.add(key)
                break
        else:
            places.append(Place(s.lat, s.lon, s.dwell_s, {key}))
    places.sort(key=lambda pl: (-pl.dwell_s, pl.lat, pl.lon))
    return places, total


class Home(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """A resident place: centre, share of the night dwell, nights seen there."""

    lat: float
    lon: float
    share: float
    nights: int


@dataclass(frozen=True, slots=True)
class Learned:
    homes: tuple[Home, ...]  # the resident place first, then secondary places
    first_night: str  # first night the resident place was used
    observed: int  # nights considered


def resident_places(
    nights: Sequence[Night], radius_m: float, share: float, secondary_share: float, most: int
) -> Learned | None:
    """The place holding ``share`` of the nights' dwell, with up to ``most - 1`` places
    holding ``secondary_share`` each; None when no place holds ``share``."""
    places, total = places_of(nights, radius_m)
    if total <= 0 or places[0].dwell_s / total < share:
        return None
    homes = tuple(
        Home(p.lat, p.lon, round(p.dwell_s / total, 4), len(p.nights))
        for i, p in enumerate(places[:most])
        if i == 0 or p.dwell_s / total >= secondary_share
    )
    return Learned(homes, min(places[0].nights), len(nights))


def nearest_m(lat: float, lon: float, points: Sequence[tuple[float, float]]) -> float | None:
    """Metres from a position to the nearest of ``points`` (None when there are none)."""
    return min((near_m(lat, lon, a, b) for a, b in points), default=None)
