"""GeoJSON polygonal geometry → plain coordinate rings, checked; pure Python.

The one reading of a ``Polygon``, ``MultiPolygon`` or ``GeometryCollection`` of
those, shared by the tracker's evaluator (:mod:`protocols.policy_eval`) and the
cloud's shapely code (:mod:`protocols.geometry`), so both accept and refuse
exactly the same documents. Reasons (:class:`~protocols.errors.RegionError`):
``malformed_geometry`` (bad structure, a ring under 4 positions or not
closed), ``coordinate_out_of_range``, ``not_polygonal``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

from protocols.errors import RegionError

Ring: TypeAlias = list[tuple[float, float]]  # closed: first position == last
PolygonRings: TypeAlias = list[Ring]  # exterior first, then holes


def malformed(where: str, what: str) -> RegionError:
    return RegionError("malformed_geometry", f"{where}: {what}")


def ring(raw: object, where: str) -> Ring:
    if not isinstance(raw, list | tuple) or len(raw) < 4:
        raise malformed(where, "a linear ring needs a list of at least 4 positions")
    points: Ring = []
    for i, pos in enumerate(raw):
        if not isinstance(pos, list | tuple) or not 2 <= len(pos) <= 3:
            raise malformed(f"{where}[{i}]", "a position is [lon, lat] or [lon, lat, alt]")
        lon, lat = pos[0], pos[1]
        if type(lon) not in (int, float) or type(lat) not in (int, float):
            raise malformed(f"{where}[{i}]", "coordinates must be numbers")
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):  # also rejects NaN
            raise RegionError(
                "coordinate_out_of_range", f"{where}[{i}]: ({lon}, {lat}) is not lon/lat"
            )
        points.append((float(lon), float(lat)))
    if points[0] != points[-1]:
        raise malformed(where, "linear ring is not closed")
    return points


def polygon(coords: object, where: str) -> PolygonRings | None:
    """The rings of one Polygon's coordinates; None for an empty Polygon."""
    if not isinstance(coords, list | tuple):
        raise malformed(where, "Polygon coordinates must be a list of rings")
    if not coords:
        return None
    return [ring(r, f"{where}[{i}]") for i, r in enumerate(coords)]


def polygons(geometry: object, where: str) -> list[PolygonRings]:
    """The non-empty polygons of a Polygon or MultiPolygon object."""
    if not isinstance(geometry, Mapping):
        raise malformed(where, "a geometry must be an object")
    gtype = geometry.get("type")
    coords = geometry.get("coordinates")
    if gtype == "Polygon":
        poly = polygon(coords, f"{where}.coordinates")
        return [] if poly is None else [poly]
    if gtype == "MultiPolygon":
        if not isinstance(coords, list | tuple):
            raise malformed(where, "MultiPolygon coordinates must be a list of polygons")
        found = (polygon(c, f"{where}.coordinates[{i}]") for i, c in enumerate(coords))
        return [p for p in found if p is not None]
    raise RegionError("not_polygonal", f"{where}: type {gtype!r} is not Polygon or MultiPolygon")


def polygon_groups(geometry: object) -> list[list[PolygonRings]]:
    """One group of polygons per member (a single group unless a GeometryCollection).

    Groups may be empty (an empty Polygon); the caller decides whether nothing
    at all is an error.
    """
    if not isinstance(geometry, Mapping):
        raise malformed("geometry", "a geometry must be an object")
    if geometry.get("type") == "GeometryCollection":
        raw = geometry.get("geometries")
        if not isinstance(raw, list | tuple):
            raise malformed("geometry", "GeometryCollection needs a list of geometries")
        return [polygons(m, f"geometry.geometries[{i}]") for i, m in enumerate(raw)]
    return [polygons(geometry, "geometry")]
