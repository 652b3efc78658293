"""Prometheus metrics of the cloud services (one registry per process).

Names are part of the operator contract: dashboards and checks rely on them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

FIXES_INGESTED = Counter(
    "vgr_fixes_ingested",
    "Fixes newly stored in the fixes hypertable.",
    ["tenant"],
    registry=REGISTRY,
)
EVENTS_INGESTED = Counter(
    "vgr_events_ingested",
    "Device events newly stored.",
    ["tenant"],
    registry=REGISTRY,
)
INGEST_DROPPED = Counter(
    "vgr_ingest_dropped",
    "Records or messages a stage did not store as position/event, by stage and reason "
    "(quarantined ones are kept in the quarantine table).",
    ["stage", "reason"],
    registry=REGISTRY,
)
INGEST_DELIVERIES = Counter(
    "vgr_ingest_deliveries",
    "MQTT messages received by ingest.",
    ["channel"],
    registry=REGISTRY,
)
INGEST_BATCHES = Counter(
    "vgr_ingest_batches", "Database transactions committed by ingest.", registry=REGISTRY
)
INGEST_DB_ERRORS = Counter(
    "vgr_ingest_db_errors",
    "Failed write attempts (the batch is retried, nothing is acknowledged).",
    registry=REGISTRY,
)
INGEST_PENDING = Gauge(
    "vgr_ingest_pending_deliveries",
    "Deliveries received but not yet committed and acknowledged.",
    registry=REGISTRY,
)
INGEST_COMMIT_SECONDS = Histogram(
    "vgr_ingest_commit_seconds",
    "Time to write and commit one batch.",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
SIGNALS_RAISED = Counter(
    "vgr_signals_raised",
    "Signals raised outside the rule engine (e.g. unauthorized_terminal).",
    ["kind"],
    registry=REGISTRY,
)

ALERTS_OPENED = Counter(
    "vgr_alerts_opened",
    "Alerts opened by the risk engine (after dedupe and suppression).",
    ["tenant", "rule"],
    registry=REGISTRY,
)
RISK_INPUTS = Counter(
    "vgr_risk_inputs",
    "Fixes and events run through the rules (re-runs of late data included).",
    ["tenant"],
    registry=REGISTRY,
)
RISK_REPLAYS = Counter(
    "vgr_risk_replays",
    "Vehicles re-run from a snapshot because data arrived older than their rule state.",
    registry=REGISTRY,
)
RISK_RULE_ERRORS = Counter(
    "vgr_risk_rule_errors",
    "Exceptions raised by a rule's step (the input still runs through the other rules).",
    ["rule"],
    registry=REGISTRY,
)
RISK_LAG = Gauge(
    "vgr_risk_inbox_rows",
    "Rows waiting in the risk engine's inbox after the last round.",
    registry=REGISTRY,
)
