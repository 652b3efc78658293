"""The device registry as ingest sees it: a short-lived cache over the devices table.

A revocation takes effect within ``ttl_s`` seconds on every worker; unknown ids
are cached as unknown for the same time, so a flood from an unregistered
device costs one query per TTL, not one per message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import psycopg

from cloud.ingest.model import Terminal


class DbTerminalDirectory:
    def __init__(
        self,
        conn: psycopg.Connection[Any],
        *,
        ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conn = conn
        self._ttl = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, Terminal | None]] = {}

    def lookup(self, device_ids: Iterable[str]) -> dict[str, Terminal]:
        now = self._clock()
        out: dict[str, Terminal] = {}
        stale: list[str] = []
        for dev in device_ids:
            hit = self._cache.get(dev)
            if hit is not None and now - hit[0] < self._ttl:
                if hit[1] is not None:
                    out[dev] = hit[1]
            else:
                stale.append(dev)
        if stale:
            with self._conn.transaction():
                rows = self._conn.execute(
                    "SELECT id, tenant_id, vehicle_id, revoked FROM devices WHERE id = ANY(%s)",
                    (stale,),
                ).fetchall()
            found = {str(r[0]): Terminal(str(r[0]), str(r[1]), r[2], bool(r[3])) for r in rows}
            for dev in stale:
                term = found.get(dev)
                self._cache[dev] = (now, term)
                if term is not None:
                    out[dev] = term
        if len(self._cache) > 1_000_000:
            self._cache.clear()
        return out
