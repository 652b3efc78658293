"""Shared set-up for ingest tests: a migrated database, registered devices, workers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import psycopg

from cloud.localsvc import PrivateMosquitto, free_port
from cloud.storage.migrate import migrate
from firmware_sim.loadgen import LoadPlan, LoadReport, run_load

TENANT = "acme-finance"


def prepare_db(dsn: str, device_ids: list[str], *, revoked: tuple[str, ...] = ()) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    migrate(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (TENANT, "Acme Auto Finance"),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO devices (id, tenant_id, kind, revoked) VALUES (%s, %s, 'wired', %s)",
                [(d, TENANT, d in revoked) for d in device_ids],
            )


def device_ids(n: int) -> list[str]:
    prefix = uuid.uuid4().hex[:6]
    return [f"t{prefix}{i:05d}" for i in range(n)]


@dataclass
class Workers:
    config: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)

    def start(self, name: str, *, failpoints: str = "") -> subprocess.Popen[bytes]:
        log_path = self.config.parent / f"{name}.log"
        port = free_port()
        env = dict(self.env)
        if failpoints:
            env["VGR_FAILPOINTS"] = failpoints
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cloud.console", "cloud", "ingest",
                 "--config", str(self.config), "--worker-id", f"{name}-{uuid.uuid4().hex[:6]}",
                 "--metrics-port", str(port)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        self.procs[name] = proc
        self.logs[name] = log_path
        self.metrics_ports[name] = port
        return proc

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_text(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")


def write_config(tmp: Path, dsn: str, broker: PrivateMosquitto, *, batch_ms: float = 50) -> Path:
    cfg = tmp / "cloud.toml"
    cfg.write_text(
        f"""kind = "cloud"
log_level = "INFO"
[database]
dsn = "{dsn}"
[mqtt]
host = "{broker.host}"
port = {broker.plain_port}
client_id_prefix = "t{uuid.uuid4().hex[:6]}"
[ingest]
share_group = "g{uuid.uuid4().hex[:6]}"
batch_rows = 5000
batch_ms = {batch_ms}
receive_maximum = 200
"""
    )
    return cfg


@contextmanager
def workers(tmp: Path, dsn: str, broker: PrivateMosquitto) -> Iterator[Workers]:
    w = Workers(write_config(tmp, dsn, broker), dict(os.environ))
    try:
        yield w
    finally:
        w.stop_all()


def plan(broker: PrivateMosquitto, ids: list[str], fixes: int, batch: int = 20) -> LoadPlan:
    return LoadPlan(
        host=broker.host,
        port=broker.plain_port,
        device_ids=tuple(ids),
        fixes_per_device=fixes,
        batch_size=batch,
        fix_interval=timedelta(seconds=5),
        ack_timeout_s=3.0,
    )


def wait_subscribed(dsn: str, broker: PrivateMosquitto, w: Workers, timeout: float = 20) -> None:
    """Wait until the workers' logs say they are connected (subscriptions follow at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all("started" in w.log_text(n) and "connected to" in w.log_text(n) for n in w.procs):
            time.sleep(0.3)
            return
        time.sleep(0.1)
    logs = {n: w.log_text(n)[-2000:] for n in w.procs}
    raise AssertionError(f"workers did not connect: {logs}")


def run_plan(p: LoadPlan, timeout: float = 240) -> LoadReport:
    async def go() -> LoadReport:
        return await asyncio.wait_for(run_load(p), timeout=timeout)

    return asyncio.run(go())


@dataclass(frozen=True)
class StoredCheck:
    stored: int
    distinct: int
    order_violations: int


def check_stored(dsn: str, ids: list[str]) -> StoredCheck:
    """Rows, distinct keys, and devices whose commit order contradicts their seq order."""
    with psycopg.connect(dsn) as conn:
        stored, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, boot_id, seq)) FROM fixes "
            "WHERE device_id = ANY(%s)",
            (ids,),
        ).fetchone() or (0, 0)
        # received_at is the committing transaction's start: with one batch in flight per
        # device, a later seq must never be committed by an earlier transaction.
        bad = conn.execute(
            """SELECT count(*) FROM (
                   SELECT received_at < lag(received_at) OVER (PARTITION BY device_id, boot_id
                                                               ORDER BY seq) AS back
                   FROM fixes WHERE device_id = ANY(%s)) x WHERE back""",
            (ids,),
        ).fetchone()
    return StoredCheck(int(stored), int(distinct), int(bad[0]) if bad else 0)


@contextmanager
def fleet_and_workers(
    tmp: Path,
    dsn: str,
    broker: PrivateMosquitto,
    n_devices: int,
    *names: str,
    failpoints: dict[str, str] | None = None,
) -> Iterator[tuple[list[str], Workers]]:
    """Register ``n_devices`` fresh devices, start the named workers, wait until subscribed."""
    ids = device_ids(n_devices)
    prepare_db(dsn, ids)
    with workers(tmp, dsn, broker) as w:
        for name in names:
            w.start(name, failpoints=(failpoints or {}).get(name, ""))
        wait_subscribed(dsn, broker, w)
        yield ids, w
