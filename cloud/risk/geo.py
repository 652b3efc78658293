"""Small spherical-earth and China-time helpers shared by the rules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from protocols.plausibility import haversine_m as distance_m

__all__ = ["CHINA_TZ", "china_time", "distance_m", "is_night", "night_of"]

CHINA_TZ = timezone(timedelta(hours=8), "CST")


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
