"""Long stationary: a car that has not been driven for days (``DOMAIN.md``).

Registered as rule ``long_stationary``. Thresholds: INFO after 3 days, WARN
after 7 days (``DOMAIN.md``), one level higher (WARN, HIGH) when the car is
not at a resident place, i.e. more than 2 km (*ours*, the not_home distance)
from where it used to sleep. One episode per stop,
``long_stationary:<GNSS time of the stop's first fix>``; escalation re-uses
it, and it is resolved when the car moves.

- **stop**: fixes within ``move_radius_m`` (500 m, *ours*) of the stop's
  first fix. Parked wander (3-15 m) and urban jumps (50-300 m) stay inside;
  the car has moved after 2 consecutive fixes beyond it (a single jump never
  moves it). Duration is from the stop's first fix to the latest fix there,
  so it is measured by evidence: silence is the offline rule's business and
  a Tick never raises this one (a unit reporting every 72 h raises it at the
  first report past the threshold).
- **resident place**, design choice: this rule keeps its own light copy of
  the night-dwell tally (:mod:`cloud.risk.rules.nightdwell`, the code the
  resident rule uses, so "where it sleeps" means the same thing) holding only
  each night's main spot, at most ~40 nights. When a threshold is crossed it
  clusters the nights *before* the stop: the place holding >= 50 % of their
  dwell (>= 7 observed nights) is home; without enough nights, the loan's
  declared address; without either, unknown (no escalation). No rule reads
  another's state, so each state persists and restores on its own and the
  engine needs nothing new; the cost is one O(1) tally step per fix. Using
  only nights before the stop is deliberate: a week parked somewhere makes
  that place look like home to the resident rule, but it must not excuse the
  stop itself.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from msgspec.structs import replace

from cloud.risk.geo import distance_m, night_of
from cloud.risk.model import (
    Action,
    FixIn,
    JsonValue,
    RuleInput,
    Severity,
    Signal,
    Tick,
    VehicleContext,
)
from cloud.risk.rules.base import Rule
from cloud.risk.rules.nightdwell import (
    DwellParams,
    Night,
    NightTally,
    near_m,
    resident_places,
    tally_fix,
)
from cloud.risk.rules.nightdwell import tally_tick as _tally_tick
from cloud.risk.rules.region import SKIP_FLAGS, flagged, stamp

DAY_S = 86_400.0


class StationaryConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    info_after_s: float = 3 * DAY_S
    warn_after_s: float = 7 * DAY_S
    move_radius_m: float = 500.0
    move_fixes: int = 2
    escalate_when_away: bool = True
    away_m: float = 2000.0
    home_window_nights: int = 30
    home_min_nights: int = 7
    home_share: float = 0.5
    place_radius_m: float = 500.0
    keep_nights: int = 40
    use_declared_home: bool = True
    dwell: DwellParams = DwellParams()
    skip_flags: tuple[str, ...] = SKIP_FLAGS


class StationaryState(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    last_fix: datetime | None = None
    anchor_lat: float = 0.0
    anchor_lon: float = 0.0
    since: datetime | None = None  # first fix of the stop
    seen: datetime | None = None  # latest fix of the stop
    fixes: int = 0
    out_run: int = 0
    stage: int = 0  # thresholds crossed: 0, 1 (info_after), 2 (warn_after)
    level: int = 0  # severity raised for this stop (0: none)
    episode: str = ""
    tally: NightTally = NightTally()
    nights: tuple[Night, ...] = ()  # observed nights, main spot only, oldest first


def _home(
    s: StationaryState, ctx: VehicleContext, cfg: StationaryConfig
) -> tuple[float, float, str] | None:
    """Where the car slept before this stop (module doc): (lat, lon, source) or None."""
    if s.since is not None:
        stop_night = night_of(s.since, cfg.dwell.night_end_hour)
        before = [n for n in s.nights if n.night < stop_night][-cfg.home_window_nights :]
        found = None
        if len(before) >= cfg.home_min_nights:
            found = resident_places(before, cfg.place_radius_m, cfg.home_share, 1.0, 1)
        if found is not None:
            return found.homes[0].lat, found.homes[0].lon, "learned"
    if cfg.use_declared_home and ctx.declared_lat is not None and ctx.declared_lon is not None:
        return ctx.declared_lat, ctx.declared_lon, "declared"
    return None


def _check(
    s: StationaryState, fix: FixIn, ctx: VehicleContext, cfg: StationaryConfig, out: list[Signal]
) -> StationaryState:
    """Raise or escalate when the stop passes a threshold."""
    since, seen = s.since, s.seen
    if since is None or seen is None:
        return s
    stopped = (seen - since).total_seconds()
    stage = 2 if stopped >= cfg.warn_after_s else 1 if stopped >= cfg.info_after_s else 0
    if stage <= s.stage:
        return s
    home = _home(s, ctx, cfg)
    away_m = None if home is None else distance_m(s.anchor_lat, s.anchor_lon, home[0], home[1])
    away = away_m is not None and away_m > cfg.away_m and cfg.escalate_when_away
    level = (Severity.INFO if stage == 1 else Severity.WARN) + (1 if away else 0)
    s = replace(s, stage=stage)
    if level <= s.level:
        return s
    episode = s.episode or f"long_stationary:{stamp(since)}"
    ev: dict[str, JsonValue] = {
        "since": stamp(since),
        "stationary_s": round(stopped),
        "fixes": s.fixes,
        "info_after_s": cfg.info_after_s,
        "warn_after_s": cfg.warn_after_s,
        "at_resident": None if away_m is None else away_m <= cfg.away_m,
        "home_source": None if home is None else home[2],
        "home_distance_m": None if away_m is None else round(away_m),
        "away_threshold_m": cfg.away_m,
    }
    where = " away from home" if away else ""
    msg = f"not moved for {stopped / DAY_S:.1f} days{where}"
    out.append(Signal("long_stationary", episode, fix.time, Severity(level), Action.OPEN,
                      fix.device_id, s.anchor_lat, s.anchor_lon, msg, ev))  # fmt: skip
    return replace(s, level=level, episode=episode)


def _keep(s: StationaryState, closed: list[Night], cfg: StationaryConfig) -> StationaryState:
    kept = [Night(n.night, n.spots[:1]) for n in closed if n.dwell_s >= cfg.dwell.min_dwell_s]
    if not kept:
        return s
    return replace(s, nights=(*s.nights, *kept)[-cfg.keep_nights :])


def step_stationary(
    s: StationaryState, inp: RuleInput, ctx: VehicleContext, cfg: StationaryConfig
) -> tuple[StationaryState, list[Signal]]:
    """Follow the current stop; raise at 3 / 7 days, resolve on moving (module doc)."""
    out: list[Signal] = []
    if isinstance(inp, Tick):
        tally, night = _tally_tick(s.tally, inp.time, cfg.dwell)
        return (s, out) if night is None else (_keep(replace(s, tally=tally), [night], cfg), out)
    if not isinstance(inp, FixIn) or (inp.flags and flagged(inp.flags, cfg.skip_flags)):
        return s, out
    if s.last_fix is not None and inp.time <= s.last_fix:
        return s, out
    tally, closed = tally_fix(s.tally, inp.time, inp.lat, inp.lon, cfg.dwell)
    if closed:
        s = _keep(s, closed, cfg)
    since = s.since
    if since is not None:
        d = near_m(inp.lat, inp.lon, s.anchor_lat, s.anchor_lon)
        if d <= cfg.move_radius_m:
            s = replace(
                s, tally=tally, last_fix=inp.time, seen=inp.time, fixes=s.fixes + 1, out_run=0
            )
            stopped = (inp.time - since).total_seconds()
            stage = 2 if stopped >= cfg.warn_after_s else 1 if stopped >= cfg.info_after_s else 0
            if stage <= s.stage:  # no threshold crossed: _check would keep s
                return s, out
            return _check(s, inp, ctx, cfg, out), out
        if s.out_run + 1 < cfg.move_fixes:
            return replace(s, tally=tally, last_fix=inp.time, out_run=s.out_run + 1), out
        if s.episode and s.seen is not None:
            ev: dict[str, JsonValue] = {
                "since": stamp(since),
                "stationary_s": round((s.seen - since).total_seconds()),
                "moved_m": round(d),
            }
            out.append(Signal("long_stationary", s.episode, inp.time, Severity(s.level),
                              Action.RESOLVE, inp.device_id, inp.lat, inp.lon, "moving again",
                              ev))  # fmt: skip
    s = replace(
        s, tally=tally, last_fix=inp.time, anchor_lat=inp.lat, anchor_lon=inp.lon,
        since=inp.time, seen=inp.time, fixes=1, out_run=0, stage=0, level=0, episode="",
    )  # fmt: skip
    return s, out


LONG_STATIONARY = Rule(
    name="long_stationary",
    state_type=StationaryState,
    config_type=StationaryConfig,
    step=step_stationary,
    raises=("long_stationary",),
    description="Car not moved for 3 / 7 days, higher when away from where it sleeps",
    events=frozenset(),
)
