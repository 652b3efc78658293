"""Small spherical-earth and China-time helpers shared by the rules."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)
CHINA_TZ = timezone(timedelta(hours=8), "CST")


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine); within 0.5 % of the ellipsoid, plenty for rules."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def china_time(t: datetime) -> datetime:
    """``t`` in China Standard Time (UTC+8, no daylight saving)."""
    return t.astimezone(CHINA_TZ)


def is_night(t: datetime, start_hour: int = 22, end_hour: int = 6) -> bool:
    """Whether ``t`` falls in the night window in China time (default 22:00-06:00)."""
    h = china_time(t).hour
    if start_hour <= end_hour:
        return start_hour <= h < end_hour
    return h >= start_hour or h < end_hour


def night_of(t: datetime, end_hour: int = 6) -> str:
    """The calendar date (China time) a night belongs to: the evening it started."""
    local = china_time(t)
    if local.hour < end_hour:
        local -= timedelta(days=1)
    return local.date().isoformat()
