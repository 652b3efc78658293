"""Shared data for the cockpit tests (no tests here): known numbers for two tenants.

On top of :func:`tests.integration.test_api_support.build_world` (3 vehicles of
TENANT and 1 of OTHER, each with one open ``device_removed``/high alert of
2025), with every time relative to the database's clock:

- TENANT: 5 vehicles; trackers d-a1 (vehicle 1, online), d-a2 (vehicle 1,
  offline), d-a3 (vehicle 2, online), d-a4 (vehicle 3, never reported), d-a5
  (revoked, online: not counted). OTHER: 3 online trackers.
- fixes: TENANT 7 in the last minute and 5 thirty minutes ago; OTHER 11 now.
- alerts of TENANT: region_exit/warn open and acknowledged (opened 20 min
  ago), offline/critical opened 40 min ago and resolved 10 min ago, one
  suppressed; OTHER: 2 jamming/high open.
- scores of TENANT 100, 95, 65, 10 (one vehicle unscored); OTHER 50.
- webhooks of TENANT, created 10 min ago: ep_a1 2 succeeded (delivery 2.1 s
  and 4.3 s), 1 failed, 1 dead, and one succeeded 2 h ago (outside the
  window); ep_a2 1 pending. OTHER: 3 dead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from tests.integration.ingest_support import TENANT
from tests.integration.test_api_support import OTHER, World, build_world

EXTRA_VINS = ("LSVAB4BR0EN000058", "LSVAB4BR0EN000066")
OTHER_VINS = ("LSVAB4BR0EN000074",)


@dataclass
class CockpitWorld:
    world: World
    vehicles: list[int] = field(default_factory=list)  # TENANT's, in order
    scores: dict[int, float] = field(default_factory=dict)  # vehicle -> score (TENANT)

    @property
    def dsn(self) -> str:
        return self.world.dsn


def _one(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _devices(conn: psycopg.Connection[Any], v: list[int], other_vehicle: int) -> None:
    rows = [
        ("d-a1", TENANT, v[0], False, "online"),
        ("d-a2", TENANT, v[0], False, "offline"),
        ("d-a3", TENANT, v[1], False, "online"),
        ("d-a4", TENANT, v[2], False, None),
        ("d-a5", TENANT, v[3], True, "online"),
        *((f"d-b{i}", OTHER, other_vehicle, False, "online") for i in range(3)),
    ]
    for dev, tenant, vid, revoked, state in rows:
        conn.execute(
            "INSERT INTO devices (id, tenant_id, kind, vehicle_id, revoked) "
            "VALUES (%s, %s, 'wired', %s, %s)",
            (dev, tenant, vid, revoked),
        )
        if state is not None:
            conn.execute(
                "INSERT INTO device_status (device_id, state) VALUES (%s, %s)", (dev, state)
            )


def _fixes(conn: psycopg.Connection[Any], tenant: str, vid: int, device: str, n: int,
           age: str) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO fixes (time, device_id, boot_id, seq, tenant_id, vehicle_id, lat, lon, "
        "speed_mps, mode) SELECT now() - %s::interval - i * interval '1 second', %s, 'bc', "
        "1000 + i, %s, %s, 31.2, 121.4, 5, 3 FROM generate_series(1, %s) i",
        (age, device, tenant, vid, n),
    )


def _alert(conn: psycopg.Connection[Any], tenant: str, vid: int, rule: str, severity: str,
           status: str, opened: str, resolved: str | None = None,
           resolution: str | None = None) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO alerts (tenant_id, vehicle_id, rule, episode, severity, status, resolution, "
        "fired_at, opened_at, resolved_at) VALUES (%s, %s, %s, gen_random_uuid()::text, %s, %s, "
        "%s, now() - %s::interval, now() - %s::interval, now() - %s::interval)",
        (tenant, vid, rule, severity, status, resolution, opened, opened, resolved),
    )


def _webhooks(conn: psycopg.Connection[Any]) -> None:
    for ep, tenant in (("ep_a1", TENANT), ("ep_a2", TENANT), ("ep_b", OTHER)):
        conn.execute(
            "INSERT INTO webhook_endpoints (id, tenant_id, url, description) "
            "VALUES (%s, %s, 'https://lender.example/hook', %s)",
            (ep, tenant, f"{ep} hook"),
        )
    deliveries = [  # endpoint, tenant, state, created (ago), attempts [(after s, latency ms)]
        ("ep_a1", TENANT, "succeeded", "10 minutes", [(2.0, 100.0, "succeeded")]),
        ("ep_a1", TENANT, "succeeded", "10 minutes", [(4.0, 300.0, "succeeded")]),
        ("ep_a1", TENANT, "failed", "10 minutes", [(1.0, 500.0, "http_error")]),
        ("ep_a1", TENANT, "dead", "10 minutes", [(1.0, 700.0, "http_error")]),
        ("ep_a1", TENANT, "succeeded", "2 hours", [(1.0, 50.0, "succeeded")]),
        ("ep_a2", TENANT, "pending", "10 minutes", []),
        *(("ep_b", OTHER, "dead", "10 minutes", [(1.0, 9000.0, "timeout")]) for _ in range(3)),
    ]
    for i, (ep, tenant, state, ago, attempts) in enumerate(deliveries):
        msg = f"msg_test_{i}"
        conn.execute(
            "INSERT INTO webhook_messages (id, tenant_id, event_type, payload, created_at) "
            "VALUES (%s, %s, 'alert.opened', '{}', now() - %s::interval)",
            (msg, tenant, ago),
        )
        did = _one(
            conn,
            "INSERT INTO webhook_deliveries (message_id, endpoint_id, tenant_id, state, "
            "attempt_no, created_at) VALUES (%s, %s, %s, %s, %s, now() - %s::interval) "
            "RETURNING id",
            (msg, ep, tenant, state, len(attempts), ago),
        )
        for n, (after, latency, outcome) in enumerate(attempts, start=1):
            conn.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempt_no, started_at, latency_ms, "
                "outcome) VALUES (%s, %s, now() - %s::interval + make_interval(secs => %s), "
                "%s, %s)",
                (did, n, ago, after, latency, outcome),
            )


def build_cockpit_world(dsn: str) -> CockpitWorld:
    w = build_world(dsn)
    cw = CockpitWorld(w)
    with psycopg.connect(dsn) as conn:
        for vin in EXTRA_VINS:
            _one(conn, "INSERT INTO vehicles (tenant_id, vin) VALUES (%s, %s) RETURNING id",
                 (TENANT, vin))  # fmt: skip
        ids = conn.execute(
            "SELECT id FROM vehicles WHERE tenant_id = %s ORDER BY id", (TENANT,)
        ).fetchall()
        cw.vehicles = [int(i) for (i,) in ids]
        other_vid = w.vehicles["other"]
        _devices(conn, cw.vehicles, other_vid)
        _fixes(conn, TENANT, cw.vehicles[0], "d-a1", 7, "5 seconds")
        _fixes(conn, TENANT, cw.vehicles[1], "d-a3", 5, "30 minutes")
        _fixes(conn, OTHER, other_vid, "d-b0", 11, "5 seconds")
        v = cw.vehicles
        _alert(conn, TENANT, v[3], "region_exit", "warn", "open", "20 minutes")
        _alert(conn, TENANT, v[4], "region_exit", "warn", "acknowledged", "20 minutes")
        _alert(conn, TENANT, v[4], "offline", "critical", "resolved", "40 minutes",
               "10 minutes", "auto")  # fmt: skip
        _alert(conn, TENANT, v[4], "offline", "critical", "resolved", "5 minutes",
               "6 minutes", "suppressed")  # fmt: skip
        for _ in range(2):
            _alert(conn, OTHER, other_vid, "jamming", "high", "open", "20 minutes")
        reasons = '[{"rule": "region_exit", "severity": "warn", "episode": "e1", "points": 20.0, '
        reasons += '"resolved": false, "time": "2025-03-04T08:00:00+00:00", "lat": 31.2}]'
        cw.scores = {v[0]: 100.0, v[1]: 95.0, v[2]: 65.0, v[3]: 10.0}
        bands = {100.0: "critical", 95.0: "critical", 65.0: "high", 10.0: "low"}
        for vid, score in cw.scores.items():
            conn.execute(
                "INSERT INTO vehicle_risk (vehicle_id, tenant_id, score, band, reasons) "
                "VALUES (%s, %s, %s, %s, %s::jsonb)",
                (vid, TENANT, score, bands[score], reasons),
            )
        conn.execute(
            "INSERT INTO vehicle_risk (vehicle_id, tenant_id, score, band) "
            "VALUES (%s, %s, 50, 'medium')",
            (other_vid, OTHER),
        )
        _webhooks(conn)
        conn.commit()
    return cw
