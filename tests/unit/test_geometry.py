"""protocols.geometry: GeoJSON loading and repair, geodesic circles, metric margins.

Boundary data is the real China file set in ../shared/data/regions (see its
PROVENANCE.md); it is read in place, never copied into the project.
"""

from __future__ import annotations

import json
import math
import random
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import shapely
from pyproj import Transformer

from protocols.errors import RegionError
from protocols.geometry import (
    GEOD,
    LoadedFeature,
    MetricArea,
    Polygonal,
    circle,
    distance_m,
    grow,
    load_feature_collection,
    shape_from_geojson,
)
from protocols.shape_index import ShapeIndex

REGIONS = Path(__file__).parents[2].parent / "shared" / "data" / "regions"

# Invalid as shipped (PROVENANCE.md: 5 of 34 provinces, 5 of 372 prefectures).
INVALID_PROVINCES = {"210000", "350000", "450000", "620000", "640000"}
INVALID_PREFECTURES = {"210200", "350900", "450700", "621000", "640400"}


@cache
def boundaries(name: str) -> tuple[list[LoadedFeature], ShapeIndex]:
    features, problems = load_feature_collection((REGIONS / name).read_bytes())
    assert problems == []
    return features, ShapeIndex([f.id for f in features], [f.geometry for f in features])


def feature(name: str, fid: str) -> LoadedFeature:
    return next(f for f in boundaries(name)[0] if f.id == fid)


