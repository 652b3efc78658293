"""What the fleet resources share: page parameters, bounding boxes, times, the current loan.

Pure code apart from the SQL fragments (constants). Lists of the fleet
routes take ``limit`` (1-500, default 50) and ``cursor``; the positions
list allows up to 10,000 (:mod:`cloud.api.vehicles`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import msgspec

from cloud.api.cursor import Key, decode_cursor, encode_cursor
from cloud.api.errors import ApiError

MAX_PAGE = 500
DEFAULT_PAGE = 50
Limit = Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
# "min_lon,min_lat,max_lon,max_lat" in WGS-84 degrees
BBox = Annotated[str, msgspec.Meta(max_length=200, pattern=r"^[-+0-9.,eE ]+$")]
Search = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]
T = TypeVar("T")

# The loan a vehicle is judged by: its newest loan that is not closed, else its newest.
# Use as ``LEFT JOIN LATERAL ({CURRENT_LOAN}) l ON true`` next to ``vehicles v``.
CURRENT_LOAN = (
    "SELECT cl.id, cl.contract_id, cl.status, cl.overdue_days, cl.principal, cl.outstanding "
    "FROM loans cl WHERE cl.tenant_id = v.tenant_id AND cl.vehicle_id = v.id "
    "ORDER BY cl.status = 'closed', cl.created_at DESC, cl.id DESC LIMIT 1"
)
# Whether any of a vehicle's (not revoked) devices says it is online.
VEHICLE_ONLINE = (
    "EXISTS (SELECT 1 FROM devices od JOIN device_status os ON os.device_id = od.id "
    "WHERE od.tenant_id = v.tenant_id AND od.vehicle_id = v.id AND NOT od.revoked "
    "AND os.state = 'online')"
)
OPEN_ALERTS = (
    "(SELECT count(*) FROM alerts oa WHERE oa.tenant_id = v.tenant_id AND oa.vehicle_id = v.id "
    "AND oa.status IN ('open', 'acknowledged'))"
)


class FleetPageQuery(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    limit: Limit = DEFAULT_PAGE
    cursor: Cursor | None = None


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``min_lon,min_lat,max_lon,max_lat`` as numbers, or None; 400 when malformed."""
    if text is None:
        return None
    bad = ApiError(400, "invalid_parameter",
                   "bbox is min_lon,min_lat,max_lon,max_lat in degrees (WGS-84)")  # fmt: skip
    parts = text.split(",")
    if len(parts) != 4:
        raise bad
    try:
        min_lon, min_lat, max_lon, max_lat = (float(p) for p in parts)
    except ValueError:
        raise bad from None
    if not all(math.isfinite(x) for x in (min_lon, min_lat, max_lon, max_lat)):
        raise bad
    if not (-180.0 <= min_lon < max_lon <= 180.0 and -90.0 <= min_lat < max_lat <= 90.0):
        raise bad
    return min_lon, min_lat, max_lon, max_lat


def after(kind: str, cursor: str | None, shape: tuple[type, ...]) -> Key | None:
    """The key in ``cursor`` (``400 invalid_cursor`` unless this list handed it out)."""
    return None if cursor is None else decode_cursor(kind, cursor, shape)


def page(rows: Sequence[T], limit: int, kind: str,
         key: Callable[[T], Key]) -> tuple[Sequence[T], str | None]:  # fmt: skip
    """The rows of this page and the cursor of the next (rows were fetched with limit + 1)."""
    if len(rows) <= limit:
        return rows, None
    kept = rows[:limit]
    return kept, encode_cursor(kind, key(kept[-1]))


def like_prefix(text: str | None) -> str | None:
    """A LIKE pattern matching what starts with ``text`` (its own ``%`` and ``_`` literal)."""
    if text is None:
        return None
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def money(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


def check_aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ApiError(400, "invalid_parameter", f"{name} needs a time zone (e.g. Z or +08:00)")
    return value


def loan_doc(row: Sequence[Any]) -> dict[str, Any] | None:
    """A vehicle's loan summary from the 6 columns of :data:`CURRENT_LOAN` (None: no loan)."""
    loan_id, contract, status, overdue_days, principal, outstanding = row
    if loan_id is None:
        return None
    return {"id": loan_id, "contract": contract, "status": status, "overdue_days": overdue_days,
            "principal": money(principal), "outstanding": money(outstanding),
            "exposure": money(outstanding)}  # fmt: skip
