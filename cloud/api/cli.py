"""``vgr cloud api``: serve the HTTP API; users who log in; integration keys for the lending core.

Passwords are never taken from the command line (it shows in ``ps`` and shell
history): they come from a prompt, or from ``--password-file`` (``-`` for
standard input), first line, without its line ending.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cloud.cli_common import load_or_report, setup_logging


def serve(args: argparse.Namespace) -> int:
    import logging

    from aiohttp import web

    from cloud.api.app import build_app
    from cloud.config import CloudConfig
    from cloud.secrets_io import dsn_with_password, secret

    cfg = load_or_report(args.config)
    if not isinstance(cfg, CloudConfig):
        return 2
    setup_logging(cfg)
    if not cfg.api.cookie_secure and cfg.api.host not in ("127.0.0.1", "::1", "localhost"):
        logging.getLogger(__name__).warning(
            "[api] cookie_secure = false on %s: session cookies will cross the network in "
            "clear; use it only for a local plain-http demo",
            cfg.api.host,
        )
    from cloud.api.commands import commander_from_config
    from cloud.recovery.cli import UsageError

    try:
        commander = commander_from_config(cfg, timeout_s=cfg.api.command_timeout_s)
    except UsageError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 2
    if commander is None:
        logging.getLogger(__name__).warning(
            "no registry.signing_key: chase-mode commands are refused (503 commands_unavailable)"
        )
    dsn = dsn_with_password(cfg.database.dsn, secret(cfg.database.password))
    app = build_app(
        dsn,
        settings=cfg.api,
        pool_min=cfg.database.pool_min,
        pool_max=cfg.database.pool_max,
        commander=commander,
        webhooks=cfg.webhooks,
    )
    web.run_app(
        app, host=cfg.api.host, port=cfg.api.port, print=lambda m: print(m, file=sys.stderr)
    )
    return 0


def create_key(args: argparse.Namespace) -> int:
    import psycopg

    from cloud.api.keys import ApiKeyError, create_integration_key
    from cloud.config import CloudConfig
    from cloud.secrets_io import dsn_with_password, secret

    cfg = load_or_report(args.config)
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


def _read_password(path: Path | None) -> str | None:
    import getpass

    if path is not None:
        try:
            text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        except OSError as exc:
            print(f"{path}: cannot read ({exc.strerror})", file=sys.stderr)
            return None
        lines = text.splitlines()
        return lines[0] if lines else ""
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        print("the passwords differ", file=sys.stderr)
        return None
    return first


def _db(cfg: object) -> str:
    from cloud.config import CloudConfig
    from cloud.secrets_io import dsn_with_password, secret

    assert isinstance(cfg, CloudConfig)
    return dsn_with_password(cfg.database.dsn, secret(cfg.database.password))


def user_create(args: argparse.Namespace) -> int:
    import psycopg

    from cloud.api.app import passwords_for
    from cloud.api.users import UserError, create_user
    from cloud.config import CloudConfig

    cfg = load_or_report(args.config)
    if not isinstance(cfg, CloudConfig):
        return 2
    password = _read_password(args.password_file)
    if password is None:
        return 2
    with psycopg.connect(_db(cfg)) as conn:
        try:
            uid = create_user(conn, passwords_for(cfg.api), args.tenant, args.username, args.role,
                              password)  # fmt: skip
        except UserError as exc:
            print(f"{exc.code}: {exc.message}", file=sys.stderr)
            return 1
    print(f"created {args.role} {args.tenant}/{args.username} (id {uid})", file=sys.stderr)
    return 0


def user_disable(args: argparse.Namespace) -> int:
    import psycopg

    from cloud.api.users import UserError, disable_user
    from cloud.config import CloudConfig

    cfg = load_or_report(args.config)
    if not isinstance(cfg, CloudConfig):
        return 2
    with psycopg.connect(_db(cfg)) as conn:
        try:
            disable_user(conn, args.tenant, args.username)
        except UserError as exc:
            print(f"{exc.code}: {exc.message}", file=sys.stderr)
            return 1
    print(f"disabled {args.tenant}/{args.username}; its sessions have ended", file=sys.stderr)
    return 0


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = cmds.add_parser("api", help="the HTTP API: serve, users, integration keys")
    sub = p.add_subparsers(dest="api_command", metavar="COMMAND", required=True)
    s = sub.add_parser("serve", help="serve the API on [api] host:port")
    s.add_argument("--config", type=Path, required=True)
    s.set_defaults(func=serve)
    k = sub.add_parser("integration-key", help="create an integration user and its API key")
    k.add_argument("--config", type=Path, required=True)
    k.add_argument("--tenant", required=True)
    k.add_argument("--name", required=True, help="user name, e.g. lending-core")
    k.set_defaults(func=create_key)
    u = sub.add_parser("user", help="people who log in (admin, analyst, recovery, installer)")
    usub = u.add_subparsers(dest="user_command", metavar="COMMAND", required=True)
    c = usub.add_parser(
        "create", help="create a user; the password is prompted for", allow_abbrev=False
    )
    c.add_argument("--config", type=Path, required=True)
    c.add_argument("--tenant", required=True)
    c.add_argument("--username", required=True)
    c.add_argument("--role", required=True, choices=["admin", "analyst", "recovery", "installer"])
    c.add_argument("--password-file", type=Path, help="read the password from here ('-': stdin)")
    c.set_defaults(func=user_create)
    d = usub.add_parser("disable", help="disable a user and end its sessions")
    d.add_argument("--config", type=Path, required=True)
    d.add_argument("--tenant", required=True)
    d.add_argument("--username", required=True)
    d.set_defaults(func=user_disable)
