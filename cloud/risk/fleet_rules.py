"""Rules over a tenant's whole fleet, fed by per-vehicle signals (today: gathering).

The worker hands every ``risk_poi_visit`` OPEN signal of a round to
:func:`run_gathering`, which steps the tenant's :class:`GatheringState`
(``cloud.risk.rules.gathering``) under a row lock in ``tenant_rule_state`` (so
two workers never interleave on one tenant) and opens the gathering alert on
every vehicle of the episode, in the round's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import psycopg

from cloud.risk import alerts
from cloud.risk.model import Signal
from cloud.risk.rules.gathering import (
    GatheringConfig,
    GatheringState,
    PoiVisit,
    step_gathering,
    visit_of,
)

Conn = psycopg.Connection[Any]
RULE = "gathering"


def visits_from(signals: Sequence[Signal], vehicle_id: int) -> list[PoiVisit]:
    return [v for s in signals if (v := visit_of(s, vehicle_id)) is not None]


def run_gathering(
    conn: Conn,
    tenant_id: str,
    visits: Sequence[PoiVisit],
    *,
    loans: dict[int, int | None],
    config: GatheringConfig,
    policy: alerts.AlertPolicy,
    notify: alerts.Notifier,
    outcome: alerts.Outcome,
) -> int:
    """Step the tenant's gathering state over ``visits`` (GNSS order); returns signals raised."""
    conn.execute(
        "INSERT INTO tenant_rule_state (tenant_id, rule, state) VALUES (%s, %s, %s) "
        "ON CONFLICT DO NOTHING",
        (tenant_id, RULE, msgspec.msgpack.encode(GatheringState())),
    )
    row = conn.execute(
        "SELECT state FROM tenant_rule_state WHERE tenant_id = %s AND rule = %s FOR UPDATE",
        (tenant_id, RULE),
    ).fetchone()
    assert row is not None
    state = msgspec.msgpack.decode(bytes(row[0]), type=GatheringState)
    raised = 0
    for visit in sorted(visits, key=lambda v: (v.time, v.vehicle_id, v.poi_id)):
        state, signals = step_gathering(state, visit, config)
        for signal in signals:
            raised += 1
            members = signal.evidence.get("vehicles")
            vehicle_ids = members if isinstance(members, list) else [visit.vehicle_id]
            for vehicle in vehicle_ids:
                if isinstance(vehicle, int):
                    alerts.apply(conn, tenant_id, vehicle, loans.get(vehicle), signal,
                                 policy=policy, notify=notify, outcome=outcome)  # fmt: skip
    conn.execute(
        "UPDATE tenant_rule_state SET state = %s, updated_at = now() "
        "WHERE tenant_id = %s AND rule = %s",
        (msgspec.msgpack.encode(state), tenant_id, RULE),
    )
    return raised
