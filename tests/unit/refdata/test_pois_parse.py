"""POI files: categories in English and Chinese, bad rows reported by line, the rest kept."""

from __future__ import annotations

import io

import pytest

from cloud.refdata.gcj02 import gcj02_to_wgs84
from cloud.refdata.pois import PoiRow, parse_category, parse_poi_csv, parse_poi_geojson
from protocols.plausibility import haversine_m

GOOD_AND_BAD = """category,name,lat,lon,radius_m
二押,城东二押点,32.0412,118.7843,120
pawnshop,Jinling Pawn,32.0501,118.7702,
二手车市场,南京二手车交易市场,32.0051,118.7352,300
车管所,南京车管所,31.9867,118.8234,200
拖车场,江宁拖车场,31.9533,118.8401,
停车场,某停车场,31.9000,118.8000,
tow yard,Yard B,31.9100,118.8100,
,no category,32.0,118.0,
car wash,Bubbles,32.0,118.0,
private,Swapped,118.79,32.05,
private,Text,abc,118.0,
private,Zero,0,0,
private,Huge radius,32.0,118.0,99999
private,Bad radius,32.0,118.0,wide

private,NaN,nan,118.0,
"""


def parse(text: str, **kw: object) -> tuple[list[PoiRow], list[tuple[str, str]]]:
    rows, problems = parse_poi_csv(io.StringIO(text, newline=""), **kw)  # type: ignore[arg-type]
    return rows, [(p.where, p.reason) for p in problems]


def test_good_rows_kept_bad_rows_reported_by_line() -> None:
    rows, problems = parse(GOOD_AND_BAD, default_radius_m=150.0)
    assert [r.category for r in rows] == [
        "second_mortgage",
        "pawnshop",
        "used_car_market",
        "registration_office",
        "tow_yard",
        "tow_yard",
        "tow_yard",
    ]
    assert rows[0] == PoiRow("second_mortgage", "城东二押点", 32.0412, 118.7843, 120.0)
    assert rows[1].radius_m == 150.0  # the default
    assert problems == [
        ("line 9", "bad_category"),
        ("line 10", "bad_category"),
        ("line 11", "bad_coordinates"),
        ("line 12", "bad_coordinates"),
        ("line 13", "bad_coordinates"),
        ("line 14", "bad_radius"),
        ("line 15", "bad_radius"),
        ("line 17", "bad_coordinates"),
    ]


def test_messages_say_what_is_wrong() -> None:
    _, problems = parse_poi_csv(io.StringIO(GOOD_AND_BAD, newline=""))
    messages = {p.where: p.message for p in problems}
    assert "swapped" in messages["line 11"]
    assert "'abc'" in messages["line 12"]
    assert "missing position" in messages["line 13"]
    assert "'car wash'" in messages["line 10"]


def test_chinese_headers_and_amap_location_column() -> None:
    text = (
        '类别,名称,location,半径\n典当行,某典当行,"118.7702,32.0501",80\n当铺,x,118.1\uff0c32.1,\n'
    )
    rows, problems = parse(text)
    assert problems == []
    assert rows[0] == PoiRow("pawnshop", "某典当行", 32.0501, 118.7702, 80.0)
    assert (rows[1].lat, rows[1].lon) == (32.1, 118.1)  # full-width comma


def test_missing_columns_are_one_clear_problem() -> None:
    rows, problems = parse("name,lat,lon\nx,1,2\n")
    assert rows == []
    assert problems == [("line 1", "missing_column")]
    _, problems = parse("category,name\npawnshop,x\n")
    assert problems == [("line 1", "missing_column")]


def test_gcj02_rows_are_converted_to_wgs84() -> None:
    text = "category,name,lat,lon\npawnshop,x,32.0501,118.7702\n"
    (row,), _ = parse(text, convert=gcj02_to_wgs84)
    assert 400 < haversine_m(row.lat, row.lon, 32.0501, 118.7702) < 700
    assert (row.lat, row.lon) == pytest.approx(gcj02_to_wgs84(32.0501, 118.7702))


def test_geojson_points() -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [118.78, 32.04]},
                "properties": {"category": "二押", "name": "A", "radius_m": 100},
            },
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
                "properties": {"category": "pawnshop"},
            },
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [118.78, 32.04]},
                "properties": {"类别": "花店"},
            },
        ],
    }
    rows, problems = parse_poi_geojson(doc)
    assert rows == [PoiRow("second_mortgage", "A", 32.04, 118.78, 100.0)]
    assert [(p.where, p.reason) for p in problems] == [
        ("feature 1", "not_a_point"),
        ("feature 2", "bad_category"),
    ]
    _, problems = parse_poi_geojson([])
    assert problems[0].reason == "not_feature_collection"


@pytest.mark.parametrize(
    ("label", "category"),
    [
        ("二押", "second_mortgage"),
        ("Second Mortgage", "second_mortgage"),
        ("典当行", "pawnshop"),
        ("二手车市场", "used_car_market"),
        ("used-car market", "used_car_market"),
        ("used_car_market", "used_car_market"),
        ("车管所", "registration_office"),
        ("registration office", "registration_office"),
        ("拖车场", "tow_yard"),
        ("停车场", "tow_yard"),
        ("private", "private"),
        ("unknown", None),
        ("", None),
    ],
)
def test_categories(label: str, category: str | None) -> None:
    assert parse_category(label) == category
