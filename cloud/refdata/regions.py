"""Administrative regions from GeoJSON: finding the adcode, level, name and parent of a feature.

Pure code: a decoded FeatureCollection in, :class:`RegionRecord` values and
:class:`Skipped` reasons out. Geometry goes through
:func:`protocols.geometry.shape_from_geojson`, the same validation and repair
(GEOS MakeValid) the edge uses for policy areas, so a repaired polygon carries
its :class:`~protocols.geometry.RepairNote`.

Properties understood:

- DataV GeoAtlas: ``adcode`` (int), ``name``, ``level`` (province / city /
  district), ``parent: {"adcode": …}``. Its ``100000_JD`` nine-dash-line
  feature and country-level features are skipped with a reason.
- plain files: the code is the first property named like a code (``adcode``,
  ``code``, ``gb``, ``区划代码``…) holding six digits (a 12-digit statistical
  code ending in ``000000`` counts), else any property holding a six-digit
  division code, else the feature ``id``; ``level`` may say ``prefecture``
  (= city), ``county`` (= district); a missing level is read from the code
  (``XX0000`` province, ``XXXX00`` city, else district).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from protocols.errors import RegionError
from protocols.geometry import Polygonal, RepairNote, shape_from_geojson

from .provinces import is_adcode, province_of_adcode

__all__ = [
    "LEVELS",
    "CoordMap",
    "Level",
    "RegionRecord",
    "Skipped",
    "find_adcode",
    "level_from_adcode",
    "parse_level",
    "read_feature_collection",
    "record_from_feature",
]

Level = Literal["province", "city", "district"]
LEVELS: tuple[Level, ...] = ("province", "city", "district")
CoordMap = Callable[[Mapping[str, Any]], Mapping[str, Any]]  # geometry → geometry (e.g. GCJ-02)

_LEVEL_WORDS: dict[str, Level] = {
    "province": "province",
    "provincial": "province",
    "省": "province",
    "省级": "province",
    "city": "city",
    "prefecture": "city",
    "市": "city",
    "地级": "city",
    "市级": "city",
    "district": "district",
    "county": "district",
    "县": "district",
    "区县": "district",
    "县级": "district",
}
_CODE_KEYS = (
    "adcode",
    "code",
    "gb",
    "gbcode",
    "ad_code",
    "pac",
    "区划代码",
    "行政区划代码",
    "代码",
    "id",
)
_NAME_KEYS = ("name", "name_zh", "name_chn", "fullname", "名称", "地名", "name_cn")
_PARENT_KEYS = ("parent", "parent_adcode", "parent_code", "padcode", "p_adcode", "上级代码")
_DIGITS12 = re.compile(r"^[1-9][0-9]{5}0{6}$")


@dataclass(frozen=True, slots=True)
class RegionRecord:
    """One administrative region as stored (geometry valid, WGS-84 lon/lat)."""

    adcode: str
    level: Level
    name: str
    parent: str | None
    geometry: Polygonal
    source: str
    repair: RepairNote | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A feature that was not imported, named so a person can find it in the file."""

    where: str  # e.g. "feature 12 (adcode 110000, 北京市)"
    reason: str  # stable snake_case, as in protocols.errors
    message: str


def parse_level(value: object) -> Level | None:
    """A level word (``province``/``city``/``prefecture``/``district``/``county``/中文) or None."""
    if not isinstance(value, str):
        return None
    return _LEVEL_WORDS.get(value.strip().lower())


def level_from_adcode(adcode: str) -> Level:
    """The level a code's shape suggests: ``XX0000`` province, ``XXXX00`` city, else district."""
    if adcode.endswith("0000"):
        return "province"
    if adcode.endswith("00"):
        return "city"
    return "district"


