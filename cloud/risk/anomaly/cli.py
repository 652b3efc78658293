"""``vgr cloud train`` and ``vgr cloud score-days``: the per-tenant anomaly model.

Exit codes: 0 done; 1 database or model error; 2 bad config or arguments;
3 not enough data to train (``train``) or no model yet (``score-days``).
Progress goes to stderr, the summary to stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    from cloud.risk.anomaly.jobs import ScoreResult, TrainResult
    from cloud.risk.model import PlaceLookup

EXIT_NO_DATA = 3
CATCH_UP_DAYS = 7  # score-days without --day fills at most this many missed days


def _today() -> date:
    from cloud.risk.geo import CHINA_TZ

    return datetime.now(CHINA_TZ).date()


def _connect(path: Path) -> psycopg.Connection[Any] | int:
    """An autocommit connection from the config file, or an exit code after saying why."""
    import psycopg

    from cloud.config import load_config
    from cloud.secrets_io import dsn_with_password, secret
    from protocols.configfile import ConfigError
    from protocols.secrets import SecretError

    try:
        cfg = load_config(path)
        dsn = dsn_with_password(cfg.database.dsn, secret(cfg.database.password))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return 2
    except SecretError as exc:
        print(f"database.password: {exc}", file=sys.stderr)
        return 2
    timeout = max(1, round(cfg.database.connect_timeout_s))
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=timeout)
    except psycopg.Error as exc:
        print(f"database: {str(exc).strip()}", file=sys.stderr)
        return 1


def _places(
    conn: psycopg.Connection[Any], tenant: str, provinces: Path | None
) -> tuple[PlaceLookup, str] | int:
    """The lookup and its source name: the boundary file, else the stored reference data."""
    import psycopg

    from cloud.risk.anomaly.places import NoPlaces, ProvincePlaces
    from protocols.errors import RegionError

    if provinces is not None:
        try:
            places = ProvincePlaces.from_file(provinces)
        except (OSError, RegionError) as exc:
            print(f"{provinces}: {exc}", file=sys.stderr)
            return 2
        for problem in places.problems:
            print(
                f"{provinces}: feature {problem.index} skipped: {problem.message}", file=sys.stderr
            )
        if places.repaired:
            print(f"{provinces}: {places.repaired} invalid geometries repaired", file=sys.stderr)
        return places, places.source
    from cloud.refdata.store import load_places

    try:
        return load_places(conn, tenant, levels=("province",)), "refdata"
    except psycopg.errors.UndefinedTable:
        print("no reference-data tables: provinces and POIs count as none", file=sys.stderr)
        return NoPlaces(), "none"


def _progress(label: str) -> Callable[[int, int], None]:
    """Print ``label: done/total`` on stderr at every 10 % and at the end."""
    last = -1

    def report(done: int, total: int) -> None:
        nonlocal last
        step = 10 * done // total if total else 10
        if done == 0 or step > last:  # done == 0: a new pass (score-days: a new day)
            last = step
            print(f"{label}: {done}/{total} vehicle-days", file=sys.stderr, flush=True)

    return report


def _print_train(result: TrainResult, first: date, until: date) -> None:
    print(f"tenant {result.tenant_id}: anomaly model v{result.version} ({result.model_type})")
    print(
        f"  vehicle-days   {result.vehicle_days} from {result.vehicles} vehicles, "
        f"{first.isoformat()}..{(until - timedelta(days=1)).isoformat()} (China time)"
    )
    print(f"  features       {len(result.feature_names)}: {', '.join(result.feature_names)}")
    print(
        f"  contamination  {result.contamination:g} "
        f"({result.flagged_in_training} training vehicle-days flagged)"
    )
    print(f"  model version  {result.version}")


def train_command(args: argparse.Namespace) -> int:
    import psycopg

    from cloud.risk.anomaly.jobs import NotEnoughData, train_tenant
    from cloud.risk.anomaly.model import ModelError, TrainOptions

    if args.days < 1 or args.min_vehicle_days < 2 or args.trees < 1:
        print("--days and --trees must be at least 1, --min-vehicle-days 2", file=sys.stderr)
        return 2
    if not 0.0 < args.contamination <= 0.5:
        print("--contamination must be in (0, 0.5]", file=sys.stderr)
        return 2
    conn = _connect(args.config)
    if isinstance(conn, int):
        return conn
    until: date = args.until or _today()
    options = TrainOptions(
        contamination=args.contamination, n_estimators=args.trees, seed=args.seed
    )
    with conn:
        found = _places(conn, args.tenant, args.provinces)
        if isinstance(found, int):
            return found
        places, source = found
        try:
            result = train_tenant(
                conn,
                args.tenant,
                until=until,
                days=args.days,
                min_vehicle_days=args.min_vehicle_days,
                places=places,
                places_source=source,
                model_type=args.model,
                options=options,
                progress=_progress(f"train {args.tenant}"),
            )
        except NotEnoughData as exc:
            print(f"train: {exc}", file=sys.stderr)
            return EXIT_NO_DATA
        except ModelError as exc:
            print(f"train: {exc}", file=sys.stderr)
            return 1
        except psycopg.Error as exc:
            print(f"train: database error: {str(exc).strip()}", file=sys.stderr)
            return 1
    _print_train(result, until - timedelta(days=args.days), until)
    return 0


def _default_days(conn: psycopg.Connection[Any], tenant: str, today: date) -> list[date]:
    """Yesterday, plus the days missed since the latest model last scored (at most a week)."""
    from cloud.risk.anomaly import store

    yesterday = today - timedelta(days=1)
    stored = store.latest_model(conn, tenant)
    last = store.last_scored_day(conn, tenant, stored.version) if stored else None
    first = (
        yesterday
        if last is None
        else max(last + timedelta(days=1), yesterday - timedelta(days=CATCH_UP_DAYS - 1))
    )
    return [first + timedelta(days=i) for i in range((yesterday - first).days + 1)]


def _print_scores(result: ScoreResult) -> None:
    days = ", ".join(d.isoformat() for d in result.days)
    print(
        f"tenant {result.tenant_id}: {result.scored} vehicle-days scored with model "
        f"v{result.model_version} ({days}): {len(result.anomalies)} anomalous"
    )
    for vehicle, day, verdict in result.anomalies:
        why = ", ".join(f"{c.name}={c.value:.1f}" for c in verdict.top_features)
        print(f"  vehicle {vehicle} {day.isoformat()} score {verdict.score:.3f}: {why}")


def score_days_command(args: argparse.Namespace) -> int:
    import psycopg

    from cloud.risk.anomaly.jobs import NoModel, score_tenant_days
    from cloud.risk.anomaly.model import ModelError

    conn = _connect(args.config)
    if isinstance(conn, int):
        return conn
    with conn:
        found = _places(conn, args.tenant, args.provinces)
        if isinstance(found, int):
            return found
        places, source = found
        try:
            days = [args.day] if args.day else _default_days(conn, args.tenant, _today())
            if not days:
                print(f"tenant {args.tenant}: every day up to yesterday is scored")
                return 0
            result = score_tenant_days(
                conn,
                args.tenant,
                days,
                places=places,
                places_source=source,
                progress=_progress(f"score-days {args.tenant}"),
            )
        except NoModel as exc:
            print(f"score-days: {exc}", file=sys.stderr)
            return EXIT_NO_DATA
        except ModelError as exc:
            print(f"score-days: {exc}", file=sys.stderr)
            return 1
        except psycopg.Error as exc:
            print(f"score-days: database error: {str(exc).strip()}", file=sys.stderr)
            return 1
    for warning in result.warnings:
        print(f"score-days: warning: {warning}", file=sys.stderr)
    _print_scores(result)
    return 0


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``train`` and ``score-days`` to the ``vgr cloud`` command group."""
    p = cmds.add_parser("train", help="train a tenant's anomaly model on its stored fixes")
    p.add_argument("--tenant", required=True)
    p.add_argument("--config", type=Path, required=True, help="cloud config file")
    p.add_argument("--days", type=int, default=60, help="training window in days (default 60)")
    p.add_argument(
        "--until",
        type=date.fromisoformat,
        default=None,
        help="first China day after the window (default: today)",
    )
    p.add_argument(
        "--min-vehicle-days",
        type=int,
        default=200,
        help="refuse to train on fewer vehicle-days (default 200)",
    )
    p.add_argument(
        "--contamination",
        type=float,
        default=0.01,
        help="share of training vehicle-days the threshold flags (default 0.01)",
    )
    p.add_argument("--model", default="isolation_forest", help="model type key")
    p.add_argument("--trees", type=int, default=200, help="isolation trees (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--provinces",
        type=Path,
        default=None,
        help="province boundary GeoJSON (adcode) instead of the stored reference data",
    )
    p.set_defaults(func=train_command)

    p = cmds.add_parser("score-days", help="score vehicle-days with the tenant's latest model")
    p.add_argument("--tenant", required=True)
    p.add_argument("--config", type=Path, required=True, help="cloud config file")
    p.add_argument(
        "--day",
        type=date.fromisoformat,
        default=None,
        help="China day to score (default: yesterday and missed days)",
    )
    p.add_argument(
        "--provinces", type=Path, default=None, help="the boundary file the model was trained with"
    )
    p.set_defaults(func=score_days_command)
