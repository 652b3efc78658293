"""``jamming``: the GNSS fix is lost while driving and the cellular link stays up.

``DOMAIN.md``: fix lost with ignition on for > 60 s and heartbeats still arriving;
a car park looks similar but happens while parked.

Per device, in GNSS order. The device is *armed* by its latest fix: ignition on
(or, for a unit without an ignition line, at least ``no_ignition_mps``, 5 m/s)
and not looking like a car entering cover. Cover means a slow (< 15 km/h) fix
with HDOP > 5 or at most 4 satellites: the receiver losing the sky bit by bit
on a car-park ramp, where a jammer takes the fix at once. Ignition off at the
last fix (parked) never arms: a car park, however long.

While armed and with no newer fix, link evidence raises the episode:

- the agent's ``jamming_suspected`` (it applied the same 60 s / moving / link-up
  test on the tracker; trusted even if it arrived late, and even when its
  time is stale because the receiver gave no time while jammed);
- any other event that was sent live (not late, ``detail["link_up"]`` not
  false: heartbeats, ``gnss_fault`` with ``link_up`` true, power or session
  events) more than ``min_lost_s`` (60 s) after the last fix.

Severity **warn** at first (ours), **high** (same episode) once link evidence
shows the loss has lasted ``high_after_s`` (5 min, the vendors' "no fix within
5 min = GNSS fault" figure; a jammer in a financed car is deliberate). An
``antenna_cut`` explains a lost fix and disarms until the next fix. A tunnel
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


class LastFix(msgspec.Struct, frozen=True, kw_only=True):
    time: datetime
    lat: float
    lon: float
    armed: bool  # moving with the ignition on, in the open
    key: str | None = None  # open episode
    sev: int = 0
    lost_s: float = 0.0  # longest loss the evidence has shown


class JammingState(msgspec.Struct, frozen=True, kw_only=True):
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


def _on_event(d: LastFix, ev: EventIn, cfg: JammingConfig) -> tuple[LastFix, list[Signal]]:
    if ev.kind == "antenna_cut":
        return msgspec.structs.replace(d, armed=False), []
    suspected = ev.kind == "jamming_suspected"
    if not suspected and is_late(ev):
        return d, []  # stored while the link was down: says nothing about the link
    lost = max(seconds(ev.time, d.time), 0.0)
    if suspected:
        lost = max(lost, cfg.min_lost_s)  # the agent waited the 60 s on its own clock
    elif lost <= cfg.min_lost_s:
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
    msg = f"GNSS fix lost for {lost / 60.0:.1f} min while driving, link still up"
    sig = Signal(NAME, key, ev.time, sev, Action.OPEN, ev.device_id, d.lat, d.lon, msg, evidence)
    return msgspec.structs.replace(d, key=key, sev=int(sev), lost_s=max(d.lost_s, lost)), [sig]


def step(
    state: JammingState, inp: RuleInput, ctx: VehicleContext, cfg: JammingConfig
) -> tuple[JammingState, Sequence[Signal]]:
    if type(inp) is FixIn:
        new, out = _on_fix(state.devices.get(inp.device_id), inp, cfg)
    elif type(inp) is EventIn:
        d = state.devices.get(inp.device_id)
        if d is None or not (d.armed or d.key is not None) or inp.time < d.time:
            return state, ()
        new, out = _on_event(d, inp, cfg)
        if new is d:
            return state, out
    else:
        return state, ()
    return JammingState(devices={**state.devices, inp.device_id: new}), out


RULE: Rule[JammingState, JammingConfig] = Rule(
    name=NAME,
    state_type=JammingState,
    config_type=JammingConfig,
    step=step,
    raises=(NAME,),
    description="GNSS fix lost > 60 s while driving with the ignition on and the link up",
)
