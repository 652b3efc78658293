"""GeoJSON region features: codes, levels, names, parents, skips with reasons, repair."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.refdata.gcj02 import gcj02_geometry
from cloud.refdata.regions import (
    RegionRecord,
    Skipped,
    find_adcode,
    level_from_adcode,
    parse_level,
    read_feature_collection,
    record_from_feature,
)
from protocols.errors import RegionError

SQUARE = {
    "type": "Polygon",
    "coordinates": [[[118, 32], [119, 32], [119, 33], [118, 33], [118, 32]]],
}
BOWTIE = {
    "type": "Polygon",
    "coordinates": [[[118, 32], [119, 33], [119, 32], [118, 33], [118, 32]]],
}


def feature(props: dict[str, Any], geometry: Any = SQUARE, **extra: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": geometry, **extra}


def record(props: dict[str, Any], **kw: Any) -> RegionRecord:
    got = record_from_feature(0, feature(props), source="t.geojson", **kw)
    assert isinstance(got, RegionRecord), got
    return got


def test_datav_properties() -> None:
    r = record(
        {
            "adcode": 320100,
            "name": "南京市",
            "level": "city",
            "center": [118.7, 32.0],
            "parent": {"adcode": 320000},
            "childrenNum": 11,
        }
    )
    assert (r.adcode, r.level, r.name, r.parent, r.source) == (
        "320100",
        "city",
        "南京市",
        "320000",
        "t.geojson",
    )
    assert r.repair is None


def test_datav_district_of_a_municipality_keeps_its_parent() -> None:
    r = record(
        {"adcode": 110105, "name": "朝阳区", "level": "district", "parent": {"adcode": 110000}}
    )
    assert (r.level, r.parent) == ("district", "110000")


def test_plain_file_levels_and_prefecture_word() -> None:
    r = record({"adcode": "320100", "name": "南京市", "level": "prefecture"})
    assert r.level == "city"
    assert r.parent == "320000"  # a city's province comes from its code
    assert record({"adcode": "320000", "name": "江苏省"}).level == "province"
    assert record({"adcode": "320102", "name": "玄武区"}).level == "district"


def test_level_override() -> None:
    assert record({"adcode": "110000", "name": "北京市"}, level="city").level == "city"


@pytest.mark.parametrize(
    ("props", "code"),
    [
        ({"CODE": 330100, "NAME": "杭州市"}, "330100"),
        ({"区划代码": "330100", "名称": "杭州市"}, "330100"),
        ({"gb": "156330100"}, None),  # nine digits are not a division code
        ({"PAC": 330106}, "330106"),
        ({"统计用区划代码": "330106000000"}, "330106"),  # 12-digit statistical code
        ({"province_adcode": 330000, "city_adcode": 330100, "district_adcode": 330106}, "330106"),
        ({"foo": "bar", "value": "440300"}, "440300"),  # any six-digit division code
        ({"value": "990000"}, None),  # 99 is no province
        ({"parent": 330000}, None),  # a parent is not the feature's own code
    ],
)
def test_code_detection(props: dict[str, Any], code: str | None) -> None:
    assert find_adcode(feature(props), props) == code


def test_feature_id_as_last_resort() -> None:
    f = feature({"name": "x"}, id=510100)
    assert find_adcode(f, f["properties"]) == "510100"


def test_missing_adcode_names_the_feature() -> None:
    got = record_from_feature(7, feature({"name": "某地", "type": "x"}), source="t")
    assert isinstance(got, Skipped)
    assert got.reason == "missing_adcode"
    assert got.where == "feature 7 (某地)"
    got = record_from_feature(3, feature({"kind": 1, "size": "big"}), source="t")
    assert isinstance(got, Skipped)
    assert "kind=1" in got.where


def test_datav_nine_dash_line_and_country_are_skipped() -> None:
    jd = feature(
        {"adcode": "100000_JD", "name": ""},
        {"type": "MultiLineString", "coordinates": [[[110, 10], [111, 11]]]},
    )
    got = record_from_feature(34, jd, source="t")
    assert isinstance(got, Skipped)
    assert got.reason == "not_a_region"
    got = record_from_feature(0, feature({"adcode": 100000, "level": "country"}), source="t")
    assert isinstance(got, Skipped)
    assert got.reason == "not_a_region"


def test_bad_geometry_is_skipped_with_its_reason() -> None:
    got = record_from_feature(0, feature({"adcode": 320100}, None), source="t")
    assert isinstance(got, Skipped)
    assert got.reason == "missing_geometry"
    line = {"type": "LineString", "coordinates": [[118, 32], [119, 33]]}
    got = record_from_feature(0, feature({"adcode": 320100}, line), source="t")
    assert isinstance(got, Skipped)
    assert got.reason == "not_polygonal"
    far = {"type": "Polygon", "coordinates": [[[118, 32], [219, 32], [119, 33], [118, 32]]]}
    got = record_from_feature(0, feature({"adcode": 320100}, far), source="t")
    assert isinstance(got, Skipped)
    assert got.reason == "coordinate_out_of_range"


def test_invalid_polygon_is_repaired_and_says_so() -> None:
    got = record_from_feature(0, feature({"adcode": 320100}, BOWTIE), source="t")
    assert isinstance(got, RegionRecord)
    assert got.geometry.is_valid
    assert got.repair is not None
    assert got.repair.problem.startswith("Self-intersection")


def test_gcj02_coordinates_are_converted_before_validation() -> None:
    plain = record({"adcode": 320100})
    shifted = record({"adcode": 320100}, coord_map=gcj02_geometry)
    dx = plain.geometry.bounds[0] - shifted.geometry.bounds[0]
    dy = plain.geometry.bounds[1] - shifted.geometry.bounds[1]
    assert 0.001 < abs(dx) < 0.01
    assert 0.0005 < abs(dy) < 0.01


def test_collection_errors_and_lazy_records() -> None:
    with pytest.raises(RegionError, match="not_feature_collection"):
        read_feature_collection({"type": "Feature"}, source="t")
    doc = {"type": "FeatureCollection", "features": [feature({"adcode": 320000}), "junk"]}
    items = list(read_feature_collection(doc, source="t"))
    assert isinstance(items[0], RegionRecord)
    assert isinstance(items[1], Skipped)
    assert items[1].reason == "not_a_feature"


def test_level_words() -> None:
    assert parse_level("Prefecture") == "city"
    assert parse_level("county") == "district"
    assert parse_level("省") == "province"
    assert parse_level("street") is None
    assert level_from_adcode("440000") == "province"
    assert level_from_adcode("440300") == "city"
    assert level_from_adcode("440305") == "district"
