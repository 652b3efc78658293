"""Simulated trackers → real edge agents → real broker → real ingest → TimescaleDB.

Every fix an agent produced is stored exactly once, across a broker SIGKILL
and an agent SIGKILL mid-stream (the restarted agent sends its outbox).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from cloud.localsvc import PrivateMosquitto
from tests.integration.edge_support import (
    NmeaFeeder,
    agent_config,
    expected_times,
    start_agent,
    wait_until,
)
from tests.integration.ingest_support import device_ids, prepare_db, wait_subscribed, workers

pytestmark = pytest.mark.services

TRACKERS = 3
EPOCHS = 500  # GNSS seconds per tracker, fed at 20 per wall-clock second


def stored(dsn: str, device: str) -> list[datetime]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT time FROM fixes WHERE device_id = %s ORDER BY time", (device,)
        ).fetchall()
    return [r[0] for r in rows]


def run_fleet(tmp: Path, dsn: str, broker: PrivateMosquitto, fault: str) -> None:
    ids = device_ids(TRACKERS)
    prepare_db(dsn, ids)
    feeders = [NmeaFeeder(seed=i, epochs=EPOCHS) for i in range(TRACKERS)]
    gaps: dict[str, list[tuple[float, float]]] = {d: [] for d in ids}
    with workers(tmp, dsn, broker) as w:
        w.start("w1")
        wait_subscribed(dsn, broker, w)
        cfgs = [
            agent_config(tmp, d, f.port, broker.plain_port)
            for d, f in zip(ids, feeders, strict=True)
        ]
        agents = [start_agent(c) for c in cfgs]
        try:
            for f in feeders:
                f.start()
            time.sleep(8)  # mid-stream
            if fault == "broker":
                broker.kill()
                time.sleep(2)
                broker.start()
            elif fault == "agent":
                victim = 0
                killed_at = time.monotonic()
                agents[victim].kill()  # SIGKILL: no goodbye, no flush
                agents[victim].wait()
                time.sleep(2)
                reconnects = len(feeders[victim].accepts)
                agents[victim] = start_agent(cfgs[victim])
                wait_until(lambda: len(feeders[victim].accepts) > reconnects, 30, "reconnect")
                # Lines written to the dead agent's socket until the new one connected were
                # never parsed by any agent: they were not produced.
                gaps[ids[victim]].append((killed_at - 1.0, feeders[victim].accepts[-1] + 0.5))
            for f in feeders:
                wait_until(f.done.is_set, 120, "the receivers to finish")
            want = {d: expected_times(f, gaps[d]) for d, f in zip(ids, feeders, strict=True)}
            for d in ids:
                try:
                    wait_until(lambda d=d: want[d] <= set(stored(dsn, d)), 60, f"{d}'s fixes")
                except AssertionError as exc:
                    missing = sorted(want[d] - set(stored(dsn, d)))
                    log = (tmp / d / "agent.log").read_text(errors="replace")[-3000:]
                    msg = f"{exc}: {len(missing)} missing, first {missing[:3]}\n{log}"
                    raise AssertionError(msg) from None
        finally:
            for a in agents:
                a.terminate()
                a.wait(timeout=20)
            for f in feeders:
                f.close()
    for d, f in zip(ids, feeders, strict=True):
        got = stored(dsn, d)
        assert len(got) == len(set(got)), f"{d}: a fix was stored twice"
        fixed = {e.time for e in f.log if e.fixed}
        assert set(got) <= fixed, f"{d}: stored a fix the receiver never produced"
        assert want[d] <= set(got), f"{d}: {len(want[d] - set(got))} produced fixes missing"
        assert len(want[d]) > EPOCHS * 0.4, "too little was streamed to judge"


def test_fleet_through_agents_exactly_once_across_broker_kill(
    tmp_path: Path, fresh_db: str, mosquitto: PrivateMosquitto
) -> None:
    run_fleet(tmp_path, fresh_db, mosquitto, "broker")


def test_fleet_through_agents_exactly_once_across_agent_kill(
    tmp_path: Path, fresh_db: str, mosquitto: PrivateMosquitto
) -> None:
    run_fleet(tmp_path, fresh_db, mosquitto, "agent")
