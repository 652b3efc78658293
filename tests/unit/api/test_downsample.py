"""Track thinning: budget, shape, forced points, and the metric tolerance."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from cloud.api.downsample import project_m, simplify_indices
from protocols.plausibility import haversine_m


def _line(n: int, lat0: float = 31.2, lon0: float = 121.4, step: float = 1e-4) -> tuple[
        list[float], list[float]]:  # fmt: skip
    return [lat0] * n, [lon0 + i * step for i in range(n)]


def test_short_tracks_come_back_whole() -> None:
    lats, lons = _line(10)
    assert simplify_indices(lats, lons, 10) == list(range(10))
    assert simplify_indices(lats[:2], lons[:2], 2) == [0, 1]
    assert simplify_indices([], [], 5) == []


def test_a_straight_line_keeps_only_its_ends() -> None:
    lats, lons = _line(1000)
    assert simplify_indices(lats, lons, 50) == [0, 999]


def test_an_l_shape_keeps_its_corner() -> None:
    lats, lons = _line(500)
    lats += [31.2 + i * 1e-4 for i in range(1, 501)]
    lons += [lons[-1]] * 500
    kept = simplify_indices(lats, lons, 3)
    assert kept == [0, 499, 999]


def test_budget_is_respected_and_first_and_last_kept() -> None:
    rng = random.Random(7)
    lats = [31.0 + rng.uniform(-0.05, 0.05) for _ in range(5000)]
    lons = [121.0 + rng.uniform(-0.05, 0.05) for _ in range(5000)]
    for budget in (2, 3, 17, 400):
        kept = simplify_indices(lats, lons, budget)
        assert len(kept) == budget
        assert kept[0] == 0
        assert kept[-1] == 4999
        assert kept == sorted(set(kept))


def test_forced_points_are_kept_even_on_a_straight_line() -> None:
    lats, lons = _line(1000)
    kept = simplify_indices(lats, lons, 10, keep=[100, 200, 200, 5000, -3])
    assert kept == [0, 100, 200, 999]


def test_forced_points_beyond_the_budget_are_still_kept() -> None:
    lats, lons = _line(100)
    kept = simplify_indices(lats, lons, 2, keep=range(0, 100, 10))
    assert kept == [*range(0, 100, 10), 99]


def test_the_kept_points_stay_close_to_the_dropped_ones() -> None:
    # a zig-zag of 20 m amplitude every 50 points along 3 km: with a budget that holds
    # every corner, every dropped point lies within a metre of the kept polyline
    n = 1001
    lons = [121.4 + i * 3e-5 for i in range(n)]
    lats = [31.2 + (1.8e-4 if (i // 50) % 2 else 0.0) for i in range(n)]
    kept = simplify_indices(lats, lons, 200)
    assert len(kept) < 200  # the straight parts needed nothing
    x, y = project_m(lats, lons)
    for a, b in itertools.pairwise(kept):
        for i in range(a + 1, b):
            dx, dy = x[b] - x[a], y[b] - y[a]
            t = max(0.0, min(1.0, ((x[i] - x[a]) * dx + (y[i] - y[a]) * dy) / (dx * dx + dy * dy)))
            assert math.hypot(x[i] - x[a] - t * dx, y[i] - y[a] - t * dy) < 1.0


def test_tolerance_drops_parked_jitter() -> None:
    rng = random.Random(3)
    lats = [31.2 + rng.gauss(0, 3e-5) for _ in range(300)]  # a few metres of wander
    lons = [121.4 + rng.gauss(0, 3e-5) for _ in range(300)]
    assert len(simplify_indices(lats, lons, 300, tolerance_m=50.0)) == 2
    assert len(simplify_indices(lats, lons, 300)) == 300


def test_projection_is_metric() -> None:
    x, y = project_m([31.2, 31.21], [121.4, 121.41])
    planar = math.hypot(x[1] - x[0], y[1] - y[0])
    assert planar == pytest.approx(haversine_m(31.2, 121.4, 31.21, 121.41), rel=1e-3)


@pytest.mark.parametrize(("budget", "tolerance"), [(1, 0.0), (10, -1.0), (10, math.inf)])
def test_bad_arguments(budget: int, tolerance: float) -> None:
    lats, lons = _line(10)
    with pytest.raises(ValueError, match=r"max_points|tolerance"):
        simplify_indices(lats, lons, budget, tolerance_m=tolerance)
    with pytest.raises(ValueError, match="longitudes"):
        simplify_indices(lats, lons[:5], 10)
