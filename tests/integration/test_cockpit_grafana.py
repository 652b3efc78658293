"""Every SQL query of the Grafana dashboard runs on a real migrated TimescaleDB.

Grafana's macros and variables are expanded the way its PostgreSQL data
source does (quoted time literals, multi-value variables as quoted lists), the
query runs in a read-only transaction on data with known content, and its
columns are the ones the panel reads.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.integration.ingest_support import TENANT
from tests.integration.test_api_support import OTHER
from tests.integration.test_cockpit_support import build_cockpit_world

pytestmark = pytest.mark.services
DASHBOARD = Path(__file__).resolve().parents[2] / "configs" / "grafana" / "vgr-dashboard.json"

# Table-format panels: the columns their visualisation reads.
TABLE_COLUMNS = {
    "Vehicles": ["vehicles"],
    "Online trackers": ["online", "trackers"],
    "Online rate": ["online_rate"],
    "Risk engine backlog": ["inbox_rows"],
    "Webhook backlog": ["pending", "retrying", "dead"],
    "Unresolved alerts now": ["rule", "severity", "open", "acknowledged"],
    "Risk score distribution": ["score", "vehicles"],
    "Riskiest vehicles": [
        "tenant",
        "vehicle_id",
        "vin",
        "plate",
        "score",
        "band",
        "open_alerts",
        "updated_at",
    ],
    "Webhook health per endpoint": [
        "tenant",
        "endpoint",
        "enabled",
        "succeeded",
        "failed",
        "dead",
        "pending",
    ],
}
# Panels that must find rows in the test data (the others may legitimately be empty).
NON_EMPTY = {
    "Fixes per minute", "Vehicles reporting", "Ingest lag", "Unresolved alerts by rule",
    "Alerts opened by severity", "Unresolved alerts now", "Risk score distribution",
    "Riskiest vehicles", "Webhook attempts by outcome", "Webhook delivery latency",
    "Webhook health per endpoint",
}  # fmt: skip


def targets(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            out.extend((inner, t) for t in inner.get("targets", []))
    return out


def grafana_literal(t: datetime) -> str:
    return "'" + t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + "'"


def expand(sql: str, start: datetime, end: datetime, interval_ms: int, tenants: list[str]) -> str:
    """The query as Grafana's PostgreSQL data source sends it."""
    sql = re.sub(r"\$__timeFilter\(([^)]*)\)",
                 lambda m: f"{m[1].strip()} BETWEEN {grafana_literal(start)} AND "
                           f"{grafana_literal(end)}", sql)  # fmt: skip
    sql = sql.replace("$__timeFrom()", grafana_literal(start))
    sql = sql.replace("$__timeTo()", grafana_literal(end))
    sql = sql.replace("$__interval_ms", str(interval_ms))
    sql = sql.replace("$tenant", ",".join(f"'{t}'" for t in tenants))
    left = re.findall(r"\$\{?\w+", sql)
    assert not left, f"expand these in the test as Grafana would: {left}"
    return sql


def is_number(v: object) -> bool:
    return v is None or (isinstance(v, int | float | Decimal) and not isinstance(v, bool))


def check_time_series(title: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    assert "time" in columns, f"{title}: a time series needs a 'time' column"
    for row in rows:
        named = dict(zip(columns, row, strict=True))
        assert isinstance(named.pop("time"), datetime), title
        if "metric" in named:
            assert isinstance(named.pop("metric"), str), title
        assert named, f"{title}: no value column"
        assert all(is_number(v) for v in named.values()), (title, named)


def test_every_dashboard_query_runs_and_returns_its_columns(fresh_db: str) -> None:
    build_cockpit_world(fresh_db)
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found = targets(dashboard)
    assert {p["title"] for p, _ in found} >= NON_EMPTY | set(TABLE_COLUMNS)
    end = datetime.now(UTC) + timedelta(minutes=1)
    start = end - timedelta(hours=6)
    with psycopg.connect(fresh_db) as conn:
        variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "tenant")
        tenants = [r[0] for r in conn.execute(variable["query"]).fetchall()]
        assert tenants == sorted([TENANT, OTHER])
        for panel, target in found:
            title = panel["title"]
            for interval_ms, chosen in ((60_000, tenants), (300_000, [TENANT]), (1000, [OTHER])):
                with conn.transaction():
                    conn.execute("SET TRANSACTION READ ONLY")  # a read-only role suffices
                    cur = conn.execute(expand(target["rawSql"], start, end, interval_ms, chosen))
                    assert cur.description is not None, title
                    columns = [c.name for c in cur.description]
                    rows = cur.fetchall()
                if target["format"] == "time_series":
                    check_time_series(title, columns, rows)
                else:
                    assert columns == TABLE_COLUMNS[title], title
                if title in NON_EMPTY and chosen == tenants:
                    assert rows, f"{title} found nothing in the test data"


def test_the_queries_see_the_data(fresh_db: str) -> None:
    """A few panels against the numbers the test data holds."""
    build_cockpit_world(fresh_db)
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    sql = {p["title"]: t["rawSql"] for p, t in targets(dashboard)}
    end = datetime.now(UTC) + timedelta(minutes=1)
    start = end - timedelta(hours=1)

    def run(title: str, tenants: list[str]) -> list[tuple[Any, ...]]:
        with psycopg.connect(fresh_db) as conn:
            return conn.execute(expand(sql[title], start, end, 60_000, tenants)).fetchall()

    assert run("Vehicles", [TENANT]) == [(5,)]
    assert run("Online trackers", [TENANT]) == [(2, 4)]
    assert run("Online rate", [TENANT]) == [(0.4,)]
    assert sum(r[2] for r in run("Fixes per minute", [TENANT])) == 12  # one-minute buckets
    assert {r[1] for r in run("Fixes per minute", [TENANT, OTHER])} == {TENANT, OTHER}
    dist = run("Risk score distribution", [TENANT])
    assert [(s, int(n)) for s, n in dist if n] == [("10-20", 1), ("60-70", 1), ("90-100", 2)]
    assert len(dist) == 10
    now_alerts = run("Unresolved alerts now", [TENANT])
    assert [(r[0], r[1], int(r[2]), int(r[3])) for r in now_alerts] == [
        ("device_removed", "high", 3, 0), ("region_exit", "warn", 1, 1)]  # fmt: skip
    health = {r[1]: r[3:] for r in run("Webhook health per endpoint", [TENANT])}
    assert health == {"ep_a1": (2, 1, 1, 0), "ep_a2": (0, 0, 0, 1)}
    assert [r[1] for r in run("Riskiest vehicles", [OTHER])] == [
        r[0] for r in _other_vehicles(fresh_db)
    ]


def _other_vehicles(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT id FROM vehicles WHERE tenant_id = %s", (OTHER,)).fetchall()
