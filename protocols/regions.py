"""Region checks of a policy: compile once, place each fix, and a pure hysteresis machine.

The edge agent (offline, on the tracker) and the cloud run exactly this code
on the same signed :class:`~protocols.policy.Policy`, so they raise the same
violations. It is pure Python (no shapely, pyproj or numpy, so it fits the
tracker): compiling and placing are :mod:`protocols.policy_eval`, re-exported
here. Usage::

    compiled = compile_policy(policy)          # at policy load; RegionError if unusable
    state = RegionState()
    for fix in fixes_in_gnss_time_order:
        state, signals = step(state, compiled, fix)
        if state.violation_active: ...         # the agent reports in chase mode

Hysteresis (defaults from DOMAIN.md, all in ``policy.hysteresis``, N =
``consecutive_fixes``):

- **region exit**: N fixes outside every allowed area *and* more than
  ``exit_margin_m`` past all of them. A fix inside an allowed area resets the
  count; a fix outside but within the margin is neutral (it neither counts nor
  resets), so border jitter never fires.
- **region return**: while exited, N consecutive fixes inside an allowed area
  grown by ``return_margin_m``; any other fix resets that count, so jitter
  keeps the violation open.
- **forbidden enter / leave**, per zone (grown by ``forbidden_margin_m``):
  N consecutive fixes inside, then N consecutive fixes outside.

Each violation fires once and stays active until cleared. Time comes only
from ``fix.time``: a fix not newer than the last one processed (late, or a
duplicate of the same epoch) is ignored and the state returned unchanged, so
replays count once. Callers must feed fixes in GNSS-time order (the cloud
sorts late uploads before stepping).

A policy change keeps the state: an open exit whose new policy has no allowed
areas, and an open zone missing from the new policy, are cleared with a
signal whose ``detail["reason"]`` says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from msgspec import Struct

from protocols.messages import DetailValue, EventKind, Fix
from protocols.policy_eval import (
    CompiledPolicy,
    Placement,
    compile_policy,
    distance_to_allowed_m,
    locate,
)

__all__ = [
    "CompiledPolicy",
    "Placement",
    "RegionSignal",
    "RegionState",
    "ZoneCount",
    "compile_policy",
    "distance_to_allowed_m",
    "locate",
    "step",
]

# ---------------------------------------------------------------- hysteresis


class ZoneCount(Struct, frozen=True, array_like=True):
    """Per forbidden zone: consecutive fixes towards entering or leaving it."""

    zone_id: str
    inside_run: int = 0  # while not active: consecutive fixes inside
    outside_run: int = 0  # while active: consecutive fixes outside
    active: bool = False


class RegionState(Struct, frozen=True, kw_only=True):
    """Hysteresis state of one device; a msgspec Struct so the agent can persist it."""

    last_time: datetime | None = None  # GNSS time of the last fix processed
    exit_run: int = 0  # fixes beyond the exit margin since the last one inside (module doc)
    exit_active: bool = False
    return_run: int = 0
    zones: tuple[ZoneCount, ...] = ()  # only zones with a run or an open violation, by id

    @property
    def violation_active(self) -> bool:
        """An exit or a forbidden-zone violation is open (the agent's chase mode)."""
        return self.exit_active or any(z.active for z in self.zones)

    @property
    def active_zone_ids(self) -> tuple[str, ...]:
        return tuple(z.zone_id for z in self.zones if z.active)


class RegionSignal(Struct, frozen=True, kw_only=True):
    """A violation raised or cleared by :func:`step`; the caller turns it into an Event."""

    kind: EventKind  # REGION_EXIT, REGION_RETURN, FORBIDDEN_ENTER or FORBIDDEN_LEAVE
    area_ids: tuple[str, ...]
    time: datetime  # fix.time
    lat: float
    lon: float
    detail: dict[str, DetailValue]


def _signal(
    compiled: CompiledPolicy,
    fix: Fix,
    kind: EventKind,
    area_ids: Iterable[str],
    **detail: DetailValue,
) -> RegionSignal:
    base: dict[str, DetailValue] = {"policy_id": compiled.policy_id, "version": compiled.version}
    return RegionSignal(
        kind=kind,
        area_ids=tuple(area_ids),
        time=fix.time,
        lat=fix.lat,
        lon=fix.lon,
        detail=base | detail,
    )


def _step_exit(
    state: RegionState, compiled: CompiledPolicy, fix: Fix, where: Placement
) -> tuple[int, bool, int, list[RegionSignal]]:
    """New (exit_run, exit_active, return_run) and the signals of the allowed-area rule."""
    n = compiled.hysteresis.consecutive_fixes
    if not compiled.has_allowed:
        if state.exit_active:
            sig = _signal(compiled, fix, EventKind.REGION_RETURN, (), reason="no_region_limit")
            return 0, False, 0, [sig]
        return 0, False, 0, []
    if state.exit_active:
        if not where.inside_return_margin:
            return 0, True, 0, []
        run = state.return_run + 1
        if run < n:
            return 0, True, run, []
        ids = compiled.allowed.within(fix.lon, fix.lat, compiled.hysteresis.return_margin_m)
        return 0, False, 0, [_signal(compiled, fix, EventKind.REGION_RETURN, ids, fixes=run)]
    if where.inside_allowed:
        return 0, False, 0, []
    if not where.beyond_exit_margin:
        return state.exit_run, False, 0, []
    run = state.exit_run + 1
    if run < n:
        return run, False, 0, []
    dist = distance_to_allowed_m(compiled, fix.lon, fix.lat)
    sig = _signal(
        compiled,
        fix,
        EventKind.REGION_EXIT,
        compiled.allowed.ids,
        fixes=run,
        distance_m=None if dist is None else round(dist),
    )
    return 0, True, 0, [sig]


def _step_zones(
    state: RegionState, compiled: CompiledPolicy, fix: Fix, where: Placement
) -> tuple[tuple[ZoneCount, ...], list[RegionSignal]]:
    n = compiled.hysteresis.consecutive_fixes
    known = set(compiled.forbidden.ids)
    old = {z.zone_id: z for z in state.zones}
    zones: list[ZoneCount] = []
    signals: list[RegionSignal] = []
    for zid in sorted(old.keys() | where.forbidden_ids):
        z = old.get(zid, ZoneCount(zid))
        inside = zid in where.forbidden_ids
        if zid not in known:
            if z.active:
                leave = EventKind.FORBIDDEN_LEAVE
                signals.append(_signal(compiled, fix, leave, (zid,), reason="zone_removed"))
        elif not z.active:
            if inside and z.inside_run + 1 >= n:
                signals.append(_signal(compiled, fix, EventKind.FORBIDDEN_ENTER, (zid,), fixes=n))
                zones.append(ZoneCount(zid, active=True))
            elif inside:
                zones.append(ZoneCount(zid, inside_run=z.inside_run + 1))
        elif inside:
            zones.append(ZoneCount(zid, active=True))
        elif z.outside_run + 1 >= n:
            signals.append(_signal(compiled, fix, EventKind.FORBIDDEN_LEAVE, (zid,), fixes=n))
        else:
            zones.append(ZoneCount(zid, outside_run=z.outside_run + 1, active=True))
    return tuple(zones), signals


def step(
    state: RegionState, compiled: CompiledPolicy, fix: Fix
) -> tuple[RegionState, list[RegionSignal]]:
    """Advance the hysteresis by one fix; see the module doc for the rules.

    A fix whose time is not after ``state.last_time`` is ignored: the same
    state object comes back with no signals.
    """
    if state.last_time is not None and fix.time <= state.last_time:
        return state, []
    where = locate(compiled, fix.lon, fix.lat)
    exit_run, exit_active, return_run, signals = _step_exit(state, compiled, fix, where)
    zones, zone_signals = _step_zones(state, compiled, fix, where)
    new = RegionState(
        last_time=fix.time,
        exit_run=exit_run,
        exit_active=exit_active,
        return_run=return_run,
        zones=zones,
    )
    return new, signals + zone_signals
