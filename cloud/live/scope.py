"""Who receives which event: the caller's tenant, and for recovery agents their cases.

Pure code, the same rule as :mod:`cloud.api.scope` for the REST routes: every
role sees only its own tenant; a recovery agent sees only the vehicles of the
cases assigned to it that are still being worked, and their alerts. A case
change also reaches the agent the case is (still) assigned to, so the agent
learns when one of its cases is closed or handed to someone else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cloud.api.scope import SCOPED_ROLES, WORKED_STATUSES
from cloud.live.messages import Alert, CaseChange, Position

# (tenant, username) -> vehicles of that agent's worked cases
Assignments = Mapping[tuple[str, str], frozenset[int]]


@dataclass(frozen=True, slots=True)
class Audience:
    """One connected person: its tenant, role and username."""

    tenant_id: str
    role: str
    username: str

    @property
    def scoped(self) -> bool:
        return self.role in SCOPED_ROLES


def assignments(rows: Iterable[tuple[str, str, int, str]]) -> dict[tuple[str, str], frozenset[int]]:
    """(tenant, assignee, vehicle_id, status) rows of recovery cases -> each agent's vehicles."""
    out: dict[tuple[str, str], set[int]] = {}
    for tenant, assignee, vehicle_id, status in rows:
        if status in WORKED_STATUSES:
            out.setdefault((tenant, assignee), set()).add(vehicle_id)
    return {key: frozenset(ids) for key, ids in out.items()}


def visible_vehicles(who: Audience, assigned: Assignments) -> frozenset[int] | None:
    """The vehicles an agent may see; None for a role that sees its whole tenant."""
    if not who.scoped:
        return None
    return assigned.get((who.tenant_id, who.username), frozenset())


def sees_vehicle(who: Audience, tenant_id: str, vehicle_id: int,
                 visible: frozenset[int] | None) -> bool:  # fmt: skip
    return tenant_id == who.tenant_id and (visible is None or vehicle_id in visible)


def sees_position(who: Audience, pos: Position, visible: frozenset[int] | None) -> bool:
    return sees_vehicle(who, pos.tenant_id, pos.vehicle_id, visible)


def sees_alert(who: Audience, alert: Alert, visible: frozenset[int] | None) -> bool:
    return sees_vehicle(who, alert.tenant_id, alert.vehicle_id, visible)


def sees_case(who: Audience, case: CaseChange, visible: frozenset[int] | None) -> bool:
    if case.tenant_id != who.tenant_id:
        return False
    if visible is None:
        return True
    return case.vehicle_id in visible or case.assignee == who.username
