"""Risk POIs from a lender's file: categories, CSV and GeoJSON parsing, bad rows with reasons.

Pure code: text or a decoded FeatureCollection in, :class:`PoiRow` values and
:class:`~cloud.refdata.report.RowProblem` values out. One bad row never loses
the others.

CSV: a header row, then one POI per row. Columns (any order, case-insensitive):
``category`` (or ``类别``/``类型``/``type``), ``name`` (``名称``), ``lat``/``lon``
(``latitude``/``longitude``/``lng``/``纬度``/``经度``) or one ``location``
column ``"lon,lat"`` as Amap exports it, optional ``radius_m`` (``radius``/``半径``).
GeoJSON: Point features with the same property names.

Categories are the rule catalogue's (``cloud.risk.model.Poi``); Chinese labels
are accepted: 二押 second_mortgage, 典当行 pawnshop, 二手车市场 used_car_market,
车管所 registration_office, 拖车场 / 停车场 tow_yard, 私人 private.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .report import RowProblem

__all__ = [
    "CANDIDATE",
    "CATEGORIES",
    "MAX_RADIUS_M",
    "MIN_RADIUS_M",
    "PoiRow",
    "parse_category",
    "parse_poi_csv",
    "parse_poi_geojson",
]

CATEGORIES = (
    "second_mortgage",
    "pawnshop",
    "used_car_market",
    "registration_office",
    "tow_yard",
    "private",
)
CANDIDATE = "unknown"  # category of a discovered candidate until a person confirms it
MIN_RADIUS_M = 10.0
MAX_RADIUS_M = 5000.0

_ALIASES = {
    "二押": "second_mortgage",
    "二押点": "second_mortgage",
    "二次抵押": "second_mortgage",
    "二抵": "second_mortgage",
    "典当行": "pawnshop",
    "典当": "pawnshop",
    "当铺": "pawnshop",
    "二手车市场": "used_car_market",
    "二手车": "used_car_market",
    "二手车交易市场": "used_car_market",
    "车管所": "registration_office",
    "车辆管理所": "registration_office",
    "拖车场": "tow_yard",
    "停车场": "tow_yard",
    "拖车": "tow_yard",
    "私人": "private",
    "mortgage": "second_mortgage",
    "pawn": "pawnshop",
    "used_car": "used_car_market",
    "dmv": "registration_office",
    "tow": "tow_yard",
    "impound": "tow_yard",
}
_COLUMNS: dict[str, tuple[str, ...]] = {
    "category": ("category", "类别", "类型", "type", "kind"),
    "name": ("name", "名称", "poi_name"),
    "lat": ("lat", "latitude", "纬度", "y"),
    "lon": ("lon", "lng", "long", "longitude", "经度", "x"),
    "location": ("location", "坐标", "lnglat"),
    "radius_m": ("radius_m", "radius", "半径", "半径m"),
}
LatLonMap = Callable[[float, float], tuple[float, float]]  # (lat, lon) → (lat, lon)


@dataclass(frozen=True, slots=True)
class PoiRow:
    """One POI ready to store: WGS-84, category from :data:`CATEGORIES`."""

    category: str
    name: str
    lat: float
    lon: float
    radius_m: float


def parse_category(value: object) -> str | None:
    """The catalogue category for a label (English, snake_case or Chinese), or None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    key = text.lower().replace("-", "_").replace(" ", "_")
    if key in CATEGORIES:
        return key
    return _ALIASES.get(text) or _ALIASES.get(key)


def _number(value: object, what: str) -> float:
    """A finite float, or ValueError naming ``what``."""
    number = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = math.nan
    if not math.isfinite(number):
        msg = f"{what} {value!r} is not a number"
        raise ValueError(msg)
    return number


def _lat_lon(raw: Mapping[str, Any]) -> tuple[float, float]:
    """(lat, lon) from lat/lon columns, or from ``location`` "lon,lat" when lat is empty."""
    if raw.get("lat") in (None, "") and raw.get("location"):
        parts = str(raw["location"]).replace("\uff0c", ",").split(",")  # full-width comma too
        if len(parts) != 2:
            msg = f"location {raw['location']!r} is not 'lon,lat'"
            raise ValueError(msg)
        return _number(parts[1], "lat"), _number(parts[0], "lon")
    return _number(raw.get("lat"), "lat"), _number(raw.get("lon"), "lon")


