"""The one plausibility check for a fix, shared by the cloud's first stage and the tests.

Findings come in two strengths:

* ``reject``: the fix cannot describe a real position (null island, GNSS time
  days away from the receiving clock). The cloud quarantines it with the
  reason instead of storing it as a position.
* ``suspect``: the fix is possible as data but not as driving (speed above
  250 km/h, altitude outside -200..6000 m, time more than 10 minutes ahead,
  an implied jump above 300 km/h). Such fixes are stored and flagged, because
  they are the evidence the spoofing rule needs; dropping them would hide the
  attack.

Thresholds default to DOMAIN.md and are passed in, never read from config here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from protocols.messages import Fix

EARTH_RADIUS_M = 6_371_008.8


class Strength(StrEnum):
    REJECT = "reject"
    SUSPECT = "suspect"


@dataclass(frozen=True, slots=True)
class Finding:
    reason: str
    strength: Strength
    detail: str


@dataclass(frozen=True, slots=True)
class Limits:
    max_speed_kmh: float = 250.0
    max_implied_speed_kmh: float = 300.0
    min_alt_m: float = -200.0
    max_alt_m: float = 6000.0
    max_ahead: timedelta = timedelta(minutes=10)
    reject_ahead: timedelta = timedelta(days=1)
    reject_older: timedelta = timedelta(days=400)
    null_island_deg: float = 1e-6
    # Below this separation an implied speed says more about noise than motion.
    min_jump_m: float = 500.0


DEFAULT_LIMITS = Limits()


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (spherical Earth, < 0.5 % error)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def implied_speed_kmh(a: Fix, b: Fix) -> float | None:
    """Speed needed to go from ``a`` to ``b``; None when they share a timestamp."""
    dt = abs((b.time - a.time).total_seconds())
    if dt == 0:
        return None
    return haversine_m(a.lat, a.lon, b.lat, b.lon) / dt * 3.6


def assess(
    fix: Fix,
    *,
    now: datetime,
    previous: Fix | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Finding]:
    """Everything implausible about ``fix``, judged at receiving time ``now``.

    ``previous`` is the last accepted fix of the same device, for the implied
    jump speed. An empty list means the fix is plausible.
    """
    found: list[Finding] = []
    if abs(fix.lat) < limits.null_island_deg and abs(fix.lon) < limits.null_island_deg:
        found.append(Finding("null_island", Strength.REJECT, "position is 0,0"))
    ahead = fix.time - now
    if ahead > limits.reject_ahead:
        found.append(Finding("time_far_future", Strength.REJECT, f"{ahead} ahead of receiver"))
    elif ahead > limits.max_ahead:
        found.append(Finding("time_ahead", Strength.SUSPECT, f"{ahead} ahead of receiver"))
    if now - fix.time > limits.reject_older:
        found.append(Finding("time_too_old", Strength.REJECT, f"{now - fix.time} old"))
    speed_kmh = fix.speed_mps * 3.6
    if speed_kmh > limits.max_speed_kmh:
        found.append(Finding("speed_too_high", Strength.SUSPECT, f"{speed_kmh:.0f} km/h"))
    if fix.alt_m is not None and not limits.min_alt_m <= fix.alt_m <= limits.max_alt_m:
        found.append(Finding("altitude_out_of_range", Strength.SUSPECT, f"{fix.alt_m:.0f} m"))
    if previous is not None:
        jump = implied_speed_kmh(previous, fix)
        moved = haversine_m(previous.lat, previous.lon, fix.lat, fix.lon)
        if jump is not None and moved >= limits.min_jump_m and jump > limits.max_implied_speed_kmh:
            found.append(Finding("teleport", Strength.SUSPECT, f"implied {jump:.0f} km/h"))
    return found


def rejected(findings: list[Finding]) -> Finding | None:
    """The first finding that rejects the fix, if any."""
    return next((f for f in findings if f.strength is Strength.REJECT), None)
