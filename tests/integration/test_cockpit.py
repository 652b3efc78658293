"""``GET /v1/cockpit`` against a real TimescaleDB: the numbers are the data's, per tenant."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from tests.integration.ingest_support import TENANT
from tests.integration.test_api_support import OTHER, As, api, error_code, login
from tests.integration.test_cockpit_support import CockpitWorld, build_cockpit_world

pytestmark = pytest.mark.services


@pytest.fixture
def cw(fresh_db: str) -> CockpitWorld:
    return build_cockpit_world(fresh_db)


async def cockpit(who: As, **params: str) -> dict[str, Any]:
    resp = await who.get("/v1/cockpit", **params)
    assert resp.status == 200, await resp.text()
    doc: dict[str, Any] = await resp.json()
    return doc


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_fleet_fixes_and_alerts_are_the_tenants_own(cw: CockpitWorld) -> None:
    async with api(cw.dsn) as client:
        doc = await cockpit(await login(client, "analyst"), window="1h")
    assert doc["tenant_id"] == TENANT
    assert doc["fleet"] == {
        "vehicles": 5, "devices": 4, "online_devices": 2, "online_vehicles": 2,
        "online_rate": 0.4, "reporting_vehicles": 1,
    }  # fmt: skip
    fixes = doc["fixes"]
    assert fixes["last_minute"] == 7
    assert fixes["total"] == 12  # the 2025 fixes of build_world are outside the window
    series = fixes["series"]
    assert sum(b["fixes"] for b in series) == 12
    assert doc["bucket_s"] == 60
    assert len(series) in (60, 61)
    starts = [at(b["t"]) for b in series]
    assert all(b - a == timedelta(minutes=1) for a, b in pairwise(starts))
    assert all(s.second == 0 and s.microsecond == 0 for s in starts)
    now = at(doc["generated_at"])
    recent = sum(b["fixes"] for b in series if at(b["t"]) >= now - timedelta(minutes=3))
    half_hour = sum(
        b["fixes"]
        for b in series
        if now - timedelta(minutes=33) <= at(b["t"]) <= now - timedelta(minutes=28)
    )
    assert (recent, half_hour) == (7, 5)  # fmt: skip

    alerts = doc["alerts"]
    assert (alerts["unresolved"], alerts["open"], alerts["acknowledged"]) == (5, 4, 1)
    assert alerts["by_rule_severity"] == [
        {"rule": "device_removed", "severity": "high", "open": 3, "acknowledged": 0},
        {"rule": "region_exit", "severity": "warn", "open": 1, "acknowledged": 1},
    ]
    assert alerts["opened_in_window"] == [
        {"rule": "region_exit", "count": 2}, {"rule": "offline", "count": 1},
    ]  # fmt: skip
    points = alerts["series"]
    assert len(points) == len(series)
    assert points[-1]["total"] == 5
    assert points[-1]["by_rule"] == {"device_removed": 3, "region_exit": 2}
    assert points[0]["by_rule"] == {"device_removed": 3}  # an hour ago: before the new ones
    assert points[0]["by_severity"] == {"high": 3}
    # 15 minutes ago the offline alert (opened 40, resolved 10 minutes ago) was still open
    middle = [p for p in points if now - timedelta(minutes=16) <= at(p["t"])
              <= now - timedelta(minutes=14)]  # fmt: skip
    assert middle
    assert all(p["by_rule"].get("offline") == 1 and p["total"] == 6 for p in middle)
    assert all("jamming" not in p["by_rule"] for p in points)


async def test_risk_and_top_vehicles(cw: CockpitWorld) -> None:
    async with api(cw.dsn) as client:
        doc = await cockpit(await login(client, "admin"), top="3")
    risk = doc["risk"]
    assert (risk["scored"], risk["unscored"]) == (4, 1)
    assert risk["by_band"] == {"critical": 2, "high": 1, "low": 1}
    counts = {b["lower"]: b["count"] for b in risk["buckets"]}
    assert counts == {0: 0, 10: 1, 20: 0, 30: 0, 40: 0, 50: 0, 60: 1, 70: 0, 80: 0, 90: 2}
    assert [b["upper"] - b["lower"] for b in risk["buckets"]] == [10] * 10
    top = doc["top_risky"]
    v = cw.vehicles
    assert [(t["vehicle_id"], t["score"], t["band"]) for t in top] == [
        (v[0], 100.0, "critical"), (v[1], 95.0, "critical"), (v[2], 65.0, "high"),
    ]  # fmt: skip
    assert top[0]["vin"] == "LSVAB4BR0EN000017"
    assert top[0]["open_alerts"] == 1
    reason = {"rule": "region_exit", "severity": "warn", "points": 20.0, "resolved": False,
              "time": "2025-03-04T08:00:00+00:00"}  # fmt: skip
    assert top[0]["reasons"] == [reason]  # the stored lat is not shown
    for t in top:
        assert not {"lat", "lon", "position"} & set(t)
        assert all("lat" not in r for r in t["reasons"])


async def test_webhook_health(cw: CockpitWorld) -> None:
    async with api(cw.dsn) as client:
        doc = await cockpit(await login(client, "admin"))
    hooks = doc["webhooks"]
    states = {k: hooks[k] for k in ("succeeded", "failed", "dead", "pending", "backlog")}
    assert states == {"succeeded": 2, "failed": 1, "dead": 1, "pending": 1, "backlog": 2}
    # delivery latency: 2 s + 100 ms and 4 s + 300 ms; percentile_cont interpolates
    assert hooks["delivery_p50_ms"] == pytest.approx(3200.0, abs=0.2)
    assert hooks["delivery_p95_ms"] == pytest.approx(2100.0 + 0.95 * 2200.0, abs=0.2)
    assert hooks["attempt_p50_ms"] == pytest.approx(400.0)  # of 100, 300, 500, 700
    by_ep = {e["endpoint_id"]: e for e in hooks["endpoints"]}
    assert set(by_ep) == {"ep_a1", "ep_a2"}
    a1 = by_ep["ep_a1"]
    assert (a1["succeeded"], a1["failed"], a1["dead"], a1["pending"]) == (2, 1, 1, 0)
    assert a1["description"] == "ep_a1 hook"
    assert by_ep["ep_a2"]["pending"] == 1
    assert by_ep["ep_a2"]["delivery_p50_ms"] is None


async def test_the_other_tenant_sees_only_its_own(cw: CockpitWorld) -> None:
    async with api(cw.dsn) as client:
        doc = await cockpit(await login(client, "analyst", OTHER), window="15m")
    assert doc["tenant_id"] == OTHER
    assert doc["fleet"]["vehicles"] == 1
    assert doc["fleet"]["online_devices"] == 3
    assert doc["fleet"]["online_rate"] == 1.0
    assert doc["fixes"]["last_minute"] == 11
    assert doc["alerts"]["by_rule_severity"] == [
        {"rule": "device_removed", "severity": "high", "open": 1, "acknowledged": 0},
        {"rule": "jamming", "severity": "high", "open": 2, "acknowledged": 0},
    ]
    assert doc["risk"]["scored"] == 1
    assert [t["vehicle_id"] for t in doc["top_risky"]] == [cw.world.vehicles["other"]]
    hooks = doc["webhooks"]
    assert (hooks["dead"], hooks["succeeded"], [e["endpoint_id"] for e in hooks["endpoints"]]) == (
        3, 0, ["ep_b"])  # fmt: skip
    assert doc["bucket_s"] == 60
    assert len(doc["fixes"]["series"]) in (15, 16)


async def test_windows_and_buckets(cw: CockpitWorld) -> None:
    async with api(cw.dsn) as client:
        analyst = await login(client, "analyst")
        for window, bucket, n in (("6h", 300, 72), ("24h", 900, 96), ("7d", 3600, 168)):
            doc = await cockpit(analyst, window=window)
            assert doc["bucket_s"] == bucket
            assert len(doc["fixes"]["series"]) in (n, n + 1)
            assert doc["fixes"]["total"] == 12
            assert sum(b["fixes"] for b in doc["fixes"]["series"]) == 12


async def test_roles_and_bad_parameters(cw: CockpitWorld) -> None:
    async with api(cw.dsn) as client:
        for role in ("recovery", "installer"):
            resp = await (await login(client, role)).get("/v1/cockpit")
            assert (resp.status, await error_code(resp)) == (403, "forbidden"), role
        resp = await As(client, key=cw.world.keys[TENANT]).get("/v1/cockpit")
        assert (resp.status, await error_code(resp)) == (403, "forbidden")
        resp = await client.get("/v1/cockpit")
        assert resp.status == 401
        admin = await login(client, "admin")
        for params in ({"window": "2h"}, {"top": "0"}, {"top": "51"}, {"top": "x"},
                       {"tenant": OTHER}):  # fmt: skip
            resp = await admin.get("/v1/cockpit", **params)
            assert (resp.status, await error_code(resp)) == (400, "invalid_parameter"), params
