"""``vgr cloud migrate`` and ``vgr cloud retention``: the storage administration commands."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    from cloud.config import CloudConfig

from cloud.cli_common import load_or_report

log = logging.getLogger("vgr.storage")


_load = load_or_report


def _password(cfg: CloudConfig) -> str | None:
    from cloud.secrets_io import secret

    return secret(cfg.database.password)


def _connect_kwargs(cfg: CloudConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "connect_timeout": max(1, round(cfg.database.connect_timeout_s)),
        "autocommit": True,
    }
    password = _password(cfg)
    if password is not None:
        kwargs["password"] = password
    return kwargs


def migrate_command(args: argparse.Namespace) -> int:
    import psycopg
    from psycopg.conninfo import make_conninfo

    from cloud.storage.migrate import MigrationError, migrate
    from protocols.secrets import SecretError

    if args.dsn is not None:
        dsn: str = args.dsn
    else:
        cfg = _load(args.config)
        if cfg is None:
            return 2
        try:
            password = _password(cfg)
        except SecretError as exc:
            print(f"database.password: {exc}", file=sys.stderr)
            return 2
        # migrate() takes one connection string: the password joins it in memory only.
        dsn = make_conninfo(cfg.database.dsn, password=password)
    try:
        applied = migrate(dsn)
    except MigrationError as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"migrate: database error: {str(exc).strip()}", file=sys.stderr)
        return 1
    if not applied:
        print("up to date")
    for mig in applied:
        print(f"applied {mig.version:04d}_{mig.name}")
    return 0


def retention_command(args: argparse.Namespace) -> int:
    import psycopg

    from cloud.storage.retention import RetentionScheduler
    from protocols.secrets import SecretError

    cfg = _load(args.config)
    if cfg is None:
        return 2
    logging.basicConfig(
        level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        kwargs = _connect_kwargs(cfg)
    except SecretError as exc:
        print(f"database.password: {exc}", file=sys.stderr)
        return 2
    dsn = cfg.database.dsn

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(dsn, **kwargs)

    scheduler = RetentionScheduler(
        connect,
        default_days=cfg.retention.default_days,
        interval_s=cfg.retention.interval_s,
    )
    if args.once:
        try:
            report = scheduler.run_once()
        except psycopg.Error as exc:
            print(f"retention: database error: {str(exc).strip()}", file=sys.stderr)
            return 1
        for line in report.lines():
            print(line)
        return 0

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping the retention job", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with scheduler:
        while not stop.wait(1.0):
            pass
    return 0


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``migrate`` and ``retention`` to the ``vgr cloud`` command group."""
    p = cmds.add_parser("migrate", help="apply pending database migrations")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="cloud config file (database section)")
    where.add_argument("--dsn", help="connection string instead of a config file")
    p.set_defaults(func=migrate_command)

    p = cmds.add_parser(
        "retention", help="delete data past each tenant's retention, every retention.interval_s"
    )
    p.add_argument("--config", type=Path, required=True, help="cloud config file")
    p.add_argument("--once", action="store_true", help="run once, print what was removed, exit")
    p.set_defaults(func=retention_command)
