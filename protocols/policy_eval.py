"""Evaluating a region policy, fix by fix: pure Python, the same on the tracker and in the cloud.

:func:`compile_policy` turns a :class:`~protocols.policy.Policy` into plain
indexed coordinates once per policy version; :func:`locate` then places a
point (WGS-84 lon/lat) in a few microseconds: inside which allowed areas,
how far outside them, inside which forbidden zones. The hysteresis on top is
:func:`protocols.regions.step`.

Reading of the shapes (what the cloud's shapely repair would give, see
``tests/unit/test_policy_eval_agreement.py``):

- a GeoJSON area is the *union* of its polygons (MultiPolygon parts and
  GeometryCollection members may overlap); each polygon is its rings under
  the even-odd rule (:mod:`protocols.ring_index`), so a self-intersecting
  ring counts as its lobes instead of being refused;
- a circle is every point within ``radius_m`` (geodesic, Vincenty) of its centre;
- a margin is a distance: "within ``m`` of an area" is a geodesic distance
  to its nearest edge of at most ``m`` (no buffered polygons).

Compile errors are :class:`~protocols.errors.RegionError` with ``field`` = the
area id and the message starting with the area kind: ``duplicate_area_id``,
``not_polygonal``, ``malformed_geometry``, ``coordinate_out_of_range``,
``empty_geometry``, ``circle_unsupported``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from protocols.errors import RegionError
from protocols.geodesy import degree_box
from protocols.geodesy import distance_m as geodesic_m
from protocols.geojson_rings import PolygonRings, polygon_groups
from protocols.policy import Area, Circle, Hysteresis, Policy
from protocols.ring_index import RingIndex

Box = tuple[float, float, float, float]  # min lon, min lat, max lon, max lat


def _holds(box: Box, lon: float, lat: float) -> bool:
    return box[0] <= lon <= box[2] and box[1] <= lat <= box[3]


def _grown(box: Box, metres: float) -> Box:
    """``box`` grown by at least ``metres`` on every side."""
    if metres <= 0.0:
        return box
    widest = box[3] if abs(box[3]) >= abs(box[1]) else box[1]  # fewest metres per degree lon
    x0, _, _, y1 = degree_box(0.0, widest, metres)
    dlon, dlat = -x0, y1 - widest
    return box[0] - dlon, box[1] - dlat, box[2] + dlon, box[3] + dlat


class BoxGrid:
    """Which of many boxes may hold a point: a coarse grid over them, about one cell per box.

    ``near`` lists the boxes overlapping the point's cell, in the order given
    (a superset: the caller still tests each box or shape).
    """

    __slots__ = ("_cells", "_grid")

    def __init__(self, boxes: Sequence[Box]) -> None:
        x0 = min(b[0] for b in boxes)
        y0 = min(b[1] for b in boxes)
        side = max(1, math.isqrt(len(boxes)))
        w = max((max(b[2] for b in boxes) - x0) / side, 1e-9)
        h = max((max(b[3] for b in boxes) - y0) / side, 1e-9)
        self._grid = (x0, y0, w, h, side)
        cells: dict[tuple[int, int], list[int]] = {}
        for n, b in enumerate(boxes):
            for i in range(self._cell(b[0], x0, w, side), self._cell(b[2], x0, w, side) + 1):
                for j in range(self._cell(b[1], y0, h, side), self._cell(b[3], y0, h, side) + 1):
                    cells.setdefault((i, j), []).append(n)
        self._cells = {key: tuple(found) for key, found in cells.items()}

    @staticmethod
    def _cell(v: float, origin: float, size: float, side: int) -> int:
        return min(side - 1, max(0, int((v - origin) / size)))

    def near(self, lon: float, lat: float) -> tuple[int, ...]:
        x0, y0, w, h, side = self._grid
        # _cell(lon…) and _cell(lat…) without min/max calls (per fix).
        i, j = (lon - x0) / w, (lat - y0) / h
        i = 0 if not i > 0.0 else side - 1 if i >= side else int(i)
        j = 0 if not j > 0.0 else side - 1 if j >= side else int(j)
        return self._cells.get((i, j), ())


_GRID_FROM = 16  # below this many boxes a scan of them is as fast as an index


class PolygonRegion:
    """The union of polygons, each read by the even-odd rule over its rings."""

    __slots__ = ("_grid", "_ordered", "bounds", "parts")

    def __init__(self, polygons: Sequence[PolygonRings]) -> None:
        self.parts = tuple(RingIndex(rings) for rings in polygons)
        boxes = [p.bounds for p in self.parts]
        self.bounds: Box = (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )
        # Largest boxes first (a province's mainland before its islands): the usual
        # point is answered by the first part tried. Any order gives the same union.
        self._ordered = tuple(sorted(self.parts, key=lambda p: -_box_area(p.bounds)))
        self._grid = (
            BoxGrid([p.bounds for p in self._ordered]) if len(self.parts) >= _GRID_FROM else None
        )

    def contains(self, lon: float, lat: float) -> bool:
        ordered = self._ordered
        if ordered[0].contains(lon, lat):  # the largest part first: most points stop here
            return True
        for n in range(1, len(ordered)) if self._grid is None else self._grid.near(lon, lat):
            if n and ordered[n].contains(lon, lat):
                return True
        return False

    def distance_m(self, lon: float, lat: float, within: float | None = None) -> float:
        """0 inside; metres to the nearest edge; ``inf`` beyond ``within``."""
        if self.contains(lon, lat):
            return 0.0
        reach = None if within is None else _grown((lon, lat, lon, lat), within)
        return min(
            (
                p.distance_m(lon, lat, within)
                for p in self.parts
                if reach is None or _overlap(reach, p.bounds)
            ),
            default=math.inf,
        )


def _box_area(box: Box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _overlap(a: Box, b: Box) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


class CircleRegion:
    """Every point within ``radius_m`` (geodesic) of the centre."""

    __slots__ = ("bounds", "lat", "lon", "radius_m")

    def __init__(self, lon: float, lat: float, radius_m: float, *, reach_m: float = 0.0) -> None:
        if not (radius_m > 0.0 and math.isfinite(radius_m)):
            raise RegionError("circle_unsupported", f"radius {radius_m!r} m must be positive")
        outer = radius_m + reach_m
        if any(geodesic_m(lon, lat, lon, pole) <= outer for pole in (90.0, -90.0)):
            raise RegionError("circle_unsupported", "circle contains a pole")
        self.lon, self.lat, self.radius_m = lon, lat, radius_m
        self.bounds: Box = degree_box(lon, lat, radius_m)
        reach = degree_box(lon, lat, outer)
        if reach[0] < -180.0 or reach[2] > 180.0:
            raise RegionError("circle_unsupported", "circle crosses the antimeridian")

    def contains(self, lon: float, lat: float) -> bool:
        return _holds(self.bounds, lon, lat) and geodesic_m(self.lon, self.lat, lon, lat) <= (
            self.radius_m
        )

    def distance_m(self, lon: float, lat: float, within: float | None = None) -> float:
        d = max(0.0, geodesic_m(self.lon, self.lat, lon, lat) - self.radius_m)
        return d if within is None or d <= within else math.inf


Region = PolygonRegion | CircleRegion


# ---------------------------------------------------------------- sets of areas


class AreaSet:
    """Named regions, found by box first (a coarse grid over the boxes when there are many)."""

    __slots__ = ("_boxes", "_grid", "ids", "reach_m", "regions")

    def __init__(self, ids: Sequence[str], regions: Sequence[Region], *, reach_m: float) -> None:
        self.ids = tuple(ids)
        self.regions = tuple(regions)
        self.reach_m = reach_m  # margins asked of within() never exceed this
        self._boxes = tuple(_grown(r.bounds, reach_m) for r in self.regions)
        self._grid = BoxGrid(self._boxes) if len(self._boxes) >= _GRID_FROM else None

    def __len__(self) -> int:
        return len(self.ids)

    def candidates(self, lon: float, lat: float) -> list[int]:
        """Indexes of the areas whose box (grown by ``reach_m``) holds the point."""
        found = range(len(self._boxes)) if self._grid is None else self._grid.near(lon, lat)
        return [n for n in found if _holds(self._boxes[n], lon, lat)]

    def holds(self, lon: float, lat: float) -> bool:
        """Whether some area holds the point: ``bool(containing(...))``, stopping at the first."""
        boxes, regions = self._boxes, self.regions
        for n in range(len(boxes)) if self._grid is None else self._grid.near(lon, lat):
            b = boxes[n]
            if b[0] <= lon <= b[2] and b[1] <= lat <= b[3] and regions[n].contains(lon, lat):
                return True
        return False

    def containing(self, lon: float, lat: float) -> tuple[str, ...]:
        """Ids of the areas holding the point (the boundary counts), in policy order."""
        return tuple(
            self.ids[n] for n in self.candidates(lon, lat) if self.regions[n].contains(lon, lat)
        )

    def within(self, lon: float, lat: float, margin_m: float) -> tuple[str, ...]:
        """Ids of the areas at most ``margin_m`` (<= ``reach_m``) away, in policy order."""
        if margin_m <= 0.0:
            return self.containing(lon, lat)
        return tuple(
            self.ids[n]
            for n in self.candidates(lon, lat)
            if self.regions[n].distance_m(lon, lat, margin_m) <= margin_m
        )

    def distance_m(self, lon: float, lat: float, within: float | None = None) -> float:
        """Metres to the nearest area (0 inside); ``inf`` if none is within ``within``."""
        regions = (
            self.regions
            if within is None or within > self.reach_m
            else [self.regions[n] for n in self.candidates(lon, lat)]
        )
        return min((r.distance_m(lon, lat, within) for r in regions), default=math.inf)


# ---------------------------------------------------------------- compile


@dataclass(frozen=True, slots=True, eq=False)
class CompiledPolicy:
    """A policy's areas as indexed coordinates. Build with :func:`compile_policy`."""

    policy_id: str
    version: int
    hysteresis: Hysteresis
    allowed: AreaSet  # reach: the larger of the exit and return margins
    forbidden: AreaSet  # reach: the forbidden margin

    @property
    def has_allowed(self) -> bool:
        return len(self.allowed) > 0


