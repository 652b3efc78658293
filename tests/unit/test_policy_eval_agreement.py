"""The tracker's pure-Python region evaluator agrees with the shapely path on real boundaries.

Pure side: ``protocols.policy_eval`` on the *raw* GeoJSON as shipped (10 of the
406 shapes are invalid polygons). Shapely side: ``protocols.geometry`` as
before this evaluator existed: GEOS ``MakeValid`` repair, prepared
``intersects_xy``, and for margins a buffer in a local stereographic frame.

Tolerances, and why:

- inside / outside: none, except points within 1 cm of a border, where which
  side a point falls on is floating-point noise for both (the edges are the
  same straight lon/lat segments on both sides);
- the 5 km exit margin: points whose distance to the area is within 0.6 % of
  the margin (30 m) are not compared: that is the documented error of the
  shapely path's buffer (its projection's scale error, up to 0.55 % on the
  largest provinces), not of the evaluator, whose distances are geodesic
  (Vincenty) to the nearest edge, checked here against shapely's within 0.6 %;
- circles: shapely's circle is an inscribed polygon (0.13 % of the radius
  inside at most), so points within 0.2 % of the radius are not compared.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import pytest
import shapely
from pyproj import Geod

from cloud.risk.context import PolicyRegion
from protocols.geometry import MetricArea, circle, shape_from_geojson
from protocols.policy import Area, Circle, GeoJsonShape, Hysteresis, Policy
from protocols.policy_eval import (
    CircleRegion,
    PolygonRegion,
    compile_policy,
    distance_to_allowed_m,
    locate,
)
from protocols.policy_repair import repair_policy

REGIONS = Path(__file__).parents[2].parent / "shared" / "data" / "regions"
GEOD = Geod(ellps="WGS84")
MARGIN_M = 5_000.0
BORDER_NOISE_DEG = 1e-7  # ~1 cm
MARGIN_TOLERANCE = 0.006
# Valid shapes picked for size and shape: the largest provinces, island coasts (Zhejiang,
# Hainan, Sansha's reefs), a province with an enclave (Hebei around Beijing), cities.
VALID_PICKS = ("150000", "650000", "320000", "330000", "460000", "130000", "460300", "320100")


@cache
def features() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name in ("cn_provinces", "cn_prefectures"):
        doc = msgspec.json.decode((REGIONS / f"{name}.geojson").read_bytes())
        for feature in doc["features"]:
            found[feature["properties"]["adcode"]] = feature
    return found


@cache
def invalid_codes() -> tuple[str, ...]:
    return tuple(
        code for code, f in features().items() if not shapely.geometry.shape(f["geometry"]).is_valid
    )


def pure_region(geometry: dict[str, Any]) -> PolygonRegion:
    compiled = compile_policy(policy([Area(id="a", shape=GeoJsonShape(geometry=geometry))]))
    region = compiled.allowed.regions[0]
    assert isinstance(region, PolygonRegion)
    return region


def policy(allowed: list[Area], exit_margin_m: float = MARGIN_M) -> Policy:
    return Policy(
        policy_id="p",
        version=1,
        tenant="t",
        device_id="d",
        issued_at=datetime(2026, 1, 1, tzinfo=UTC),
        allowed=allowed,
        hysteresis=Hysteresis(exit_margin_m=exit_margin_m),
    )


def sample_points(shape: Any, rng: random.Random, n: int) -> Iterator[tuple[float, float]]:
    """Uniform over the grown bounding box, then near the border: 1 m to 20 km off a vertex."""
    x0, y0, x1, y1 = shape.bounds
    for _ in range(n):
        yield rng.uniform(x0 - 0.2, x1 + 0.2), rng.uniform(y0 - 0.2, y1 + 0.2)
    coords = shapely.get_coordinates(shape.boundary)
    for _ in range(n):
        lon, lat = coords[rng.randrange(len(coords))]
        x, y, _ = GEOD.fwd(lon, lat, rng.uniform(0, 360), 10 ** rng.uniform(0, 4.3))
        yield float(x), float(y)


def problem_spots(shape: Any) -> list[tuple[float, float]]:
    """Where a raw shape is invalid: its self-intersections and overlaps of its parts."""
    parts = list(shapely.get_parts(shape))
    spots = []
    for part in parts:
        reason = shapely.is_valid_reason(part)
        if reason.startswith("Self-intersection["):
            x, y = reason.split("[", 1)[1].rstrip("]").split()
            spots.append((float(x), float(y)))
    for i, a in enumerate(parts):
        for b in parts[i + 1 :]:
            overlap = shapely.make_valid(a).intersection(shapely.make_valid(b))
            if not overlap.is_empty:
                point = overlap.representative_point()
                spots.append((point.x, point.y))
    return spots


def test_the_data_has_the_ten_invalid_shapes() -> None:
    assert len(invalid_codes()) == 10


@pytest.mark.parametrize("code", [*VALID_PICKS, "invalid"])
def test_inside_outside_agrees_with_shapely(code: str) -> None:
    codes = invalid_codes() if code == "invalid" else (code,)
    rng = random.Random(code)
    compared = 0
    for adcode in codes:
        geometry = features()[adcode]["geometry"]
        raw = shapely.geometry.shape(geometry)
        repaired, _ = shape_from_geojson(geometry)
        shapely.prepare(repaired)
        border = repaired.boundary
        shapely.prepare(border)
        region = pure_region(geometry)
        points = list(sample_points(repaired, rng, 400))
        for sx, sy in problem_spots(raw):
            for scale in (0.0005, 0.005, 0.05):  # ~50 m, 500 m, 5 km around the defect
                points += [
                    (sx + rng.uniform(-scale, scale), sy + rng.uniform(-scale, scale))
                    for _ in range(300)
                ]
        for lon, lat in points:
            if shapely.dwithin(border, shapely.Point(lon, lat), BORDER_NOISE_DEG):
                continue
            compared += 1
            expected = bool(shapely.intersects_xy(repaired, lon, lat))
            assert region.contains(lon, lat) is expected, (adcode, lon, lat)
    assert compared >= 780 * len(codes)


@pytest.mark.parametrize("code", ["320000", "150000", "350000", "640000", "621000", "320100"])
def test_exit_margin_agrees_with_the_buffered_shape(code: str) -> None:
    geometry = features()[code]["geometry"]
    repaired, _ = shape_from_geojson(geometry)
    metric = MetricArea.of(repaired)
    grown = metric.grown(MARGIN_M)
    shapely.prepare(grown)
    compiled = compile_policy(policy([Area(id=code, shape=GeoJsonShape(geometry=geometry))]))
    rng = random.Random(code)
    compared = 0
    for lon, lat in sample_points(repaired, rng, 300):
        where = locate(compiled, lon, lat)
        if where.inside_allowed:
            continue
        ours = compiled.allowed.distance_m(lon, lat)
        theirs = metric.distance_m(lon, lat)
        assert ours == pytest.approx(theirs, rel=MARGIN_TOLERANCE, abs=1.0), (lon, lat)
        if abs(ours - MARGIN_M) <= MARGIN_M * MARGIN_TOLERANCE:
            continue
        compared += 1
        assert where.beyond_exit_margin is not bool(shapely.intersects_xy(grown, lon, lat))
    assert compared >= 100


def test_circles_agree_with_the_geodesic_polygon() -> None:
    rng = random.Random(7)
    for radius in (150.0, 2_000.0, 50_000.0):
        lon, lat = rng.uniform(100, 125), rng.uniform(20, 45)
        region = CircleRegion(lon, lat, radius)
        polygon = circle(lon, lat, radius)
        for _ in range(400):
            metres = radius * rng.uniform(0.5, 1.5)
            x, y, _ = GEOD.fwd(lon, lat, rng.uniform(0, 360), metres)
            if abs(metres - radius) <= radius * 0.002:
                continue
            assert region.contains(x, y) is bool(shapely.intersects_xy(polygon, x, y))
            assert region.distance_m(x, y) == pytest.approx(max(0.0, metres - radius), abs=0.01)


def test_a_repaired_policy_reads_the_same() -> None:
    """Signing the repaired shapes (cloud) or the raw ones gives the same verdicts."""
    areas = [
        Area(id=code, shape=GeoJsonShape(geometry=features()[code]["geometry"]))
        for code in invalid_codes()
    ]
    raw = compile_policy(policy(areas))
    repaired = repair_policy(policy(areas))
    assert len(repaired.repairs) == 10
    fixed = compile_policy(repaired.policy)
    rng = random.Random(3)
    for area in areas:
        shape = shapely.geometry.shape(area.shape.geometry)  # type: ignore[union-attr]
        for lon, lat in sample_points(shape, rng, 100):
            assert locate(raw, lon, lat) == locate(fixed, lon, lat), (area.id, lon, lat)


# ---------------------------------------------------------------- shortcuts, same answers


def test_many_parts_by_grid_and_largest_first_answer_as_every_part() -> None:
    """Hainan (hundreds of reefs) and Zhejiang (islands): the part grid and the largest-first
    order give ``any(part.contains)``."""
    rng = random.Random(8)
    for code in ("460000", "330000"):
        geometry = features()[code]["geometry"]
        region = pure_region(geometry)
        assert len(region.parts) >= 16  # the grid path
        for lon, lat in sample_points(shapely.geometry.shape(geometry), rng, 1_500):
            expected = any(p.contains(lon, lat) for p in region.parts)
            assert region.contains(lon, lat) is expected, (code, lon, lat)


def edge_like_policy(rng: random.Random, zones: int) -> Policy:
    """Shanghai, Jiangsu, Zhejiang allowed (as the edge benchmark); circles and a city forbidden."""
    allowed = [
        Area(id=code, shape=GeoJsonShape(geometry=features()[code]["geometry"]))
        for code in ("310000", "320000", "330000")
    ]
    forbidden = [
        Area(
            id=f"c{k}",
            shape=Circle(
                lon=rng.uniform(118.5, 122),
                lat=rng.uniform(29.5, 32.5),
                radius_m=rng.uniform(200, 20_000),
            ),
        )
        for k in range(zones)
    ]
    forbidden.append(Area(id="nj", shape=GeoJsonShape(geometry=features()["320100"]["geometry"])))
    return Policy(
        policy_id="p",
        version=1,
        tenant="t",
        device_id="d",
        issued_at=datetime(2026, 1, 1, tzinfo=UTC),
        allowed=allowed,
        forbidden=forbidden,
        hysteresis=Hysteresis(forbidden_margin_m=500.0),
    )


@pytest.mark.parametrize("zones", [3, 30])  # under and over the area grid's threshold
def test_policy_region_answers_as_locate(zones: int) -> None:
    """The cloud's PolicyRegion (one question at a time, last point kept) against the answers
    derived from :func:`locate`, as it computed them before: metres outside, forbidden zone."""
    rng = random.Random(zones)
    compiled = compile_policy(edge_like_policy(rng, zones))
    region = PolicyRegion(compiled)
    assert (compiled.forbidden._grid is not None) is (zones >= 16)
    shape = shapely.union_all([shapely.geometry.shape(features()[c]["geometry"]) for c in
                               ("310000", "320000", "330000", "320100")])  # fmt: skip
    points = list(sample_points(shape, rng, 100))
    points = points[:10] + points[100:]  # far outside, a point costs a scan of every edge
    for disc in compiled.forbidden.regions:  # around each circle's rim and its 500 m margin
        if isinstance(disc, CircleRegion):
            for _ in range(6):
                metres = disc.radius_m + rng.uniform(-1_000, 1_000)
                x, y, _ = GEOD.fwd(disc.lon, disc.lat, rng.uniform(0, 360), max(metres, 0.0))
                points.append((float(x), float(y)))
    for lon, lat in points + points[::-7]:
        where = locate(compiled, lon, lat)
        outside = 0.0
        if where.inside_allowed is False:
            outside = distance_to_allowed_m(compiled, lon, lat) or 0.0
        zone = min(where.forbidden_ids) if where.forbidden_ids else None
        for _ in range(2):  # asked again: the kept answer
            assert region.metres_outside_allowed(lat, lon) == outside, (lon, lat)
            assert region.forbidden_zone_at(lat, lon) == zone, (lon, lat)
        assert compiled.allowed.holds(lon, lat) is bool(compiled.allowed.containing(lon, lat))
        assert compiled.forbidden.holds(lon, lat) is bool(compiled.forbidden.containing(lon, lat))


def test_policy_region_without_areas() -> None:
    empty = PolicyRegion(compile_policy(policy([])))
    assert empty.metres_outside_allowed(31.0, 121.0) == 0.0
    assert empty.forbidden_zone_at(31.0, 121.0) is None
