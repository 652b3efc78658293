"""``tracker_on_other_vehicle``: the wired unit rides on something that is not the car.

``DOMAIN.md``: slow non-zero speeds with the ignition never on, and the wired
unit has lost vehicle power (the tracker was taken off and put on an e-bike or
another vehicle; ``firmware_sim``'s ``MoveToVehicle`` fault, scenario
``tracker_on_ebike``: e-bike hops at 12-25 km/h).

Per wired device, a *run* of qualifying fixes: ignition not on (off or no line),
vehicle power lost (a ``power_lost`` event not followed by ``power_restored``,
or ``ext_v`` below 5 V; ``require_power_lost`` can drop this condition) and a
speed of 3-25 km/h (walking to e-bike pace; ours). Between consecutive
qualifying fixes at most ``max_step_s`` (2 min; the agent reports every 15 s
while moving) apart, the run adds the time between them; longer steps add
nothing. Stops at lights and faster or slower fixes neither count nor break the
run; ``run_gap_s`` (15 min) without a qualifying fix does. The run raises
**high** once it holds ``min_moving_s`` (5 min) of movement and the fixes have got
``min_displacement_m`` (500 m) from where it started, so parked jitter (3-15 m)
and urban jumps (50-300 m) never do.
A fix with the ignition on means the unit is on a car again: resolved.

Key ``tracker_on_other_vehicle:<device>:<t>``, ``t`` = GNSS time of the run's first fix.
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
from cloud.risk.rules.device_common import episode, seconds, stamp

NAME = "tracker_on_other_vehicle"
Positive = Annotated[float, Meta(gt=0)]


class OtherVehicleConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    min_kmh: Positive = 3.0
    max_kmh: Positive = 25.0
    min_moving_s: Positive = 300.0
    min_displacement_m: Positive = 500.0
    max_step_s: Positive = 120.0
    run_gap_s: Positive = 900.0
    require_power_lost: bool = True
    cut_volts: Positive = 5.0
    restore_volts: Positive = 9.0


class Run(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    start: datetime
    lat: float  # where the run started
    lon: float
    last: datetime  # latest qualifying fix
    moving_s: float = 0.0
    farthest_m: float = 0.0


class Unit(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    unpowered: bool = False
    run: Run | None = None
    key: str | None = None


class OtherVehicleState(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    devices: dict[str, Unit] = msgspec.field(default_factory=dict)


def _on_fix(u: Unit, fix: FixIn, cfg: OtherVehicleConfig) -> tuple[Unit, list[Signal]]:
    unpowered = u.unpowered
    if fix.ext_v is not None:
        if fix.ext_v < cfg.cut_volts:
            unpowered = True
        elif fix.ext_v >= cfg.restore_volts:
            unpowered = False
    if fix.ignition is True:  # on a vehicle with an ignition line: the car (again)
        out: list[Signal] = []
        if u.key is not None:
            msg = "ignition on again: the unit is on a car"
            ev: dict[str, JsonValue] = {"reason": "ignition_on"}
            sig = Signal(
                NAME,
                u.key,
                fix.time,
                Severity.HIGH,
                Action.RESOLVE,
                fix.device_id,
                fix.lat,
                fix.lon,
                msg,
                ev,
            )
            out.append(sig)
        if u.run is None and u.key is None and unpowered == u.unpowered:
            return u, out
        return Unit(unpowered=unpowered), out
    kmh = fix.speed_mps * 3.6
    run = u.run
    if run is not None and seconds(fix.time, run.last) > cfg.run_gap_s:
        run = None
    qualifies = (unpowered or not cfg.require_power_lost) and cfg.min_kmh <= kmh <= cfg.max_kmh
    if not qualifies:
        if run is u.run and unpowered == u.unpowered:
            return u, []
        return msgspec.structs.replace(u, unpowered=unpowered, run=run), []
    if run is None:
        run = Run(start=fix.time, lat=fix.lat, lon=fix.lon, last=fix.time)
    else:
        step = seconds(fix.time, run.last)
        step = step if step <= cfg.max_step_s else 0.0  # a pause or a gap is not movement
        away = distance_m(run.lat, run.lon, fix.lat, fix.lon)
        run = msgspec.structs.replace(
            run,
            last=fix.time,
            moving_s=run.moving_s + step,
            farthest_m=max(run.farthest_m, away),
        )
    out = []
    key = u.key
    if (
        key is None
        and run.moving_s >= cfg.min_moving_s
        and run.farthest_m >= cfg.min_displacement_m
    ):
        key = episode(NAME, fix.device_id, run.start)
        evidence: dict[str, JsonValue] = {
            "since": stamp(run.start),
            "moving_min": round(run.moving_s / 60.0, 1),
            "farthest_m": round(run.farthest_m),
            "speed_kmh": round(kmh, 1),
            "ignition": fix.ignition,
            "power_lost": unpowered,
        }
        msg = (
            f"wired unit moving at {kmh:.0f} km/h for {run.moving_s / 60.0:.0f} min "
            "without ignition or vehicle power: on another vehicle"
        )
        out.append(
            Signal(
                NAME,
                key,
                fix.time,
                Severity.HIGH,
                Action.OPEN,
                fix.device_id,
                fix.lat,
                fix.lon,
                msg,
                evidence,
            )
        )
    return Unit(unpowered=unpowered, run=run, key=key), out


def step(
    state: OtherVehicleState, inp: RuleInput, ctx: VehicleContext, cfg: OtherVehicleConfig
) -> tuple[OtherVehicleState, Sequence[Signal]]:
    if type(inp) is FixIn:
        if inp.device_kind != "wired":
            return state, ()
        u = state.devices.get(inp.device_id) or Unit()
        new, out = _on_fix(u, inp, cfg)
    elif type(inp) is EventIn and inp.kind in ("power_lost", "power_restored"):
        u = state.devices.get(inp.device_id) or Unit()
        new, out = msgspec.structs.replace(u, unpowered=inp.kind == "power_lost"), []
    else:
        return state, ()
    if new is u and inp.device_id in state.devices:
        return state, out
    return OtherVehicleState(devices={**state.devices, inp.device_id: new}), out


RULE: Rule[OtherVehicleState, OtherVehicleConfig] = Rule(
    name=NAME,
    state_type=OtherVehicleState,
    config_type=OtherVehicleConfig,
    step=step,
    raises=(NAME,),
    description="Wired unit moving at 3-25 km/h for 5 min with the ignition never on "
    "and vehicle power lost",
    events=frozenset({"power_lost", "power_restored"}),
)
