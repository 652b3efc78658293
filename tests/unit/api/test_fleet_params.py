"""Pure pieces of the fleet routes: bounding boxes, labels, policy overlays, track thinning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest

from cloud.api.errors import ApiError
from cloud.api.fleet_params import like_prefix, loan_doc, parse_bbox
from cloud.api.pois import Category
from cloud.api.policies import area_feature, policy_collection
from cloud.api.tracks import learned_homes, thin
from cloud.api.vehicles import label_of
from cloud.refdata.pois import CATEGORIES
from cloud.risk.engine import ENGINE_VERSION, VehicleState
from cloud.risk.rules.nightdwell import Home
from cloud.risk.rules.resident import ResidentState
from cloud.storage.queries import TrackPoint
from protocols.plausibility import haversine_m
from protocols.policy import Area, Circle, GeoJsonShape


def test_bbox() -> None:
    assert parse_bbox(None) is None
    assert parse_bbox("118,31,119.5,32") == (118.0, 31.0, 119.5, 32.0)
    for bad in ("", "1,2,3", "1,2,3,4,5", "2,0,1,1", "0,1,1,0", "-181,0,0,1", "0,0,1,91",
                "inf,0,1,1", "a,b,c,d"):  # fmt: skip
        with pytest.raises(ApiError) as err:
            parse_bbox(bad)
        assert (err.value.status, err.value.code) == (400, "invalid_parameter")


def test_the_api_categories_are_the_catalogues() -> None:
    assert get_args(Category) == CATEGORIES


def test_labels_and_loans() -> None:
    assert label_of("LSVAB4BR0EN000017", "苏A12345") == "苏A12345"
    assert label_of("LSVAB4BR0EN000017", None) == "LSVAB4BR0EN000017"
    assert loan_doc((None,) * 6) is None
    assert loan_doc((7, "C-1", "overdue", 3, None, 10.5)) == {
        "id": 7, "contract": "C-1", "status": "overdue", "overdue_days": 3, "principal": None,
        "outstanding": 10.5, "exposure": 10.5}  # fmt: skip


def test_circles_become_polygons_with_their_centre() -> None:
    area = Area(id="a", name="home", shape=Circle(lon=118.8, lat=32.06, radius_m=1000))
    feature = area_feature(area, "allowed")
    assert feature["properties"] == {"role": "allowed", "name": "home", "id": "a",
                                     "adcode": None, "shape": "circle",
                                     "center": [118.8, 32.06], "radius_m": 1000}  # fmt: skip
    ring = feature["geometry"]["coordinates"][0]
    for lon, lat in ring:
        assert haversine_m(32.06, 118.8, lat, lon) == pytest.approx(1000, rel=0.01)
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    zone = Area(id="z", name="", adcode="320000", shape=GeoJsonShape(geometry=square))
    doc = policy_collection([area], [zone], {"source": "loan"})
    assert [f["properties"]["role"] for f in doc["features"]] == ["allowed", "forbidden"]
    assert doc["features"][1]["geometry"] == square
    assert (doc["type"], doc["source"]) == ("FeatureCollection", "loan")
    pole = Area(id="p", shape=Circle(lon=0, lat=89.99, radius_m=5000))
    assert area_feature(pole, "forbidden")["geometry"]["type"] == "Point"


def test_thin_keeps_stay_boundaries() -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    pts = [TrackPoint(t0 + timedelta(minutes=i), 31.0, 121.0 + (0.01 * i if i > 40 else 0), 0.0,
                      None, None, 1, 0.0) for i in range(100)]  # fmt: skip
    drawn, stays = thin(pts, 2)
    [stay] = stays
    assert stay.arrived == t0
    times = [p.time for p in drawn]
    assert times[0] == t0
    assert times[-1] == pts[-1].time
    assert stay.left in times


def test_learned_homes_from_rule_state() -> None:
    state = VehicleState({"resident": ResidentState(homes=(Home(31.0, 121.0, 0.7, 20),))})
    [home] = learned_homes(state.encode(), ENGINE_VERSION, 500.0)
    assert (home.lat, home.lon, home.nights, home.share, home.kind) == (31.0, 121.0, 20, 0.7,
                                                                        "resident")  # fmt: skip
    assert learned_homes(state.encode(), ENGINE_VERSION + 1, 500.0) == []
    assert learned_homes(None, None, 500.0) == []
    assert learned_homes(VehicleState({}).encode(), ENGINE_VERSION, 500.0) == []


def test_search_prefixes_match_literally() -> None:
    assert like_prefix(None) is None
    assert like_prefix("C-1") == "C-1%"
    assert like_prefix("50%_a\\") == "50\\%\\_a\\\\%"
