"""``vgr cloud api``: serve the HTTP API; create integration keys for the lending core."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _config(path: Path) -> object | None:
    from cloud.config import load_config
    from protocols.configfile import ConfigError

    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return None


def serve(args: argparse.Namespace) -> int:
    import logging

    from aiohttp import web

    from cloud.api.app import build_app
    from cloud.config import CloudConfig
    from cloud.secrets_io import dsn_with_password, secret

    cfg = _config(args.config)
    if not isinstance(cfg, CloudConfig):
        return 2
    logging.basicConfig(
        level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    dsn = dsn_with_password(cfg.database.dsn, secret(cfg.database.password))
    app = build_app(dsn, pool_min=cfg.database.pool_min, pool_max=cfg.database.pool_max)
    web.run_app(
        app, host=cfg.api.host, port=cfg.api.port, print=lambda m: print(m, file=sys.stderr)
    )
    return 0


def create_key(args: argparse.Namespace) -> int:
    import psycopg

    from cloud.api.keys import ApiKeyError, create_integration_key
    from cloud.config import CloudConfig
    from cloud.secrets_io import dsn_with_password, secret

    cfg = _config(args.config)
    if not isinstance(cfg, CloudConfig):
        return 2
    with psycopg.connect(dsn_with_password(cfg.database.dsn, secret(cfg.database.password))) as c:
        try:
            key = create_integration_key(c, args.tenant, args.name)
        except ApiKeyError as exc:
            print(f"{exc.code}: {exc.message}", file=sys.stderr)
            return 1
    print(f"integration key for {args.tenant}/{args.name}; shown once, store it now:",
          file=sys.stderr)  # fmt: skip
    print(key)
    return 0


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = cmds.add_parser("api", help="the HTTP API (lending-core pull endpoint)")
    sub = p.add_subparsers(dest="api_command", metavar="COMMAND", required=True)
    s = sub.add_parser("serve", help="serve the API on [api] host:port")
    s.add_argument("--config", type=Path, required=True)
    s.set_defaults(func=serve)
    k = sub.add_parser("integration-key", help="create an integration user and its API key")
    k.add_argument("--config", type=Path, required=True)
    k.add_argument("--tenant", required=True)
    k.add_argument("--name", required=True, help="user name, e.g. lending-core")
    k.set_defaults(func=create_key)
