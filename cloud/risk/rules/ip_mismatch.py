"""``gs_ip_mismatch``: the province of the GPS fix differs from the province of the tracker's IP.

Input: an ``EventIn`` of kind ``session`` with ``detail["ip"]``, one per link
session (the cloud sees the public address of the operator's gateway when the
device connects). The GPS side is the session event's own position, else the
device's next fix within ``max_fix_age_s`` (30 min: a wired unit reports at
least every 15 min, a wireless one fixes a few minutes after it connects).
Ordinary fixes cost nothing: only a session waiting for its fix is kept.

``DOMAIN.md`` ("IP geolocation"): mobile IP geolocation is off by ~180-200 km
and often resolves only to a province, so this is weak evidence:

- addresses with no province (``places.ip_province`` is None) and fixes with no
  province are ignored;
- **warn** when at least ``min_sessions`` (3) sessions within ``window_s``
  (7 days) mismatched;
- ``places.ip_is_foreign_or_hosting``: an address abroad or in a hosting /
  data-centre range (a replay server or a simulator) is strong evidence:
  **high** at once (escalating an open episode).

One episode per device at a time, key ``gs_ip_mismatch:<device>:<t>``, ``t`` =
GNSS time of the first session that counts (the oldest mismatch in the window,
or the strong session). Resolved when, at a later session or tick, fewer than
``min_sessions`` mismatches remain in the window and no strong session is
younger than ``window_s``. Lookups run once per session, never per fix.
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

NAME = "gs_ip_mismatch"
Positive = Annotated[float, Meta(gt=0)]


class IpMismatchConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    min_sessions: Annotated[int, Meta(ge=1, le=64)] = 3
    window_s: Positive = 7 * 86_400.0
    max_fix_age_s: Positive = 1800.0


class Session(msgspec.Struct, frozen=True, gc=False, array_like=True):
    time: datetime
    ip: str


class DeviceIp(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    pending: Session | None = None  # a session waiting for its first fix
    mismatches: tuple[datetime, ...] = ()  # sessions in the window, oldest first
    strong: datetime | None = None  # latest foreign / hosting session
    key: str | None = None
    sev: int = 0


class IpMismatchState(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    devices: dict[str, DeviceIp] = msgspec.field(default_factory=dict)


def _signal(
    dev_id: str,
    key: str,
    t: datetime,
    sev: Severity,
    msg: str,
    evidence: dict[str, JsonValue],
    lat: float | None,
    lon: float | None,
    action: Action = Action.OPEN,
) -> Signal:
    return Signal(NAME, key, t, sev, action, dev_id, lat, lon, msg, evidence)


def _expire(
    d: DeviceIp, dev_id: str, t: datetime, cfg: IpMismatchConfig, out: list[Signal]
) -> DeviceIp:
    """Drop mismatches older than the window; resolve when the evidence has faded."""
    kept = tuple(x for x in d.mismatches if seconds(t, x) <= cfg.window_s)
    strong = d.strong if d.strong and seconds(t, d.strong) <= cfg.window_s else None
    key = d.key
    if key is not None and len(kept) < cfg.min_sessions and strong is None:
        msg = f"fewer than {cfg.min_sessions} mismatched sessions in the window"
        ev: dict[str, JsonValue] = {"sessions_in_window": len(kept)}
        out.append(_signal(dev_id, key, t, Severity(d.sev), msg, ev, None, None, Action.RESOLVE))
        key = None
    if kept == d.mismatches and strong == d.strong and key == d.key:
        return d
    sev = d.sev if key is not None else 0
    return msgspec.structs.replace(d, mismatches=kept, strong=strong, key=key, sev=sev)


def _judge(
    d: DeviceIp,
    dev_id: str,
    s: Session,
    lat: float,
    lon: float,
    ctx: VehicleContext,
    cfg: IpMismatchConfig,
    out: list[Signal],
) -> DeviceIp:
    d = _expire(d, dev_id, s.time, cfg, out)
    places = ctx.places
    gps = places.province_of(lat, lon)
    ev: dict[str, JsonValue] = {"ip": s.ip, "session": stamp(s.time), "gps_province": gps}
    if places.ip_is_foreign_or_hosting(s.ip):
        ev["strong"] = True
        if d.key is not None and d.sev >= Severity.HIGH:
            return msgspec.structs.replace(d, strong=s.time)
        key = d.key or episode(NAME, dev_id, s.time)
        msg = "tracker connects from an address abroad or in a hosting range"
        out.append(_signal(dev_id, key, s.time, Severity.HIGH, msg, ev, lat, lon))
        return msgspec.structs.replace(d, strong=s.time, key=key, sev=int(Severity.HIGH))
    ip_prov = places.ip_province(s.ip)
    if ip_prov is None or gps is None or ip_prov == gps:
        return d
    kept = (*d.mismatches, s.time)[-64:]
    d = msgspec.structs.replace(d, mismatches=kept)
    if d.key is not None or len(kept) < cfg.min_sessions:
        return d
    key = episode(NAME, dev_id, kept[0])
    ev.update({"ip_province": ip_prov, "sessions": len(kept), "first": stamp(kept[0])})
    msg = f"{len(kept)} sessions in 7 days from an IP in {ip_prov} while the car was in {gps}"
    out.append(_signal(dev_id, key, s.time, Severity.WARN, msg, ev, lat, lon))
    return msgspec.structs.replace(d, key=key, sev=int(Severity.WARN))


def _on_session(
    d: DeviceIp, ev: EventIn, ctx: VehicleContext, cfg: IpMismatchConfig, out: list[Signal]
) -> DeviceIp:
    ip = ev.detail.get("ip")
    if not isinstance(ip, str) or not ip:
        return d
    s = Session(ev.time, ip)
    if ev.lat is not None and ev.lon is not None:
        return _judge(d, ev.device_id, s, ev.lat, ev.lon, ctx, cfg, out)
    return msgspec.structs.replace(d, pending=s)


def step(
    state: IpMismatchState, inp: RuleInput, ctx: VehicleContext, cfg: IpMismatchConfig
) -> tuple[IpMismatchState, Sequence[Signal]]:
    out: list[Signal] = []
    if type(inp) is FixIn:
        d = state.devices.get(inp.device_id)
        if d is None or d.pending is None:
            return state, ()  # the common case: no session waiting for a position
        new = msgspec.structs.replace(d, pending=None)
        if (inp.time - d.pending.time).total_seconds() <= cfg.max_fix_age_s:
            new = _judge(new, inp.device_id, d.pending, inp.lat, inp.lon, ctx, cfg, out)
    elif type(inp) is EventIn:
        if inp.kind != "session":
            return state, ()
        d = state.devices.get(inp.device_id) or DeviceIp()
        new = _on_session(d, inp, ctx, cfg, out)
    else:  # Tick: let old evidence expire
        changed: dict[str, DeviceIp] = {}
        for dev_id, d in state.devices.items():
            if d.key is None and not d.mismatches and d.strong is None:
                continue
            new = _expire(d, dev_id, inp.time, cfg, out)
            if new is not d:
                changed[dev_id] = new
        if not changed:
            return state, out
        return IpMismatchState(devices={**state.devices, **changed}), out
    return IpMismatchState(devices={**state.devices, inp.device_id: new}), out


RULE: Rule[IpMismatchState, IpMismatchConfig] = Rule(
    name=NAME,
    state_type=IpMismatchState,
    config_type=IpMismatchConfig,
    step=step,
    raises=(NAME,),
    description="Province of the GPS fix differs from the province of the tracker's IP: warn at "
    ">= 3 sessions in 7 days; abroad / hosting addresses high",
    events=frozenset({"session"}),
)
