"""The dispatcher's Prometheus metrics, in the cloud services' registry (cloud.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from cloud.metrics import REGISTRY

DELIVERIES = Counter(
    "vgr_webhook_deliveries",
    "Webhook delivery attempts by tenant and outcome (succeeded, http_error, timeout, "
    "connection_error, gone, refused_<reason>, endpoint_disabled, abandoned…).",
    ["tenant", "outcome"],
    registry=REGISTRY,
)
DELIVERY_SECONDS = Histogram(
    "vgr_webhook_delivery_seconds",
    "Time from sending a webhook request to its response (or failure).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "vgr_webhook_dead_letters",
    "Deliveries given up on, by tenant and reason (exhausted, gone, refused, "
    "endpoint_disabled, no_secret).",
    ["tenant", "reason"],
    registry=REGISTRY,
)
