"""The cockpit's pure parts: buckets, series, histogram, what a reason may show."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from cloud.api import cockpit_doc as doc

NOW = datetime(2025, 3, 4, 10, 17, 42, 500_000, tzinfo=UTC)


@pytest.mark.parametrize("window", sorted(doc.WINDOWS))
def test_buckets_are_aligned_contiguous_and_cover_the_window(window: str) -> None:
    length, width = doc.WINDOWS[window]
    starts = doc.bucket_starts(NOW, length, width)
    assert 86400 % width == 0
    assert all(int(s.timestamp()) % width == 0 for s in starts)
    assert all(b - a == timedelta(seconds=width) for a, b in itertools.pairwise(starts))
    assert starts[0] <= NOW - timedelta(seconds=length) < starts[0] + timedelta(seconds=width)
    assert starts[-1] <= NOW < starts[-1] + timedelta(seconds=width)


def test_a_bucket_starting_exactly_now_is_left_out() -> None:
    now = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
    starts = doc.bucket_starts(now, 3600, 60)
    assert len(starts) == 60
    assert starts[-1] == now - timedelta(minutes=1)
    ends = doc.bucket_ends(starts, 60, now)
    assert ends[-1] == now
    assert len(set(ends)) == len(ends)


def test_the_current_bucket_is_judged_now() -> None:
    starts = doc.bucket_starts(NOW, 900, 60)
    ends = doc.bucket_ends(starts, 60, NOW)
    assert ends[-1] == NOW
    assert ends[0] == starts[0] + timedelta(minutes=1)


def test_fix_series_fills_empty_buckets_with_zero() -> None:
    starts = doc.bucket_starts(NOW, 900, 300)
    series = doc.fix_series(starts, 300, {starts[1]: 30})
    assert [b.fixes for b in series] == [0, 30, 0, 0]
    assert series[1].per_minute == 6.0


def test_alert_series_sums_by_rule_and_severity() -> None:
    starts = doc.bucket_starts(NOW, 180, 60)
    ends = doc.bucket_ends(starts, 60, NOW)
    rows = [(ends[0], "offline", "warn", 2), (ends[0], "offline", "high", 1),
            (ends[-1], "jamming", "high", 4)]  # fmt: skip
    points = doc.alert_series(starts, ends, rows)
    assert [p.total for p in points] == [3, 0, 0, 4]
    assert points[0].by_rule == {"offline": 3}
    assert points[0].by_severity == {"warn": 2, "high": 1}
    assert points[-1].t == starts[-1]


def test_risk_histogram_has_ten_buckets() -> None:
    buckets = doc.risk_buckets({0: 2, 9: 5})
    assert [(b.lower, b.upper) for b in buckets][::9] == [(0, 10), (90, 100)]
    assert [b.count for b in buckets] == [2, 0, 0, 0, 0, 0, 0, 0, 0, 5]


def test_reasons_keep_only_public_fields() -> None:
    stored = [{"rule": "region_exit", "severity": "high", "points": 50.0, "episode": "x",
               "lat": 31.2, "lon": 121.4, "time": "2025-03-04T08:00:00+00:00"}, "junk"]  # fmt: skip
    shown = {"rule": "region_exit", "severity": "high", "points": 50.0,
             "time": "2025-03-04T08:00:00+00:00"}  # fmt: skip
    assert doc.public_reasons(stored) == [shown]
    assert doc.public_reasons({"rule": "x"}) == []


def test_rates_and_rounding() -> None:
    assert doc.rate(1, 3) == 0.3333
    assert doc.rate(0, 0) is None
    assert doc.ms(None) is None
    assert doc.ms(12.345) == 12.3


def test_query_is_bounded() -> None:
    assert msgspec.convert({}, doc.CockpitQuery) == doc.CockpitQuery("1h", 10)
    for bad in ({"window": "2h"}, {"top": 0}, {"top": 51}, {"other": 1}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, doc.CockpitQuery)