def square(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


# ---------------------------------------------------------------- circles


@pytest.mark.parametrize("lat", [22.0, 31.0, 45.0])
@pytest.mark.parametrize("radius_m", [1_000.0, 5_000.0, 20_000.0, 50_000.0])
def test_circle_radius_within_half_percent(lat: float, radius_m: float) -> None:
    lon = 113.0
    poly = circle(lon, lat, radius_m)
    assert poly.is_valid
    # Every vertex, and the straight lon/lat edges between them, sit at the radius.
    dense = shapely.get_coordinates(shapely.segmentize(poly, max_segment_length=0.0005))
    n = len(dense)
    _, _, dist = GEOD.inv([lon] * n, [lat] * n, dense[:, 0].tolist(), dense[:, 1].tolist())
    assert max(abs(d / radius_m - 1.0) for d in dist) < 0.005
    # Points just inside / outside, in 720 directions (edge midpoints included).
    azimuths = [i * 0.5 for i in range(720)]
    for factor, expect in ((0.99, True), (1.01, False)):
        lons, lats, _ = GEOD.fwd([lon] * 720, [lat] * 720, azimuths, [radius_m * factor] * 720)
        assert all(
            bool(shapely.intersects_xy(poly, x, y)) is expect
            for x, y in zip(lons, lats, strict=True)
        )


@pytest.mark.parametrize(
    ("lon", "lat", "radius_m"),
    [(179.99, 10.0, 5_000.0), (0.0, 89.99, 5_000.0), (110.0, 30.0, 0.0)],
)
def test_circle_unsupported(lon: float, lat: float, radius_m: float) -> None:
    with pytest.raises(RegionError) as err:
        circle(lon, lat, radius_m)
    assert err.value.reason == "circle_unsupported"


# ---------------------------------------------------------------- real boundary files


@pytest.mark.parametrize(
    ("name", "count", "invalid"),
    [
        ("cn_provinces.geojson", 34, INVALID_PROVINCES),
        ("cn_prefectures.geojson", 372, INVALID_PREFECTURES),
    ],
)
def test_real_boundaries_repaired_and_reported(name: str, count: int, invalid: set[str]) -> None:
    raw = json.loads((REGIONS / name).read_text(encoding="utf-8"))
    as_shipped = {
        f["properties"]["adcode"]
        for f in raw["features"]
        if not shapely.geometry.shape(f["geometry"]).is_valid
    }
    assert as_shipped == invalid

    features, _ = boundaries(name)
    assert len(features) == count
    assert {f.id for f in features if f.repair is not None} == invalid
    assert all(f.geometry.is_valid and not f.geometry.is_empty for f in features)
    for f in features:
        if f.repair is not None:
            assert f.repair.problem.startswith("Self-intersection")
            assert f.repair.area_after_km2 == pytest.approx(f.repair.area_before_km2, rel=1e-4)


@pytest.mark.parametrize(
    ("lon", "lat", "province", "prefecture"),
    [
        (118.7969, 32.0603, "320000", "320100"),  # Nanjing
        (121.4737, 31.2304, "310000", "310000"),  # Shanghai, People's Square
        (113.2644, 23.1291, "440000", "440100"),  # Guangzhou
        (104.0665, 30.5723, "510000", "510100"),  # Chengdu
        (87.6168, 43.8256, "650000", "650100"),  # Urumqi
        # Cities inside the repaired features:
        (121.6147, 38.9140, "210000", "210200"),  # Dalian
        (119.5479, 26.6656, "350000", "350900"),  # Ningde
        (108.6544, 21.9797, "450000", "450700"),  # Qinzhou
        (107.6434, 35.7091, "620000", "621000"),  # Qingyang
        (106.2428, 36.0160, "640000", "640400"),  # Guyuan
        (106.2309, 38.4872, "640000", "640100"),  # Yinchuan
    ],
)
def test_known_cities_land_in_their_regions(
    lon: float, lat: float, province: str, prefecture: str
) -> None:
    assert boundaries("cn_provinces.geojson")[1].hits(lon, lat) == (province,)
    assert boundaries("cn_prefectures.geojson")[1].hits(lon, lat) == (prefecture,)


# ---------------------------------------------------------------- broken input


def test_not_json_raises() -> None:
    with pytest.raises(RegionError) as err:
        load_feature_collection(b'{"type": "FeatureCollection", "features": [')
    assert err.value.reason == "malformed_json"


@pytest.mark.parametrize(
    "doc", [b"[1, 2]", {"type": "Feature"}, {"type": "FeatureCollection", "features": 3}]
)
def test_not_a_feature_collection_raises(doc: Any) -> None:
    with pytest.raises(RegionError) as err:
        load_feature_collection(doc)
    assert err.value.reason == "not_feature_collection"


def test_bad_features_are_named_and_the_rest_load() -> None:
    def feat(fid: str | None, geometry: Any) -> dict[str, Any]:
        props = {} if fid is None else {"adcode": fid, "name": f"n{fid}"}
        return {"type": "Feature", "properties": props, "geometry": geometry}

    good = square(118.0, 32.0, 119.0, 33.0)
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]}
    features = [
        feat("100000", good),
        feat("110000", None),
        feat("120000", {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}),
        feat("130000", {"type": "Polygon", "coordinates": [[0, 0], [1, 0], [1, 1], [0, 0]]}),
        feat("140000", {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]]]}),
        feat("150000", square(118.0, 32.0, 190.0, 33.0)),
        feat("160000", {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}),
        feat(None, good),
        feat("100000", good),
        "not a feature",
        feat("170000", bowtie),
        feat("180000", {"type": "Polygon", "coordinates": []}),
        feat("190000", {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, "x"]]]]}),
        {"type": "Feature", "id": 200000, "properties": None, "geometry": good},
    ]
    doc = json.dumps({"type": "FeatureCollection", "features": features}).encode()
    loaded, problems = load_feature_collection(doc)

    assert [(f.index, f.id) for f in loaded] == [(0, "100000"), (10, "170000"), (13, "200000")]
    assert loaded[0].name == "n100000"
    assert loaded[1].repair is not None
    assert loaded[1].repair.problem.startswith("Self-intersection")
    assert [(p.index, p.id, p.reason) for p in problems] == [
        (1, "110000", "missing_geometry"),
        (2, "120000", "not_polygonal"),
        (3, "130000", "malformed_geometry"),
        (4, "140000", "malformed_geometry"),
        (5, "150000", "coordinate_out_of_range"),
        (6, "160000", "malformed_geometry"),  # ring not closed
        (7, None, "missing_id"),
        (8, "100000", "duplicate_id"),
        (9, None, "not_a_feature"),
        (11, "180000", "empty_geometry"),
        (12, "190000", "malformed_geometry"),
    ]
    assert all(p.message for p in problems)


@pytest.mark.parametrize(
    ("geometry", "reason"),
    [
        ({"type": "Point", "coordinates": [0, 0]}, "not_polygonal"),
        ({"type": "GeometryCollection", "geometries": [{"type": "Point"}]}, "not_polygonal"),
        ({"type": "Polygon"}, "malformed_geometry"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, math.nan], [0, 0]]]}, None),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, True], [0, 0]]]}, None),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}, "empty_geometry"),
        ({"type": "MultiPolygon", "coordinates": [[]]}, "empty_geometry"),
    ],
)
def test_shape_rejections(geometry: dict[str, Any], reason: str | None) -> None:
    with pytest.raises(RegionError) as err:
        shape_from_geojson(geometry)
    assert err.value.reason in (
        {reason} if reason else {"malformed_geometry", "coordinate_out_of_range"}
    )


