"""``tamper`` and ``low_battery``: what a device says about its own hardware.

- **tamper** (``DOMAIN.md``: light sensor / case open, immediate): a ``tamper``
  event raises **high** at once; an ``antenna_cut`` event (JT/T 808 alarm bit 5:
  someone cut the GNSS antenna lead) raises **warn** (our choice: it blinds the
  unit but can be accidental). Events of the same kind from one device within
  ``merge_s`` (10 min, ours: a light sensor flaps while the case is open) belong
  to one episode. Not auto-resolved: a person has to look at the unit.
  Key ``tamper:<device>:<source>:<t>``, ``t`` = the first event's GNSS time.
- **low_battery** (``DOMAIN.md``: battery, or vehicle under-voltage < 11.4 V after
  1 h asleep), two episodes per device, both **warn** (ours):

  * ``battery``: a ``low_battery`` event (the device's own battery: a wireless
    unit's cells, a wired unit's backup). Resolved by ``power_restored`` (a
    wired unit charging again). Key ``low_battery:<device>:battery:<t>``.
  * ``vehicle``: a wired unit's ``ext_v`` between ``cut_volts`` (below that the
    supply is cut: ``power_cut``'s business) and 11.4 V, ignition off for at
    least 1 h, on ``min_readings`` (2) consecutive fixes, so one noisy reading
    does not fire. A resting lead-acid battery below ~11.4 V is deeply
    discharged: the car has stood a long time or is being drained. Resolved at
    ``recover_volts`` (12.0 V, hysteresis). Key ``low_battery:<device>:vehicle:<t>``,
    ``t`` = the first low reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

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

TAMPER = "tamper"
LOW = "low_battery"
Positive = Annotated[float, Meta(gt=0)]
_TAMPER_KINDS = {"tamper": Severity.HIGH, "antenna_cut": Severity.WARN}


# ------------------------------------------------------------------ tamper


class TamperConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    merge_s: Annotated[float, Meta(ge=0)] = 600.0


class TamperState(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    # "<device>|<kind>" -> (episode start, latest event) of the current episode
    last: dict[str, tuple[datetime, datetime]] = msgspec.field(default_factory=dict)


def tamper_step(
    state: TamperState, inp: RuleInput, ctx: VehicleContext, cfg: TamperConfig
) -> tuple[TamperState, Sequence[Signal]]:
    if type(inp) is not EventIn or inp.kind not in _TAMPER_KINDS:
        return state, ()
    slot = f"{inp.device_id}|{inp.kind}"
    t = inp.time
    prev = state.last.get(slot)
    if prev is not None and 0 <= seconds(t, prev[1]) <= cfg.merge_s:
        return TamperState(last={**state.last, slot: (prev[0], t)}), ()
    source = str(inp.detail.get("source") or ("antenna" if inp.kind == "antenna_cut" else "case"))
    sev = _TAMPER_KINDS[inp.kind]
    what = "GNSS antenna cut" if inp.kind == "antenna_cut" else f"tamper alarm ({source} sensor)"
    sig = Signal(
        TAMPER,
        episode(TAMPER, inp.device_id, t, source),
        t,
        sev,
        device_id=inp.device_id,
        lat=inp.lat,
        lon=inp.lon,
        message=f"{inp.device_kind} unit: {what}",
        evidence={"kind": inp.kind, "source": source, "device_kind": inp.device_kind},
    )
    return TamperState(last={**state.last, slot: (t, t)}), (sig,)


TAMPER_RULE: Rule[TamperState, TamperConfig] = Rule(
    name=TAMPER,
    state_type=TamperState,
    config_type=TamperConfig,
    step=tamper_step,
    raises=(TAMPER,),
    description="Tamper (light sensor / case open) at once, high; antenna cut, warn",
    events=frozenset(_TAMPER_KINDS),
)


# ------------------------------------------------------------------ low battery


class LowBatteryConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    vehicle_volts: Positive = 11.4
    asleep_s: Positive = 3600.0
    min_readings: Annotated[int, Meta(ge=1)] = 2
    recover_volts: Positive = 12.0
    cut_volts: Positive = 5.0


class DeviceBattery(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    battery_key: str | None = None  # open "battery" episode
    off_since: datetime | None = None  # ignition off since (None: on, or unknown)
    low_first: datetime | None = None  # first of the consecutive low vehicle readings
    low_count: int = 0
    vehicle_key: str | None = None  # open "vehicle" episode


class LowBatteryState(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    devices: dict[str, DeviceBattery] = msgspec.field(default_factory=dict)


def _low_sig(
    key: str,
    inp: FixIn | EventIn,
    message: str,
    evidence: dict[str, JsonValue],
    action: Action = Action.OPEN,
) -> Signal:
    return Signal(
        LOW,
        key,
        inp.time,
        Severity.WARN,
        action,
        inp.device_id,
        inp.lat,
        inp.lon,
        message,
        evidence,
    )


def _on_event(d: DeviceBattery, ev: EventIn, out: list[Signal]) -> DeviceBattery:
    if ev.kind == "low_battery" and d.battery_key is None:
        key = episode(LOW, ev.device_id, ev.time, "battery")
        batt = ev.detail.get("batt_v")
        evidence: dict[str, JsonValue] = {"battery": "device", "batt_v": batt}
        out.append(_low_sig(key, ev, f"{ev.device_kind} unit reports a low battery", evidence))
        return msgspec.structs.replace(d, battery_key=key)
    if ev.kind == "power_restored" and d.battery_key is not None:
        evidence = {"battery": "device", "reason": "charging"}
        msg = "vehicle power restored: the backup battery charges"
        out.append(_low_sig(d.battery_key, ev, msg, evidence, Action.RESOLVE))
        return msgspec.structs.replace(d, battery_key=None)
    return d


def _on_fix(
    d: DeviceBattery, fix: FixIn, cfg: LowBatteryConfig, out: list[Signal]
) -> DeviceBattery:
    off_since = d.off_since
    if fix.ignition is True:
        off_since = None
    elif fix.ignition is False and off_since is None:
        off_since = fix.time
    v = fix.ext_v
    low_first, low_count, key = d.low_first, d.low_count, d.vehicle_key
    if v is None or v < cfg.cut_volts:
        low_first, low_count = None, 0  # no reading, or the supply is cut (not under-voltage)
    elif (
        v < cfg.vehicle_volts
        and fix.ignition is False
        and off_since is not None
        and seconds(fix.time, off_since) >= cfg.asleep_s
    ):
        low_first, low_count = low_first or fix.time, low_count + 1
        if key is None and low_count >= cfg.min_readings:
            key = episode(LOW, fix.device_id, low_first, "vehicle")
            asleep_h = round(seconds(fix.time, off_since) / 3600.0, 1)
            evidence: dict[str, JsonValue] = {
                "battery": "vehicle",
                "ext_v": v,
                "asleep_h": asleep_h,
                "first_low": stamp(low_first),
                "readings": low_count,
            }
            msg = f"vehicle battery at {v:.1f} V after {asleep_h} h with the ignition off"
            out.append(_low_sig(key, fix, msg, evidence))
    else:
        low_first, low_count = None, 0
        if key is not None and v >= cfg.recover_volts:
            evidence = {"battery": "vehicle", "ext_v": v}
            msg = f"vehicle battery back at {v:.1f} V"
            out.append(_low_sig(key, fix, msg, evidence, Action.RESOLVE))
            key = None
    unchanged = (d.off_since, d.low_first, d.low_count, d.vehicle_key)
    if (off_since, low_first, low_count, key) == unchanged:
        return d
    return msgspec.structs.replace(
        d, off_since=off_since, low_first=low_first, low_count=low_count, vehicle_key=key
    )


def low_battery_step(
    state: LowBatteryState, inp: RuleInput, ctx: VehicleContext, cfg: LowBatteryConfig
) -> tuple[LowBatteryState, Sequence[Signal]]:
    out: list[Signal] = []
    if type(inp) is FixIn:
        if inp.device_kind != "wired":
            return state, ()
        d = state.devices.get(inp.device_id) or DeviceBattery()
        new = _on_fix(d, inp, cfg, out)
    elif type(inp) is EventIn and inp.kind in ("low_battery", "power_restored"):
        d = state.devices.get(inp.device_id) or DeviceBattery()
        new = _on_event(d, inp, out)
    else:
        return state, ()
    if new is d and inp.device_id in state.devices:
        return state, out
    return LowBatteryState(devices={**state.devices, inp.device_id: new}), out


LOW_BATTERY_RULE: Rule[LowBatteryState, LowBatteryConfig] = Rule(
    name=LOW,
    state_type=LowBatteryState,
    config_type=LowBatteryConfig,
    step=low_battery_step,
    raises=(LOW,),
    description="Device battery low (event), or vehicle < 11.4 V after 1 h with the ignition off",
    events=frozenset({"low_battery", "power_restored"}),
)
