"""``power_cut`` and ``device_removed``: a wired unit loses vehicle power (``DOMAIN.md``).

One rule, two signals, one state per wired device:

- **power_cut**: the supply is lost, from a ``power_lost`` event or a fix whose
  ``ext_v`` is below ``cut_volts`` (5 V; a car battery rests at 12.3-12.8 V,
  cranking dips to ~9-10 V). While parked (last fix below 1.5 m/s, ignition not
  on; or an event since then reporting the ignition off, as the heartbeats of a
  car in a car park do: the gate drops every fix there, so the last fix is the
  moving one at the entrance) a ``power_lost`` event raises **high** at once:
  the tracker debounces it (vendors publish 5 s). While moving, or from
  ``ext_v``, the loss must persist ``debounce_s`` (5 s, ``DOMAIN.md``) with no
  restore, seen on any later input (fix, event or tick), and raises **warn**;
  it escalates to **high** (same episode) once a fix shows the car parked with
  the power still cut.
  Resolved by ``power_restored`` or a fix with ``ext_v`` at ``restore_volts`` (9 V).
- **device_removed** (critical: the tracker is gone from the collateral): after a
  cut, the device falls silent within ``within_s`` (30 min, ``DOMAIN.md``) and
  stays silent for ``silence_s`` = max(20 min, 3 x heartbeat) (longer than the
  parked report interval of 5-15 min). Raised by a :class:`Tick`, or from
  stored data when a record ends such a silence. Resolved when the device is
  heard again (its silence is over; ``power_cut`` stays open while unpowered),
  when stored records fill the silence (a late burst: out of coverage), or
  when power returns. A blind area has no ``power_lost``, so neither fires.
  The signal is dated when the silence reached ``silence_s`` (last record +
  ``silence_s``), whichever tick or record showed it: a live worker ticking
  every minute and a replay or backtest ticking once at the end date the
  alert alike (a tick's own time would make the date depend on when ticks
  happened to run).

Episode keys: ``power_cut:<device>:<t>`` and ``device_removed:<device>:<t>``,
``t`` = GNSS time the power was lost. Late records (``device_common.is_late``)
do not count as the device being heard live, as in ``offline``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated

import msgspec
from msgspec import Meta
from msgspec.structs import replace

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
from cloud.risk.rules.device_common import (
    device_of,
    episode,
    is_late,
    is_moving,
    seconds,
    stamp,
)

CUT = "power_cut"
REMOVED = "device_removed"
Positive = Annotated[float, Meta(gt=0)]


class PowerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    debounce_s: Annotated[float, Meta(ge=0)] = 5.0
    cut_volts: Positive = 5.0
    restore_volts: Positive = 9.0
    moving_mps: Positive = 1.5
    within_s: Positive = 1800.0  # the silence must begin within 30 min of the cut ...
    silence_s: Positive = 1200.0  # ... and last this long (or 3 x heartbeat if longer)
    silence_heartbeats: Positive = 3.0


class WiredPower(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    last: datetime  # GNSS time of the device's latest record
    last_live: datetime | None = None  # ... latest record that was not late
    moving: bool = False  # at the latest fix
    lat: float | None = None
    lon: float | None = None
    lost_at: datetime | None = None  # the supply is cut since
    lost_source: str = ""  # "event" | "ext_v"
    cut_sev: int = 0  # 0 while debouncing
    removed: bool = False  # device_removed episode open
    covered: bool = False  # late data already resolved a live device_removed


class PowerState(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    devices: dict[str, WiredPower] = msgspec.field(default_factory=dict)


def _sig(
    rule: str,
    dev_id: str,
    d: WiredPower,
    t: datetime,
    sev: Severity,
    message: str,
    action: Action = Action.OPEN,
    **extra: JsonValue,
) -> Signal:
    assert d.lost_at is not None
    evidence: dict[str, JsonValue] = {
        "lost_at": stamp(d.lost_at),
        "source": d.lost_source,
        "parked": not d.moving,
        **extra,
    }
    key = episode(rule, dev_id, d.lost_at)
    return Signal(rule, key, t, sev, action, dev_id, d.lat, d.lon, message, evidence)


def _silence_s(ctx: VehicleContext, dev_id: str, cfg: PowerConfig) -> float:
    hb = device_of(ctx, dev_id, "wired").heartbeat_s
    return max(cfg.silence_s, cfg.silence_heartbeats * hb)


def _confirm(
    dev_id: str, d: WiredPower, t: datetime, cfg: PowerConfig, out: list[Signal]
) -> WiredPower:
    """Raise or escalate power_cut once debounced; parked means high."""
    if d.lost_at is None:
        return d
    immediate = not d.moving and d.lost_source == "event"  # the tracker already debounced it
    if d.cut_sev == 0 and not immediate and seconds(t, d.lost_at) < cfg.debounce_s:
        return d
    sev = Severity.WARN if d.moving else Severity.HIGH
    if sev <= d.cut_sev:
        return d
    where = "while moving" if d.moving else "while parked"
    out.append(_sig(CUT, dev_id, d, t, sev, f"wired unit lost vehicle power {where}"))
    return msgspec.structs.replace(d, cut_sev=int(sev))


def _restore(dev_id: str, d: WiredPower, t: datetime, out: list[Signal]) -> WiredPower:
    if d.lost_at is None:
        return d
    mins = round(seconds(t, d.lost_at) / 60.0, 1)
    if d.cut_sev:
        sev = Severity(d.cut_sev)
        msg = f"vehicle power restored after {mins} min"
        out.append(_sig(CUT, dev_id, d, t, sev, msg, Action.RESOLVE, restored_after_min=mins))
    if d.removed:
        msg = "vehicle power restored: the unit is wired again"
        sig = _sig(REMOVED, dev_id, d, t, Severity.CRITICAL, msg, Action.RESOLVE)
        out.append(sig)
    return msgspec.structs.replace(d, lost_at=None, lost_source="", cut_sev=0, removed=False)


def _silence(
    dev_id: str,
    d: WiredPower,
    t: datetime,
    late: bool,
    limit: float,
    cfg: PowerConfig,
    out: list[Signal],
) -> WiredPower:
    """A record after a cut: did it end (or fill) a silence that means removal?"""
    assert d.lost_at is not None
    gap = seconds(t, d.last)
    began_in_time = seconds(d.last, d.lost_at) <= cfg.within_s
    msg_late = "stored data covers the silence: out of coverage, not removed"
    if gap >= limit and began_in_time:
        mins = round(gap / 60.0, 1)
        if not d.removed:  # no tick saw it (a re-run or a backtest): raise it from the data
            msg = f"silent for {mins} min after losing power (seen in stored data)"
            at = d.last + timedelta(seconds=limit)
            out.append(_sig(REMOVED, dev_id, d, at, Severity.CRITICAL, msg, silence_min=mins))
        msg = f"wired unit heard again after {mins} min of silence"
        out.append(
            _sig(REMOVED, dev_id, d, t, Severity.CRITICAL, msg, Action.RESOLVE, silence_min=mins)
        )
        return msgspec.structs.replace(d, removed=False)
    if d.removed:  # stored records fill the silence a tick saw
        out.append(_sig(REMOVED, dev_id, d, t, Severity.CRITICAL, msg_late, Action.RESOLVE))
        return msgspec.structs.replace(d, removed=False, covered=True)
    live = d.last_live
    if (
        late
        and not d.covered
        and live is not None
        and seconds(t, live) >= limit
        and seconds(live, d.lost_at) <= cfg.within_s
    ):  # a live run heard nothing after `live` for that long: a tick may have raised it
        out.append(_sig(REMOVED, dev_id, d, t, Severity.CRITICAL, msg_late, Action.RESOLVE))
        return msgspec.structs.replace(d, covered=True)
    return d


def _on_record(
    d: WiredPower, inp: FixIn | EventIn, ctx: VehicleContext, cfg: PowerConfig
) -> tuple[WiredPower, list[Signal]]:
    t, dev_id = inp.time, inp.device_id
    out: list[Signal] = []
    late = is_late(inp)
    if d.lost_at is not None and t > d.last:
        d = _silence(dev_id, d, t, late, _silence_s(ctx, dev_id, cfg), cfg, out)
    live = d.last_live if late else t
    if isinstance(inp, FixIn):
        last = t if t > d.last else d.last
        moving = is_moving(inp, cfg.moving_mps)
        d = msgspec.structs.replace(
            d, last=last, last_live=live, moving=moving, lat=inp.lat, lon=inp.lon
        )
        v = inp.ext_v
        if v is not None and v < cfg.cut_volts and d.lost_at is None:
            d = msgspec.structs.replace(d, lost_at=t, lost_source="ext_v", covered=False)
        elif v is not None and v >= cfg.restore_volts:
            d = _restore(dev_id, d, t, out)
    else:
        pos = (inp.lat, inp.lon) if inp.lat is not None else (d.lat, d.lon)
        moving = d.moving and inp.detail.get("ignition") is not False
        d = msgspec.structs.replace(
            d, last=t if t > d.last else d.last, last_live=live, lat=pos[0], lon=pos[1],
            moving=moving,
        )  # fmt: skip
        if inp.kind == "power_lost" and d.lost_at is None:
            d = msgspec.structs.replace(d, lost_at=t, lost_source="event", covered=False)
        elif inp.kind == "power_restored":
            d = _restore(dev_id, d, t, out)
    return _confirm(dev_id, d, t, cfg, out), out


def _on_tick(
    state: PowerState, t: datetime, ctx: VehicleContext, cfg: PowerConfig
) -> tuple[PowerState, list[Signal]]:
    out: list[Signal] = []
    changed: dict[str, WiredPower] = {}
    for dev_id, d in state.devices.items():
        lost = d.lost_at
        if lost is None:
            continue
        new = _confirm(dev_id, d, t, cfg, out)
        silence = seconds(t, new.last)
        if (
            not new.removed
            and silence >= _silence_s(ctx, dev_id, cfg)
            and seconds(new.last, lost) <= cfg.within_s
        ):
            mins = round(silence / 60.0, 1)
            msg = f"wired unit silent for {mins} min after losing power: removed"
            at = new.last + timedelta(seconds=_silence_s(ctx, dev_id, cfg))
            out.append(
                _sig(
                    REMOVED,
                    dev_id,
                    new,
                    at,
                    Severity.CRITICAL,
                    msg,
                    silence_min=mins,
                    last_seen=stamp(new.last),
                )
            )
            new = msgspec.structs.replace(new, removed=True)
        if new is not d:
            changed[dev_id] = new
    if not changed:
        return state, out
    return PowerState(devices={**state.devices, **changed}), out


def step(
    state: PowerState, inp: RuleInput, ctx: VehicleContext, cfg: PowerConfig
) -> tuple[PowerState, Sequence[Signal]]:
    if isinstance(inp, Tick):
        return _on_tick(state, inp.time, ctx, cfg)
    if inp.device_kind != "wired":
        return state, ()
    d = state.devices.get(inp.device_id)
    if d is None:
        d = WiredPower(last=inp.time, last_live=None if is_late(inp) else inp.time)
    powered = _powered(d, inp, cfg) if d.lost_at is None else None
    new, out = (powered, []) if powered is not None else _on_record(d, inp, ctx, cfg)
    devices = state.devices.copy()  # faster than {**devices, id: new}, same order
    devices[inp.device_id] = new
    return PowerState(devices=devices), out


def _powered(d: WiredPower, inp: FixIn | EventIn, cfg: PowerConfig) -> WiredPower | None:
    """``_on_record`` of a record that leaves the power on while it is on (the common case:
    no signal), or None when the record cuts it."""
    t = inp.time
    last = t if t > d.last else d.last
    if type(inp) is FixIn:
        v = inp.ext_v
        if v is not None and v < cfg.cut_volts:
            return None
        live = d.last_live if inp.flags and LATE_FLAG in inp.flags else t
        moving = inp.ignition is True or inp.speed_mps >= cfg.moving_mps
        return replace(d, last=last, last_live=live, moving=moving, lat=inp.lat, lon=inp.lon)
    assert isinstance(inp, EventIn)
    if inp.kind == "power_lost":
        return None
    live = d.last_live if is_late(inp) else t
    lat = inp.lat
    return replace(
        d,
        last=last,
        last_live=live,
        lat=lat if lat is not None else d.lat,
        lon=inp.lon if lat is not None else d.lon,
        moving=d.moving and inp.detail.get("ignition") is not False,
    )


RULE: Rule[PowerState, PowerConfig] = Rule(
    name=CUT,
    state_type=PowerState,
    config_type=PowerConfig,
    step=step,
    raises=(CUT, REMOVED),
    description="Wired unit loses vehicle power (high parked, warn moving, 5 s debounce); "
    "power cut then silence within 30 min = device_removed",
)
