"""/metrics' pure parts: counter keys, families rendered as Prometheus text, allowed networks."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cloud.api.clientip import parse_networks
from cloud.api.prometheus import _Families, allowed, counter_families, gauge_family
from cloud.storage import counters


def render(families: list[object]) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = generate_latest(_Families(families)).decode()  # type: ignore[arg-type]
    return {
        f.name: [(s.labels, s.value) for s in f.samples if s.name.endswith(("_total", ""))]
        for f in text_string_to_metric_families(text)
    }


def test_counter_keys_ignore_label_order() -> None:
    a = counters.key("alerts_opened", "t1", {"rule": "x", "b": "y"})
    b = counters.key("alerts_opened", "t1", {"b": "y", "rule": "x"})
    assert a == b == ("alerts_opened", "t1", '{"b":"y","rule":"x"}')
    assert counters.key("ingest_quarantined", None)[1] == ""


def test_ingest_counts_per_tenant_and_reason() -> None:
    got = counters.ingest_counts(["a", "a", "b"], ["a"], [(None, "unknown_terminal")] * 2)
    assert got == {
        counters.key("fixes_ingested", "a"): 2,
        counters.key("fixes_ingested", "b"): 1,
        counters.key("events_ingested", "a"): 1,
        counters.key("ingest_quarantined", None, {"reason": "unknown_terminal"}): 2,
    }


def test_counters_never_go_down() -> None:
    with pytest.raises(ValueError, match="up"):
        counters.add(None, {counters.key("fixes_ingested", "a"): -1})  # type: ignore[arg-type]


def test_counter_families_render_with_tenant_and_labels() -> None:
    rows = [("alerts_opened", "acme", {"rule": "offline"}, 3),
            ("fixes_ingested", "acme", {}, 120), ("fixes_ingested", "bank", {}, 7)]  # fmt: skip
    got = render(counter_families(rows))  # type: ignore[arg-type]
    assert got["vgr_alerts_opened"] == [({"tenant": "acme", "rule": "offline"}, 3.0)]
    assert got["vgr_fixes_ingested"] == [({"tenant": "acme"}, 120.0), ({"tenant": "bank"}, 7.0)]
    assert got["vgr_events_ingested"] == []  # known counters are declared even when empty


def test_gauges_and_label_escaping() -> None:
    family = gauge_family("vgr_devices", "Trackers.", ("tenant", "state"),
                          [("a\"b", "online", 2)])  # fmt: skip
    got = render([family])
    assert got["vgr_devices"] == [({"tenant": 'a"b', "state": "online"}, 2.0)]


def test_allowed_networks() -> None:
    loopback = parse_networks(["127.0.0.1/32", "::1/128"])
    assert allowed("127.0.0.1", loopback)
    assert allowed("::1", loopback)
    assert not allowed("10.0.0.1", loopback)
    assert not allowed(None, loopback)
    assert allowed("10.2.3.4", parse_networks(["10.0.0.0/8"]))
