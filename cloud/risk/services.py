"""Builds a risk worker from the cloud config: reference data, webhooks, rules."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

import cloud.risk.rules.catalogue  # noqa: F401  (registers every rule)
from cloud.config import CloudConfig
from cloud.refdata.lookup import Places
from cloud.refdata.store import load_places, load_pois
from cloud.risk.alerts import AlertPolicy
from cloud.risk.model import PlaceLookup
from cloud.risk.worker import RiskWorker, WorkerOptions
from cloud.webhooks import enqueue


class TenantPlaces:
    """Reference data per tenant: regions and IP ranges shared, POIs per tenant; reloaded."""

    def __init__(
        self, conn: psycopg.Connection[Any], maxmind_db: Path | None, refresh_s: float = 300.0
    ) -> None:
        self._conn = conn
        self._maxmind = maxmind_db
        self._refresh_s = refresh_s
        self._base: Places | None = None
        self._loaded_at = 0.0
        self._tenants: dict[str, PlaceLookup] = {}

    def __call__(self, tenant_id: str) -> PlaceLookup:
        now = time.monotonic()
        if self._base is None or now - self._loaded_at > self._refresh_s:
            self._base = load_places(self._conn, None, maxmind_db=self._maxmind)
            self._loaded_at = now
            self._tenants.clear()
        places = self._tenants.get(tenant_id)
        if places is None:
            places = self._base.with_pois(load_pois(self._conn, tenant_id))
            self._tenants[tenant_id] = places
        return places


def build_worker(conn: psycopg.Connection[Any], cfg: CloudConfig) -> RiskWorker:
    settings = cfg.risk
    options = WorkerOptions(
        batch_rows=settings.batch_rows,
        snapshot_horizon=timedelta(days=settings.snapshot_days),
        alert_policy=AlertPolicy(suppress=timedelta(seconds=settings.suppress_s)),
    )
    places = TenantPlaces(conn, cfg.refdata.maxmind_db)
    return RiskWorker(conn, places=places, notify=enqueue, options=options)
