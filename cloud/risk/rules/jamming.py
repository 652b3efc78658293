"""``jamming``: the GNSS fix is lost while driving and the cellular link stays up.

``DOMAIN.md``: fix lost with ignition on for > 60 s and heartbeats still arriving;
a car park looks similar but happens while parked.

Per device, in GNSS order. The device is *armed* by its latest fix: ignition on
(or, for a unit without an ignition line, at least ``no_ignition_mps``, 5 m/s)
and not looking like a car entering cover. Cover means a slow (< 15 km/h) fix
with HDOP > 5 or at most 4 satellites: the receiver losing the sky bit by bit
on a car-park ramp, where a jammer takes the fix at once. Ignition off at the
last fix (parked) never arms: a car park, however long.

While armed and with no newer fix, the episode opens only on evidence that the
*receiver* lost the sky, which a car park (HDOP > 5: the gate drops the fix,
the receiver still sees 5-10 satellites) and a tunnel (link down) do not give:

- the agent's ``jamming_suspected`` (it applied the same 60 s / moving / link-up
  test on the tracker, counting only epochs with no fix or fewer than 4
  satellites; trusted even if it arrived late, and even when its time is stale
  because the receiver gave no time while jammed);
- a ``gnss_fault`` sent live (``detail["link_up"]`` true: no fix for 5 min
  with the link up) more than ``min_lost_s`` after the last fix;
- a live event (a heartbeat, as JT/T 808 terminals send a "not positioned"
  report with their satellite count) whose ``detail["sats"]`` is at most
  ``lost_sats`` (3: ``DOMAIN.md`` "satellite count falls to 0-3"), more than
  ``min_lost_s`` after the last fix.

Heartbeats and other live events without a satellite count only show the link
is up: they never open an episode (they did, and every car parked in a car
park with the engine running raised one), but once one is open they show how
long the loss has lasted.

Severity **warn** at first (ours), **high** (same episode) once live evidence
shows the loss has lasted ``high_after_s`` (5 min, the vendors' "no fix within
5 min = GNSS fault" figure; a jammer in a financed car is deliberate). An
``antenna_cut`` explains a lost fix and disarms until the next fix, and so does
a wireless unit's ``session`` (it slept since its last fix and is waking up: a
receiver searching the sky after a wake is not a lost fix). A tunnel
takes the link down too, so its stored events are late and never count.
Resolved by the device's next fix (with how long and how far the car went).

Episode key ``jamming:<device>:<t>``, ``t`` = GNSS time of the last good fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from cloud.risk.geo import distance_m
from cloud.risk.model import (
    Action,
    EventIn,
    FixIn,
    JsonValue,
    RuleInput,
    Severity,
    Signal,
    VehicleContext,
)
from cloud.risk.rules.base import Rule
from cloud.risk.rules.device_common import episode, is_late, seconds, stamp

NAME = "jamming"
Positive = Annotated[float, Meta(gt=0)]


class JammingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    min_lost_s: Positive = 60.0
    high_after_s: Positive = 300.0
    no_ignition_mps: Positive = 5.0
    cover_speed_mps: Annotated[float, Meta(ge=0)] = 15.0 / 3.6
    cover_hdop: Positive = 5.0
    cover_sats: Annotated[int, Meta(ge=0)] = 4
    lost_sats: Annotated[int, Meta(ge=0)] = 3


class LastFix(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    time: datetime
    lat: float
    lon: float
    armed: bool  # moving with the ignition on, in the open
    key: str | None = None  # open episode
    sev: int = 0
    lost_s: float = 0.0  # longest loss the evidence has shown


class JammingState(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    devices: dict[str, LastFix] = msgspec.field(default_factory=dict)


def _armed(fix: FixIn, cfg: JammingConfig) -> bool:
    if fix.ignition is False:
        return False
    if fix.ignition is None and fix.speed_mps < cfg.no_ignition_mps:
        return False
    if fix.speed_mps < cfg.cover_speed_mps:
        hdop_bad = fix.hdop is not None and fix.hdop > cfg.cover_hdop
        sats_bad = fix.sats is not None and fix.sats <= cfg.cover_sats
        if hdop_bad or sats_bad:
            return False  # entering cover: a car park ramp, not a jammer
    return True


def _on_fix(d: LastFix | None, fix: FixIn, cfg: JammingConfig) -> tuple[LastFix, list[Signal]]:
    out: list[Signal] = []
    if d is not None and d.key is not None:
        lost = seconds(fix.time, d.time)
        moved = distance_m(d.lat, d.lon, fix.lat, fix.lon)
        evidence: dict[str, JsonValue] = {
            "lost_s": round(lost),
            "moved_m": round(moved),
            "fix_back": stamp(fix.time),
        }
        msg = f"fix back after {lost / 60.0:.1f} min, {moved / 1000.0:.1f} km further"
        out.append(
            Signal(
                NAME,
                d.key,
                fix.time,
                Severity(d.sev),
                Action.RESOLVE,
                fix.device_id,
                fix.lat,
                fix.lon,
                msg,
                evidence,
            )
        )
    return LastFix(time=fix.time, lat=fix.lat, lon=fix.lon, armed=_armed(fix, cfg)), out


def _opens(ev: EventIn, cfg: JammingConfig) -> bool:
    """Whether a live event (not ``jamming_suspected``) shows the receiver lost the sky."""
    if ev.kind == "gnss_fault":
        return ev.detail.get("link_up") is True
    sats = ev.detail.get("sats")
    return isinstance(sats, int) and not isinstance(sats, bool) and sats <= cfg.lost_sats


def _on_event(d: LastFix, ev: EventIn, cfg: JammingConfig) -> tuple[LastFix, list[Signal]]:
    if ev.kind == "antenna_cut" or (ev.kind == "session" and ev.device_kind == "wireless"):
        return msgspec.structs.replace(d, armed=False), []
    suspected = ev.kind == "jamming_suspected"
    if not suspected and is_late(ev):
        return d, []  # stored while the link was down: says nothing about the link
    lost = max(seconds(ev.time, d.time), 0.0)
    if suspected:
        lost = max(lost, cfg.min_lost_s)  # the agent waited the 60 s on its own clock
    elif lost <= cfg.min_lost_s or (d.key is None and not _opens(ev, cfg)):
        return d, []
    sev = Severity.HIGH if lost >= cfg.high_after_s else Severity.WARN
    if d.key is not None and sev <= d.sev:
        return msgspec.structs.replace(d, lost_s=max(d.lost_s, lost)), []
    key = d.key or episode(NAME, ev.device_id, d.time)
    evidence: dict[str, JsonValue] = {
        "last_fix": stamp(d.time),
        "lost_s": round(lost),
        "evidence": ev.kind,
        "device_suspected": suspected,
    }
    if "sats" in ev.detail:
        evidence["sats"] = ev.detail["sats"]
    msg = f"GNSS fix lost for {lost / 60.0:.1f} min while driving, link still up"
    sig = Signal(NAME, key, ev.time, sev, Action.OPEN, ev.device_id, d.lat, d.lon, msg, evidence)
    return msgspec.structs.replace(d, key=key, sev=int(sev), lost_s=max(d.lost_s, lost)), [sig]


def step(
    state: JammingState, inp: RuleInput, ctx: VehicleContext, cfg: JammingConfig
) -> tuple[JammingState, Sequence[Signal]]:
    if type(inp) is FixIn:
        d = state.devices.get(inp.device_id)
        if d is None or d.key is None:  # no episode to resolve: _on_fix's answer
            new = LastFix(time=inp.time, lat=inp.lat, lon=inp.lon, armed=_armed(inp, cfg))
            out: list[Signal] = []
        else:
            new, out = _on_fix(d, inp, cfg)
    elif type(inp) is EventIn:
        d = state.devices.get(inp.device_id)
        if d is None or not (d.armed or d.key is not None) or inp.time < d.time:
            return state, ()
        new, out = _on_event(d, inp, cfg)
        if new is d:
            return state, out
    else:
        return state, ()
    devices = state.devices.copy()  # faster than {**devices, id: new}, same order
    devices[inp.device_id] = new
    return JammingState(devices=devices), out


RULE: Rule[JammingState, JammingConfig] = Rule(
    name=NAME,
    state_type=JammingState,
    config_type=JammingConfig,
    step=step,
    raises=(NAME,),
    description="GNSS fix lost > 60 s while driving with the ignition on and the link up "
    "(the agent's jamming_suspected, a live gnss_fault, or 0-3 satellites reported)",
)
