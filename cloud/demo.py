"""``vgr demo``: start the whole stack on this machine and show it working.

Starts a private PostgreSQL + TimescaleDB and a private Mosquitto (in
``$TMPDIR/vgr-demo/`` by default, on free loopback ports), migrates the database, registers a demo
tenant and its devices, starts an ingest worker, and drives a simulated fleet
through it, printing what is stored as it happens. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

DEMO_TENANT = "demo-bank"


def _prepare_db(dsn: str, ids: list[str]) -> None:
    import psycopg

    from cloud.storage.migrate import migrate

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    for mig in migrate(dsn):
        print(f"  migration {mig.version:04d}_{mig.name} applied")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO tenants (id, name) VALUES (%s, 'Demo Bank Auto Finance') "
            "ON CONFLICT DO NOTHING",
            (DEMO_TENANT,),
        )
        cur.executemany(
            "INSERT INTO devices (id, tenant_id, kind) VALUES (%s, %s, 'wired') "
            "ON CONFLICT DO NOTHING",
            [(d, DEMO_TENANT) for d in ids],
        )


def _stats(dsn: str) -> tuple[int, int, int]:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=3) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT device_id), "
            "(SELECT count(*) FROM timescaledb_information.chunks "
            " WHERE hypertable_name = 'fixes') FROM fixes"
        ).fetchone()
    return (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)


def demo(args: argparse.Namespace) -> int:
    from cloud.localsvc import PrivateMosquitto, PrivatePostgres
    from firmware_sim.loadgen import LoadPlan, run_load

    base = Path(args.dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    ids = [f"8600000{i:08d}" for i in range(args.devices)]
    print(f"VGR demo: state in {base}")
    with (
        PrivatePostgres(base_dir=base / "postgres") as pg,
        PrivateMosquitto(base_dir=base / "mosquitto") as broker,
    ):
        print(f"  PostgreSQL + TimescaleDB  {pg.dsn}")
        print(f"  Mosquitto                 mqtt://{broker.host}:{broker.plain_port}")
        _prepare_db(pg.dsn, ids)
        cfg = base / "cloud.toml"
        cfg.write_text(
            f'kind = "cloud"\n[database]\ndsn = "{pg.dsn}"\n'
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.plain_port}\n'
            f"[ingest]\nmetrics_port = {args.metrics_port}\n"
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "cloud.console", "cloud", "ingest", "--config", str(cfg)],
            stdout=(base / "ingest.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        print(f"  ingest worker             pid {worker.pid}, log {base / 'ingest.log'}")
        print(f"  metrics                   http://127.0.0.1:{args.metrics_port}/metrics")
        plan = LoadPlan(
            host=broker.host,
            port=broker.plain_port,
            device_ids=tuple(ids),
            fixes_per_device=10**9,
            batch_size=1,
            # Live: GNSS time advances with the wall clock, starting now.
            fix_interval=timedelta(seconds=1 / args.rate),
            rate_per_device=args.rate,
            start=datetime.now(UTC).replace(microsecond=0),
        )
        print(f"  fleet                     {len(ids)} simulated trackers; Ctrl-C to stop\n")
        stop = asyncio.Event()

        async def run() -> None:
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGINT, stop.set)
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            load = asyncio.create_task(run_load(plan, stop=stop))
            began = time.monotonic()
            deadline = began + args.duration if args.duration else None
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=5)
                rows, devices, chunks = await asyncio.to_thread(_stats, pg.dsn)
                print(
                    f"  t+{time.monotonic() - began:5.0f}s  stored fixes {rows:>8,}  "
                    f"from {devices} devices  in {chunks} daily chunks",
                    flush=True,
                )
                if worker.poll() is not None:
                    print("  ingest worker exited; see its log", file=sys.stderr)
                    stop.set()
                if deadline is not None and time.monotonic() >= deadline:
                    stop.set()
            await load

        try:
            asyncio.run(run())
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
        print("\nstopped cleanly.")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="start the whole stack locally with a simulated fleet")
    p.add_argument(
        "--dir",
        default=str(Path(tempfile.gettempdir()) / "vgr-demo"),
        help="where the demo keeps its services' data (must be reachable by the postgres user)",
    )
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--rate", type=float, default=0.5, help="fixes per second per device")
    p.add_argument("--metrics-port", type=int, default=9101)
    p.add_argument("--duration", type=float, default=0, help="stop after N seconds (0: never)")
    p.set_defaults(func=demo)
