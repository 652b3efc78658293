"""Scoring the anomaly model's vehicle-day verdicts against the simulator's labels."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from bench.detection_model import (
    DayVerdict,
    at_share,
    classify,
    day_span,
    score_model,
    summary_line,
)
from bench.detection_score import Truth
from cloud.risk.anomaly.features import day_features
from tests.unit.risk.test_anomaly_support import DAY, HOME, FakePlaces, at, commute_day

D1, D2, D3 = date(2025, 3, 4), date(2025, 3, 5), date(2025, 3, 6)
H = timedelta(hours=1)


def china(day: date, hour: float) -> datetime:
    """``hour`` o'clock China time on ``day``, in UTC (labels are UTC)."""
    return (day_span(day)[0] + timedelta(hours=hour)).astimezone(UTC)


def day(vehicle: str, d: date, score: float = 0.4, flagged: bool = False) -> DayVerdict:
    top = (("max_km_from_home", 800.0), ("provinces_visited", 3.0)) if flagged else ()
    return DayVerdict(vehicle, d, score, flagged, top)


def test_china_day_boundaries_decide_which_days_a_label_covers() -> None:
    # 23:00-01:00 China time spans two China days; 01:00 UTC on D2 is 09:00 China on D2
    late = Truth("region_exit", "A", china(D1, 23), china(D2, 1), "alert")
    assert classify("A", D1, [late])[0] == "positive"
    assert classify("A", D2, [late])[0] == "positive"
    assert classify("A", D3, [late])[0] == "negative"
    morning = Truth("region_exit", "A", datetime(2025, 3, 5, 1, 0, tzinfo=UTC),
                    datetime(2025, 3, 5, 2, 0, tzinfo=UTC), "alert")  # fmt: skip
    assert [classify("A", d, [morning])[0] for d in (D1, D2)] == ["negative", "positive"]


def test_day_classes_follow_the_label_kinds() -> None:
    truths = [
        Truth("risk_poi_stay", "A", china(D1, 10), china(D1, 14), "alert"),
        Truth("jamming", "B", china(D1, 8), china(D1, 9), "alert"),
        Truth("night_anomaly", "C", china(D1, 23), china(D1, 23.5), "optional"),
        Truth("region_exit", "C", china(D2, 9), china(D2, 20), "optional"),
        Truth("blind_area", "D", china(D1, 10), china(D1, 16), "alert"),
        Truth("device_removed", "D", china(D1, 10), china(D1, 16), "silent"),
        Truth("gs_ip_mismatch", "E", china(D1, 0), china(D3, 0), "alert"),
    ]
    cls = {v: classify(v, D1, truths)[0] for v in "ABCDEF"}
    assert cls == {
        "A": "positive",  # a mobility anomaly the features show
        "B": "neutral",  # an event the model is not meant to judge
        "C": "neutral",  # an optional consequence
        "D": "negative",  # a blind area is not something to flag
        "E": "negative",  # a SIM from elsewhere says nothing about movement
        "F": "negative",  # no label: a commuter
    }
    assert classify("C", D2, truths)[0] == "neutral"  # optional even for a model rule


def test_precision_over_days_recall_over_events_and_time_to_end_of_day() -> None:
    exit_a = Truth("region_exit", "A", china(D1, 10), china(D2, 20), "alert", "region_exit-1")
    poi_b = Truth("risk_poi_stay", "B", china(D1, 11), china(D1, 14), "alert")
    jam_c = Truth("jamming", "C", china(D1, 8), china(D1, 9), "alert")
    verdicts = [
        day("A", D1, 0.4),  # missed on the first day ...
        day("A", D2, 0.7, flagged=True),  # ... caught on the second
        day("B", D1, 0.45),  # missed
        day("C", D1, 0.6, flagged=True),  # neutral: neither way
        day("N", D1, 0.65, flagged=True),  # a commuter flagged: false alarm
        day("N", D2, 0.4),
    ]
    r = score_model([exit_a, poi_b, jam_c], verdicts)
    assert (r.true_pos, r.false_pos, r.false_neg, r.true_neg, r.neutral) == (1, 1, 2, 1, 1)
    assert r.precision == pytest.approx(0.5)
    assert r.day_recall == pytest.approx(1 / 3)
    assert (r.events, r.detected, r.recall) == (2, 1, 0.5)
    assert r.missed == (poi_b,)
    # detected at the end of D2 (China midnight), from 10:00 China time on D1
    assert r.kinds["region_exit"].detect_s == [38 * 3600.0]
    assert r.median_detect_s() == pytest.approx(38 * 3600.0)
    assert "jamming" not in r.kinds  # not an event the model is scored on
    assert summary_line(r) == (
        "model_precision=0.50 model_recall=0.50 model_median_detect_s=136800 vehicle_days=6"
    )