def _row(
    raw: Mapping[str, Any], *, default_radius_m: float, convert: LatLonMap | None
) -> PoiRow | tuple[str, str]:
    """A PoiRow or (reason, message) from canonical keys (category, name, lat, lon, …)."""
    category = parse_category(raw.get("category"))
    if category is None:
        return "bad_category", f"category {raw.get('category')!r} is not one of {CATEGORIES}"
    try:
        lat, lon = _lat_lon(raw)
    except ValueError as exc:
        return "bad_coordinates", str(exc)
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        hint = " (lat and lon swapped?)" if -90.0 <= lon <= 90.0 and abs(lat) <= 180.0 else ""
        return "bad_coordinates", f"({lat}, {lon}) is not a latitude, longitude{hint}"
    if lat == 0.0 and lon == 0.0:
        return "bad_coordinates", "(0, 0) is a missing position, not a place"
    radius_raw = raw.get("radius_m")
    try:
        radius = default_radius_m if radius_raw in (None, "") else _number(radius_raw, "radius_m")
    except ValueError as exc:
        return "bad_radius", str(exc)
    if not MIN_RADIUS_M <= radius <= MAX_RADIUS_M:
        return "bad_radius", f"radius_m {radius} is outside {MIN_RADIUS_M:g}-{MAX_RADIUS_M:g} m"
    if convert is not None:
        lat, lon = convert(lat, lon)
    name = raw.get("name")
    return PoiRow(category, str(name).strip() if name is not None else "", lat, lon, radius)


def _canonical(keys: Iterable[str]) -> dict[str, str]:
    """Map each canonical column to the file's own header for it."""
    found: dict[str, str] = {}
    lowered = {k.strip().lower(): k for k in keys if k is not None}
    for canon, names in _COLUMNS.items():
        for name in names:
            if name in lowered:
                found[canon] = lowered[name]
                break
    return found


def parse_poi_csv(
    lines: Iterable[str], *, default_radius_m: float = 150.0, convert: LatLonMap | None = None
) -> tuple[list[PoiRow], list[RowProblem]]:
    """Rows of a POI CSV; ``convert`` maps file coordinates to WGS-84 (``--crs gcj02``)."""
    reader = csv.DictReader(lines)
    columns = _canonical(reader.fieldnames or [])
    missing = [c for c in ("category",) if c not in columns]
    if "location" not in columns and not {"lat", "lon"} <= columns.keys():
        missing.append("lat/lon or location")
    if missing:
        return [], [RowProblem("line 1", "missing_column", f"no {' and no '.join(missing)} column")]
    rows: list[PoiRow] = []
    problems: list[RowProblem] = []
    for raw in reader:
        where = f"line {reader.line_num}"
        if not any((v or "").strip() for v in raw.values() if isinstance(v, str)):
            continue  # blank line
        canon = {c: raw.get(h) for c, h in columns.items()}
        got = _row(canon, default_radius_m=default_radius_m, convert=convert)
        if isinstance(got, PoiRow):
            rows.append(got)
        else:
            problems.append(RowProblem(where, *got))
    return rows, problems


def parse_poi_geojson(
    doc: object, *, default_radius_m: float = 150.0, convert: LatLonMap | None = None
) -> tuple[list[PoiRow], list[RowProblem]]:
    """Point features of a decoded FeatureCollection as POIs."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("features"), list):
        return [], [RowProblem("file", "not_feature_collection", "expected a FeatureCollection")]
    rows: list[PoiRow] = []
    problems: list[RowProblem] = []
    for index, feature in enumerate(doc["features"]):
        where = f"feature {index}"
        geometry = feature.get("geometry") if isinstance(feature, Mapping) else None
        coords = geometry.get("coordinates") if isinstance(geometry, Mapping) else None
        if (
            not isinstance(geometry, Mapping)
            or geometry.get("type") != "Point"
            or not (isinstance(coords, list) and len(coords) >= 2)
        ):
            problems.append(RowProblem(where, "not_a_point", "geometry is not a GeoJSON Point"))
            continue
        props = feature.get("properties")
        props = props if isinstance(props, Mapping) else {}
        columns = _canonical(str(k) for k in props)
        canon = {c: props.get(h) for c, h in columns.items() if c not in ("lat", "lon")}
        canon["lon"], canon["lat"] = coords[0], coords[1]
        got = _row(canon, default_radius_m=default_radius_m, convert=convert)
        if isinstance(got, PoiRow):
            rows.append(got)
        else:
            problems.append(RowProblem(where, *got))
    return rows, problems
