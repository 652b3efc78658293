"""``GET /metrics`` on the API: exact pipeline counters from the database, allowed networks only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cloud.localsvc import PrivateMosquitto
from cloud.risk.alerts import AlertPolicy, Outcome, apply, no_webhooks
from cloud.risk.model import Severity, Signal
from tests.integration.ingest_support import (
    TENANT,
    check_stored,
    fleet_and_workers,
    plan,
    run_plan,
)
from tests.integration.test_api_support import Client, api, build_world, error_code, settings

pytestmark = pytest.mark.services
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: Client, headers: dict[str, str] | None = None) -> Samples:
    resp = await client.get("/metrics", headers=headers)
    text = await resp.text()
    assert resp.status == 200, text
    assert resp.headers["Content-Type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_fixes_ingested_through_the_real_path_are_counted_exactly(
    tmp_path: Path, fresh_db: str, mosquitto: PrivateMosquitto
) -> None:
    async def read() -> Samples:
        async with api(fresh_db) as client:
            return await scrape(client)

    with fleet_and_workers(tmp_path, fresh_db, mosquitto, 10, "w1", "w2") as (ids, _):
        before = asyncio.run(read())
        report = run_plan(plan(mosquitto, ids, fixes=15, batch=5))
    after = asyncio.run(read())
    stored = check_stored(fresh_db, ids).stored
    assert report.acked == report.sent == 150
    assert stored == 150
    got = value(after, "vgr_fixes_ingested_total", tenant=TENANT)
    assert got - value(before, "vgr_fixes_ingested_total", tenant=TENANT) == stored
    # a second run on a restarted worker adds to the same total (the count lives in the db)
    with fleet_and_workers(tmp_path, fresh_db, mosquitto, 4, "w3") as (ids2, _):
        run_plan(plan(mosquitto, ids2, fixes=5, batch=5))
    final = asyncio.run(read())
    assert value(final, "vgr_fixes_ingested_total", tenant=TENANT) == got + 20


def _signal(rule: str, episode: str, when: datetime) -> Signal:
    return Signal(rule=rule, episode=episode, time=when, severity=Severity.HIGH)


def _apply(dsn: str, vehicle: int, signal: Signal, *, commit: bool = True) -> Outcome:
    outcome = Outcome()
    with psycopg.connect(dsn) as conn:
        apply(conn, TENANT, vehicle, None, signal, policy=AlertPolicy(), notify=no_webhooks,
              outcome=outcome)  # fmt: skip
        if commit:
            conn.commit()
        else:
            conn.rollback()
    return outcome


async def test_alerts_opened_count_once_per_alert_by_tenant_and_rule(fresh_db: str) -> None:
    w = build_world(fresh_db)
    vid = w.vehicles["unassigned"]
    t0 = datetime(2025, 5, 1, 8, tzinfo=UTC)
    async with api(fresh_db) as client:
        before = await scrape(client)
        assert _apply(fresh_db, vid, _signal("region_exit", "e1", t0)).opened == 1
        assert _apply(fresh_db, vid, _signal("region_exit", "e1", t0)).unchanged == 1  # replay
        assert _apply(fresh_db, vid, _signal("region_exit", "e2", t0)).repeated == 1  # folded
        assert _apply(fresh_db, vid, _signal("jamming", "j1", t0), commit=False).opened == 1
        assert _apply(fresh_db, w.vehicles["assigned"], _signal("jamming", "j2", t0)).opened == 1
        after = await scrape(client)
    for rule, more in (("region_exit", 1), ("jamming", 1), ("device_removed", 0)):
        delta = value(after, "vgr_alerts_opened_total", tenant=TENANT, rule=rule) - value(
            before, "vgr_alerts_opened_total", tenant=TENANT, rule=rule
        )
        assert delta == more, rule
    # gauges counted from the tables: build_world's 3 device_removed alerts, plus the 2 new
    assert value(after, "vgr_alerts_unresolved", tenant=TENANT, rule="region_exit",
                 severity="high", status="open") == 1  # fmt: skip
    assert value(after, "vgr_alerts_unresolved", tenant=TENANT, rule="device_removed",
                 severity="high", status="open") == 3  # fmt: skip
    assert value(after, "vgr_vehicles", tenant=TENANT) == 3
    assert value(after, "vgr_vehicles", tenant="other-bank") == 1
    assert value(after, "vgr_api_requests_total", method="GET", route="/metrics",
                 status="200") >= 1  # fmt: skip


async def test_rows_of_gone_writers_fold_without_changing_totals(fresh_db: str) -> None:
    build_world(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "INSERT INTO pipeline_counters (name, tenant_id, labels, shard, value) VALUES "
            "('fixes_ingested', %s, '{}', 2147483001, 40), "
            "('fixes_ingested', %s, '{}', 2147483002, 2), "
            "('alerts_opened', %s, '{\"rule\": \"offline\"}', 2147483003, 5)",
            (TENANT, TENANT, TENANT),
        )
        conn.commit()
    async with api(fresh_db) as client:
        got = await scrape(client)
    assert value(got, "vgr_fixes_ingested_total", tenant=TENANT) == 42
    assert value(got, "vgr_alerts_opened_total", tenant=TENANT, rule="offline") == 5
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute(
            "SELECT name, shard, value FROM pipeline_counters ORDER BY name"
        ).fetchall()
    assert rows == [("alerts_opened", 0, 5), ("fixes_ingested", 0, 42)]


async def test_only_allowed_networks_may_scrape(fresh_db: str) -> None:
    build_world(fresh_db)
    proxied = settings(trusted_proxies=("127.0.0.0/8", "::1/128"))
    async with api(fresh_db, proxied) as client:
        assert (await client.get("/metrics")).status == 200  # loopback, no session needed
        far = {"X-Forwarded-For": "203.0.113.9"}
        resp = await client.get("/metrics", headers=far)
        assert (resp.status, await error_code(resp)) == (403, "forbidden")
        assert "vgr_" not in await resp.text()
    opened = settings(trusted_proxies=("127.0.0.0/8", "::1/128"), metrics_allow=("203.0.113.0/24",))
    async with api(fresh_db, opened) as client:
        got = await scrape(client, {"X-Forwarded-For": "203.0.113.9"})
        assert value(got, "vgr_vehicles", tenant=TENANT) == 3
        resp = await client.get("/metrics")  # loopback itself is no longer listed
        assert resp.status == 403
    async with api(fresh_db, settings(metrics_allow=("10.0.0.0/8",))) as client:
        resp = await client.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3"})
        assert resp.status == 403  # the header is not believed from an untrusted peer