def test_repair_keeps_only_polygons_and_reports() -> None:
    # A square with a one-dimensional spike: repair drops the spike.
    spike = [[0, 0], [2, 0], [2, 2], [1, 2], [1, 3], [1, 2], [0, 2], [0, 0]]
    shape, note = shape_from_geojson({"type": "Polygon", "coordinates": [spike]})
    assert shape.is_valid
    assert shape.geom_type == "Polygon"
    assert note is not None
    assert note.area_after_km2 == pytest.approx(note.area_before_km2, rel=1e-6)

    # Overlapping parts of a MultiPolygon are unioned, not XOR-ed.
    multi = {
        "type": "MultiPolygon",
        "coordinates": [
            square(0, 0, 2, 2)["coordinates"],
            square(1, 1, 3, 3)["coordinates"],
        ],
    }
    shape, note = shape_from_geojson(multi)
    assert note is not None
    assert shape.area == pytest.approx(7.0)
    assert shapely.intersects_xy(shape, 1.5, 1.5)


def test_valid_shapes_and_collections() -> None:
    shape, note = shape_from_geojson(square(0, 0, 1, 1))
    assert note is None
    assert shape.area == pytest.approx(1.0)
    collection = {
        "type": "GeometryCollection",
        "geometries": [square(0, 0, 1, 1), square(1, 0, 2, 1), square(5, 5, 6, 6)],
    }
    shape, note = shape_from_geojson(collection)
    assert note is None
    assert shape.is_valid
    assert shape.area == pytest.approx(3.0)
    assert shapely.get_num_geometries(shape) == 2


# ---------------------------------------------------------------- metric margins


def geodesic_distance_to(area: Polygonal, lon: float, lat: float, reach_m: float) -> float:
    """Reference distance: nearest boundary point found in an azimuthal equidistant
    frame centred on the point (exact distances from the centre), measured with Geod."""
    deg = reach_m / 80_000.0 + 0.05
    near = shapely.clip_by_rect(area.boundary, lon - deg, lat - deg, lon + deg, lat + deg)
    near = shapely.segmentize(near, max_segment_length=0.005)
    aeqd = Transformer.from_pipeline(
        "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
        f"+step +proj=aeqd +lat_0={lat} +lon_0={lon} +ellps=WGS84"
    )
    local = shapely.transform(near, aeqd.transform, interleaved=False)
    nearest = shapely.shortest_line(shapely.Point(0.0, 0.0), local).coords[1]
    nlon, nlat = aeqd.transform(nearest[0], nearest[1], direction="INVERSE")
    return float(GEOD.inv(lon, lat, nlon, nlat)[2])


@pytest.mark.parametrize(
    "code", ["650000", "150000", "320000"]
)  # Xinjiang, Inner Mongolia, Jiangsu
@pytest.mark.parametrize("margin_m", [1_000.0, 5_000.0, 20_000.0])
def test_grown_area_margin_within_two_percent(code: str, margin_m: float) -> None:
    area = feature("cn_provinces.geojson", code).geometry
    metric = MetricArea.of(area)
    grown = metric.grown(margin_m)
    assert grown.is_valid
    assert metric.frame.max_scale_error < 0.006
    # Sample the grown boundary (vertices and points along its edges).
    edge = shapely.get_coordinates(shapely.segmentize(grown.boundary, 0.02))
    rng = random.Random(f"{code}-{margin_m}")
    errors = []
    for lon, lat in rng.sample(edge.tolist(), 120):
        truth = geodesic_distance_to(area, lon, lat, margin_m)
        errors.append(truth / margin_m - 1.0)
        # distance_m agrees with the reference whatever the grown boundary's own error.
        assert metric.distance_m(lon, lat) == pytest.approx(truth, rel=0.005)
    assert max(abs(e) for e in errors) < 0.02, (min(errors), max(errors))


def test_grow_and_distance_helpers() -> None:
    area, _ = shape_from_geojson(square(118.0, 32.0, 119.0, 33.0))
    assert grow(area, 0.0) is area
    grown = grow(area, 5_000.0)
    assert grown.contains(area)
    east_4km = GEOD.fwd(119.0, 32.5, 90.0, 4_000.0)
    east_6km = GEOD.fwd(119.0, 32.5, 90.0, 6_000.0)
    assert shapely.intersects_xy(grown, east_4km[0], east_4km[1])
    assert not shapely.intersects_xy(grown, east_6km[0], east_6km[1])
    assert distance_m(area, east_6km[0], east_6km[1]) == pytest.approx(6_000.0, rel=0.002)
    assert distance_m(area, 118.5, 32.5) == 0.0
