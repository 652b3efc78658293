"""``vgr cloud risk run``: a risk worker (start several to split the fleet)."""

from __future__ import annotations

import argparse
import logging
import random
import signal
import threading
import time
from pathlib import Path
from types import FrameType

log = logging.getLogger("vgr.risk")


def run(args: argparse.Namespace) -> int:
    import psycopg
    from prometheus_client import start_http_server

    from cloud.cli_common import database_dsn, load_or_report, setup_logging
    from cloud.metrics import REGISTRY
    from cloud.risk.services import build_worker
    from cloud.risk.worker import RoundStats, run_forever

    cfg = load_or_report(args.config)
    if cfg is None:
        return 2
    setup_logging(cfg)
    settings = cfg.risk
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=REGISTRY)
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current round and stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    dsn = database_dsn(cfg)
    totals = RoundStats()

    def on_round(stats: RoundStats) -> None:
        totals.inputs += stats.inputs
        totals.signals += stats.signals
        totals.alerts.opened += stats.alerts.opened

    backoff = 0.5
    while not stop.is_set():
        try:
            with psycopg.connect(dsn, connect_timeout=int(cfg.database.connect_timeout_s)) as conn:
                worker = build_worker(conn, cfg)
                log.info("risk worker connected; running rounds")
                backoff = 0.5
                run_forever(
                    worker,
                    poll_interval_s=settings.poll_interval_s,
                    tick_interval_s=settings.tick_interval_s,
                    should_stop=stop.is_set,
                    on_round=on_round,
                    daily_check_s=settings.daily_scoring_check_s,
                )
        except psycopg.OperationalError as exc:
            log.warning("database unavailable (%s); retrying in %.1f s", exc, backoff)
            stop.wait(backoff * (0.5 + random.random()))  # noqa: S311 (jitter)
            backoff = min(backoff * 2, 15.0)
    log.info(
        "risk worker stopped: %d inputs, %d signals, %d alerts opened",
        totals.inputs, totals.signals, totals.alerts.opened,
    )  # fmt: skip
    time.sleep(0)
    return 0


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = cmds.add_parser("risk", help="the risk engine: rules over stored fixes, alerts")
    sub = p.add_subparsers(dest="risk_command", metavar="COMMAND", required=True)
    r = sub.add_parser("run", help="run a risk worker: inbox -> rules -> alerts -> webhooks")
    r.add_argument("--config", type=Path, required=True)
    r.set_defaults(func=run)
