"""``offline``: no data from a device for longer than its reporting pattern allows.

Thresholds (``DOMAIN.md``, "offline"; the wireless escalation is ours):

- **wired**: silent for more than 2 x its heartbeat period *and* more than 30 min
  -> info; 6 h -> warn; 24 h -> high.
- **wireless**: 2 missed scheduled reports (2 x 24 h / ``wakes_per_day``, plus
  30 min for the 3-7 min wake window and schedule drift) -> warn; 4 missed -> high.

Silence is measured from the GNSS time of the device's latest record of any
kind (fix, event, heartbeat). A :class:`Tick` raises the episode live; a record
that ends a silence longer than the threshold raises it too (retroactively,
when no tick saw the gap: a re-run or a backtest) and resolves it at once.

**Signal time**: the GNSS moment the silence crossed the threshold the signal
reports first (for a new episode: the first threshold after the last record;
for an escalation: the next level's), whichever tick or record showed it. A
live worker ticking every minute and a replay or backtest ticking once at the
end so date the alert alike; the tick's own time would date it by when ticks
happened to run.

**Episode key** ``offline:<device>:<t>``: ``t`` is the GNSS time of the device's
last record that was *not* late, i.e. the last time the cloud heard from it
live. Late records (``device_common.is_late``) do not move it, so the key a live
tick chose is the key a re-run over the late burst computes too.

**Late bursts** (blind areas, link drops). A live tick may raise the episode,
and then stored data arrives showing the device kept recording. The engine
re-runs the vehicle from the snapshot before the burst, in GNSS order, and the
rule resolves the live episode in either case:

- a record at most the threshold after the previous record (any kind) while
  the episode is open: the silence is filled -> resolve ("out of coverage");
- a late record more than the threshold after the last live record while no
  episode is open (the snapshot predates the tick that opened it): the live run
  must have raised ``offline:<device>:<last live>`` -> resolve that key. A
  resolve for an episode that never opened is a no-op for the alert store.
- a real gap in the stored data (underground car park: no fixes at all) is
  re-raised with the same key and the severity its length earned, then
  resolved, with ``out_of_coverage`` in the evidence when late records or a
  link-down marker fell inside it.

The worker must treat OPEN of an existing episode as an update (severity = max)
and RESOLVE of an unknown episode as a no-op.
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
    Device,
    DeviceKind,
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
from cloud.risk.rules.device_common import device_of, episode, is_late, seconds, stamp

NAME = "offline"
Positive = Annotated[float, Meta(gt=0)]


class OfflineConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    wired_min_s: Positive = 1800.0  # > 30 min ...
    wired_heartbeats: Positive = 2.0  # ... and > 2 x heartbeat_s
    wired_warn_s: Positive = 6 * 3600.0
    wired_high_s: Positive = 24 * 3600.0
    wireless_missed: Positive = 2.0  # scheduled reports missed -> warn
    wireless_high_missed: Positive = 4.0  # -> high
    wireless_grace_s: Annotated[float, Meta(ge=0)] = 1800.0


class DeviceSilence(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    kind: DeviceKind
    last: datetime  # GNSS time of the latest record of any kind
    last_live: datetime | None = None  # ... of the latest record that was not late
    lat: float | None = None  # last known position
    lon: float | None = None
    coverage: bool = False  # a late record or link-down marker since last_live
    open_key: str | None = None
    open_sev: int = 0
    covered: datetime | None = None  # last_live whose live episode late data already resolved


class OfflineState(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    devices: dict[str, DeviceSilence] = msgspec.field(default_factory=dict)


def first_threshold(dev: Device, cfg: OfflineConfig) -> float:
    """Seconds of silence after which the device is offline."""
    if dev.kind == "wired":
        return max(cfg.wired_min_s, cfg.wired_heartbeats * dev.heartbeat_s)
    period = 86_400.0 / max(dev.wakes_per_day, 1e-3)
    return cfg.wireless_missed * period + cfg.wireless_grace_s


def levels(dev: Device, cfg: OfflineConfig) -> tuple[tuple[float, Severity], ...]:
    """Silence thresholds (seconds, ascending) and the severity each one reaches."""
    first = first_threshold(dev, cfg)
    if dev.kind == "wired":
        return (
            (first, Severity.INFO),
            (max(first, cfg.wired_warn_s), Severity.WARN),
            (max(first, cfg.wired_high_s), Severity.HIGH),
        )
    period = 86_400.0 / max(dev.wakes_per_day, 1e-3)
    return (
        (first, Severity.WARN),
        (cfg.wireless_high_missed * period + cfg.wireless_grace_s, Severity.HIGH),
    )


def _severity(silence_s: float, lv: tuple[tuple[float, Severity], ...]) -> Severity | None:
    reached: Severity | None = None
    for threshold, sev in lv:
        if silence_s > threshold:
            reached = sev
    return reached


def _crossed(last: datetime, lv: tuple[tuple[float, Severity], ...], above: int) -> datetime:
    """When the silence since ``last`` crossed the first level more severe than ``above``."""
    threshold = next((th for th, sev in lv if sev > above), lv[-1][0])
    return last + timedelta(seconds=threshold)


def _evidence(d: DeviceSilence, silence_s: float, first_s: float) -> dict[str, JsonValue]:
    return {
        "device_kind": d.kind,
        "last_seen": stamp(d.last),
        "last_live": stamp(d.last_live) if d.last_live else None,
        "silence_min": round(silence_s / 60.0, 1),
        "threshold_min": round(first_s / 60.0, 1),
    }


def _signal(
    dev_id: str,
    d: DeviceSilence,
    key: str,
    t: datetime,
    sev: Severity,
    message: str,
    evidence: dict[str, JsonValue],
    action: Action = Action.OPEN,
) -> Signal:
    return Signal(
        NAME, key, t, sev, action, dev_id, d.lat, d.lon, message=message, evidence=evidence
    )


def _on_record(
    d: DeviceSilence, inp: FixIn | EventIn, ctx: VehicleContext, cfg: OfflineConfig
) -> tuple[DeviceSilence, list[Signal]]:
    t = inp.time
    late = is_late(inp)
    lat, lon = (inp.lat, inp.lon) if inp.lat is not None else (d.lat, d.lon)
    if t <= d.last:  # same GNSS time as the previous record: no time has passed
        live = t if not late and (d.last_live is None or t > d.last_live) else d.last_live
        return msgspec.structs.replace(d, last_live=live, lat=lat, lon=lon), []
    gap = (t - d.last).total_seconds()
    if not late and d.open_key is None and d.kind == "wired" and gap <= cfg.wired_min_s:
        # the common case: a record within the shortest possible wired threshold
        return msgspec.structs.replace(d, last=t, last_live=t, lat=lat, lon=lon, coverage=False), []
    out: list[Signal] = []
    lv = levels(device_of(ctx, inp.device_id, inp.device_kind), cfg)
    first = lv[0][0]
    open_key, open_sev, covered = d.open_key, d.open_sev, d.covered
    late_ev: dict[str, JsonValue] = {
        "reason": "late_data",
        "late_record": stamp(t),
        "out_of_coverage": True,
    }
    late_msg = "stored data covers the silence: out of coverage, not offline"
    if gap > first:  # the device really was silent: raise (unless a tick did) and resolve
        sev = _severity(gap, lv) or lv[0][1]
        key = episode(NAME, inp.device_id, d.last_live or d.last)
        ev = _evidence(d, gap, first)
        ev["out_of_coverage"] = d.coverage or late
        hours = gap / 3600.0
        if open_key != key or open_sev < sev:
            msg = f"{d.kind} device was silent for {hours:.1f} h (seen in stored data)"
            at = _crossed(d.last, lv, open_sev if open_key == key else 0)
            out.append(_signal(inp.device_id, d, key, at, sev, msg, ev))
        msg = f"{d.kind} device reporting again after {hours:.1f} h"
        out.append(_signal(inp.device_id, d, key, t, sev, msg, ev, Action.RESOLVE))
        open_key, open_sev = None, 0
    elif open_key is not None:  # stored records fill the silence a tick saw
        sev = Severity(open_sev)
        out.append(_signal(inp.device_id, d, open_key, t, sev, late_msg, late_ev, Action.RESOLVE))
        open_key, open_sev, covered = None, 0, d.last_live
    elif (
        late
        and d.last_live is not None
        and covered != d.last_live
        and seconds(t, d.last_live) > first
    ):  # live, nothing was heard after last_live for that long: a tick may have raised it
        key = episode(NAME, inp.device_id, d.last_live)
        sig = _signal(inp.device_id, d, key, t, lv[0][1], late_msg, late_ev, Action.RESOLVE)
        out.append(sig)
        covered = d.last_live
    new = DeviceSilence(
        kind=d.kind,
        last=t,
        last_live=d.last_live if late else t,
        lat=lat,
        lon=lon,
        coverage=late,
        open_key=open_key,
        open_sev=open_sev,
        covered=covered,
    )
    return new, out


def _on_tick(
    state: OfflineState, t: datetime, ctx: VehicleContext, cfg: OfflineConfig
) -> tuple[OfflineState, list[Signal]]:
    out: list[Signal] = []
    changed: dict[str, DeviceSilence] = {}
    for dev_id, d in state.devices.items():
        silence = (t - d.last).total_seconds()
        if d.open_key is None and d.kind == "wired" and silence <= cfg.wired_min_s:
            continue  # the common case: heard from recently (no wired threshold is lower)
        dev = device_of(ctx, dev_id, d.kind)
        if d.open_key is None and silence <= first_threshold(dev, cfg):
            continue
        lv = levels(dev, cfg)
        sev = _severity(silence, lv)
        if sev is None or (d.open_key is not None and sev <= d.open_sev):
            continue
        key = d.open_key or episode(NAME, dev_id, d.last_live or d.last)
        msg = f"no data from the {d.kind} device for {silence / 3600.0:.1f} h"
        ev = _evidence(d, silence, lv[0][0])
        at = _crossed(d.last, lv, d.open_sev if d.open_key is not None else 0)
        out.append(_signal(dev_id, d, key, at, sev, message=msg, evidence=ev))
        changed[dev_id] = msgspec.structs.replace(d, open_key=key, open_sev=int(sev))
    if not changed:
        return state, out
    return OfflineState(devices={**state.devices, **changed}), out


def step(
    state: OfflineState, inp: RuleInput, ctx: VehicleContext, cfg: OfflineConfig
) -> tuple[OfflineState, Sequence[Signal]]:
    if isinstance(inp, Tick):
        return _on_tick(state, inp.time, ctx, cfg)
    d = state.devices.get(inp.device_id)
    if (
        d is not None
        and d.open_key is None
        and d.kind == "wired"
        and not (inp.flags and LATE_FLAG in inp.flags)
        and (type(inp) is FixIn or inp.detail.get("link_up") is not False)  # type: ignore[union-attr]
    ):
        t = inp.time
        if t > d.last and (t - d.last).total_seconds() <= cfg.wired_min_s:
            # the common case (a live record within the shortest wired threshold), as
            # _on_record would give it
            lat = inp.lat
            new = replace(
                d,
                last=t,
                last_live=t,
                lat=lat if lat is not None else d.lat,
                lon=inp.lon if lat is not None else d.lon,
                coverage=False,
            )
            devices = state.devices.copy()  # faster than {**devices, id: new}, same order
            devices[inp.device_id] = new
            return OfflineState(devices=devices), ()
    if d is None:
        late = is_late(inp)
        new = DeviceSilence(
            kind=inp.device_kind,
            last=inp.time,
            last_live=None if late else inp.time,
            lat=inp.lat,
            lon=inp.lon,
            coverage=late,
        )
        return OfflineState(devices={**state.devices, inp.device_id: new}), ()
    new, out = _on_record(d, inp, ctx, cfg)
    devices = state.devices.copy()
    devices[inp.device_id] = new
    return OfflineState(devices=devices), out


RULE: Rule[OfflineState, OfflineConfig] = Rule(
    name=NAME,
    state_type=OfflineState,
    config_type=OfflineConfig,
    step=step,
    raises=(NAME,),
    description="No data from a device: wired > 2x heartbeat and > 30 min (warn 6 h, high 24 h); "
    "wireless 2 missed scheduled reports",
)
