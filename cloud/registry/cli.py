"""``vgr cloud registry|tenant|installer-key …``: the registry service and its administration."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloud.cli_common import config_arg, load_or_report

if TYPE_CHECKING:
    pass


_config = load_or_report


def _with_db(path: Path, action: Callable[[Any], Awaitable[int]]) -> int:
    """Run ``action(conn)`` on an autocommit connection to the configured database."""
    import asyncio

    import psycopg

    from cloud.registry.model import RegistryError
    from cloud.secrets_io import dsn_with_password, secret
    from protocols.secrets import SecretError

    cfg = _config(path)
    if cfg is None:
        return 2

    async def run() -> int:
        dsn = dsn_with_password(cfg.database.dsn, secret(cfg.database.password))
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            return await action(conn)

    try:
        return asyncio.run(run())
    except RegistryError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except psycopg.errors.UndefinedTable:
        print("the database has no registry tables: run the migrations first", file=sys.stderr)
        return 1
    except (psycopg.Error, SecretError) as exc:
        print(f"database: {exc}", file=sys.stderr)
        return 1


def tenant_create(path: Path, tenant_id: str, name: str) -> int:
    from cloud.registry import store

    async def action(conn: store.Conn) -> int:
        await store.create_tenant(conn, tenant_id, name)
        print(f"tenant {tenant_id} created")
        return 0

    return _with_db(path, action)


def installer_key_create(path: Path, tenant_id: str, name: str, *, replace: bool) -> int:
    from cloud.registry import store

    async def action(conn: store.Conn) -> int:
        key = await store.create_installer_key(conn, tenant_id, name, replace=replace)
        print(f"installer key for {tenant_id}/{name}; shown once, store it now:", file=sys.stderr)
        print(key)
        return 0

    return _with_db(path, action)


def sync_broker(path: Path) -> int:
    from cloud.registry import store
    from cloud.registry.broker_auth import BrokerSyncError, sync_broker
    from cloud.registry.service import RegistryConfigError, broker_files_from_config

    cfg = _config(path)
    if cfg is None:
        return 2
    try:
        files = broker_files_from_config(cfg)
    except RegistryConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return 2

    async def action(conn: store.Conn) -> int:
        try:
            count = await sync_broker(conn, files)
        except BrokerSyncError as exc:
            print(f"broker: {exc}", file=sys.stderr)
            return 1
        reloaded = "reloaded" if files.reload is not None else "not reloaded (no pid file)"
        print(f"broker files written with {count} devices; broker {reloaded}")
        return 0

    return _with_db(path, action)


def serve(path: Path, host: str | None, port: int | None) -> int:
    import logging

    from cloud.registry.service import RegistryConfigError
    from cloud.registry.service import serve as run

    cfg = _config(path)
    if cfg is None:
        return 2
    logging.basicConfig(
        level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        run(cfg, host=host, port=port)
    except RegistryConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return 2
    return 0


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reg = cmds.add_parser("registry", help="device registry: provisioning API, broker files")
    reg_cmds = reg.add_subparsers(dest="registry_command", metavar="COMMAND", required=True)
    p = reg_cmds.add_parser("serve", help="run the provisioning API for installers")
    config_arg(p)
    p.add_argument("--host", default=None, help="listen address (default registry.listen_host)")
    p.add_argument("--port", type=int, default=None, help="listen port (registry.listen_port)")
    p.set_defaults(func=lambda a: serve(a.config, a.host, a.port))
    p = reg_cmds.add_parser(
        "sync-broker", help="rewrite Mosquitto's password and ACL files from the database"
    )
    config_arg(p)
    p.set_defaults(func=lambda a: sync_broker(a.config))

    tenant = cmds.add_parser("tenant", help="institutions (tenants)")
    tenant_cmds = tenant.add_subparsers(dest="tenant_command", metavar="COMMAND", required=True)
    p = tenant_cmds.add_parser("create", help="create a tenant")
    config_arg(p)
    p.add_argument("--id", required=True, help="tenant id: a-z 0-9 _ -, up to 64")
    p.add_argument("--name", required=True, help="display name")
    p.set_defaults(func=lambda a: tenant_create(a.config, a.id, a.name))

    key = cmds.add_parser("installer-key", help="installer API keys")
    key_cmds = key.add_subparsers(dest="installer_key_command", metavar="COMMAND", required=True)
    p = key_cmds.add_parser("create", help="create an installer and print its key once")
    config_arg(p)
    p.add_argument("--tenant", required=True, help="tenant id")
    p.add_argument("--name", required=True, help="installer user name")
    p.add_argument("--replace", action="store_true", help="give an existing installer a new key")
    p.set_defaults(
        func=lambda a: installer_key_create(a.config, a.tenant, a.name, replace=a.replace)
    )
