"""Precision, recall and time to detect of the detection report's matcher."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench.detection_score import Raised, Truth, score, scored

T = datetime(2025, 3, 4, 2, 0, tzinfo=UTC)
H = timedelta(hours=1)


def test_detected_label_counts_once_with_time_to_detect() -> None:
    truths = [Truth("region_exit", "A", T, T + 2 * H, "alert")]
    alerts = [Raised("region_exit", "A", T + timedelta(minutes=3))]
    report = score(truths, alerts)
    r = report.rules["region_exit"]
    assert (r.expected, r.detected, r.true_pos, r.false_pos) == (1, 1, 1, 0)
    assert r.detect_s == [180.0]
    assert report.min_precision() == 1.0
    assert report.min_recall() == 1.0


def test_alert_outside_window_or_on_other_vehicle_is_a_false_positive() -> None:
    truths = [Truth("jamming", "A", T, T + H, "alert")]
    alerts = [Raised("jamming", "A", T + 2 * H), Raised("jamming", "B", T + timedelta(minutes=5))]
    report = score(truths, alerts)
    r = report.rules["jamming"]
    assert (r.detected, r.true_pos, r.false_pos) == (0, 0, 2)
    assert r.precision == 0.0
    assert r.recall == 0.0
    assert report.missed == truths


def test_alert_inside_a_silent_window_is_counted_as_a_violation() -> None:
    truths = [Truth("device_removed", "A", T, T + H, "silent")]
    report = score(truths, [Raised("device_removed", "A", T + timedelta(minutes=10))])
    r = report.rules["device_removed"]
    assert r.silent_violations == 1
    assert r.precision == 0.0
    assert r.recall is None  # nothing was expected of this rule


def test_rule_with_labels_but_no_alerts_has_recall_zero_and_no_precision() -> None:
    report = score([Truth("spoofing", "A", T, T + H, "alert")], [])
    assert report.rules["spoofing"].precision is None
    assert report.min_recall() == 0.0
    assert report.min_precision() == 1.0


def test_median_time_to_detect_over_all_rules() -> None:
    truths = [
        Truth("a", "V1", T, T + H, "alert"),
        Truth("b", "V2", T, T + H, "alert"),
        Truth("b", "V3", T, T + H, "alert"),
    ]
    alerts = [
        Raised("a", "V1", T + timedelta(seconds=10)),
        Raised("b", "V2", T + timedelta(seconds=30)),
        Raised("b", "V3", T + timedelta(seconds=100)),
    ]
    assert score(truths, alerts).median_detect_s() == pytest.approx(30.0)


def test_alert_inside_an_optional_window_counts_neither_way() -> None:
    truths = [
        Truth("region_exit", "A", T, T + 2 * H, "alert"),
        Truth("night_anomaly", "A", T, T + 2 * H, "optional"),
    ]
    alerts = [
        Raised("region_exit", "A", T + timedelta(minutes=3)),
        Raised("night_anomaly", "A", T + H),
        Raised("night_anomaly", "A", T + 3 * H),  # outside the optional window: false
    ]
    report = score(truths, alerts)
    r = report.rules["night_anomaly"]
    assert (r.expected, r.true_pos, r.optional, r.false_pos) == (0, 0, 1, 1)
    assert r.recall is None
    assert [a.fired_at for a in report.false_alarms] == [T + 3 * H]


def test_info_signals_are_scored_only_for_the_labelled_info_rules() -> None:
    assert scored("risk_poi_visit", "info")
    assert scored("blind_area", "info")
    assert not scored("resident_learned", "info")
    assert not scored("offline", "info")
    assert scored("offline", "warn")
