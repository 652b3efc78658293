"""Distances on the WGS-84 ellipsoid in pure Python (no pyproj), for the tracker's region checks.

- :func:`distance_m`: Vincenty's inverse formula (1975), iterated to 1e-12 rad,
  sub-millimetre against pyproj's ``Geod.inv`` (tested); for nearly antipodal
  points, where it may not converge, the great-circle distance on the mean
  sphere (within 0.5 %; no region check works at 20,000 km).
- :class:`LocalScale`: metres per degree of longitude and latitude at one
  latitude (the ellipsoid's radii of curvature), for a plane tangent at a point.
- :func:`degree_box`: a lon/lat box surely holding every point within a distance,
  for cheap prefilters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

A = 6_378_137.0  # semi-major axis (m)
F = 1 / 298.257223563  # flattening
B = A * (1 - F)
E2 = F * (2 - F)  # first eccentricity squared
MEAN_RADIUS_M = (2 * A + B) / 3
_RAD = math.pi / 180.0
_MIN_M_PER_DEG = B * B / A * _RAD  # meridional radius at the equator, its minimum: 110,574 m


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Geodesic distance in metres between two lon/lat points (degrees)."""
    if lon1 == lon2 and lat1 == lat2:
        return 0.0
    u1 = math.atan((1 - F) * math.tan(lat1 * _RAD))
    u2 = math.atan((1 - F) * math.tan(lat2 * _RAD))
    sin_u1, cos_u1, sin_u2, cos_u2 = math.sin(u1), math.cos(u1), math.sin(u2), math.cos(u2)
    big_l = (lon2 - lon1) * _RAD
    lam = big_l
    for _ in range(200):
        sin_lam, cos_lam = math.sin(lam), math.cos(lam)
        sin_sigma = math.hypot(cos_u2 * sin_lam, cos_u1 * sin_u2 - sin_u1 * cos_u2 * cos_lam)
        if sin_sigma == 0.0:
            return 0.0
        cos_sigma = sin_u1 * sin_u2 + cos_u1 * cos_u2 * cos_lam
        sigma = math.atan2(sin_sigma, cos_sigma)
        sin_alpha = cos_u1 * cos_u2 * sin_lam / sin_sigma
        cos2_alpha = 1 - sin_alpha * sin_alpha
        cos_2sm = cos_sigma - 2 * sin_u1 * sin_u2 / cos2_alpha if cos2_alpha else 0.0
        c = F / 16 * cos2_alpha * (4 + F * (4 - 3 * cos2_alpha))
        previous = lam
        lam = big_l + (1 - c) * F * sin_alpha * (
            sigma + c * sin_sigma * (cos_2sm + c * cos_sigma * (-1 + 2 * cos_2sm * cos_2sm))
        )
        if abs(lam - previous) < 1e-12:
            break
    else:  # nearly antipodal: Vincenty does not converge
        return _great_circle_m(lon1, lat1, lon2, lat2)
    u_sq = cos2_alpha * (A * A - B * B) / (B * B)
    big_a = 1 + u_sq / 16384 * (4096 + u_sq * (-768 + u_sq * (320 - 175 * u_sq)))
    big_b = u_sq / 1024 * (256 + u_sq * (-128 + u_sq * (74 - 47 * u_sq)))
    delta_sigma = (
        big_b
        * sin_sigma
        * (
            cos_2sm
            + big_b
            / 4
            * (
                cos_sigma * (-1 + 2 * cos_2sm * cos_2sm)
                - big_b / 6 * cos_2sm * (-3 + 4 * sin_sigma**2) * (-3 + 4 * cos_2sm * cos_2sm)
            )
        )
    )
    return B * big_a * (sigma - delta_sigma)


def _great_circle_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = lat1 * _RAD, lat2 * _RAD
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin((lon2 - lon1) * _RAD / 2) ** 2
    )
    return 2 * MEAN_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class LocalScale:
    """Metres per degree at one latitude: ``x = Δlon·per_deg_lon``, ``y = Δlat·per_deg_lat``."""

    per_deg_lon: float
    per_deg_lat: float

    @classmethod
    def at(cls, lat: float) -> LocalScale:
        s = math.sin(lat * _RAD)
        w = math.sqrt(1 - E2 * s * s)
        prime_vertical = A / w
        meridional = A * (1 - E2) / (w * w * w)
        return cls(prime_vertical * math.cos(lat * _RAD) * _RAD, meridional * _RAD)


def degree_box(lon: float, lat: float, metres: float) -> tuple[float, float, float, float]:
    """``(min_lon, min_lat, max_lon, max_lat)`` holding every point within ``metres``.

    Generous by 1 % plus a metre; longitude spans all of it near the poles.
    """
    reach = metres * 1.01 + 1.0
    dlat = reach / _MIN_M_PER_DEG
    top = min(90.0, abs(lat) + dlat)
    cos_top = math.cos(top * _RAD)
    dlon = 360.0 if cos_top * A * _RAD <= reach else reach / (cos_top * A * _RAD)
    return lon - dlon, lat - dlat, lon + dlon, lat + dlat
