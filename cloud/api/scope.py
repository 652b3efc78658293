"""Which vehicles a caller may see: all of its tenant's, or a recovery agent's assigned ones.

A recovery agent sees only the vehicles of the recovery cases assigned to it
(``recovery_cases.assignee`` = its username) that are still being worked
(open, assigned, chasing, located); a case that is recovered, failed or
closed no longer shows its car. Every other role with access to vehicle data
sees its whole tenant. Routes use :func:`vehicle_visible` for one vehicle and
:data:`VISIBLE_VEHICLE_SQL` inside list queries; :func:`visible_vehicle_ids`
is for callers that need the set itself.
"""

from __future__ import annotations

from typing import Any

import psycopg

from cloud.api.policy import Caller

AConn = psycopg.AsyncConnection[Any]
WORKED_STATUSES = ("open", "assigned", "chasing", "located")
SCOPED_ROLES = frozenset({"recovery"})

# A boolean SQL expression over a vehicle id column: use it as
# ``... AND {VISIBLE_VEHICLE_SQL.format(col="a.vehicle_id")}`` with the parameters
# of :func:`visible_params`. The format argument is a column name from our own code.
VISIBLE_VEHICLE_SQL = (
    "(NOT %(scoped)s OR {col} IN (SELECT rc.vehicle_id FROM recovery_cases rc "
    "WHERE rc.tenant_id = %(tenant)s AND rc.assignee = %(username)s "
    "AND rc.status = ANY(%(worked)s)))"
)


def visible_params(caller: Caller) -> dict[str, Any]:
    return {
        "scoped": caller.role in SCOPED_ROLES,
        "tenant": caller.tenant_id,
        "username": caller.username,
        "worked": list(WORKED_STATUSES),
    }


async def visible_vehicle_ids(conn: AConn, caller: Caller) -> frozenset[int] | None:
    """The ids a recovery agent may see; None for a role that sees every tenant vehicle.

    None never means "nothing": an agent with no assigned case gets an empty set.
    """
    if caller.role not in SCOPED_ROLES:
        return None
    cur = await conn.execute(
        "SELECT DISTINCT vehicle_id FROM recovery_cases WHERE tenant_id = %s "
        "AND assignee = %s AND status = ANY(%s)",
        (caller.tenant_id, caller.username, list(WORKED_STATUSES)),
    )
    return frozenset(int(r[0]) for r in await cur.fetchall())


async def vehicle_visible(conn: AConn, caller: Caller, vehicle_id: int) -> bool:
    """True when the vehicle is in the caller's tenant and within its role's scope."""
    cur = await conn.execute(
        "SELECT 1 FROM vehicles v WHERE v.id = %(vid)s AND v.tenant_id = %(tenant)s AND "  # noqa: S608
        + VISIBLE_VEHICLE_SQL.format(col="v.id"),
        {"vid": vehicle_id, **visible_params(caller)},
    )
    return await cur.fetchone() is not None


def vehicle_visible_sync(conn: psycopg.Connection[Any], caller: Caller, vehicle_id: int) -> bool:
    """:func:`vehicle_visible` on a blocking connection (for routes run in worker threads)."""
    cur = conn.execute(
        "SELECT 1 FROM vehicles v WHERE v.id = %(vid)s AND v.tenant_id = %(tenant)s AND "  # noqa: S608
        + VISIBLE_VEHICLE_SQL.format(col="v.id"),
        {"vid": vehicle_id, **visible_params(caller)},
    )
    return cur.fetchone() is not None
