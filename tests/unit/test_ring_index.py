"""protocols.ring_index and protocols.geodesy: the grid walk is a ray cast; distances geodesic."""

from __future__ import annotations

import itertools
import math
import random
from functools import cache
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from protocols.geodesy import LocalScale, degree_box, distance_m
from protocols.geojson_rings import PolygonRings, polygon_groups
from protocols.ring_index import RingIndex

GEOD = Geod(ellps="WGS84")
Ring = list[tuple[float, float]]


def winding(ring: Ring, x: float, y: float) -> int:
    """The plain O(n) ray cast, counting signed crossings (the reference)."""
    w = 0
    for (ax, ay), (bx, by) in itertools.pairwise(ring):
        if (ay > y) != (by > y) and x < (bx - ax) * (y - ay) / (by - ay) + ax:
            w += 1 if by > ay else -1
    return w


def on_an_edge(rings: list[Ring], x: float, y: float) -> bool:
    """Within 1e-9 of an edge: a boundary point, which either answer may claim."""
    for ring in rings:
        for (ax, ay), (bx, by) in itertools.pairwise(ring):
            dx, dy = bx - ax, by - ay
            length2 = dx * dx + dy * dy
            t = (
                0.0
                if length2 == 0
                else min(1.0, max(0.0, ((x - ax) * dx + (y - ay) * dy) / length2))
            )
            if math.hypot(x - ax - t * dx, y - ay - t * dy) <= 1e-9:
                return True
    return False


def counter_clockwise(ring: Ring) -> Ring:
    area = sum(ax * by - bx * ay for (ax, ay), (bx, by) in itertools.pairwise(ring))
    return ring if area >= 0 else ring[::-1]


def reference(rings: list[Ring], x: float, y: float) -> bool:
    holes = sum(winding(counter_clockwise(h), x, y) for h in rings[1:])
    return winding(rings[0], x, y) != 0 and holes == 0


def closed(points: list[tuple[float, float]]) -> Ring:
    return [*points, points[0]]


coordinate = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
messy_ring = st.lists(st.tuples(coordinate, coordinate), min_size=3, max_size=40).map(closed)


@settings(max_examples=150, deadline=None)
@given(
    rings=st.lists(messy_ring, min_size=1, max_size=3),
    points=st.lists(st.tuples(coordinate, coordinate), min_size=1, max_size=60),
)
def test_grid_walk_equals_the_full_ray_cast(
    rings: list[Ring], points: list[tuple[float, float]]
) -> None:
    """Any rings, self-intersecting or not: the exterior's winding, the holes' summed."""
    index = RingIndex(rings)
    for x, y in points:
        if not on_an_edge(rings, x, y):
            assert index.contains(x, y) is reference(rings, x, y), (x, y)


def test_a_sliver_thinner_than_any_normal_float_still_indexes() -> None:
    """Found by the property test above: width / height overflowed to infinity."""
    sliver = closed([(0.0, 0.0), (0.0, 0.0), (1.0, 5e-324)])
    index = RingIndex([sliver])
    assert index.contains(0.5, 0.5) is False
    assert index.contains(2.0, 0.0) is False


def test_symmetric_shapes_do_not_put_grid_corners_on_edges() -> None:
    bowtie = closed([(0, 0), (2, 2), (2, 0), (0, 2)])
    index = RingIndex([bowtie])
    assert [index.contains(*p) for p in ((0.5, 1), (1.5, 1), (1, 0.5), (1, 1.5))] == [
        True,
        True,
        False,
        False,
    ]
    square = closed([(118.0, 32.0), (119.0, 32.0), (119.0, 33.0), (118.0, 33.0)])
    rng = random.Random(2)
    index = RingIndex([square])
    for _ in range(2_000):
        x, y = rng.uniform(117.9, 119.1), rng.uniform(31.9, 33.1)
        assert index.contains(x, y) is reference([square], x, y)


def test_winding_reads_a_doubly_wound_ring_as_inside() -> None:
    """A ring going round twice (as a boundary file's slip can): GEOS keeps it, so do we."""
    twice = closed([(0, 0), (4, 0), (4, 4), (0, 4), (0, 0), (3, 1), (3, 3), (1, 3), (1, 1)])
    index = RingIndex([twice])
    assert index.contains(2.0, 2.0)  # wound twice: even-odd would call it outside
    assert index.contains(0.5, 0.5)


def test_holes_whatever_their_orientation() -> None:
    outer = closed([(0, 0), (10, 0), (10, 10), (0, 10)])
    hole = closed([(4, 4), (6, 4), (6, 6), (4, 6)])
    overlapping = closed([(5, 5), (5, 7), (7, 7), (7, 5)])  # clockwise
    index = RingIndex([outer, hole, overlapping])
    assert index.contains(1, 1)
    assert not index.contains(4.5, 4.5)
    assert not index.contains(5.5, 5.5)  # in both holes: they must not cancel out
    assert not index.contains(6.5, 6.5)
    assert not index.contains(11, 5)


