"""`vgr sim fleet`: simulated trackers drive real agents into the real cloud."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from cloud.localsvc import PrivateMosquitto
from tests.integration.ingest_support import prepare_db, wait_subscribed, workers

pytestmark = pytest.mark.services


def test_fleet_runner_drives_real_agents_into_the_database(
    tmp_path: Path, fresh_db: str, mosquitto: PrivateMosquitto
) -> None:
    argv = [sys.executable, "-m", "cloud.console", "sim", "fleet", "--vehicles", "3",
            "--scenario", "commuter", "--seed", "7", "--speed", "60", "--for", "20m",
            "--dir", str(tmp_path / "fleet"), "--broker", f"127.0.0.1:{mosquitto.plain_port}",
            "--tenant", "acme-finance", "--drain", "4"]  # fmt: skip
    listed = subprocess.run([*argv, "--list-devices"], capture_output=True, text=True, check=True)
    ids = listed.stdout.split()
    assert len(ids) >= 3  # one or two trackers per commuter
    prepare_db(fresh_db, ids)
    with workers(tmp_path, fresh_db, mosquitto) as w:
        w.start("w1")
        wait_subscribed(fresh_db, mosquitto, w)
        run = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"agents up {len(ids)}" in run.stderr
    with psycopg.connect(fresh_db) as conn:
        booted = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT device_id FROM device_events WHERE kind = 'boot'"
            ).fetchall()
        }
        fixes: dict[str, int] = dict(
            conn.execute("SELECT device_id, count(*) FROM fixes GROUP BY device_id").fetchall()
        )
        newest = conn.execute("SELECT max(time) FROM fixes").fetchone()
    assert booted == set(ids), "every tracker's agent started and reported its boot"
    # Wired units report while parked too; a wireless one may sleep through 20 minutes.
    assert set(fixes) <= set(ids)
    assert len(fixes) >= 3, fixes
    assert newest is not None
    assert newest[0] <= datetime.now(UTC), "GNSS time ran ahead of the wall clock"
