"""The data cockpit's document: its shape, windows and buckets, and the pure assembly.

No I/O: :mod:`cloud.api.cockpit` reads the rows and hands them to the
functions here, which fill empty buckets, build the risk histogram and pick
what a reason may show (never coordinates).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

import msgspec

Window = Literal["15m", "1h", "6h", "24h", "7d"]
# window -> (length, bucket width), seconds; every width divides a day, so buckets
# start at the same instants as TimescaleDB's time_bucket.
WINDOWS: Final[Mapping[str, tuple[int, int]]] = {
    "15m": (900, 60),
    "1h": (3600, 60),
    "6h": (6 * 3600, 300),
    "24h": (24 * 3600, 900),
    "7d": (7 * 24 * 3600, 3600),
}
RISK_BUCKET_WIDTH: Final = 10  # score points per histogram bucket (0-100)
REASON_FIELDS: Final = ("rule", "severity", "points", "resolved", "time")


class CockpitQuery(msgspec.Struct, forbid_unknown_fields=True):
    window: Window = "1h"
    top: Annotated[int, msgspec.Meta(ge=1, le=50)] = 10


class Fleet(msgspec.Struct):
    vehicles: int  # registered vehicles (the fleet size)
    devices: int  # trackers not revoked
    online_devices: int  # trackers whose last reported state is online
    online_vehicles: int  # vehicles with at least one online tracker
    online_rate: float | None  # online_vehicles / vehicles; None without vehicles
    reporting_vehicles: int  # vehicles with a fix of GNSS time in the last 15 minutes


class FixBucket(msgspec.Struct):
    t: datetime  # bucket start
    fixes: int
    per_minute: float


class Fixes(msgspec.Struct):
    last_minute: int  # fixes with GNSS time in the last 60 s
    per_minute: float  # average over the window
    total: int
    series: list[FixBucket]


class AlertCount(msgspec.Struct):
    rule: str
    severity: str
    open: int
    acknowledged: int


class RuleCount(msgspec.Struct):
    rule: str
    count: int


class AlertPoint(msgspec.Struct):
    t: datetime  # bucket start; counts are the alerts unresolved at the bucket's end
    total: int
    by_rule: dict[str, int]
    by_severity: dict[str, int]


class Alerts(msgspec.Struct):
    unresolved: int  # open + acknowledged now
    open: int
    acknowledged: int
    by_rule_severity: list[AlertCount]
    opened_in_window: list[RuleCount]
    series: list[AlertPoint]


class RiskBucket(msgspec.Struct):
    lower: int
    upper: int  # exclusive, except the last bucket, which holds 100
    count: int


class Risk(msgspec.Struct):
    scored: int
    unscored: int  # vehicles without a score yet
    by_band: dict[str, int]
    buckets: list[RiskBucket]


class RiskyVehicle(msgspec.Struct):
    vehicle_id: int
    vin: str
    plate: str | None
    score: float
    band: str
    reasons: list[dict[str, Any]]
    open_alerts: int
    updated_at: datetime


class EndpointHealth(msgspec.Struct):
    endpoint_id: str
    description: str
    enabled: bool
    succeeded: int
    failed: int
    dead: int
    pending: int
    delivery_p50_ms: float | None
    delivery_p95_ms: float | None


class Webhooks(msgspec.Struct):
    succeeded: int  # of the deliveries created in the window, by state now
    failed: int
    dead: int
    pending: int
    backlog: int  # pending + failed now, whenever created
    delivery_p50_ms: float | None  # delivery created -> successful attempt answered
    delivery_p95_ms: float | None
    attempt_p50_ms: float | None  # one HTTP attempt's round trip
    attempt_p95_ms: float | None
    endpoints: list[EndpointHealth]


class Cockpit(msgspec.Struct):
    tenant_id: str
    generated_at: datetime
    window: str
    window_start: datetime
    bucket_s: int
    fleet: Fleet
    fixes: Fixes
    alerts: Alerts
    risk: Risk
    top_risky: list[RiskyVehicle]
    webhooks: Webhooks


def bucket_starts(now: datetime, window_s: int, bucket_s: int) -> list[datetime]:
    """Starts of the buckets covering (now - window, now], aligned to multiples of the width."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def floor(t: datetime) -> datetime:
        seconds = (t - epoch) // timedelta(seconds=1)
        return epoch + timedelta(seconds=seconds - seconds % bucket_s)

    first, last = floor(now - timedelta(seconds=window_s)), floor(now)
    if last == now:  # a bucket that starts exactly now is still empty
        last -= timedelta(seconds=bucket_s)
    count = int((last - first).total_seconds()) // bucket_s + 1
    return [first + timedelta(seconds=i * bucket_s) for i in range(count)]


def bucket_ends(starts: Sequence[datetime], bucket_s: int, now: datetime) -> list[datetime]:
    """The instant each bucket is judged at: its end, or now for the current one."""
    return [min(s + timedelta(seconds=bucket_s), now) for s in starts]


def fix_series(starts: Sequence[datetime], bucket_s: int,
               counts: Mapping[datetime, int]) -> list[FixBucket]:  # fmt: skip
    minutes = bucket_s / 60
    return [FixBucket(s, counts.get(s, 0), round(counts.get(s, 0) / minutes, 2)) for s in starts]


def alert_series(starts: Sequence[datetime], ends: Sequence[datetime],
                 rows: Iterable[tuple[datetime, str, str, int]]) -> list[AlertPoint]:  # fmt: skip
    """Rows (judged at, rule, severity, count) into one point per bucket, empty ones included."""
    points = {end: AlertPoint(start, 0, {}, {}) for start, end in zip(starts, ends, strict=True)}
    for at, rule, severity, n in rows:
        p = points[at]
        p.total += n
        p.by_rule[rule] = p.by_rule.get(rule, 0) + n
        p.by_severity[severity] = p.by_severity.get(severity, 0) + n
    return list(points.values())


def risk_buckets(counts: Mapping[int, int]) -> list[RiskBucket]:
    """Ten buckets of 10 points; ``counts`` is keyed by bucket index 0-9."""
    n = 100 // RISK_BUCKET_WIDTH
    w = RISK_BUCKET_WIDTH
    return [RiskBucket(i * w, (i + 1) * w, counts.get(i, 0)) for i in range(n)]


def public_reasons(reasons: Any) -> list[dict[str, Any]]:
    """The reasons a score lists, with only the fields the cockpit may show."""
    if not isinstance(reasons, list):
        return []
    return [{k: r[k] for k in REASON_FIELDS if k in r} for r in reasons if isinstance(r, dict)]


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)
