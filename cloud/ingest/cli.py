"""``vgr cloud ingest``: run one ingest worker (start several to split the load)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
from pathlib import Path
from types import FrameType

log = logging.getLogger("vgr.ingest")


def run(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    from cloud.cli_common import load_or_report, setup_logging
    from cloud.ingest.consumer import BrokerSettings, IngestConsumer
    from cloud.ingest.service import IngestWorker
    from cloud.metrics import REGISTRY
    from cloud.secrets_io import dsn_with_password, secret

    cfg = load_or_report(args.config)
    if cfg is None:
        return 2
    setup_logging(cfg)
    ing = cfg.ingest
    worker_id = args.worker_id or f"{socket.gethostname()}-{os.getpid()}"
    consumer = IngestConsumer(
        BrokerSettings(
            host=cfg.mqtt.host,
            port=cfg.mqtt.port,
            client_id=f"{cfg.mqtt.client_id_prefix}-ingest-{worker_id}",
            share_group=ing.share_group,
            receive_maximum=ing.receive_maximum,
            username=cfg.mqtt.username,
            password=secret(cfg.mqtt.password),
            tls_ca=str(cfg.mqtt.ca_file) if cfg.mqtt.tls and cfg.mqtt.ca_file else None,
            keepalive_s=cfg.mqtt.keepalive_s,
        )
    )
    worker = IngestWorker(
        dsn=dsn_with_password(cfg.database.dsn, secret(cfg.database.password)),
        consumer=consumer,
        batch_rows=ing.batch_rows,
        batch_ms=ing.batch_ms,
        connect_timeout_s=cfg.database.connect_timeout_s,
    )
    metrics_port = args.metrics_port if args.metrics_port is not None else ing.metrics_port
    if metrics_port:
        start_http_server(metrics_port, addr=ing.metrics_host, registry=REGISTRY)
        log.info("metrics on http://%s:%d/metrics", ing.metrics_host, metrics_port)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current batch and stopping", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    consumer.start()
    log.info("ingest worker %s started (broker %s:%d)", worker_id, cfg.mqtt.host, cfg.mqtt.port)
    try:
        worker.run()
    finally:
        consumer.stop()
    return 0


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = cmds.add_parser("ingest", help="run an ingest worker: MQTT -> TimescaleDB")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--worker-id", default=None, help="unique per worker (default host-pid)")
    p.add_argument("--metrics-port", type=int, default=None, help="override ingest.metrics_port")
    p.set_defaults(func=run)
