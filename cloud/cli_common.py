"""What every ``vgr cloud …`` command does the same way: the config argument, loading the
config with its problems printed, logging, the database address."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloud.config import CloudConfig

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="cloud config file (TOML)")


def load_or_report(path: Path) -> CloudConfig | None:
    """The config, or None after printing each problem as ``file: key: problem``."""
    from cloud.config import load_config
    from protocols.configfile import ConfigError

    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return None


def setup_logging(cfg: CloudConfig) -> None:
    logging.basicConfig(level=cfg.log_level, format=LOG_FORMAT)


def database_dsn(cfg: CloudConfig) -> str:
    """The configured DSN with its password resolved (raises SecretError)."""
    from cloud.secrets_io import dsn_with_password, secret

    return dsn_with_password(cfg.database.dsn, secret(cfg.database.password))
