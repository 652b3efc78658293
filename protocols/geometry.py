"""Region geometry shared by the edge agent and the cloud: shapes, repair, metric margins.

All shapes are WGS-84 longitude/latitude (GeoJSON order). Pure code: bytes or
decoded dicts in, shapely geometry or :class:`~protocols.errors.RegionError`
out; no files, clock or logging.

Reasons raised here: ``malformed_json``, ``not_feature_collection``,
``not_a_feature``, ``missing_geometry``, ``missing_id``, ``duplicate_id``,
``not_polygonal``, ``malformed_geometry``, ``coordinate_out_of_range``,
``empty_geometry``, ``unrepairable_geometry``, ``circle_unsupported``.

Invalid polygons (real boundary files have self-intersections) are repaired
with GEOS ``MakeValid`` (``structure`` method: overlapping parts are unioned,
collapsed parts dropped) and the repair is returned as a :class:`RepairNote`;
an invalid geometry is never returned.

Metric work happens in a :class:`LocalFrame`, an oblique stereographic
projection centred on the area (edges are densified first, since they are
straight in lon/lat). It is conformal, so a buffer is locally a true offset;
its scale grows with the distance ``rho`` from the centre as ``1 + (rho/2R)^2``
and ``k0`` splits that error evenly. A margin's error is the frame's
``max_scale_error`` (0.03 % Jiangsu, 0.33 % Xinjiang, 0.48 % Inner Mongolia,
~3 % for one polygon spanning China) plus < 0.13 % for the buffer arcs;
measured against geodesic distances: within 0.55 % for 1-20 km margins on the
largest provinces. ``distance_m`` divides by the point scale factor and is
within 0.05 %. Grown areas are built once per policy and used as plain
prepared lon/lat polygons, so a fix costs point-in-polygon tests only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeAlias

import msgspec
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.validation import explain_validity

from protocols.errors import RegionError
from protocols.geojson_rings import PolygonRings, polygon_groups

Polygonal: TypeAlias = Polygon | MultiPolygon

GEOD = Geod(ellps="WGS84")
EARTH_RADIUS_M = 6_371_008.8  # mean radius; only used for scale-error estimates
_QUAD_SEGS = 16  # buffer arcs: chord error 1 - cos(pi / 64) = 0.12 %
_CIRCLE_MIN_VERTICES = 64  # chord error 1 - cos(pi / 64) = 0.12 % of the radius
_CIRCLE_MAX_EDGE_M = 25_000.0
# Edges are straight in lon/lat (that is how point-in-polygon sees them). Long
# edges (120 km in the Inner Mongolia file) bow away from straight lines in a
# metric frame by L^2 tan(lat) / 8R (~200 m), so densify before projecting.
_DENSIFY_DEG = 0.05


# ---------------------------------------------------------------- repair


@dataclass(frozen=True, slots=True)
class RepairNote:
    """What was wrong with a shape and what repair did to it (areas are geodesic)."""

    problem: str  # shapely explain_validity() of the input, e.g. "Self-intersection[122.38 39.21]"
    area_before_km2: float  # sum of the rings as given (absolute ring areas)
    area_after_km2: float
    parts_before: int
    parts_after: int


def _ring_area_m2(ring: Any) -> float:
    lons, lats = ring.xy
    area, _ = GEOD.polygon_area_perimeter(lons, lats)
    return abs(area)


def geodesic_area_km2(geom: Polygonal) -> float:
    """Area in km² on the WGS-84 ellipsoid (each ring counted by absolute value)."""
    total = 0.0
    for poly in shapely.get_parts(geom):
        total += _ring_area_m2(poly.exterior)
        total -= sum(_ring_area_m2(ring) for ring in poly.interiors)
    return total / 1e6


def _polygonal(geom: Any) -> Polygonal:
    """Only the polygonal parts of a (flat, as GEOS returns) geometry; maybe empty."""
    parts = [
        p
        for g in shapely.get_parts(geom)
        for p in shapely.get_parts(g)
        if p.geom_type == "Polygon" and not p.is_empty
    ]
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _repair(raw: Polygonal) -> tuple[Polygonal, RepairNote | None]:
    if raw.is_valid:
        return raw, None
    problem = str(explain_validity(raw))
    fixed = _polygonal(shapely.make_valid(raw, method="structure", keep_collapsed=False))
    if fixed.is_empty:
        raise RegionError("empty_geometry", f"nothing polygonal left after repair ({problem})")
    if not fixed.is_valid:  # pragma: no cover - GEOS guarantees validity of MakeValid output
        raise RegionError("unrepairable_geometry", f"repair failed ({problem})")
    note = RepairNote(
        problem=problem,
        area_before_km2=geodesic_area_km2(raw),
        area_after_km2=geodesic_area_km2(fixed),
        parts_before=int(shapely.get_num_geometries(raw)),
        parts_after=int(shapely.get_num_geometries(fixed)),
    )
    return fixed, note


def _merge_notes(notes: Sequence[RepairNote]) -> RepairNote | None:
    if len(notes) <= 1:
        return notes[0] if notes else None
    return RepairNote(
        problem="; ".join(n.problem for n in notes),
        area_before_km2=sum(n.area_before_km2 for n in notes),
        area_after_km2=sum(n.area_after_km2 for n in notes),
        parts_before=sum(n.parts_before for n in notes),
        parts_after=sum(n.parts_after for n in notes),
    )


# ---------------------------------------------------------------- GeoJSON geometry


def _shapely_polygons(group: list[PolygonRings]) -> Polygonal:
    polys = [Polygon(rings[0], rings[1:]) for rings in group]
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def shape_from_geojson(geometry: Mapping[str, Any]) -> tuple[Polygonal, RepairNote | None]:
    """A valid Polygon/MultiPolygon from a GeoJSON geometry object, and how it was repaired.

    Accepts ``Polygon``, ``MultiPolygon`` and a ``GeometryCollection`` of those
    (its members are repaired one by one, then unioned). Raises RegionError:
    ``not_polygonal``, ``malformed_geometry`` (bad structure, unclosed ring),
    ``coordinate_out_of_range``, ``empty_geometry`` (no polygons, also when
    repair leaves nothing polygonal).
    """
    groups = polygon_groups(geometry)
    repaired = [_repair(_shapely_polygons(g)) for g in groups if g]
    if not repaired:
        raise RegionError("empty_geometry", "geometry has no polygons")
    shapes = [shape for shape, _ in repaired]
    note = _merge_notes([n for _, n in repaired if n is not None])
    return (shapes[0] if len(shapes) == 1 else _polygonal(shapely.union_all(shapes))), note


# ---------------------------------------------------------------- FeatureCollection


@dataclass(frozen=True, slots=True)
class LoadedFeature:
    """One usable feature of a boundary file."""

    index: int  # position in the file's ``features`` list
    id: str  # the id property (``adcode`` by default)
    name: str
    geometry: Polygonal  # valid, possibly repaired
    repair: RepairNote | None  # set when the geometry as given was invalid
    properties: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class FeatureProblem:
    """One feature that could not be loaded, and why."""

    index: int
    id: str | None
    reason: str  # a RegionError reason
    message: str


def _decode_collection(doc: Mapping[str, Any] | bytes) -> Sequence[Any]:
    if isinstance(doc, bytes | bytearray | memoryview):
        try:
            doc = msgspec.json.decode(doc)
        except msgspec.DecodeError as exc:
            raise RegionError("malformed_json", f"boundary file is not JSON: {exc}") from None
    if not isinstance(doc, Mapping) or doc.get("type") != "FeatureCollection":
        raise RegionError("not_feature_collection", "expected a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list | tuple):
        raise RegionError("not_feature_collection", "FeatureCollection without a features list")
    return features


def _feature_id(feature: Mapping[str, Any], props: Mapping[str, Any], key: str) -> str | None:
    value = props.get(key, feature.get("id"))
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)


def load_feature_collection(
    doc: Mapping[str, Any] | bytes,
    *,
    id_property: str = "adcode",
    name_property: str = "name",
) -> tuple[list[LoadedFeature], list[FeatureProblem]]:
    """Every feature of a GeoJSON FeatureCollection, loaded or named as a problem.

    ``doc`` is the file's bytes or its decoded object. The id comes from
    ``properties[id_property]`` (falling back to the feature ``id``); a
    feature without one, or repeating an earlier id, is a problem. A file that
    is not JSON or not a FeatureCollection raises RegionError; one bad feature
    never loses the others.
    """
    loaded: list[LoadedFeature] = []
    problems: list[FeatureProblem] = []
    seen: set[str] = set()
    for index, feature in enumerate(_decode_collection(doc)):
        if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
            problems.append(FeatureProblem(index, None, "not_a_feature", "not a GeoJSON Feature"))
            continue
        props = feature.get("properties")
        props = props if isinstance(props, Mapping) else {}
        fid = _feature_id(feature, props, id_property)
        if fid is None:
            problems.append(FeatureProblem(index, None, "missing_id", f"no {id_property!r}"))
            continue
        if fid in seen:
            problems.append(FeatureProblem(index, fid, "duplicate_id", "id already loaded"))
            continue
        geometry = feature.get("geometry")
        if geometry is None:
            problems.append(FeatureProblem(index, fid, "missing_geometry", "geometry is null"))
            continue
        try:
            shape, note = shape_from_geojson(geometry)
        except RegionError as exc:
            problems.append(FeatureProblem(index, fid, exc.reason, str(exc)))
            continue
        seen.add(fid)
        name = props.get(name_property)
        name = name if isinstance(name, str) else ""
        loaded.append(LoadedFeature(index, fid, name, shape, note, dict(props)))
    return loaded, problems


# ---------------------------------------------------------------- circles


def circle(lon: float, lat: float, radius_m: float) -> Polygon:
    """A geodesic circle: vertices exactly ``radius_m`` away (pyproj Geod.fwd).

    At least 64 vertices and no edge longer than 25 km, so points of the
    boundary are within 0.13 % of the radius (tested < 0.5 % for 1-50 km).
    A circle crossing the antimeridian or holding a pole raises RegionError
    ``circle_unsupported``.
    """
    if not (radius_m > 0.0 and math.isfinite(radius_m)):
        raise RegionError("circle_unsupported", f"radius {radius_m!r} m must be positive")
    n = max(_CIRCLE_MIN_VERTICES, math.ceil(2 * math.pi * radius_m / _CIRCLE_MAX_EDGE_M))
    for pole in (90.0, -90.0):
        if GEOD.inv(lon, lat, lon, pole)[2] <= radius_m:
            raise RegionError("circle_unsupported", "circle contains a pole")
    azimuths = [360.0 * i / n for i in range(n)]
    lons, lats, _ = GEOD.fwd([lon] * n, [lat] * n, azimuths, [radius_m] * n)
    unwrapped = [lon + ((x - lon + 180.0) % 360.0) - 180.0 for x in lons]
    if any(not -180.0 <= x <= 180.0 for x in unwrapped):
        raise RegionError("circle_unsupported", "circle crosses the antimeridian")
    return Polygon(list(zip(unwrapped, lats, strict=True)))


# ---------------------------------------------------------------- metric frames


@dataclass(frozen=True, slots=True, eq=False)
class LocalFrame:
    """An oblique stereographic projection (metres) centred on one area; see the module doc."""

    lon0: float
    lat0: float
    k0: float
    max_scale_error: float  # |scale - 1| bound over the area's convex hull
    _proj: Transformer = field(repr=False)

    @classmethod
    def around(cls, geom: Polygonal) -> LocalFrame:
        """The frame centred on the bounding box of ``geom``, with scale error balanced."""
        minx, miny, maxx, maxy = geom.bounds
        lon0, lat0 = (minx + maxx) / 2.0, (miny + maxy) / 2.0
        hull = shapely.get_coordinates(geom.convex_hull)
        n = len(hull)
        _, _, dist = GEOD.inv([lon0] * n, [lat0] * n, hull[:, 0].tolist(), hull[:, 1].tolist())
        rho = max(dist, default=0.0)
        excess = math.tan(rho / (2.0 * EARTH_RADIUS_M)) ** 2  # scale - 1 at rho when k0 = 1
        k0 = 2.0 / (2.0 + excess)
        proj = Transformer.from_pipeline(
            "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
            f"+step +proj=sterea +lat_0={lat0!r} +lon_0={lon0!r} +k={k0!r} +ellps=WGS84"
        )
        return cls(lon0, lat0, k0, excess / (2.0 + excess), proj)

    def to_local(self, geom: Any) -> Any:
        """Any lon/lat geometry in this frame's metres."""
        return shapely.transform(geom, self._proj.transform, interleaved=False)

    def to_lonlat(self, geom: Any) -> Any:
        """Any geometry in this frame's metres back to lon/lat."""
        inverse = partial(self._proj.transform, direction="INVERSE")
        return shapely.transform(geom, inverse, interleaved=False)

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        x, y = self._proj.transform(lon, lat)
        return float(x), float(y)

    def scale_at(self, x: float, y: float) -> float:
        """Point scale factor at local (x, y) (spherical formula; good to ~1e-5 here)."""
        half = math.hypot(x, y) / (2.0 * EARTH_RADIUS_M * self.k0)
        return self.k0 * (1.0 + half * half)


