"""Region checks of a policy: compile once, place each fix, and a pure hysteresis machine.

The edge agent (offline, on the tracker) and the cloud run exactly this code
on the same signed :class:`~protocols.policy.Policy`, so they raise the same
violations. Usage::

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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import shapely
from msgspec import Struct
from shapely.errors import ShapelyError

from protocols.errors import RegionError
from protocols.geometry import MetricArea, Polygonal, RepairNote, circle, shape_from_geojson
from protocols.messages import DetailValue, EventKind, Fix
from protocols.policy import Area, Circle, Hysteresis, Policy

_TREE_FROM = 16  # below this many shapes a bounding-box scan beats an STRtree query


class ShapeIndex:
    """Which of a set of named polygonal shapes contain a point (the boundary counts).

    Shapes are prepared once; with many shapes candidates come from an STRtree.
    """

    __slots__ = ("_boxes", "_geoms", "_ids", "_tree")

    def __init__(self, ids: Sequence[str], geoms: Sequence[Polygonal]) -> None:
        if len(ids) != len(geoms):
            raise ValueError("one id per geometry")
        self._ids = tuple(ids)
        self._geoms = tuple(geoms)
        for geom in self._geoms:
            shapely.prepare(geom)
        self._boxes = tuple(tuple(g.bounds) for g in self._geoms)
        self._tree = shapely.STRtree(list(self._geoms)) if len(self._geoms) >= _TREE_FROM else None

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> tuple[str, ...]:
        return self._ids

    def _candidates(self, lon: float, lat: float) -> Iterable[int]:
        if self._tree is None:
            return (
                i
                for i, (x0, y0, x1, y1) in enumerate(self._boxes)
                if x0 <= lon <= x1 and y0 <= lat <= y1
            )
        found: list[int] = self._tree.query(shapely.Point(lon, lat)).tolist()
        return sorted(found)

    def hits(self, lon: float, lat: float) -> tuple[str, ...]:
        """Ids of the shapes containing the point, in index order."""
        return tuple(
            self._ids[i]
            for i in self._candidates(lon, lat)
            if shapely.intersects_xy(self._geoms[i], lon, lat)
        )

    def contains(self, lon: float, lat: float) -> bool:
        """Whether any shape contains the point."""
        return any(
            shapely.intersects_xy(self._geoms[i], lon, lat) for i in self._candidates(lon, lat)
        )


# ---------------------------------------------------------------- compile


@dataclass(frozen=True, slots=True, eq=False)
class CompiledPolicy:
    """A policy's areas as prepared geometry, margins applied. Build with compile_policy."""

    policy_id: str
    version: int
    hysteresis: Hysteresis
    allowed: ShapeIndex  # as given
    exit_zone: ShapeIndex  # allowed areas grown by exit_margin_m
    return_zone: ShapeIndex  # allowed areas grown by return_margin_m
    forbidden: ShapeIndex  # forbidden zones grown by forbidden_margin_m
    allowed_metric: tuple[MetricArea, ...]  # for distances in signal details
    repairs: tuple[tuple[str, RepairNote], ...]  # (area id, note) for repaired shapes

    @property
    def has_allowed(self) -> bool:
        return len(self.allowed) > 0


@dataclass(frozen=True, slots=True)
class _AreaShapes:
    base: Polygonal  # the area as given
    grown: tuple[Polygonal, ...]  # one per requested margin
    repair: RepairNote | None
    metric: MetricArea | None  # the metric frame, when asked for or needed to grow


def _area_shapes(
    area: Area, kind: str, margins: Sequence[float], *, metric: bool = False
) -> _AreaShapes:
    """The area's geometry and its grown versions; RegionError naming the area id."""
    try:
        if isinstance(area.shape, Circle):  # grow circles exactly, by growing the radius
            c = area.shape
            base, note = circle(c.lon, c.lat, c.radius_m), None
            grown = [circle(c.lon, c.lat, c.radius_m + m) if m > 0 else base for m in margins]
            frame = MetricArea.of(base) if metric else None
        else:
            base, note = shape_from_geojson(area.shape.geometry)
            frame = MetricArea.of(base) if metric or max(margins) > 0 else None
            grown = [frame.grown(m) if frame is not None and m > 0 else base for m in margins]
    except RegionError as exc:
        raise RegionError(exc.reason, f"{kind} area {area.id!r}: {exc}", field=area.id) from None
    except ShapelyError as exc:
        raise RegionError(
            "unusable_area", f"{kind} area {area.id!r}: {exc}", field=area.id
        ) from None
    return _AreaShapes(base, tuple(grown), note, frame)


