"""Builds a risk worker from the cloud config: reference data, webhooks, rules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg

import cloud.risk.rules.catalogue  # noqa: F401  (registers every rule)
from cloud.config import CloudConfig
from cloud.risk.alerts import AlertPolicy
from cloud.risk.worker import RiskWorker, WorkerOptions
from cloud.webhooks import enqueue


def build_worker(conn: psycopg.Connection[Any], cfg: CloudConfig) -> RiskWorker:
    settings = cfg.risk
    options = WorkerOptions(
        batch_rows=settings.batch_rows,
        snapshot_horizon=timedelta(days=settings.snapshot_days),
        alert_policy=AlertPolicy(suppress=timedelta(seconds=settings.suppress_s)),
    )
    return RiskWorker(conn, notify=enqueue, options=options)