def _polygon_region(geometry: object) -> PolygonRegion:
    polygons = [p for group in polygon_groups(geometry) for p in group]
    if not polygons:
        raise RegionError("empty_geometry", "geometry has no polygons")
    return PolygonRegion(polygons)


def _region(area: Area, kind: str, reach_m: float) -> Region:
    """The area's region; RegionError naming the area id."""
    try:
        if isinstance(area.shape, Circle):
            c = area.shape
            return CircleRegion(c.lon, c.lat, c.radius_m, reach_m=reach_m)
        return _polygon_region(area.shape.geometry)
    except RegionError as exc:
        raise RegionError(exc.reason, f"{kind} area {area.id!r}: {exc}", field=area.id) from None


def _area_set(areas: Sequence[Area], kind: str, reach_m: float) -> AreaSet:
    seen: set[str] = set()
    for area in areas:
        if area.id in seen:
            raise RegionError("duplicate_area_id", f"{kind} area id repeated", field=area.id)
        seen.add(area.id)
    regions = [_region(a, kind, reach_m) for a in areas]
    return AreaSet([a.id for a in areas], regions, reach_m=reach_m)


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Index a policy's areas (once per policy version); RegionError if one is unusable."""
    hyst = policy.hysteresis
    allowed = _area_set(policy.allowed, "allowed", max(hyst.exit_margin_m, hyst.return_margin_m))
    forbidden = _area_set(policy.forbidden, "forbidden", hyst.forbidden_margin_m)
    return CompiledPolicy(policy.policy_id, policy.version, hyst, allowed, forbidden)


