"""Ingest end to end with real Mosquitto and TimescaleDB: nothing lost, nothing doubled.

Each test drives a fleet of simulated devices (the protocol-level load
generator, which keeps every batch until its CommitAck arrives) through real
ingest worker processes, and counts what is stored against what was sent.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cloud.localsvc import PrivateMosquitto, PrivatePostgres
from tests.integration.ingest_support import check_stored, fleet_and_workers, plan, run_plan

pytestmark = pytest.mark.services

DEVICES = 200


def assert_exact(dsn: str, ids: list[str], sent: int) -> None:
    got = check_stored(dsn, ids)
    assert got.stored == sent, f"stored {got.stored} rows for {sent} fixes sent"
    assert got.distinct == got.stored, "duplicate rows"
    assert got.order_violations == 0, "a device's fixes were committed out of sequence"


def test_one_worker_stores_every_fix_once(
    tmp_path: Path, fresh_db: str, mosquitto: PrivateMosquitto
) -> None:
    with fleet_and_workers(tmp_path, fresh_db, mosquitto, DEVICES, "w1") as (ids, _):
        report = run_plan(plan(mosquitto, ids, fixes=60))
    assert report.sent == DEVICES * 60
    assert report.acked == report.sent
    assert_exact(fresh_db, ids, report.sent)


def test_two_workers_split_the_load(
    tmp_path: Path, fresh_db: str, mosquitto: PrivateMosquitto
) -> None:
    with fleet_and_workers(tmp_path, fresh_db, mosquitto, DEVICES, "w1", "w2") as (ids, w):
        report = run_plan(plan(mosquitto, ids, fixes=60))
        m1 = _metric(w.metrics_ports["w1"], "vgr_ingest_batches_total")
        m2 = _metric(w.metrics_ports["w2"], "vgr_ingest_batches_total")
    assert report.acked == report.sent == DEVICES * 60
    assert_exact(fresh_db, ids, report.sent)
    assert m1 > 0
    assert m2 > 0, "the second worker committed nothing: the load was not split"


def test_broker_restart_mid_stream(
    tmp_path: Path, fresh_db: str, mosquitto: PrivateMosquitto
) -> None:
    with fleet_and_workers(tmp_path, fresh_db, mosquitto, DEVICES, "w1") as (ids, _):
        p = plan(mosquitto, ids, fixes=100, batch=10)

        def crash_broker() -> None:
            mosquitto.kill()  # SIGKILL: in-flight and queued messages are gone
            time.sleep(1.0)
            mosquitto.start()

        _during(lambda: _rows(fresh_db) > 4000, crash_broker, p)
        report = run_plan(p)
    assert report.acked == report.sent == DEVICES * 100
    assert_exact(fresh_db, ids, report.sent)


def test_postgres_restart_mid_batch(
    tmp_path: Path, fresh_db: str, mosquitto: PrivateMosquitto, postgres: PrivatePostgres
) -> None:
    with fleet_and_workers(tmp_path, fresh_db, mosquitto, DEVICES, "w1") as (ids, w):
        p = plan(mosquitto, ids, fixes=100, batch=10)

        def crash_db() -> None:
            postgres.kill()  # SIGKILL the postmaster mid-COPY: no clean shutdown
            time.sleep(2.0)
            postgres.restart()

        _during(lambda: _rows(fresh_db) > 4000, crash_db, p)
        report = run_plan(p)
        log = w.log_text("w1")
    assert report.acked == report.sent == DEVICES * 100
    assert_exact(fresh_db, ids, report.sent)
    assert "database write failed" in log, "the outage was not seen by the worker"


def test_worker_killed_between_commit_and_ack(
    tmp_path: Path, fresh_db: str, mosquitto: PrivateMosquitto
) -> None:
    # w1 SIGKILLs itself right after its 5th commit, before any ack of that batch.
    with fleet_and_workers(
        tmp_path, fresh_db, mosquitto, DEVICES, "w1", "w2",
        failpoints={"w1": "ingest_after_commit=5"},
    ) as (ids, w):  # fmt: skip
        w1 = w.procs["w1"]
        report = run_plan(plan(mosquitto, ids, fixes=60))
        w1.wait(timeout=5)
    assert w1.returncode == -9, "the failpoint did not fire"
    resends = sum(d.resends for d in report.devices)
    assert resends > 0, "nothing had to be resent: the kill did not hit unacknowledged work"
    assert report.acked == report.sent == DEVICES * 60
    assert_exact(fresh_db, ids, report.sent)


# ---------------------------------------------------------------- helpers


def _rows(dsn: str) -> int:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            row = conn.execute("SELECT count(*) FROM fixes").fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return 0


def _during(condition: object, action: object, _plan: object) -> threading.Thread:
    """Run ``action`` on a thread once ``condition`` holds (polled), while the load runs."""
    assert callable(condition)
    assert callable(action)

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not condition():
            time.sleep(0.05)
        action()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def _metric(port: int, name: str) -> float:
    import urllib.request

    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total
