"""Risk-POI visits and stays: second-mortgage lenders, pawnshops, used-car markets...

Registered as rule ``risk_poi`` raising ``risk_poi_visit`` and ``risk_poi_stay``
(one state machine: a stay is a visit that lasts). Thresholds (``DOMAIN.md``
"risk-POI visit" unless marked *ours*):

- **area**: the POI's own ``radius_m`` from ``ctx.places.pois_near``, held
  within 100-200 m (``min_radius_m``/``max_radius_m``).
- **entry** (``risk_poi_visit``, INFO, *ours*): 2 consecutive fixes inside the
  same POI's area. Only fixes slower than ``entry_max_speed_mps`` (15 km/h,
  *ours*) count, so traffic passing the gate is not a visit (and fast fixes
  skip the POI lookup, which keeps moving fixes cheap). The car must also have
  *stopped there* (*ours*): one of those fixes has the ignition off (or
  reports no ignition line: a wireless unit), or they span at least
  ``entry_engine_on_s`` (3 min, longer than a traffic-light cycle). The
  detection report showed why: a car waiting 45 s at the lights beside a
  pawnshop, engine running, gave 3 slow fixes inside and a "visit". A real
  visit parks: the engine is off within seconds. The visit is
  resolved when the car leaves: 2 consecutive fixes more than
  ``leave_margin_m`` (50 m, *ours*) beyond the area; a fix in that margin, or
  a single urban jump out, changes nothing.
- **stay** (``risk_poi_stay``): WARN at 30 min, HIGH at 2 h or overnight
  (a stay of at least 30 min that overlaps the 22:00-06:00 night). A stay is
  measured from the first to the last fix inside, not by fix counts: a parked
  wired tracker reports every 5-15 min and a wireless one a few times a day,
  so gaps between fixes inside are bridged up to ``max_gap_s`` (12 h, *ours*,
  enough for a unit waking twice a day). A longer gap ends the visit at its
  last fix inside (resolved with ``reason: data_gap``). Escalation to HIGH
  re-uses the stay's episode. A stay is not resolved on leaving: a long stay
  at a pawnshop is evidence the car may be pledged, whatever happens next.

Episodes: ``risk_poi_visit:<poi id>:<first fix inside>`` and
``risk_poi_stay:<poi id>:<first fix inside>`` (GNSS times). The visit
signal's evidence (``poi_id``, ``category``, ``entered_at``) is what the
gathering rule consumes (:func:`cloud.risk.rules.gathering.visit_of`).
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from msgspec.structs import replace

from cloud.risk.model import (
    Action,
    FixIn,
    JsonValue,
    Poi,
    RuleInput,
    Severity,
    Signal,
    VehicleContext,
)
from cloud.risk.rules.base import Rule
from cloud.risk.rules.nightdwell import near_m, touches_night
from cloud.risk.rules.region import SKIP_FLAGS, flagged, stamp


class PoiConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    entry_fixes: int = 2
    entry_max_speed_mps: float = 15 / 3.6
    entry_engine_on_s: float = 180.0
    min_radius_m: float = 100.0
    max_radius_m: float = 200.0
    leave_fixes: int = 2
    leave_margin_m: float = 50.0
    stay_warn_s: float = 30 * 60.0
    stay_high_s: float = 2 * 3600.0
    overnight_high: bool = True
    night_start_hour: int = 22
    night_end_hour: int = 6
    max_gap_s: float = 12 * 3600.0
    categories: tuple[str, ...] = ()  # empty: every category
    visit_severity: Severity = Severity.INFO
    skip_flags: tuple[str, ...] = SKIP_FLAGS


class Visit(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    poi_id: str
    name: str
    category: str
    lat: float
    lon: float
    radius_m: float  # the area used (clamped)
    first: datetime  # first fix inside
    last: datetime  # last fix inside
    fixes: int
    night: bool = False  # the stay so far overlaps a night
    out_run: int = 0
    level: int = 0  # severity of the stay signal raised so far (0: none)


class PoiState(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    last_fix: datetime | None = None
    cand_id: str = ""  # POI the last fixes were inside, before entry is confirmed
    cand_run: int = 0
    cand_start: datetime | None = None
    cand_last: datetime | None = None
    cand_stopped: bool = False  # a fix of the run with the ignition off (or no ignition line)
    visit: Visit | None = None


def _area(poi: Poi, cfg: PoiConfig) -> float:
    return min(max(poi.radius_m, cfg.min_radius_m), cfg.max_radius_m)


def _poi_at(fix: FixIn, ctx: VehicleContext, cfg: PoiConfig) -> tuple[Poi, float] | None:
    """The POI whose area holds the fix (nearest relative to its size), with the distance."""
    best: tuple[float, str, Poi, float] | None = None
    for poi in ctx.places.pois_near(fix.lat, fix.lon, cfg.min_radius_m):
        if cfg.categories and poi.category not in cfg.categories:
            continue
        d = near_m(fix.lat, fix.lon, poi.lat, poi.lon)
        r = _area(poi, cfg)
        if d <= r and (best is None or (d / r, poi.id) < best[:2]):
            best = (d / r, poi.id, poi, d)
    return None if best is None else (best[2], best[3])


def _evidence(v: Visit, cfg: PoiConfig) -> dict[str, JsonValue]:
    return {
        "poi_id": v.poi_id,
        "poi_name": v.name,
        "category": v.category,
        "poi_lat": v.lat,
        "poi_lon": v.lon,
        "radius_m": v.radius_m,
        "entered_at": stamp(v.first),
        "last_inside": stamp(v.last),
        "stayed_s": round((v.last - v.first).total_seconds()),
        "fixes_inside": v.fixes,
        "overnight": v.night,
    }


def _signal(
    rule: str, v: Visit, fix: FixIn, sev: Severity, msg: str, ev: dict[str, JsonValue],
    action: Action = Action.OPEN,
) -> Signal:  # fmt: skip
    episode = f"{rule}:{v.poi_id}:{stamp(v.first)}"
    return Signal(rule, episode, fix.time, sev, action, fix.device_id, fix.lat, fix.lon, msg, ev)


def _stay(v: Visit, fix: FixIn, cfg: PoiConfig, out: list[Signal]) -> Visit:
    """Raise or escalate the stay alarm when the visit has lasted long enough."""
    stayed = (v.last - v.first).total_seconds()
    level = 0
    if stayed >= cfg.stay_warn_s:
        level = Severity.WARN
        if stayed >= cfg.stay_high_s or (cfg.overnight_high and v.night):
            level = Severity.HIGH
    if level <= v.level:
        return v
    ev = _evidence(v, cfg) | {"warn_s": cfg.stay_warn_s, "high_s": cfg.stay_high_s}
    what = "overnight" if v.night and stayed < cfg.stay_high_s else f"{stayed / 3600:.1f} h"
    msg = f"stayed {what} at {v.category} {v.name or v.poi_id}"
    out.append(_signal("risk_poi_stay", v, fix, Severity(level), msg, ev))
    return replace(v, level=level)


def _leave(v: Visit, fix: FixIn, reason: str, cfg: PoiConfig, out: list[Signal]) -> None:
    ev = _evidence(v, cfg) | {"reason": reason}
    msg = f"left {v.category} {v.name or v.poi_id}"
    out.append(_signal("risk_poi_visit", v, fix, cfg.visit_severity, msg, ev, Action.RESOLVE))


def _in_visit(
    s: PoiState, v: Visit, fix: FixIn, cfg: PoiConfig, out: list[Signal]
) -> PoiState | None:
    """Advance an open visit; None when it ended (the fix may then start another)."""
    if (fix.time - v.last).total_seconds() > cfg.max_gap_s:
        _leave(v, fix, "data_gap", cfg, out)
        return None
    d = near_m(fix.lat, fix.lon, v.lat, v.lon)
    if d <= v.radius_m:
        night = v.night or touches_night(v.last, fix.time, cfg.night_start_hour, cfg.night_end_hour)
        v = replace(v, last=fix.time, fixes=v.fixes + 1, out_run=0, night=night)
        return replace(s, last_fix=fix.time, visit=_stay(v, fix, cfg, out))
    if d <= v.radius_m + cfg.leave_margin_m:
        return replace(s, last_fix=fix.time)  # the margin: neither inside nor out
    if v.out_run + 1 < cfg.leave_fixes:
        return replace(s, last_fix=fix.time, visit=replace(v, out_run=v.out_run + 1))
    _leave(v, fix, "left", cfg, out)
    return None


def step_poi(
    s: PoiState, inp: RuleInput, ctx: VehicleContext, cfg: PoiConfig
) -> tuple[PoiState, list[Signal]]:
    """Entry, stay and leave at risk POIs (module doc)."""
    out: list[Signal] = []
    if not isinstance(inp, FixIn) or (inp.flags and flagged(inp.flags, cfg.skip_flags)):
        return s, out
    if s.last_fix is not None and inp.time <= s.last_fix:
        return s, out
    if s.visit is not None:
        kept = _in_visit(s, s.visit, inp, cfg, out)
        if kept is not None:
            return kept, out
        s = PoiState(last_fix=s.last_fix)
    found = _poi_at(inp, ctx, cfg) if inp.speed_mps <= cfg.entry_max_speed_mps else None
    if found is None:
        return PoiState(last_fix=inp.time), out
    poi, dist = found
    same = (
        poi.id == s.cand_id
        and s.cand_last is not None
        and (inp.time - s.cand_last).total_seconds() <= cfg.max_gap_s
    )
    run = s.cand_run + 1 if same else 1
    start = s.cand_start if same and s.cand_start is not None else inp.time
    stopped = (same and s.cand_stopped) or inp.ignition is not True
    lasted = (inp.time - start).total_seconds() >= cfg.entry_engine_on_s
    if run < cfg.entry_fixes or not (stopped or lasted):
        return PoiState(
            last_fix=inp.time, cand_id=poi.id, cand_run=run, cand_start=start, cand_last=inp.time,
            cand_stopped=stopped,
        ), out  # fmt: skip
    night = touches_night(start, inp.time, cfg.night_start_hour, cfg.night_end_hour)
    v = Visit(
        poi_id=poi.id, name=poi.name, category=poi.category, lat=poi.lat, lon=poi.lon,
        radius_m=_area(poi, cfg), first=start, last=inp.time, fixes=run, night=night,
    )  # fmt: skip
    msg = f"at {poi.category} {poi.name or poi.id}"
    ev = _evidence(v, cfg) | {"distance_m": round(dist), "entry_fixes": cfg.entry_fixes}
    out.append(_signal("risk_poi_visit", v, inp, cfg.visit_severity, msg, ev))
    return PoiState(last_fix=inp.time, visit=_stay(v, inp, cfg, out)), out


RISK_POI = Rule(
    name="risk_poi",
    state_type=PoiState,
    config_type=PoiConfig,
    step=step_poi,
    raises=("risk_poi_visit", "risk_poi_stay"),
    description="Car at a second-mortgage lender, pawnshop, used-car market, 车管所 or tow yard",
    events=frozenset(),
)