# ---------------------------------------------------------------- locate


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a point stands relative to a compiled policy."""

    inside_allowed: bool | None  # None: the policy has no allowed areas (no region limit)
    beyond_exit_margin: bool  # farther than exit_margin_m from every allowed area
    inside_return_margin: bool  # at most return_margin_m from an allowed area
    forbidden_ids: frozenset[str]  # zones within forbidden_margin_m of the point
    allowed_ids: frozenset[str]  # allowed areas (as given) holding the point


def locate(compiled: CompiledPolicy, lon: float, lat: float) -> Placement:
    """Place one point (WGS-84 degrees)."""
    hyst = compiled.hysteresis
    forbidden = (
        frozenset(compiled.forbidden.within(lon, lat, hyst.forbidden_margin_m))
        if compiled.forbidden
        else frozenset()
    )
    if not compiled.has_allowed:
        return Placement(None, False, False, forbidden, frozenset())
    inside = compiled.allowed.containing(lon, lat)
    if inside:
        return Placement(True, False, True, forbidden, frozenset(inside))
    away = compiled.allowed.distance_m(lon, lat, within=compiled.allowed.reach_m)
    return Placement(
        inside_allowed=False,
        beyond_exit_margin=away > hyst.exit_margin_m,
        inside_return_margin=away <= hyst.return_margin_m,
        forbidden_ids=forbidden,
        allowed_ids=frozenset(),
    )


def distance_to_allowed_m(compiled: CompiledPolicy, lon: float, lat: float) -> float | None:
    """Metres to the nearest allowed area (0 inside), None without allowed areas."""
    if not compiled.has_allowed:
        return None
    return compiled.allowed.distance_m(lon, lat)
