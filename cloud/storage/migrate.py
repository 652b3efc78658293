"""Numbered SQL migrations (``migrations/NNNN_name.sql``), applied in order, once each.

Idempotent: applied versions are recorded with a checksum in
``schema_migrations``; a changed file that was already applied is an error, not
a silent re-run. Concurrent runners serialise on an advisory lock. A database
without the TimescaleDB extension is refused with the command that fixes it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x76677201  # "vgr" + 1: advisory lock id for migrations


class MigrationError(RuntimeError):
    """The database cannot be migrated; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    """The migrations shipped with this package, in version order."""
    found = []
    for entry in resources.files("cloud.storage").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(
                Migration(int(match["version"]), match["name"], entry.read_text(encoding="utf-8"))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        msg = f"two migrations share a version number: {versions}"
        raise MigrationError(msg)
    return found


def require_timescaledb(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    """The installed TimescaleDB version, or MigrationError with the command to install it."""
    row = conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    ).fetchone()
    if row is not None:
        return str(row[0])
    avail = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    dbname = conn.info.dbname
    if avail is None:
        msg = (
            "this PostgreSQL server has no TimescaleDB extension. Install it with "
            "`make setup` (builds it from Debian's source package), add "
            "shared_preload_libraries = 'timescaledb' to postgresql.conf, restart the server, "
            f"then run: psql -d {dbname} -c 'CREATE EXTENSION timescaledb'"
        )
    else:
        msg = (
            f"database {dbname!r} does not have the TimescaleDB extension. As a superuser run: "
            f"psql -d {dbname} -c 'CREATE EXTENSION timescaledb'"
        )
    raise MigrationError(msg)


def applied_versions(conn: psycopg.Connection[tuple[object, ...]]) -> dict[int, str]:
    conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version integer PRIMARY KEY,
               name text NOT NULL,
               checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {int(str(v)): str(c) for v, c in rows}


def migrate(dsn: str) -> list[Migration]:
    """Apply every pending migration; return the ones applied now (empty when up to date)."""
    done: list[Migration] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        require_timescaledb(conn)
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            have = applied_versions(conn)
            for mig in available():
                if mig.version in have:
                    if have[mig.version] != mig.checksum:
                        msg = (
                            f"migration {mig.version:04d}_{mig.name} was changed after it was "
                            "applied; add a new migration instead of editing an applied one"
                        )
                        raise MigrationError(msg)
                    continue
                with conn.transaction():
                    conn.execute(mig.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES (%s, %s, %s)",
                        (mig.version, mig.name, mig.checksum),
                    )
                done.append(mig)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return done
