"""The issue's acceptance run: every bundled labelled scenario through the real pipeline.

Simulated trackers (``firmware_sim.replay``) → real Mosquitto → ingest →
TimescaleDB → risk worker → webhook outbox → the dispatcher as its own process
(``vgr cloud webhooks dispatch``) → an aiohttp receiver in this test that checks
every signature with an independent implementation of the Standard Webhooks
scheme. The receiver is down (503) for the first deliveries and the dispatcher
is killed with SIGKILL and restarted midway; still every message must arrive,
each under one stable ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp import web

from bench.detection import RiskThread
from bench.detection_setup import TENANT, import_reference, register
from cloud.ingest.consumer import BrokerSettings, IngestConsumer
from cloud.ingest.service import IngestWorker
from cloud.localsvc import PrivateMosquitto, free_port
from cloud.storage.migrate import migrate
from cloud.webhooks import admin
from firmware_sim.replay import ReplayPlan, build_worlds, replay
from firmware_sim.scenarios import bundled, load_named
from tests.unit.webhooks.spec import spec_verify

pytestmark = pytest.mark.services

OUTAGE_REQUESTS = 12  # the receiver answers 503 to this many requests first
# (fewer than the 16 attempts of the schedule below: one message may meet the whole outage)


class Receiver:
    """Records every delivery; answers 503 while "down"."""

    def __init__(self) -> None:
        self.port = free_port()
        self.secret = ""
        self.requests = 0
        self.refused = 0
        self.got: dict[str, list[tuple[str, bool]]] = defaultdict(list)  # id -> (type, sig ok)
        self.lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="receiver", daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self.lock:
            self.requests += 1
            if self.requests <= OUTAGE_REQUESTS:
                self.refused += 1
                return web.Response(status=503, text="down for maintenance")
            ok = spec_verify(self.secret, request.headers, body)
            doc = await request.json()
            self.got[request.headers["webhook-id"]].append((str(doc.get("type")), ok))
        return web.Response(status=200 if ok else 400)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> Receiver:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _dispatcher(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cloud.console", "cloud", "webhooks", "dispatch",
             "--config", str(config)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


@pytest.fixture
def pipeline_db(fresh_db: str) -> str:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    migrate(fresh_db)
    return fresh_db


def _wait(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _rows(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def test_bundled_scenarios_alert_and_every_webhook_arrives_signed(
    pipeline_db: str, mosquitto: PrivateMosquitto, tmp_path: Path
) -> None:
    dsn = pipeline_db
    worlds = build_worlds(
        [load_named(n) for n in bundled()], datetime.now(UTC) - timedelta(minutes=10)
    )
    with psycopg.connect(dsn) as conn:
        ids = register(conn, worlds, import_reference(conn))
    names = {v: k for k, v in ids.items()}
    config = tmp_path / "cloud.toml"
    config.write_text(
        f'kind = "cloud"\n[database]\ndsn = "{dsn}"\n'
        "[webhooks]\nretry_schedule_s = [0, 0.5, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]\n"
        "jitter_fraction = 0\n"
        "request_timeout_s = 2\nlease_s = 4\npoll_interval_s = 0.2\n"
        "allow_private_targets = true\nmetrics_port = 0\n"
    )
    with Receiver() as receiver:
        with psycopg.connect(dsn) as conn:
            _, receiver.secret = admin.add_endpoint(
                conn, TENANT, f"http://127.0.0.1:{receiver.port}/hook", allow_private=True
            )
        dispatcher = _dispatcher(config, tmp_path / "dispatcher.log")
        consumer = IngestConsumer(BrokerSettings(
            host=mosquitto.host, port=mosquitto.plain_port, client_id="e2e-ingest",
            share_group="vgr-ingest"))  # fmt: skip
        ingest = IngestWorker(dsn=dsn, consumer=consumer, batch_rows=5000, batch_ms=50)
        consumer.start()
        threading.Thread(target=ingest.run, name="ingest", daemon=True).start()
        risk = RiskThread(dsn)
        risk.start()
        try:
            result = asyncio.run(replay(worlds, ReplayPlan(host=mosquitto.host,
                                                           port=mosquitto.plain_port)))  # fmt: skip
            assert result.complete, result.status
            _wait(lambda: not _rows(dsn, "SELECT 1 FROM risk_inbox LIMIT 1"), 300, "risk engine")
            risk.finish.set()
            assert risk.done.wait(300)
            assert risk.error is None, risk.error
            os.kill(dispatcher.pid, signal.SIGKILL)  # mid-delivery: leases run out, work resumes
            dispatcher.wait(10)
            dispatcher = _dispatcher(config, tmp_path / "dispatcher.log")
            _wait(
                lambda: not _rows(dsn, "SELECT 1 FROM webhook_deliveries "
                                       "WHERE state NOT IN ('succeeded', 'dead') LIMIT 1"),
                240, "webhook deliveries",
            )  # fmt: skip
        finally:
            dispatcher.send_signal(signal.SIGTERM)
            dispatcher.wait(20)
            ingest.stop()
            consumer.stop()
        alerts = _rows(dsn, "SELECT rule, vehicle_id, fired_at FROM alerts "
                            "WHERE resolution IS DISTINCT FROM 'suppressed'")  # fmt: skip
        messages = dict(_rows(dsn, "SELECT id, event_type FROM webhook_messages"))
        dead = _rows(
            dsn, "SELECT message_id, last_error FROM webhook_deliveries WHERE state = 'dead'"
        )

    missed = []
    for label in result.labels:
        hits = [
            a
            for a in alerts
            if a[0] == label.rule
            and names[a[1]] == label.vehicle
            and label.start <= a[2] <= label.end
        ]
        if label.expect == "alert" and not hits:
            missed.append(f"{label.rule} on {label.vehicle}")
        if label.expect == "silent" and hits:
            missed.append(f"{label.rule} on {label.vehicle} should stay silent")
    assert missed == [], missed

    assert receiver.refused == OUTAGE_REQUESTS  # the outage really happened
    assert dead == []
    assert messages, "the scenarios raised no webhook messages"
    assert set(receiver.got) == set(messages)  # every message arrived, under its own id
    for msg_id, seen in receiver.got.items():
        assert all(ok for _, ok in seen), msg_id  # every signature verified independently
        assert {t for t, _ in seen} == {messages[msg_id]}