def _as_code(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    elif isinstance(value, float) and value.is_integer():
        value = str(int(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _DIGITS12.match(text):
        text = text[:6]
    return text if is_adcode(text) and province_of_adcode(text) is not None else None


def _specificity(code: str) -> int:
    return 1 if code.endswith("0000") else 2 if code.endswith("00") else 3


def _most_specific(codes: list[str]) -> str | None:
    # A feature's own code is finer than the parent codes it may also carry
    # (``province_adcode``, ``city_adcode``, ``district_adcode`` on a district).
    return max(codes, key=_specificity) if codes else None


def find_adcode(feature: Mapping[str, Any], props: Mapping[str, Any]) -> str | None:
    """The feature's six-digit division code (see the module doc for where it looks)."""
    lowered = {str(k).strip().lower(): v for k, v in props.items()}
    for key in _CODE_KEYS:
        if key in lowered and (code := _as_code(lowered[key])) is not None:
            return code
    own = {k: v for k, v in lowered.items() if k not in _PARENT_KEYS}
    named = [c for k, v in own.items() if ("code" in k or "代码" in k) and (c := _as_code(v))]
    anywhere = [c for v in own.values() if (c := _as_code(v))]
    return _most_specific(named) or _most_specific(anywhere) or _as_code(feature.get("id"))


def _find_name(props: Mapping[str, Any]) -> str:
    lowered = {str(k).strip().lower(): v for k, v in props.items()}
    for key in _NAME_KEYS:
        value = lowered.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _find_parent(props: Mapping[str, Any]) -> str | None:
    lowered = {str(k).strip().lower(): v for k, v in props.items()}
    for key in _PARENT_KEYS:
        value = lowered.get(key)
        if isinstance(value, Mapping):  # DataV: "parent": {"adcode": 320000}
            value = value.get("adcode")
        if (code := _as_code(value)) is not None:
            return code
    return None


def _describe(index: int, props: Mapping[str, Any], adcode: str | None) -> str:
    bits = [f"adcode {adcode}"] if adcode else []
    name = _find_name(props)
    if name:
        bits.append(name)
    if not bits:
        shown = ", ".join(f"{k}={v!r}" for k, v in list(props.items())[:4])
        bits.append(f"properties {{{shown}}}" if shown else "no properties")
    return f"feature {index} ({', '.join(bits)})"


def record_from_feature(
    index: int,
    feature: object,
    *,
    source: str,
    level: Level | None = None,
    coord_map: CoordMap | None = None,
) -> RegionRecord | Skipped:
    """One feature as a region, or the reason it was skipped.

    ``level`` forces the level of every feature (``--level``); otherwise it is
    read from the feature. ``coord_map`` transforms the geometry before
    validation and repair (``--crs gcj02`` converts to WGS-84).
    """
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        return Skipped(f"feature {index}", "not_a_feature", "not a GeoJSON Feature")
    raw_props = feature.get("properties")
    props: Mapping[str, Any] = raw_props if isinstance(raw_props, Mapping) else {}
    adcode = find_adcode(feature, props)
    where = _describe(index, props, adcode)
    if adcode is None:
        level_word = str(props.get("level", "")).lower()
        if level_word == "country" or str(props.get("adcode", "")).startswith("100000"):
            return Skipped(where, "not_a_region", "country outline or nine-dash line, not stored")
        return Skipped(where, "missing_adcode", "no property holds a six-digit division code")
    found_level = level or parse_level(props.get("level")) or level_from_adcode(adcode)
    geometry = feature.get("geometry")
    if not isinstance(geometry, Mapping):
        return Skipped(where, "missing_geometry", "geometry is null")
    try:
        if coord_map is not None:
            geometry = coord_map(geometry)
        shape, note = shape_from_geojson(geometry)
    except RegionError as exc:
        return Skipped(where, exc.reason, str(exc))
    parent = _find_parent(props)
    if parent is None and found_level == "city":
        parent = province_of_adcode(adcode)
    return RegionRecord(adcode, found_level, _find_name(props), parent, shape, source, note)


def read_feature_collection(
    doc: object,
    *,
    source: str,
    level: Level | None = None,
    coord_map: CoordMap | None = None,
) -> Iterator[RegionRecord | Skipped]:
    """Every feature of a decoded FeatureCollection as a record or a skip, lazily.

    Raises RegionError ``not_feature_collection`` at once when ``doc`` is not one.
    """
    if not isinstance(doc, Mapping) or doc.get("type") != "FeatureCollection":
        raise RegionError("not_feature_collection", "expected a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list):
        raise RegionError("not_feature_collection", "FeatureCollection without a features list")
    return (
        record_from_feature(i, f, source=source, level=level, coord_map=coord_map)
        for i, f in enumerate(features)
    )


def feature_count(doc: object) -> int:
    """How many features a decoded FeatureCollection holds (0 when it is not one)."""
    if isinstance(doc, Mapping) and isinstance(doc.get("features"), list):
        return len(doc["features"])
    return 0
