"""The live feed's pure parts: the bounded buffer, who sees what, watermarks, the Origin check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloud.live.buffer import LatestBuffer
from cloud.live.messages import Alert, CaseChange, Position, frame
from cloud.live.origin import origin_allowed
from cloud.live.scope import (
    Audience,
    assignments,
    sees_alert,
    sees_case,
    sees_position,
    visible_vehicles,
)
from cloud.live.versions import Versions, Watermark

T = datetime(2025, 3, 4, 8, 0, tzinfo=UTC)


def pos(tenant: str, vid: int, minute: int = 0) -> Position:
    return Position(tenant, vid, T + timedelta(minutes=minute), 31.0, 121.0, 1.0, 90.0, 40.0,
                    "medium")  # fmt: skip


def test_buffer_keeps_the_latest_per_object_and_counts_what_it_replaced() -> None:
    buf = LatestBuffer(limit=100)
    for minute in range(10):
        for vid in (1, 2, 3):
            buf.put("position", vid, pos("a", vid, minute).doc())
    assert len(buf) == 3
    assert buf.dropped == 27
    out = [doc for _, doc in buf.take(10)]
    assert out == [pos("a", vid, 9).doc() for vid in (1, 2, 3)]
    assert len(buf) == 0
    assert buf.take(10) == []


def test_buffer_never_holds_more_than_its_limit() -> None:
    buf = LatestBuffer(limit=5)
    for vid in range(1000):
        buf.put("position", vid, {"vehicle_id": vid})
        assert len(buf) <= 5
    assert buf.dropped == 995
    assert [d for _, d in buf.take(100)] == [{"vehicle_id": v} for v in range(995, 1000)]


def test_buffer_kinds_do_not_collide_and_take_is_oldest_first() -> None:
    buf = LatestBuffer(limit=10)
    buf.put("position", 7, {"n": 1})
    buf.put("alert", 7, {"n": 2})
    buf.put("position", 8, {"n": 3})
    buf.put("position", 7, {"n": 4})  # moves behind the others: it is the newest change
    assert buf.take(2) == [("alert", {"n": 2}), ("position", {"n": 3})]
    buf.discard("position", 7)
    assert buf.take(5) == []
    assert buf.dropped == 1
    with pytest.raises(ValueError, match="at least one"):
        LatestBuffer(limit=0)


def test_frames_group_events_and_keep_the_newest_scope() -> None:
    events: list[tuple[str, dict[str, Any]]] = [
        ("scope", {"vehicle_ids": [1]}),
        ("position", {"vehicle_id": 1}),
        ("alert", {"id": 3}),
        ("case", {"id": 4}),
        ("scope", {"vehicle_ids": [1, 2]}),
    ]
    doc = frame(events, 12)
    assert doc["scope"] == {"vehicle_ids": [1, 2]}
    assert doc["positions"] == [{"vehicle_id": 1}]
    assert (doc["alerts"], doc["cases"], doc["dropped"]) == ([{"id": 3}], [{"id": 4}], 12)


def test_scoping_by_tenant_and_by_assigned_cases() -> None:
    assigned = assignments([("a", "rita", 1, "assigned"), ("a", "rita", 2, "chasing"),
                            ("a", "rita", 3, "closed"), ("b", "rita", 9, "assigned"),
                            ("a", "rob", 4, "recovered")])  # fmt: skip
    rita, rob = Audience("a", "recovery", "rita"), Audience("a", "recovery", "rob")
    analyst, other = Audience("a", "analyst", "ann"), Audience("b", "admin", "bo")
    assert visible_vehicles(rita, assigned) == frozenset({1, 2})
    assert visible_vehicles(rob, assigned) == frozenset()
    assert visible_vehicles(analyst, assigned) is None
    for who, vid, seen in [(rita, 1, True), (rita, 3, False), (rita, 9, False), (rob, 1, False),
                           (analyst, 3, True), (other, 1, False)]:  # fmt: skip
        visible = visible_vehicles(who, assigned)
        assert sees_position(who, pos("a", vid), visible) is seen, (who, vid)
        alert = Alert("a", 5, vid, "offline", "warn", "open", T, T, "")
        assert sees_alert(who, alert, visible) is seen, (who, vid)
    assert sees_position(other, pos("b", 9), None)
    closed = CaseChange("a", 8, 3, "closed", "rita", T)  # rita's case closed: she is told
    assert sees_case(rita, closed, visible_vehicles(rita, assigned))
    assert not sees_case(rob, closed, visible_vehicles(rob, assigned))
    assert not sees_case(other, closed, None)


def test_watermark_overlap_and_versions() -> None:
    mark = Watermark(T, timedelta(seconds=10))
    assert mark.read_from() == T - timedelta(seconds=10)
    mark.advance(T - timedelta(seconds=5))
    mark.advance(None)
    assert mark.seen == T
    mark.advance(T + timedelta(seconds=3))
    assert mark.seen == T + timedelta(seconds=3)
    seen = Versions()
    assert seen.is_new(1, T)
    assert not seen.is_new(1, T)  # read again by the overlap
    assert not seen.is_new(1, T - timedelta(seconds=1))
    assert seen.is_new(1, T + timedelta(seconds=1))
    assert seen.is_new(2, T - timedelta(minutes=5))
    seen.forget_before(T - timedelta(minutes=1))
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("origin", "host", "configured", "ok"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1:8080", (), True),
        ("https://vgr.example.cn", "vgr.example.cn", (), True),
        ("https://VGR.example.cn", "vgr.example.cn", (), True),
        ("https://evil.example", "vgr.example.cn", (), False),
        ("https://vgr.example.cn.evil.example", "vgr.example.cn", (), False),
        ("http://127.0.0.1:8081", "127.0.0.1:8080", (), False),
        (None, "127.0.0.1:8080", (), False),
        ("null", "127.0.0.1:8080", (), False),
        ("file://", "127.0.0.1:8080", (), False),
        ("https://map.example.cn", "10.0.0.5:8080", ("https://map.example.cn",), True),
        ("https://10.0.0.5:8080", "10.0.0.5:8080", ("https://map.example.cn",), False),
    ],
)
def test_origin_check(origin: str | None, host: str, configured: tuple[str, ...],
                      ok: bool) -> None:  # fmt: skip
    assert origin_allowed(origin, host, configured) is ok
