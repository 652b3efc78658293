"""``blind_area`` (info): a device was out of coverage and uploaded what it stored later.

``DOMAIN.md``: in tunnels and underground car parks fixes are stored and
uploaded later in a burst; that is "was out of coverage", not "was removed".

The rule sees GNSS order, not arrival order, so it recognises the burst from
stored facts:

- a record is *stored* when it is late (``device_common.is_late``): flagged
  :data:`cloud.risk.model.LATE_FLAG` by the worker (received more than ~2 min
  after its GNSS time; the fixes of a cellular dead spot under open sky), or an
  event the agent raised with its link down (``detail["link_up"] is False``: the
  ``gnss_fault`` the edge watchdog raises 5 min into an underground car park,
  where there are no fixes to store at all);
- a *coverage gap* runs from a device's last live record to its next live one
  and holds at least one stored record;
- it is a blind area when it lasted more than ``min_gap_s`` (10 min, ours:
  above the 10-120 s link drops and the minutes of an ordinary tunnel), held no
  ``power_lost`` (that is ``power_cut`` / ``device_removed`` territory) and the
  device did not come back with a ``boot`` or ``power_lost`` / ``power_restored``
  (a restart or a rewiring, not coverage).

Raised at the first live record after the gap (the moment the burst is known
to be complete), **info**, and resolved at once: the condition is over when it
is recognised. The evidence says how long, how many stored records and where
the device went dark and came back. A gap with no stored record at all (no
marker, no late flag) is only ``offline``: nothing shows the device was alive.

Key ``blind_area:<device>:<t>``, ``t`` = GNSS time of the last live record before the gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from cloud.risk.model import (
    LATE_FLAG,
    Action,
    EventIn,
    FixIn,
    JsonValue,
    RuleInput,
    Severity,
    Signal,
    Tick,
    VehicleContext,
)
from cloud.risk.rules.base import Rule
from cloud.risk.rules.device_common import episode, seconds, stamp

NAME = "blind_area"
_NOT_COVERAGE = frozenset({"boot", "power_lost", "power_restored"})


class BlindAreaConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    min_gap_s: Annotated[float, Meta(gt=0)] = 600.0


class Coverage(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    last_live: datetime
    lat: float | None = None  # last known position at last_live
    lon: float | None = None
    stored: int = 0  # stored records since last_live
    markers: int = 0  # ... of which events raised with the link down
    first_stored: datetime | None = None
    power_lost: bool = False  # a power_lost among them


class BlindAreaState(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    devices: dict[str, Coverage] = msgspec.field(default_factory=dict)


def _stored(c: Coverage, inp: FixIn | EventIn) -> Coverage:
    marker = lost = False
    if isinstance(inp, EventIn):
        marker = inp.detail.get("link_up") is False
        lost = inp.kind == "power_lost"
    return msgspec.structs.replace(
        c,
        stored=c.stored + 1,
        markers=c.markers + marker,
        first_stored=c.first_stored or inp.time,
        power_lost=c.power_lost or lost,
    )


def _resumed(c: Coverage, inp: FixIn | EventIn, cfg: BlindAreaConfig) -> Signal | None:
    """The first live record after stored ones: was the gap a blind area?"""
    gap = seconds(inp.time, c.last_live)
    if gap <= cfg.min_gap_s or c.power_lost:
        return None
    if type(inp) is EventIn and inp.kind in _NOT_COVERAGE:
        return None
    key = episode(NAME, inp.device_id, c.last_live)
    evidence: dict[str, JsonValue] = {
        "from": stamp(c.last_live),
        "to": stamp(inp.time),
        "gap_min": round(gap / 60.0, 1),
        "stored_records": c.stored,
        "link_down_markers": c.markers,
        "first_stored": stamp(c.first_stored) if c.first_stored else None,
        "dark_at": [c.lat, c.lon] if c.lat is not None else None,
    }
    records = "1 stored record" if c.stored == 1 else f"{c.stored} stored records"
    msg = f"out of coverage for {gap / 60.0:.0f} min; {records} uploaded later"
    return Signal(
        NAME,
        key,
        inp.time,
        Severity.INFO,
        Action.OPEN,
        inp.device_id,
        inp.lat,
        inp.lon,
        msg,
        evidence,
    )


def step(
    state: BlindAreaState, inp: RuleInput, ctx: VehicleContext, cfg: BlindAreaConfig
) -> tuple[BlindAreaState, Sequence[Signal]]:
    if isinstance(inp, Tick):
        return state, ()
    c = state.devices.get(inp.device_id)
    out: list[Signal] = []
    late = (inp.flags and LATE_FLAG in inp.flags) or (
        type(inp) is EventIn and inp.detail.get("link_up") is False
    )  # is_late(inp), inlined: every record of every device comes here
    if late:
        if c is None:
            return state, ()  # nothing live yet to measure a gap from
        new = _stored(c, inp)
    elif c is not None and not c.stored:  # the common case: live, no stored records since
        lat = inp.lat
        new = Coverage(
            last_live=inp.time,
            lat=lat if lat is not None else c.lat,
            lon=inp.lon if lat is not None else c.lon,
        )
    else:
        if c is not None and c.stored:
            sig = _resumed(c, inp, cfg)
            if sig is not None:
                out += [
                    sig,
                    Signal(
                        NAME,
                        sig.episode,
                        sig.time,
                        Severity.INFO,
                        Action.RESOLVE,
                        sig.device_id,
                        sig.lat,
                        sig.lon,
                        "back in coverage",
                        sig.evidence,
                    ),
                ]
        lat, lon = inp.lat, inp.lon
        if lat is None and c is not None:
            lat, lon = c.lat, c.lon
        new = Coverage(last_live=inp.time, lat=lat, lon=lon)
    devices = state.devices.copy()  # faster than {**devices, id: new}, same order
    devices[inp.device_id] = new
    return BlindAreaState(devices=devices), out


RULE: Rule[BlindAreaState, BlindAreaConfig] = Rule(
    name=NAME,
    state_type=BlindAreaState,
    config_type=BlindAreaConfig,
    step=step,
    raises=(NAME,),
    description="Out of coverage for > 10 min, recognised from stored records uploaded later "
    "(late flag, or events raised with the link down); info",
)
