"""``spoofing``: motion no vehicle can make (``DOMAIN.md``, "spoofing / teleport").

Findings per fix (thresholds from ``DOMAIN.md``, the same as
``protocols.plausibility``):

- ``teleport``: the implied speed from the device's previous fix above 300 km/h
  over at least 500 m. The jump must be *confirmed* by the next fix: if that one
  can be reached from the jumped-to position, the jump stands (a spoofer's
  positions follow on from the fake one); if it can only be reached from the old
  track, the jumped fix was an outlier and is dropped. Urban multipath jumps of
  50-300 m never reach 500 m at all.
- ``speed_too_high``: reported speed above 250 km/h;
- ``altitude_out_of_range``: outside -200..6000 m;
- ``time_ahead``: GNSS time more than 10 min ahead of the receiving clock. The
  engine has no clock, so this one comes from the plausibility stage's stored
  flag on the fix (``FixIn.flags``).

The edge agent's fix gate (``edge/gate.py``) drops ``jump_too_fast`` and
``time_in_future`` fixes and keeps its last accepted fix as the reference, so a
sustained spoof never reaches the cloud as fixes (the detection report missed
every spoofed car for that reason). The device contract
(``protocols/README.md``, implemented by the simulator's firmware): once the
gate has refused fixes for one of those reasons for 30 s with no fix accepted
in between, the device raises ``spoofing_suspected`` once per episode with
``detail["reason"]`` (the gate's reason), the refused position
(``rejected_lat``/``rejected_lon``), ``implied_kmh``, ``jump_km``, ``dropped``
and ``since``; the event's own position is the last accepted fix. It counts
here as a confirmed teleport (``jump_too_fast``: **high** at once; 30 s of
refusals is no multipath jump, those last 1-5 s) or as a ``time_ahead``
finding (``time_in_future``). Other events never count.

A confirmed teleport raises **high** at once. The other findings are weaker
(one bad NMEA field happens): ``min_findings`` (2) fixes with findings within
``window_s`` (10 min) raise **warn**, and a later confirmed teleport in the same
episode escalates to high. The episode is resolved once ``quiet_s`` (30 min)
passes with no finding (on the next fix or tick) and no jump awaits its
confirming fix. Key ``spoofing:<device>:<t>``,
``t`` = GNSS time of the first impossible fix of the episode.
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
    Tick,
    VehicleContext,
)
from cloud.risk.rules.base import Rule
from cloud.risk.rules.device_common import episode, seconds, stamp

NAME = "spoofing"
Positive = Annotated[float, Meta(gt=0)]
TIME_AHEAD = "time_ahead"  # protocols.plausibility finding stored in FixIn.flags
_EDGE_DROPS = frozenset({"jump_too_fast", "time_in_future"})  # edge/gate.py drop reasons
SUSPECTED = "spoofing_suspected"  # the device's event after sustained gate refusals
# Metres per degree of latitude, rounded up: |dlat| + |dlon| in degrees times this
# bounds the distance from above, so a pair under the bound is nearer than that.
_M_PER_DEG = 111_320.0


class SpoofingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_speed_kmh: Positive = 250.0
    max_implied_kmh: Positive = 300.0
    min_jump_m: Positive = 500.0
    min_alt_m: float = -200.0
    max_alt_m: float = 6000.0
    min_findings: Annotated[int, Meta(ge=1)] = 2
    window_s: Positive = 600.0
    quiet_s: Positive = 1800.0


class Point(msgspec.Struct, frozen=True, gc=False, array_like=True):
    time: datetime
    lat: float
    lon: float


class Track(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    anchor: Point  # latest fix believed to be on the device's real (or current) track
    pending: Point | None = None  # a jump from the anchor awaiting the next fix
    recent: tuple[datetime, ...] = ()  # fixes with weak findings, within window_s
    first: datetime | None = None  # first impossible fix of the open or pending episode
    last_finding: datetime | None = None
    key: str | None = None
    sev: int = 0


class SpoofingState(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    devices: dict[str, Track] = msgspec.field(default_factory=dict)


def _reachable(a: Point, b: Point, cfg: SpoofingConfig) -> tuple[bool, float, float]:
    """Whether ``b`` can follow ``a``; with the distance (m) and implied speed (km/h)."""
    if abs(b.lat - a.lat) + abs(b.lon - a.lon) < cfg.min_jump_m / _M_PER_DEG:
        return True, 0.0, 0.0  # certainly closer than min_jump_m: no trigonometry needed
    dt = seconds(b.time, a.time)
    d = distance_m(a.lat, a.lon, b.lat, b.lon)
    if d < cfg.min_jump_m:
        return True, d, 0.0
    kmh = d / dt * 3.6 if dt > 0 else float("inf")
    return kmh <= cfg.max_implied_kmh, d, kmh


def _weak_findings(fix: FixIn, cfg: SpoofingConfig) -> list[str]:
    found: list[str] = []
    if fix.speed_mps * 3.6 > cfg.max_speed_kmh:
        found.append("speed_too_high")
    if fix.alt_m is not None and not cfg.min_alt_m <= fix.alt_m <= cfg.max_alt_m:
        found.append("altitude_out_of_range")
    if TIME_AHEAD in fix.flags:
        found.append(TIME_AHEAD)
    return found


def _raise(
    tr: Track, inp: FixIn | EventIn, sev: Severity, msg: str, evidence: dict[str, JsonValue]
) -> tuple[Track, list[Signal]]:
    first = tr.first or inp.time
    if tr.key is not None and sev <= tr.sev:
        return msgspec.structs.replace(tr, last_finding=inp.time), []
    key = tr.key or episode(NAME, inp.device_id, first)
    lat, lon = (inp.lat, inp.lon) if inp.lat is not None else (tr.anchor.lat, tr.anchor.lon)
    sig = Signal(NAME, key, inp.time, sev, Action.OPEN, inp.device_id, lat, lon, msg, evidence)
    tr = msgspec.structs.replace(tr, key=key, sev=int(sev), first=first, last_finding=inp.time)
    return tr, [sig]


def _quiet(tr: Track, dev_id: str, t: datetime, cfg: SpoofingConfig) -> tuple[Track, list[Signal]]:
    """Resolve the episode after quiet_s without findings; forget stale weak findings."""
    if tr.last_finding is None or seconds(t, tr.last_finding) < cfg.quiet_s or tr.pending:
        return tr, []
    out: list[Signal] = []
    if tr.key is not None:
        msg = f"no impossible motion for {cfg.quiet_s / 60.0:.0f} min"
        evidence: dict[str, JsonValue] = {"last_finding": stamp(tr.last_finding)}
        out.append(
            Signal(
                NAME,
                tr.key,
                t,
                Severity(tr.sev),
                Action.RESOLVE,
                dev_id,
                tr.anchor.lat,
                tr.anchor.lon,
                msg,
                evidence,
            )
        )
    return Track(anchor=tr.anchor), out


def _on_fix(tr: Track, fix: FixIn, cfg: SpoofingConfig) -> tuple[Track, list[Signal]]:
    tr, out = _quiet(tr, fix.device_id, fix.time, cfg)
    here = Point(fix.time, fix.lat, fix.lon)
    if fix.time <= tr.anchor.time:
        return tr, out
    if tr.pending is not None:
        from_jump, _, _ = _reachable(tr.pending, here, cfg)
        from_track, _, _ = _reachable(tr.anchor, here, cfg)
        if from_jump and not from_track:  # the positions carry on from the jump: it stands
            _, d, kmh = _reachable(tr.anchor, tr.pending, cfg)
            evidence: dict[str, JsonValue] = {
                "finding": "teleport",
                "from": [tr.anchor.lat, tr.anchor.lon],
                "to": [tr.pending.lat, tr.pending.lon],
                "jump_km": round(d / 1000.0, 1),
                "implied_kmh": round(kmh),
                "at": stamp(tr.pending.time),
            }
            msg = f"position jumped {d / 1000.0:.1f} km at an implied {kmh:.0f} km/h"
            tr = msgspec.structs.replace(tr, anchor=tr.pending, pending=None)
            tr, sigs = _raise(tr, fix, Severity.HIGH, msg, evidence)
            out += sigs
        else:  # back on the old track (or nowhere near either): the jump was an outlier
            tr = msgspec.structs.replace(tr, pending=None, first=tr.first if tr.key else None)
    ok, _, _ = _reachable(tr.anchor, here, cfg)
    if ok:
        tr = msgspec.structs.replace(tr, anchor=here)
    else:
        tr = msgspec.structs.replace(tr, pending=here, first=tr.first or fix.time)
    tr, sigs = _weak(tr, fix, _weak_findings(fix, cfg), cfg)
    return tr, out + sigs


def _plain(tr: Track, fix: FixIn, cfg: SpoofingConfig) -> bool:
    """The common case: nothing pending or recent, a newer fix certainly within
    ``min_jump_m`` of the anchor (``_reachable``'s first test), no weak finding."""
    a = tr.anchor
    alt = fix.alt_m
    return (
        tr.last_finding is None
        and tr.pending is None
        and fix.time > a.time
        and abs(fix.lat - a.lat) + abs(fix.lon - a.lon) < cfg.min_jump_m / _M_PER_DEG
        and fix.speed_mps * 3.6 <= cfg.max_speed_kmh
        and (alt is None or cfg.min_alt_m <= alt <= cfg.max_alt_m)
        and TIME_AHEAD not in fix.flags
    )


def _weak(
    tr: Track, inp: FixIn | EventIn, weak: list[str], cfg: SpoofingConfig
) -> tuple[Track, list[Signal]]:
    """Speed, altitude and time-ahead findings: ``min_findings`` within ``window_s`` warn."""
    if not weak:
        return tr, []
    recent = (*(x for x in tr.recent if seconds(inp.time, x) <= cfg.window_s), inp.time)
    tr = msgspec.structs.replace(tr, recent=recent[-cfg.min_findings :], last_finding=inp.time)
    if len(recent) < cfg.min_findings:
        return tr, []
    evidence: dict[str, JsonValue] = {"findings": list(weak), "fixes": len(recent)}
    if isinstance(inp, FixIn):
        evidence.update(speed_kmh=round(inp.speed_mps * 3.6), alt_m=inp.alt_m)
    tr = msgspec.structs.replace(tr, first=tr.first or recent[0])
    return _raise(tr, inp, Severity.WARN, f"implausible fix: {', '.join(weak)}", evidence)


def _on_edge_drop(tr: Track, ev: EventIn, cfg: SpoofingConfig) -> tuple[Track, list[Signal]]:
    """The agent's gate dropped impossible fixes for a while (see the module docstring)."""
    reason = ev.detail.get("reason")
    if reason == "time_in_future":
        return _weak(tr, ev, [TIME_AHEAD], cfg)
    evidence: dict[str, JsonValue] = {"finding": "teleport", "source": "edge_gate"}
    evidence.update({k: v for k, v in ev.detail.items() if k != "reason"})
    if ev.lat is not None and ev.lon is not None:
        evidence["from"] = [ev.lat, ev.lon]
    lat, lon = ev.detail.get("rejected_lat"), ev.detail.get("rejected_lon")
    if isinstance(lat, float) and isinstance(lon, float):
        evidence["to"] = [lat, lon]
    msg = "the tracker dropped impossible positions (teleport seen on the device)"
    return _raise(tr, ev, Severity.HIGH, msg, evidence)


def step(
    state: SpoofingState, inp: RuleInput, ctx: VehicleContext, cfg: SpoofingConfig
) -> tuple[SpoofingState, Sequence[Signal]]:
    if type(inp) is FixIn:
        tr = state.devices.get(inp.device_id)
        if tr is None:
            anchor = Point(inp.time, inp.lat, inp.lon)
            new, out = _weak(Track(anchor=anchor), inp, _weak_findings(inp, cfg), cfg)
        elif _plain(tr, inp, cfg):  # _on_fix's answer for it: the anchor moves on
            new, out = msgspec.structs.replace(tr, anchor=Point(inp.time, inp.lat, inp.lon)), []
        else:
            new, out = _on_fix(tr, inp, cfg)
        devices = state.devices.copy()  # faster than {**devices, id: new}, same order
        devices[inp.device_id] = new
        return SpoofingState(devices=devices), out
    if type(inp) is EventIn:
        tr = state.devices.get(inp.device_id)
        if tr is None or inp.kind != SUSPECTED or inp.detail.get("reason") not in _EDGE_DROPS:
            return state, ()
        new, out = _on_edge_drop(tr, inp, cfg)
        devices = state.devices.copy()
        devices[inp.device_id] = new
        return SpoofingState(devices=devices), out
    if type(inp) is Tick:
        signals: list[Signal] = []
        changed: dict[str, Track] = {}
        for dev_id, tr in state.devices.items():
            if tr.last_finding is None:
                continue
            new, sigs = _quiet(tr, dev_id, inp.time, cfg)
            if new is not tr:
                changed[dev_id] = new
                signals += sigs
        if changed:
            return SpoofingState(devices={**state.devices, **changed}), signals
    return state, ()


RULE: Rule[SpoofingState, SpoofingConfig] = Rule(
    name=NAME,
    state_type=SpoofingState,
    config_type=SpoofingConfig,
    step=step,
    raises=(NAME,),
    description="Impossible motion: > 250 km/h, implied > 300 km/h, altitude outside "
    "-200..6000 m, GNSS time > 10 min ahead",
    events=frozenset({SUSPECTED}),
)
