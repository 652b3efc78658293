"""Thinning a track for the map while keeping its shape. Pure code (numpy).

Douglas-Peucker in metres, ranked: the points are projected onto a local
plane (equirectangular around the track's mean latitude, metres; errors far
below a parked car's GNSS wander over the few hundred kilometres a 31-day
track spans at most); the kept points start as the first, the last and the
``keep`` indices (stay boundaries); then, again and again, the point farthest
from the chord of the segment it lies in is added, the farthest of all
segments first, until ``max_points`` are kept or every remaining point lies
within ``tolerance_m`` (at least 1 cm) of its chord. So the result for ``max_points = k`` is
the Douglas-Peucker simplification with the smallest tolerance that fits in
``k`` points: corners survive, straight runs and parked jitter go.

The forced points are kept even when there are more of them than
``max_points`` (a month of stays at most doubles a small budget); the answer
says which indices were kept, in order, so the caller picks its own rows.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

EARTH_RADIUS_M = 6_371_008.8
NOISE_M = 0.01  # deviations below a centimetre are rounding, not shape: never worth a point

FloatArray = NDArray[np.float64]


def project_m(lats: Sequence[float], lons: Sequence[float]) -> tuple[FloatArray, FloatArray]:
    """Local metric coordinates ``(x, y)`` of WGS-84 points (equirectangular, mean latitude)."""
    lat = np.asarray(lats, dtype=np.float64)
    lon = np.asarray(lons, dtype=np.float64)
    if lat.size == 0:
        return lat, lon
    lat0 = math.radians(float(lat.mean()))
    lon0 = float(lon[0])
    dlon = (lon - lon0 + 180.0) % 360.0 - 180.0  # a track crossing the antimeridian stays whole
    x = np.radians(dlon) * EARTH_RADIUS_M * math.cos(lat0)
    y = np.radians(lat) * EARTH_RADIUS_M
    return x, y


def _farthest(x: FloatArray, y: FloatArray, a: int, b: int) -> tuple[float, int]:
    """The distance and index of the point strictly inside a..b farthest from the chord a-b."""
    if b - a < 2:
        return -1.0, -1
    px, py = x[a + 1 : b], y[a + 1 : b]
    ax, ay, bx, by = x[a], y[a], x[b], y[b]
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    if length2 == 0.0:
        dist = np.hypot(px - ax, py - ay)
    else:
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0.0, 1.0)
        dist = np.hypot(px - (ax + t * dx), py - (ay + t * dy))
    i = int(np.argmax(dist))
    return float(dist[i]), a + 1 + i


def simplify_indices(
    lats: Sequence[float],
    lons: Sequence[float],
    max_points: int,
    *,
    keep: Iterable[int] = (),
    tolerance_m: float = 0.0,
) -> list[int]:
    """Indices of the points to keep, ascending (see the module docstring).

    Keeps everything when there are at most ``max_points`` points and no
    tolerance. ``keep`` indices outside the track are ignored.
    """
    n = len(lats)
    if len(lons) != n:
        raise ValueError(f"{n} latitudes but {len(lons)} longitudes")
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2 (got {max_points})")
    if tolerance_m < 0 or not math.isfinite(tolerance_m):
        raise ValueError(f"tolerance_m must be a finite number >= 0 (got {tolerance_m})")
    if n <= 2 or (n <= max_points and tolerance_m == 0.0):
        return list(range(n))
    x, y = project_m(lats, lons)
    forced = sorted({0, n - 1} | {i for i in keep if 0 <= i < n})
    kept = set(forced)
    heap: list[tuple[float, int, int, int]] = []  # (-distance, index, a, b)
    for a, b in itertools.pairwise(forced):
        dist, i = _farthest(x, y, a, b)
        if i >= 0:
            heapq.heappush(heap, (-dist, i, a, b))
    floor = max(tolerance_m, NOISE_M)
    while heap and len(kept) < max_points:
        neg, i, a, b = heapq.heappop(heap)
        if -neg <= floor:
            break
        kept.add(i)
        for lo, hi in ((a, i), (i, b)):
            dist, j = _farthest(x, y, lo, hi)
            if j >= 0:
                heapq.heappush(heap, (-dist, j, lo, hi))
    return sorted(kept)
