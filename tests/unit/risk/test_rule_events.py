"""Rules that declare the event kinds they read lose nothing when the engine skips the others."""

from __future__ import annotations

from typing import Any

import pytest

import cloud.risk.rules.catalogue  # noqa: F401  (registers the rules)
from cloud.risk.model import EventIn, RuleInput
from cloud.risk.rules.base import CATALOGUE
from protocols.messages import EventKind
from tests.unit.risk.device_fakes import (
    BOTH,
    HOME,
    WIRELESS,
    Timeline,
    drive,
    h,
    m,
    make_ctx,
    offset,
    s,
)

DETAIL: dict[str, dict[str, Any]] = {
    "heartbeat": {"ignition": False, "sats": 2, "ext_v": 12.5},
    "session": {"ip": "198.51.100.3"},
    "power_lost": {"ext_v": 0.0},
    "power_restored": {"ext_v": 12.6},
    "spoofing_suspected": {"reason": "jump_too_fast", "rejected_lat": 39.9, "rejected_lon": 116.4},
    "gnss_fault": {"link_up": True},
    "jamming_suspected": {"link_up": True},
    "region_exit": {"distance_m": 6000},
}


def everything() -> list[RuleInput]:
    """A day with every event kind between drives, parking, ticks and a far wireless unit."""
    tl = Timeline().drive(m(0), m(20), s(15)).park(m(21), h(3), m(10))
    far = offset(*HOME, 60_000.0, 0.0)
    for i, kind in enumerate(EventKind):
        at = m(22) + m(7) * i
        tl.event(at, kind.value, pos=HOME, **DETAIL.get(kind.value, {}))
        tl.event(at + s(30), kind.value, device=WIRELESS, dev_kind="wireless", pos=far,
                 **DETAIL.get(kind.value, {}))  # fmt: skip
    tl.fix(h(2), device=WIRELESS, kind="wireless", pos=far).ticks(m(0), h(6), m(30))
    tl.drive(h(3) + m(1), h(4), s(15), speed_kmh=20.0, ignition=False, ext_v=0.0)
    return tl.inputs()


@pytest.mark.parametrize("name", sorted(n for n, r in CATALOGUE.items() if r.events is not None))
def test_skipping_undeclared_events_changes_nothing(name: str) -> None:
    rule = CATALOGUE[name]
    assert rule.events is not None
    ctx = make_ctx(*BOTH)
    inputs = everything()
    kept = [i for i in inputs if not isinstance(i, EventIn) or i.kind in rule.events]
    assert len(kept) < len(inputs)
    full_state, full = drive(rule, inputs, ctx)
    skip_state, skipped = drive(rule, kept, ctx)
    assert skipped == full
    assert skip_state == full_state