@dataclass(frozen=True, slots=True, eq=False)
class MetricArea:
    """A lon/lat area with its local frame, for margins and distances in metres.

    Build it once (at policy load); :meth:`grown` returns plain lon/lat geometry
    for prepared point-in-polygon tests per fix.
    """

    geometry: Polygonal  # lon/lat
    frame: LocalFrame
    local: Polygonal  # the same area in frame metres (prepared)

    @classmethod
    def of(cls, geom: Polygonal) -> MetricArea:
        frame = LocalFrame.around(geom)
        local = frame.to_local(shapely.segmentize(geom, _DENSIFY_DEG))
        shapely.prepare(local)
        return cls(geom, frame, local)

    def grown(self, margin_m: float) -> Polygonal:
        """The area plus every point within ``margin_m`` metres of it (lon/lat, valid)."""
        if margin_m <= 0.0:
            return self.geometry
        back = self.frame.to_lonlat(self.local.buffer(margin_m, quad_segs=_QUAD_SEGS))
        if not back.is_valid:
            back = shapely.make_valid(back, method="structure", keep_collapsed=False)
        return _polygonal(back)

    def distance_m(self, lon: float, lat: float) -> float:
        """Metres from the point to the area; 0 inside or on the boundary."""
        x, y = self.frame.xy(lon, lat)
        if shapely.intersects_xy(self.local, x, y):
            return 0.0
        return float(shapely.distance(self.local, Point(x, y))) / self.frame.scale_at(x, y)


def grow(geom: Polygonal, margin_m: float) -> Polygonal:
    """``geom`` grown by ``margin_m`` metres (one-off; prefer MetricArea when reused)."""
    return MetricArea.of(geom).grown(margin_m)


def distance_m(geom: Polygonal, lon: float, lat: float) -> float:
    """Metres from a point to ``geom`` (one-off; prefer MetricArea when reused)."""
    return MetricArea.of(geom).distance_m(lon, lat)