def _check_unique(areas: Sequence[Area], kind: str) -> None:
    seen: set[str] = set()
    for area in areas:
        if area.id in seen:
            raise RegionError("duplicate_area_id", f"{kind} area id repeated", field=area.id)
        seen.add(area.id)


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Prepare a policy's geometry (once per policy version).

    Raises RegionError with ``field`` = the area id: the shape's own reason
    (``not_polygonal``, ``malformed_geometry``...), ``duplicate_area_id`` or
    ``unusable_area``. Repaired shapes are listed in ``repairs``.
    """
    hyst = policy.hysteresis
    _check_unique(policy.allowed, "allowed")
    _check_unique(policy.forbidden, "forbidden")
    allowed = [
        _area_shapes(a, "allowed", (hyst.exit_margin_m, hyst.return_margin_m), metric=True)
        for a in policy.allowed
    ]
    forbidden = [_area_shapes(a, "forbidden", (hyst.forbidden_margin_m,)) for a in policy.forbidden]
    allowed_ids = [a.id for a in policy.allowed]
    areas = [*policy.allowed, *policy.forbidden]
    return CompiledPolicy(
        policy_id=policy.policy_id,
        version=policy.version,
        hysteresis=hyst,
        allowed=ShapeIndex(allowed_ids, [s.base for s in allowed]),
        exit_zone=ShapeIndex(allowed_ids, [s.grown[0] for s in allowed]),
        return_zone=ShapeIndex(allowed_ids, [s.grown[1] for s in allowed]),
        forbidden=ShapeIndex([a.id for a in policy.forbidden], [s.grown[0] for s in forbidden]),
        allowed_metric=tuple(s.metric for s in allowed if s.metric is not None),
        repairs=tuple(
            (a.id, s.repair)
            for a, s in zip(areas, [*allowed, *forbidden], strict=True)
            if s.repair is not None
        ),
    )


# ---------------------------------------------------------------- locate


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a point stands relative to a compiled policy."""

    inside_allowed: bool | None  # None: the policy has no allowed areas (no region limit)
    beyond_exit_margin: bool  # outside every allowed area grown by exit_margin_m
    inside_return_margin: bool  # inside an allowed area grown by return_margin_m
    forbidden_ids: frozenset[str]  # zones (grown by forbidden_margin_m) holding the point
    allowed_ids: frozenset[str]  # allowed areas (as given) holding the point


def locate(compiled: CompiledPolicy, lon: float, lat: float) -> Placement:
    """Place one point (WGS-84 degrees); a few prepared point-in-polygon tests."""
    forbidden = frozenset(compiled.forbidden.hits(lon, lat)) if compiled.forbidden else frozenset()
    if not compiled.has_allowed:
        return Placement(None, False, False, forbidden, frozenset())
    inside = compiled.allowed.hits(lon, lat)
    if inside:
        return Placement(True, False, True, forbidden, frozenset(inside))
    return Placement(
        inside_allowed=False,
        beyond_exit_margin=not compiled.exit_zone.contains(lon, lat),
        inside_return_margin=compiled.return_zone.contains(lon, lat),
        forbidden_ids=forbidden,
        allowed_ids=frozenset(),
    )


def distance_to_allowed_m(compiled: CompiledPolicy, lon: float, lat: float) -> float | None:
    """Metres to the nearest allowed area (0 inside), None without allowed areas."""
    return min((m.distance_m(lon, lat) for m in compiled.allowed_metric), default=None)


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
        ids = compiled.return_zone.hits(fix.lon, fix.lat)
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
