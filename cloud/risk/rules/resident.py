"""Resident area (常驻地) learning, and the signals that compare nights with it.

Registered as rule ``resident`` raising ``resident_learned``, ``not_home``,
``relocation`` and ``night_anomaly``. Night dwell is measured by
:mod:`cloud.risk.rules.nightdwell` (night = 22:00-06:00 China time); per-fix
work is that O(1) tally, everything else runs once per closed night over at
most ``window_nights`` night summaries.

Thresholds (``DOMAIN.md`` unless marked *ours*):

- **resident area**: a place (night-dwell cluster of radius ``place_radius_m``
  = 500 m, *ours*) holding >= 50 % of the night dwell of the last 30 nights,
  learned once the history spans >= 14 nights with >= 7 observed nights
  (*ours*). Other places holding >= 20 % (*ours*) are kept as secondary
  resident places. Until then the loan's declared address is a provisional
  home. ``resident_learned`` (INFO) is raised when the area is first learned
  and whenever it moves by more than ``place_radius_m``, with the point in
  ``lat``/``lon`` and evidence, for the map.
- **not_home** (WARN): 3 consecutive observed nights whose main parking spot
  is > 2 km from the home point. Unobserved nights neither count nor break
  the streak unless more than ``max_missing_nights`` (2, *ours*) are missing
  in a row. Resolved by the next night at home.
- **relocation** (WARN; HIGH when in another city, *ours*): the resident
  point of the last 14 nights is > 5 km from the learned one, or in another
  city (``ctx.places.city_of``). Also raised once, when the area is first
  learned, if it is that far from the declared address. The new place becomes
  the resident area (history before it is dropped) and open not_home /
  night_anomaly parking episodes resolve, since their reference moved.
- **night_anomaly** (WARN): a night with > 50 km of driving (episode per
  night, raised at the fix that crosses it), or >= 3 of the last 7 nights
  parked > 2 km from every resident place (resolved when the count drops).

not_home and night_anomaly (parking) describe the same story when the car
sleeps away night after night, so only one alert is kept: **not_home takes
precedence**. The parking anomaly does not open while a not_home episode is
open or its streak has reached 3 nights, and an open parking anomaly is
resolved (``superseded_by``) when not_home opens. The parking anomaly is thus
the scattered pattern (away some nights, home in between) that not_home misses.

Episode keys come from night keys (the evening's China date), so replays
name the same episodes: ``not_home:<first away night>``,
``relocation:<first night at the new place>``, ``resident_learned:<night>``,
``night_anomaly:trip:<night>``, ``night_anomaly:parking:<first outside night>``.
Signals about a closed night carry the night's end as their time, whichever
input closed it.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from msgspec.structs import replace

from cloud.risk.geo import distance_m
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
    Home,
    Learned,
    Night,
    NightTally,
    nearest_m,
    night_end,
    nights_between,
    resident_places,
    tally_fix,
    tally_tick,
)
from cloud.risk.rules.region import SKIP_FLAGS, flagged


class ResidentConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    dwell: DwellParams = DwellParams()
    place_radius_m: float = 500.0
    window_nights: int = 30
    learn_min_span_nights: int = 14
    min_observed_nights: int = 7
    resident_share: float = 0.5
    secondary_share: float = 0.2
    use_declared_home: bool = True
    compare_declared: bool = True
    not_home_m: float = 2000.0
    not_home_nights: int = 3
    max_missing_nights: int = 2
    relocation_m: float = 5000.0
    relocation_window_nights: int = 14
    night_trip_m: float = 50_000.0
    anomaly_nights: int = 3
    anomaly_window_nights: int = 7
    skip_flags: tuple[str, ...] = SKIP_FLAGS


class ResidentState(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    tally: NightTally = NightTally()
    history: tuple[Night, ...] = ()  # observed nights, oldest first, within window_nights
    homes: tuple[Home, ...] = ()  # learned resident places, main first
    trip_night: str = ""  # last night whose long drive was raised
    judged_night: str = ""  # last observed night compared with home
    away_first: str = ""
    away_count: int = 0
    not_home_episode: str = ""
    outside: tuple[str, ...] = ()  # recent nights parked outside every resident place
    parking_episode: str = ""


def _learn(
    history: tuple[Night, ...], upto: str, window: int, span: int, cfg: ResidentConfig
) -> Learned | None:
    """Resident places of the nights in (upto - window, upto], given enough of them."""
    nights = [n for n in history if nights_between(n.night, upto) < window]
    if len(nights) < cfg.min_observed_nights or not nights:
        return None
    if nights_between(nights[0].night, upto) + 1 < span:
        return None
    return resident_places(
        nights, cfg.place_radius_m, cfg.resident_share, cfg.secondary_share, cfg.dwell.max_spots
    )


def _home_points(
    s: ResidentState, ctx: VehicleContext, cfg: ResidentConfig
) -> list[tuple[float, float]]:
    """Learned resident places (main first), else the declared address, else nothing."""
    if s.homes:
        return [(h.lat, h.lon) for h in s.homes]
    if cfg.use_declared_home and ctx.declared_lat is not None and ctx.declared_lon is not None:
        return [(ctx.declared_lat, ctx.declared_lon)]
    return []


def _sig(
    rule: str,
    episode: str,
    time: datetime,
    severity: Severity,
    message: str,
    evidence: dict[str, JsonValue],
    *,
    at: tuple[float, float] | None = None,
    action: Action = Action.OPEN,
) -> Signal:
    lat, lon = at if at is not None else (None, None)
    return Signal(rule, episode, time, severity, action, None, lat, lon, message, evidence)


def _judge(
    s: ResidentState, night: Night, ctx: VehicleContext, cfg: ResidentConfig, out: list[Signal]
) -> ResidentState:
    """Compare an observed night with home: the not_home streak and the parking anomaly."""
    homes = _home_points(s, ctx, cfg)
    if not homes:
        return s
    when = night_end(night.night, cfg.dwell)
    main = night.main
    source = "learned" if s.homes else "declared"
    d_main = distance_m(main.lat, main.lon, *homes[0])
    d_any = nearest_m(main.lat, main.lon, homes) or 0.0
    count, first = s.away_count, s.away_first
    if s.judged_night and nights_between(s.judged_night, night.night) > cfg.max_missing_nights + 1:
        count, first = 0, ""
    episode = s.not_home_episode
    base: dict[str, JsonValue] = {
        "night": night.night,
        "home_lat": homes[0][0],
        "home_lon": homes[0][1],
        "home_source": source,
        "distance_m": round(d_main),
        "threshold_m": cfg.not_home_m,
    }
    if d_main > cfg.not_home_m:
        count, first = count + 1, first or night.night
        if count >= cfg.not_home_nights and not episode:
            episode = f"not_home:{first}"
            msg = f"slept {count} nights in a row {d_main / 1000:.1f} km from home"
            ev = base | {"nights": count, "first_night": first, "min_nights": cfg.not_home_nights}
            out.append(
                _sig("not_home", episode, when, Severity.WARN, msg, ev, at=(main.lat, main.lon))
            )
    else:
        if episode:
            ev = base | {"nights_away": count}
            out.append(
                _sig("not_home", episode, when, Severity.WARN, "back home at night", ev,
                     at=(main.lat, main.lon), action=Action.RESOLVE)
            )  # fmt: skip
        count, first, episode = 0, "", ""
    window = cfg.anomaly_window_nights
    outside = tuple(k for k in s.outside if nights_between(k, night.night) < window)
    if d_any > cfg.not_home_m:
        outside = (*outside, night.night)
    if episode:  # nights of a not_home episode are its story, not the parking anomaly's
        covered = episode.split(":", 1)[1]
        outside = tuple(k for k in outside if k < covered)
    parking = s.parking_episode
    pev: dict[str, JsonValue] = {
        "nights_outside": list(outside),
        "window_nights": window,
        "min_nights": cfg.anomaly_nights,
        "distance_m": round(d_any),
        "home_source": source,
    }
    if parking and (episode or len(outside) < cfg.anomaly_nights):
        why: dict[str, JsonValue] = {"superseded_by": episode} if episode else {}
        msg = "superseded by not_home" if episode else "night parking back to normal"
        out.append(_sig("night_anomaly", parking, when, Severity.WARN, msg, pev | why,
                        at=(main.lat, main.lon), action=Action.RESOLVE))  # fmt: skip
        parking = ""
    # A streak that reached not_home's length is not_home's story (module doc).
    elif not (parking or episode or count >= cfg.not_home_nights) and (
        len(outside) >= cfg.anomaly_nights
    ):
        parking = f"night_anomaly:parking:{outside[0]}"
        msg = f"parked away from home {len(outside)} of the last {window} nights"
        out.append(_sig("night_anomaly", parking, when, Severity.WARN, msg, pev,
                        at=(main.lat, main.lon)))  # fmt: skip
    return replace(
        s,
        judged_night=night.night,
        away_count=count,
        away_first=first,
        not_home_episode=episode,
        outside=outside,
        parking_episode=parking,
    )


def _home_evidence(learned: Learned, cfg: ResidentConfig) -> dict[str, JsonValue]:
    main = learned.homes[0]
    return {
        "lat": round(main.lat, 6),
        "lon": round(main.lon, 6),
        "share": main.share,
        "nights_at_place": main.nights,
        "observed_nights": learned.observed,
        "radius_m": cfg.place_radius_m,
        "min_share": cfg.resident_share,
        "secondary": [[round(h.lat, 6), round(h.lon, 6), h.share] for h in learned.homes[1:]],
    }


def _moved(
    old: tuple[float, float], new: tuple[float, float], ctx: VehicleContext, cfg: ResidentConfig
) -> tuple[float, str | None, str | None] | None:
    """(metres, old city, new city) when ``new`` is a relocation from ``old``, else None."""
    d = distance_m(*old, *new)
    c_old, c_new = ctx.places.city_of(*old), ctx.places.city_of(*new)
    # Another city counts only for a real move, not a centre drifting over a boundary.
    other_city = c_old is not None and c_new is not None and c_old != c_new
    far = d > cfg.relocation_m or (other_city and d > cfg.place_radius_m)
    return (d, c_old, c_new) if far else None


def _relocation(
    learned: Learned,
    old: tuple[float, float],
    moved: tuple[float, str | None, str | None],
    source: str,
    night: str,
    cfg: ResidentConfig,
) -> Signal:
    d, c_old, c_new = moved
    other_city = c_old != c_new and c_old is not None and c_new is not None
    main = learned.homes[0]
    ev = _home_evidence(learned, cfg) | {
        "from": source,
        "old_lat": old[0],
        "old_lon": old[1],
        "distance_m": round(d),
        "threshold_m": cfg.relocation_m,
        "old_city": c_old,
        "new_city": c_new,
        "first_night": learned.first_night,
    }
    sev = Severity.HIGH if other_city else Severity.WARN
    where = f"to another city ({c_new})" if other_city else f"{d / 1000:.1f} km"
    msg = f"resident area moved {where}"
    if source == "declared":
        msg = f"sleeps {d / 1000:.1f} km from the declared address"
    episode = f"relocation:{learned.first_night}"
    return _sig("relocation", episode, night_end(night, cfg.dwell), sev, msg, ev,
                at=(main.lat, main.lon))  # fmt: skip


def _learned_signal(learned: Learned, night: str, reason: str, cfg: ResidentConfig) -> Signal:
    main = learned.homes[0]
    ev = _home_evidence(learned, cfg) | {"reason": reason, "night": night}
    msg = f"resident area learned ({main.share:.0%} of night dwell)"
    return _sig("resident_learned", f"resident_learned:{night}", night_end(night, cfg.dwell),
                Severity.INFO, msg, ev, at=(main.lat, main.lon))  # fmt: skip


def _rebase(
    s: ResidentState, learned: Learned, night: str, cfg: ResidentConfig, out: list[Signal]
) -> ResidentState:
    """Home moved far: episodes judged against the old home resolve, streaks restart."""
    when = night_end(night, cfg.dwell)
    why: dict[str, JsonValue] = {"reason": "relocation"}
    for rule, ep in (("not_home", s.not_home_episode), ("night_anomaly", s.parking_episode)):
        if ep:
            out.append(_sig(rule, ep, when, Severity.WARN, "resident area moved", why,
                            action=Action.RESOLVE))  # fmt: skip
    return replace(
        s, homes=learned.homes, away_count=0, away_first="",
        not_home_episode="", outside=(), parking_episode="",
    )  # fmt: skip


def _relearn(
    s: ResidentState, night: str, ctx: VehicleContext, cfg: ResidentConfig, out: list[Signal]
) -> ResidentState:
    """Learn the resident area, or move it: resident_learned / relocation (module doc)."""
    if not s.homes:
        full = _learn(s.history, night, cfg.window_nights, cfg.learn_min_span_nights, cfg)
        if full is None:
            return s
        out.append(_learned_signal(full, night, "first", cfg))
        main = (full.homes[0].lat, full.homes[0].lon)
        if cfg.compare_declared and ctx.declared_lat is not None and ctx.declared_lon is not None:
            declared = (ctx.declared_lat, ctx.declared_lon)
            moved = _moved(declared, main, ctx, cfg)
            if moved is not None:
                out.append(_relocation(full, declared, moved, "declared", night, cfg))
                return _rebase(s, full, night, cfg, out)
        return replace(s, homes=full.homes)
    old = (s.homes[0].lat, s.homes[0].lon)
    recent = _learn(s.history, night, cfg.relocation_window_nights, 0, cfg)
    if recent is not None:
        moved = _moved(old, (recent.homes[0].lat, recent.homes[0].lon), ctx, cfg)
        if moved is not None:
            out.append(_relocation(recent, old, moved, "learned", night, cfg))
            out.append(_learned_signal(recent, night, "relocation", cfg))
            history = tuple(n for n in s.history if n.night >= recent.first_night)
            return _rebase(replace(s, history=history), recent, night, cfg, out)
    full = _learn(s.history, night, cfg.window_nights, 0, cfg)
    if full is None:
        return s
    d = distance_m(*old, full.homes[0].lat, full.homes[0].lon)
    if d > cfg.relocation_m:
        return s  # a far move is relocation's call, once the recent nights show it
    if d > cfg.place_radius_m:
        out.append(_learned_signal(full, night, "moved", cfg))
        return replace(s, homes=full.homes)
    return replace(s, homes=full.homes)


def _close(
    s: ResidentState, night: Night, ctx: VehicleContext, cfg: ResidentConfig, out: list[Signal]
) -> ResidentState:
    if night.dwell_s < cfg.dwell.min_dwell_s:
        return s  # unobserved: says nothing about where the car sleeps
    s = _judge(s, night, ctx, cfg, out)
    keep = tuple(n for n in s.history if nights_between(n.night, night.night) < cfg.window_nights)
    s = replace(s, history=(*keep, night))
    return _relearn(s, night.night, ctx, cfg, out)


def _trip(
    s: ResidentState, key: str, moved_m: float, fix: FixIn, cfg: ResidentConfig, out: list[Signal]
) -> ResidentState:
    if moved_m <= cfg.night_trip_m or s.trip_night == key:
        return s
    ev: dict[str, JsonValue] = {
        "night": key,
        "moved_m": round(moved_m),
        "threshold_m": cfg.night_trip_m,
    }
    msg = f"drove {moved_m / 1000:.0f} km at night"
    out.append(Signal("night_anomaly", f"night_anomaly:trip:{key}", fix.time, Severity.WARN,
                      Action.OPEN, fix.device_id, fix.lat, fix.lon, msg, ev))  # fmt: skip
    return replace(s, trip_night=key)


def step_resident(
    s: ResidentState, inp: RuleInput, ctx: VehicleContext, cfg: ResidentConfig
) -> tuple[ResidentState, list[Signal]]:
    """Tally night dwell per fix; judge, learn and relocate per closed night."""
    out: list[Signal] = []
    if isinstance(inp, Tick):
        tally, night = tally_tick(s.tally, inp.time, cfg.dwell)
        if night is None:
            return s, out
        return _close(replace(s, tally=tally), night, ctx, cfg, out), out
    if not isinstance(inp, FixIn) or (inp.flags and flagged(inp.flags, cfg.skip_flags)):
        return s, out
    if s.tally.prev_time is not None and inp.time < s.tally.prev_time:
        return s, out  # out of order: the engine replays late data from a snapshot
    tally, closed = tally_fix(s.tally, inp.time, inp.lat, inp.lon, cfg.dwell)
    s = replace(s, tally=tally)
    for night in closed:
        s = _trip(s, night.night, night.moved_m, inp, cfg, out)
        s = _close(s, night, ctx, cfg, out)
    if tally.moved_m > cfg.night_trip_m:  # _trip does nothing otherwise
        s = _trip(s, tally.night, tally.moved_m, inp, cfg, out)
    return s, out


RESIDENT = Rule(
    name="resident",
    state_type=ResidentState,
    config_type=ResidentConfig,
    step=step_resident,
    raises=("resident_learned", "not_home", "relocation", "night_anomaly"),
    description="Learns where the car sleeps; not home, relocation and night anomalies",
    events=frozenset(),
)