def test_flagged_day_of_another_vehicle_or_outside_the_window_does_not_detect() -> None:
    exit_a = Truth("region_exit", "A", china(D2, 10), china(D2, 20), "alert")
    r = score_model([exit_a], [day("A", D1, flagged=True), day("B", D2, flagged=True)])
    assert r.detected == 0
    assert r.missed == (exit_a,)
    assert r.false_pos == 2  # A's quiet day before the trip, and B
    assert r.precision == 0.0
    assert r.median_detect_s() is None


def test_nothing_flagged_has_no_precision_and_zero_recall() -> None:
    truths = [Truth("relocation", "A", china(D1, 12), china(D3, 12), "alert")]
    r = score_model(truths, [day("A", D1), day("A", D2), day("B", D1)])
    assert r.precision is None
    assert r.recall == 0.0
    assert summary_line(r) == (
        "model_precision=- model_recall=0.00 model_median_detect_s=- vehicle_days=3"
    )


def test_lower_threshold_flags_top_scores_with_reasons_only() -> None:
    with_reason = ("night_km", 40.0)
    verdicts = [
        DayVerdict("A", D1, 0.90, False, (with_reason,)),
        DayVerdict("B", D1, 0.80, False, ()),  # isolated only as a quiet day: never flagged
        DayVerdict("C", D1, 0.70, False, (with_reason,)),
        DayVerdict("D", D1, 0.30, True, (with_reason,)),  # flagged by range: stays flagged
        *(DayVerdict(f"N{i}", D1, 0.4, False, ()) for i in range(6)),
    ]
    top10 = {v.vehicle for v in at_share(verdicts, 0.10) if v.flagged}
    assert top10 == {"A", "D"}
    top30 = {v.vehicle for v in at_share(verdicts, 0.30) if v.flagged}
    assert top30 == {"A", "C", "D"}
    assert at_share([], 0.1) == []


# The offline feature the model stage depends on (cloud/risk/anomaly/features.py): a unit
# parked where it gets no fix still sends heartbeats, and those are reports, not silence.


def test_heartbeats_without_a_fix_are_not_offline_hours() -> None:
    fixes = [f for f in commute_day() if not at(9) <= f.time < at(17)]  # no fix 09:00-17:00
    silent = day_features(DAY, fixes, FakePlaces(), HOME)
    beats = [at(9) + timedelta(minutes=2 * k) for k in range(240)]  # every 2 min, 09:00-17:00
    heard = day_features(DAY, fixes, FakePlaces(), HOME, heard={"wired-1": beats})
    other = day_features(DAY, fixes, FakePlaces(), HOME, heard={"wired-2": beats})
    assert silent is not None
    assert heard is not None
    assert other is not None
    assert silent.offline_hours >= 7.9
    assert heard.offline_hours == 0.0
    assert other.offline_hours == silent.offline_hours  # another unit's reports do not count
    # the heartbeats stop at 13:00: offline again from then
    half = day_features(DAY, fixes, FakePlaces(), HOME, heard={"wired-1": beats[:120]})
    assert half is not None
    assert half.offline_hours == pytest.approx(silent.offline_hours - 4, abs=0.1)
