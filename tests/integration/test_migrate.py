"""Database migrations (cloud.storage.migrate) and ``vgr cloud migrate`` on a real server.

A database made with ``CREATE DATABASE`` does not have the TimescaleDB
extension even though the server preloads the library: migrate refuses it
(it looks in ``pg_extension``) and says which command fixes it. Creating the
extension takes a superuser, so it is an installation step, not a migration.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from cloud.storage.migrate import MigrationError, available, migrate

pytestmark = pytest.mark.services


def create_extension(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION timescaledb")


def tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchall()
    return {str(r[0]) for r in rows}


def test_database_without_the_extension_is_refused(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        # preloaded by the server, yet not installed in this database
        assert conn.execute("SHOW shared_preload_libraries").fetchone() == ("timescaledb",)
        installed = "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"
        assert conn.execute(installed).fetchone() is None
        dbname = conn.info.dbname
    with pytest.raises(MigrationError) as caught:
        migrate(fresh_db)
    message = str(caught.value)
    assert "CREATE EXTENSION timescaledb" in message
    assert dbname in message
    assert tables(fresh_db) == set()  # refused before touching anything


def test_fresh_database_gets_every_migration_once(fresh_db: str) -> None:
    create_extension(fresh_db)
    first = migrate(fresh_db)
    assert [m.version for m in first] == [m.version for m in available()]
    assert {"tenants", "vehicles", "devices", "fixes", "device_events"} <= tables(fresh_db)
    assert migrate(fresh_db) == []
    with psycopg.connect(fresh_db) as conn:
        recorded = conn.execute(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
        ).fetchall()
    assert recorded == [(m.version, m.name, m.checksum) for m in available()]


def test_an_applied_migration_that_changed_is_refused(fresh_db: str) -> None:
    create_extension(fresh_db)
    migrate(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(MigrationError, match="was changed after it was applied"):
        migrate(fresh_db)


def test_hypertables_have_one_day_chunks(fresh_db: str) -> None:
    create_extension(fresh_db)
    migrate(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        dims = conn.execute(
            "SELECT hypertable_name, column_name, time_interval "
            "FROM timescaledb_information.dimensions ORDER BY hypertable_name"
        ).fetchall()
        license_row = conn.execute("SHOW timescaledb.license").fetchone()
    assert ("fixes", "time", timedelta(days=1)) in dims
    assert ("device_events", "time", timedelta(days=1)) in dims
    assert license_row == ("apache",)


def test_retention_indexes_exist(fresh_db: str) -> None:
    create_extension(fresh_db)
    migrate(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename IN ('fixes', 'device_events')"
        ).fetchall()
    names = {r[0] for r in rows}
    assert {"fixes_tenant_time", "device_events_tenant_time"} <= names


_DRIVER = (
    "import argparse, sys\n"
    "from cloud.storage import cli\n"
    "p = argparse.ArgumentParser()\n"
    "cli.register(p.add_subparsers(required=True))\n"
    "a = p.parse_args(sys.argv[1:])\n"
    "sys.exit(a.func(a))\n"
)


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, env=env)


def storage_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The commands as registered by cloud.storage.cli.register, in a new process."""
    return run([sys.executable, "-c", _DRIVER, *args], env)


def test_cli_migrate_with_dsn(fresh_db: str) -> None:
    refused = storage_cli("migrate", "--dsn", fresh_db)
    assert refused.returncode == 1
    assert "CREATE EXTENSION timescaledb" in refused.stderr

    create_extension(fresh_db)
    done = storage_cli("migrate", "--dsn", fresh_db)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"applied {m.version:04d}_{m.name}" for m in available()]
    again = storage_cli("migrate", "--dsn", fresh_db)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "up to date"


def test_cli_migrate_with_config(fresh_db: str, tmp_path: Path) -> None:
    create_extension(fresh_db)
    config = tmp_path / "cloud.toml"
    config.write_text(
        f'kind = "cloud"\n[database]\ndsn = "{fresh_db}"\npassword = "env:VGR_TEST_DB_PASSWORD"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("VGR_")}
    env["VGR_TEST_DB_PASSWORD"] = "ignored-by-trust-auth"
    done = storage_cli("migrate", "--config", str(config), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "applied 0001_core"
    assert "ignored-by-trust-auth" not in done.stdout + done.stderr
    bad = storage_cli("migrate", "--config", str(tmp_path / "missing.toml"), env=env)
    assert bad.returncode == 2
    assert "cannot read" in bad.stderr


def test_cli_unreachable_database() -> None:
    done = storage_cli("migrate", "--dsn", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert done.returncode == 1
    assert "database error" in done.stderr


def test_vgr_cloud_migrate(fresh_db: str) -> None:
    """The real ``vgr`` entry point, once cloud/cli.py registers the storage commands."""
    vgr = [sys.executable, "-m", "cloud.console"]
    listed = run([*vgr, "cloud", "--help"])
    if "migrate" not in listed.stdout:
        pytest.skip("cloud.storage.cli.register is not wired into cloud/cli.py yet")
    create_extension(fresh_db)
    done = run([*vgr, "cloud", "migrate", "--dsn", fresh_db])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "applied 0001_core"
    assert run([*vgr, "cloud", "migrate", "--dsn", fresh_db]).stdout.strip() == "up to date"
