"""WGS-84 ⇄ GCJ-02 ("Mars coordinates"), the offset datum of Chinese map providers.

GNSS gives WGS-84; Amap/Gaode, Tencent and DataV publish GCJ-02, shifted by
100-700 m. VGR stores WGS-84 everywhere and converts at the edges: GCJ-02 →
WGS-84 when importing boundaries or POIs from those providers, WGS-84 →
GCJ-02 to draw on their tiles.

The forward transform is the publicly documented one: a polynomial-plus-sine
"distortion" of the offset from (105° E, 35° N), scaled from metres on the
Krasovsky 1940 ellipsoid (a = 6378245 m, e² = 0.006693421622965943) to
degrees at the point's latitude. There is no closed-form inverse; it is found
by fixed-point iteration ``w ← w - (forward(w) - g)``, which converges because
the transform is the identity plus a small, slowly varying offset (its
Jacobian is within ~1e-5 of I): three iterations reach ~1e-9°, we stop below
1e-10° (0.01 mm), far under the 0.5 m the domain asks for.

Where it applies: providers apply the offset only inside China. We use the
bounding box every open implementation uses (lon 72.004-137.8347 E, lat
0.8293-55.8271 N): it covers all of mainland China and Hainan with margin and is
what the providers' own clients have been observed to use, so a point a
provider shifted is always inside it. It also covers neighbours (Mongolia,
Korea, part of Japan, Taiwan, Hong Kong, Macau); a finer mainland polygon would
only change answers for points our lenders' cars do not reach, and a
provider's data outside the mainland is not something VGR imports. Points
outside the box are returned unchanged in both directions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MAINLAND_BBOX",
    "gcj02_geometry",
    "gcj02_to_wgs84",
    "gcj02_to_wgs84_arrays",
    "in_offset_area",
    "wgs84_to_gcj02",
    "wgs84_to_gcj02_arrays",
]

# (min_lon, min_lat, max_lon, max_lat): where the offset is applied (see the module doc).
MAINLAND_BBOX = (72.004, 0.8293, 137.8347, 55.8271)

_A = 6378245.0  # Krasovsky 1940 semi-major axis, metres
_EE = 0.00669342162296594323  # Krasovsky 1940 first eccentricity squared
_TOL_DEG = 1e-10
_MAX_ITER = 30

FloatArray = NDArray[np.float64]


def in_offset_area(lat: float, lon: float) -> bool:
    """Whether GCJ-02 differs from WGS-84 at this point (inside :data:`MAINLAND_BBOX`)."""
    min_lon, min_lat, max_lon, max_lat = MAINLAND_BBOX
    return min_lon <= lon <= max_lon and min_lat <= lat <= max_lat


def _offset(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(dlon, dlat) in degrees to add to WGS-84 to get GCJ-02 (no bbox test)."""
    x = lon - 105.0
    y = lat - 35.0
    pi = math.pi
    root = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    # Metres of offset on the ellipsoid, before scaling to degrees.
    dy = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * root + common
    dy += (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dy += (160.0 * np.sin(y / 12.0 * pi) + 320.0 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    dx = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * root + common
    dx += (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dx += (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0
    # Metres → degrees: meridional radius M = a(1-e²)/W³ and normal radius N = a/W.
    phi = lat * (pi / 180.0)
    w2 = 1.0 - _EE * np.sin(phi) ** 2
    w = np.sqrt(w2)
    dlat = dy * 180.0 / ((_A * (1.0 - _EE)) / (w2 * w) * pi)
    dlon = dx * 180.0 / (_A / w * np.cos(phi) * pi)
    return dlon, dlat


def _inside(lon: FloatArray, lat: FloatArray) -> NDArray[np.bool_]:
    min_lon, min_lat, max_lon, max_lat = MAINLAND_BBOX
    return (lon >= min_lon) & (lon <= max_lon) & (lat >= min_lat) & (lat <= max_lat)


def wgs84_to_gcj02_arrays(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Vectorised :func:`wgs84_to_gcj02` over lon/lat arrays (points outside unchanged)."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    dlon, dlat = _offset(lon, lat)
    inside = _inside(lon, lat)
    return np.where(inside, lon + dlon, lon), np.where(inside, lat + dlat, lat)


def gcj02_to_wgs84_arrays(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Vectorised :func:`gcj02_to_wgs84` (iterative inverse; points outside unchanged)."""
    g_lon = np.asarray(lon, dtype=np.float64)
    g_lat = np.asarray(lat, dtype=np.float64)
    inside = _inside(g_lon, g_lat)
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(_MAX_ITER):
        dlon, dlat = _offset(w_lon, w_lat)
        err_lon = w_lon + dlon - g_lon
        err_lat = w_lat + dlat - g_lat
        w_lon -= err_lon
        w_lat -= err_lat
        if (
            max(
                float(np.max(np.abs(err_lon), initial=0.0)),
                float(np.max(np.abs(err_lat), initial=0.0)),
            )
            < _TOL_DEG
        ):
            break
    return np.where(inside, w_lon, g_lon), np.where(inside, w_lat, g_lat)


def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """GCJ-02 ``(lat, lon)`` of a WGS-84 point; unchanged outside :data:`MAINLAND_BBOX`."""
    if not in_offset_area(lat, lon):
        return lat, lon
    dlon, dlat = _offset(np.array([lon]), np.array([lat]))
    return lat + float(dlat[0]), lon + float(dlon[0])


def gcj02_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """WGS-84 ``(lat, lon)`` of a GCJ-02 point (iterative, error < 1e-10°); unchanged outside."""
    if not in_offset_area(lat, lon):
        return lat, lon
    w_lon, w_lat = gcj02_to_wgs84_arrays(np.array([lon]), np.array([lat]))
    return float(w_lat[0]), float(w_lon[0])


def _map_positions(coords: Any) -> Any:
    """GCJ-02 → WGS-84 for nested GeoJSON position lists (one vectorised call per ring)."""
    if isinstance(coords, list) and coords and isinstance(coords[0], int | float):
        return coords  # a lone position is handled by its ring
    if (
        isinstance(coords, list)
        and coords
        and isinstance(coords[0], list)
        and coords[0]
        and isinstance(coords[0][0], int | float)
    ):
        try:
            arr = np.asarray([p[:2] for p in coords], dtype=np.float64)
        except (TypeError, ValueError):
            return coords  # malformed: let the geometry validation name the problem
        lon, lat = gcj02_to_wgs84_arrays(arr[:, 0], arr[:, 1])
        return [[float(x), float(y)] for x, y in zip(lon.tolist(), lat.tolist(), strict=True)]
    if isinstance(coords, list):
        return [_map_positions(c) for c in coords]
    return coords


def gcj02_geometry(geometry: Mapping[str, Any]) -> Mapping[str, Any]:
    """A GeoJSON geometry with its coordinates converted from GCJ-02 to WGS-84."""
    if geometry.get("type") == "GeometryCollection":
        members = geometry.get("geometries")
        if isinstance(members, list):
            converted = [gcj02_geometry(m) if isinstance(m, Mapping) else m for m in members]
            return {**geometry, "geometries": converted}
        return geometry
    return {**geometry, "coordinates": _map_positions(geometry.get("coordinates"))}