def test_distance_to_edges_is_geodesic() -> None:
    square = closed([(118.0, 32.0), (119.0, 32.0), (119.0, 33.0), (118.0, 33.0)])
    index = RingIndex([square])
    rng = random.Random(4)
    for _ in range(200):
        metres = 10 ** rng.uniform(0, 5)
        lon, lat, _ = GEOD.fwd(119.0, rng.uniform(32.2, 32.8), 90.0, metres)
        d = index.distance_m(lon, lat)
        assert d == pytest.approx(metres, rel=2e-4, abs=0.01)
        assert index.distance_m(lon, lat, within=metres * 1.01) == pytest.approx(d)
        assert index.distance_m(lon, lat, within=metres * 0.98) == math.inf


def test_vincenty_matches_pyproj() -> None:
    rng = random.Random(1)
    for _ in range(2_000):
        lon, lat = rng.uniform(70, 140), rng.uniform(-10, 60)
        metres = 10 ** rng.uniform(0, 6.5)
        x, y, _ = GEOD.fwd(lon, lat, rng.uniform(0, 360), metres)
        assert distance_m(lon, lat, x, y) == pytest.approx(metres, abs=1e-3)
    assert distance_m(1.0, 2.0, 1.0, 2.0) == 0.0
    assert distance_m(0.0, 0.0, 179.9, 0.1) == pytest.approx(19_992_082, rel=1e-3)  # antipodal


def test_degree_box_holds_every_point_within_reach() -> None:
    rng = random.Random(3)
    for _ in range(500):
        lon, lat = rng.uniform(70, 140), rng.uniform(0, 70)
        metres = 10 ** rng.uniform(0, 5.5)
        x, y, _ = GEOD.fwd(lon, lat, rng.uniform(0, 360), metres)
        x0, y0, x1, y1 = degree_box(lon, lat, metres)
        assert x0 <= x <= x1
        assert y0 <= y <= y1
    scale = LocalScale.at(45.0)
    assert scale.per_deg_lat == pytest.approx(111_132, rel=1e-4)
    assert scale.per_deg_lon == pytest.approx(78_847, rel=1e-4)


# ---------------------------------------------------------------- cell classes, real shapes

REGIONS = Path(__file__).parents[2].parent / "shared" / "data" / "regions"


@cache
def province_polygons() -> dict[str, list[PolygonRings]]:
    doc = msgspec.json.decode((REGIONS / "cn_provinces.geojson").read_bytes())
    return {
        f["properties"]["adcode"]: [p for group in polygon_groups(f["geometry"]) for p in group]
        for f in doc["features"]
    }


def near_the_border(rings: list[Ring], rng: random.Random, n: int) -> list[tuple[float, float]]:
    """Points 1 m to 5 km off random vertices, and on the way between neighbouring vertices."""
    vertices = [v for ring in rings for v in ring]
    out = []
    for _ in range(n):
        k = rng.randrange(len(vertices) - 1)
        (ax, ay), (bx, by) = vertices[k], vertices[k + 1]
        t, off = rng.random(), 10 ** rng.uniform(-5, -1.3)
        out.append((ax + t * (bx - ax) + rng.uniform(-off, off), ay + t * (by - ay)))
    return out


@pytest.mark.parametrize("code", ["330000", "150000", "640000", "130000"])
def test_cell_classes_answer_as_the_full_ray_cast_on_real_borders(code: str) -> None:
    """Zhejiang's islands, Inner Mongolia, Ningxia (invalid ring), Hebei (a hole: Beijing)."""
    rng = random.Random(code)
    fast = slow = 0
    for rings in province_polygons()[code]:
        index = RingIndex(rings)
        x0, y0, x1, y1 = index.bounds
        points = [(rng.uniform(x0, x1), rng.uniform(y0, y1)) for _ in range(300)]
        points += near_the_border(rings, rng, 300)
        for x, y in points:
            if on_an_edge(rings, x, y):
                continue
            assert index.contains(x, y) is reference(rings, x, y), (code, x, y)
            inside_box = x0 <= x <= x1 and y0 <= y <= y1
            if inside_box and index._class[index._row(y) * index._nx + index._col(x)] != 2:
                fast += 1
            else:
                slow += 1
    assert fast > 0  # both paths taken: a cell's class byte, and the walk in a border cell
    assert slow > 0


def test_most_points_of_a_large_province_answer_from_a_class_byte() -> None:
    (rings,) = province_polygons()["150000"]  # Inner Mongolia: one polygon, 4,015 vertices
    index = RingIndex(rings)
    classes = [index._class.count(k) for k in (0, 1, 2)]
    assert sum(classes) == index._nx * index._ny
    assert classes[2] < sum(classes) / 5  # 395 of 4,032 cells have edges
    assert classes[1] > 0
    assert classes[0] > 0
