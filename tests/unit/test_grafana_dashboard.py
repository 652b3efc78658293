"""The Grafana dashboard's structure (its SQL runs in tests/integration/test_cockpit_grafana.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "configs" / "grafana" / "vgr-dashboard.json"
PLUGIN = "grafana-postgresql-datasource"


def load() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return doc


def test_a_datasource_variable_and_a_tenant_variable() -> None:
    variables = {v["name"]: v for v in load()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == PLUGIN
    tenant = variables["tenant"]
    assert tenant["datasource"]["uid"] == "${datasource}"
    assert tenant["multi"]
    assert tenant["includeAll"]


def test_every_panel_queries_the_selected_database() -> None:
    doc = load()
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    queried = [p for p in doc["panels"] if p["type"] != "row"]
    assert queried
    for p in queried:
        assert p["datasource"] == {"type": PLUGIN, "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["rawQuery"], p["title"]
            assert t["rawSql"].strip(), p["title"]
            assert t["format"] in ("table", "time_series"), p["title"]
            assert "tenant_id IN ($tenant)" in t["rawSql"] or "risk_inbox" in t["rawSql"]
        pos = p["gridPos"]
        assert pos["x"] >= 0, p["title"]
        assert pos["x"] + pos["w"] <= 24, p["title"]


def test_the_panels_issue_6_asks_for() -> None:
    titles = {p["title"] for p in load()["panels"]}
    assert {
        "Fixes per minute", "Online trackers", "Online rate", "Unresolved alerts by rule",
        "Risk score distribution", "Webhook health per endpoint", "Webhook attempts by outcome",
        "Ingest lag",
    } <= titles  # fmt: skip
