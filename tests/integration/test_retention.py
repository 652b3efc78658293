"""Per-tenant retention (cloud.storage.retention) on a real TimescaleDB, Apache edition.

Two tenants keep data 30 and 400 days; a third tenant id has rows but no
``tenants`` row and gets the default. Rows of every tenant sit at the same
ages in ``fixes`` and ``device_events``, so each chunk is shared by all of
them, as in production.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from cloud.storage import retention
from cloud.storage.migrate import migrate
from cloud.storage.retention import (
    RetentionScheduler,
    enable_community_features,
    license_features,
    run_retention,
)

pytestmark = pytest.mark.services

Conn = psycopg.Connection[tuple[object, ...]]

SHORT = "short-30"
LONG = "long-400"
ORPHAN = "gone-tenant"  # rows, but no tenants row
DEFAULT_DAYS = 90
NOW = datetime(2025, 6, 1, 18, 0, tzinfo=UTC)  # 18:00: the horizon falls inside a chunk
AGES = (0.5, 10, 29.5, 30.5, 45, 89, 91, 100, 200, 399.5, 399.9, 400.5, 401, 450, 500)
"""Ages in days. 400.5 days lies in the chunk that straddles the 400-day horizon."""
CROWD_AGE = 45  # many rows of the short tenant at this age, to need several batches
CROWD = 25


@pytest.fixture
def db(fresh_db: str) -> str:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION timescaledb")
    migrate(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "INSERT INTO tenants (id, name, retention_days) VALUES (%s, 'Short', 30), "
            "(%s, 'Long', 400)",
            (SHORT, LONG),
        )
    return fresh_db


@pytest.fixture
def conn(db: str) -> Iterator[Conn]:
    with psycopg.connect(db, autocommit=True) as c:
        yield c


def insert(conn: Conn, tenant: str, times: list[datetime]) -> None:
    device = f"dev-{tenant}"
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO fixes (time, device_id, boot_id, seq, tenant_id, vehicle_id, lat, lon, "
            "speed_mps, mode) VALUES (%s, %s, 'b', %s, %s, NULL, 30.6, 104.0, 0, 3)",
            [(t, device, i, tenant) for i, t in enumerate(times)],
        )
        cur.executemany(
            "INSERT INTO device_events (time, device_id, boot_id, seq, tenant_id, kind) "
            "VALUES (%s, %s, 'b', %s, %s, 'power_cut')",
            [(t, device, i, tenant) for i, t in enumerate(times)],
        )


def populate(conn: Conn, now: datetime) -> None:
    for tenant in (SHORT, LONG, ORPHAN):
        times = [now - timedelta(days=a) for a in AGES]
        if tenant == SHORT:
            times += [now - timedelta(days=CROWD_AGE, minutes=i + 1) for i in range(CROWD)]
        insert(conn, tenant, times)


def ages(conn: Conn, table: str, tenant: str, now: datetime) -> set[float]:
    query = sql.SQL("SELECT DISTINCT time FROM {} WHERE tenant_id = %s").format(
        sql.Identifier(table)
    )
    rows = conn.execute(query, (tenant,)).fetchall()
    found: set[float] = set()
    for (t,) in rows:
        assert isinstance(t, datetime)
        found.add(round((now - t) / timedelta(days=1), 1))
    return found


def db_now(conn: Conn) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    assert isinstance(row[0], datetime)
    return row[0]


def running(scheduler: RetentionScheduler) -> bool:
    return scheduler.running


def count(conn: Conn, query: str, *params: object) -> int:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_each_tenant_keeps_its_own_retention(conn: Conn) -> None:
    populate(conn, NOW)
    horizon = NOW - timedelta(days=400)
    old_chunks = "SELECT count(*) FROM show_chunks(%s::regclass, older_than => %s::timestamptz)"
    assert count(conn, old_chunks, "fixes", horizon) > 0
    assert count(conn, old_chunks, "device_events", horizon) > 0
    chunks_before = count(conn, "SELECT count(*) FROM show_chunks('fixes')")

    report = run_retention(conn, DEFAULT_DAYS, now=NOW, batch_rows=7)

    assert report.skipped is None
    assert not report.interrupted
    assert report.horizon_days == 400
    assert report.horizon == horizon
    for table in retention.TABLES:
        assert ages(conn, table, SHORT, NOW) == {a for a in AGES if a < 30}
        assert ages(conn, table, LONG, NOW) == {a for a in AGES if a < 400}
        assert ages(conn, table, ORPHAN, NOW) == {a for a in AGES if a < DEFAULT_DAYS}
        # whole chunks older than the horizon are gone, not just emptied
        assert count(conn, old_chunks, table, horizon) == 0
    assert report.dropped_chunks
    for name in report.dropped_chunks:
        assert conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() == (None,)
    assert count(conn, "SELECT count(*) FROM show_chunks('fixes')") < chunks_before

    purged = {(p.table, p.tenant_id): p for p in report.purges}
    short = purged[("fixes", SHORT)]
    # 30.5 .. 400.5 days old (400.5 is in the chunk straddling the horizon), plus the crowd
    assert short.rows == len([a for a in AGES if 30 < a <= 400.5]) + CROWD
    assert short.cutoff == NOW - timedelta(days=30)
    assert short.known_tenant
    assert purged[("device_events", SHORT)].rows == short.rows
    # the long tenant loses only its 400.5-day row, in the chunk straddling the horizon
    assert purged[("fixes", LONG)].rows == 1
    orphan = purged[("fixes", ORPHAN)]
    assert not orphan.known_tenant
    assert orphan.retention_days == DEFAULT_DAYS
    assert any("tenant unknown" in line for line in report.lines())

    again = run_retention(conn, DEFAULT_DAYS, now=NOW)
    assert again.dropped_chunks == ()
    assert again.purges == ()
    assert again.deleted_rows == 0


def test_retention_applies_to_fresh_data_relative_to_the_database_clock(conn: Conn) -> None:
    now = db_now(conn)
    insert(conn, SHORT, [now - timedelta(days=d) for d in (1, 29, 31, 60)])
    report = run_retention(conn, DEFAULT_DAYS)
    assert report.now >= now
    assert ages(conn, "fixes", SHORT, now) == {1.0, 29.0}
    assert report.deleted_rows == 4  # two rows in each table


def test_an_interrupted_run_is_finished_by_the_next(conn: Conn) -> None:
    populate(conn, NOW)
    calls = 0

    def stop_after_two_batches() -> bool:
        nonlocal calls
        calls += 1
        return calls > 2

    first = run_retention(
        conn, DEFAULT_DAYS, now=NOW, batch_rows=5, should_stop=stop_after_two_batches
    )
    assert first.interrupted
    assert 1 <= first.deleted_rows <= 10
    assert any("interrupted" in line for line in first.lines())
    assert len(ages(conn, "device_events", SHORT, NOW)) > len([a for a in AGES if a < 30])
    second = run_retention(conn, DEFAULT_DAYS, now=NOW, batch_rows=5)
    assert not second.interrupted
    for table in retention.TABLES:
        assert ages(conn, table, SHORT, NOW) == {a for a in AGES if a < 30}
        assert ages(conn, table, LONG, NOW) == {a for a in AGES if a < 400}
        assert ages(conn, table, ORPHAN, NOW) == {a for a in AGES if a < DEFAULT_DAYS}


def test_a_concurrent_run_is_skipped(db: str, conn: Conn) -> None:
    with psycopg.connect(db, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (retention._LOCK_KEY,))
        report = run_retention(conn, DEFAULT_DAYS, now=NOW)
        assert report.skipped is not None
        assert report.lines() == [f"skipped: {report.skipped}"]
        # Release explicitly: a closed connection's backend may hold it a moment longer.
        other.execute("SELECT pg_advisory_unlock(%s)", (retention._LOCK_KEY,))
    assert run_retention(conn, DEFAULT_DAYS, now=NOW).skipped is None


def test_arguments_are_checked(db: str, conn: Conn) -> None:
    with pytest.raises(ValueError, match="default_days"):
        run_retention(conn, 0)
    with pytest.raises(ValueError, match="batch_rows"):
        run_retention(conn, 30, batch_rows=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        run_retention(conn, 30, now=datetime(2025, 1, 1))  # noqa: DTZ001
    with psycopg.connect(db) as tx, pytest.raises(ValueError, match="autocommit"):
        run_retention(tx, 30)


def test_apache_license_skips_community_features(
    conn: Conn, caplog: pytest.LogCaptureFixture
) -> None:
    features = license_features(conn)
    assert features.license == "apache"
    assert not features.compression
    assert not features.continuous_aggregates
    with caplog.at_level(logging.INFO, logger="cloud.storage.retention"):
        assert enable_community_features(conn) is False
    assert "timescaledb.license is 'apache'" in caplog.text
    jobs = "SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = %s"
    assert count(conn, jobs, "policy_compression") == 0


def test_scheduler_runs_repeatedly_and_stops_cleanly(db: str, conn: Conn) -> None:
    now = db_now(conn)
    insert(conn, SHORT, [now - timedelta(days=d) for d in (2, 40)])
    scheduler = RetentionScheduler(
        lambda: psycopg.connect(db), default_days=DEFAULT_DAYS, interval_s=0.1
    )
    with scheduler:
        assert running(scheduler)
        deadline = time.monotonic() + 20
        while scheduler.runs < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not running(scheduler)
    assert scheduler.runs >= 3
    assert scheduler.failures == 0
    assert ages(conn, "fixes", SHORT, now) == {2.0}
    last = scheduler.last_report
    assert last is not None
    assert last.deleted_rows == 0  # the first run did the work


def test_scheduler_survives_a_failing_run(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> Conn:
        return psycopg.connect("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1)

    scheduler = RetentionScheduler(broken, default_days=DEFAULT_DAYS, interval_s=0.05)
    with caplog.at_level(logging.ERROR, logger="cloud.storage.retention"), scheduler:
        deadline = time.monotonic() + 20
        while scheduler.failures < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert scheduler.failures >= 2
    assert scheduler.last_report is None
    assert "retention run failed" in caplog.text


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    driver = (
        "import argparse, sys\n"
        "from cloud.storage import cli\n"
        "p = argparse.ArgumentParser()\n"
        "cli.register(p.add_subparsers(required=True))\n"
        "a = p.parse_args(sys.argv[1:])\n"
        "sys.exit(a.func(a))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", driver, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_cli_retention_once(db: str, conn: Conn, tmp_path: Path) -> None:
    now = db_now(conn)
    insert(conn, SHORT, [now - timedelta(days=d) for d in (3, 33)])
    config = tmp_path / "cloud.toml"
    config.write_text(
        f'kind = "cloud"\n[database]\ndsn = "{db}"\npassword = "env:VGR_TEST_DB_PASSWORD"\n'
        "[retention]\ndefault_days = 90\n",
        encoding="utf-8",
    )
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("VGR_")}
    missing = _cli("retention", "--config", str(config), "--once", env=base_env)
    assert missing.returncode == 2
    assert "env:VGR_TEST_DB_PASSWORD" in missing.stderr

    done = _cli(
        "retention", "--config", str(config), "--once",
        env={**base_env, "VGR_TEST_DB_PASSWORD": "unused-with-trust-auth"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"deleted 1 row(s) of tenant {SHORT!r} from fixes" in done.stdout
    assert "unused-with-trust-auth" not in done.stdout + done.stderr
