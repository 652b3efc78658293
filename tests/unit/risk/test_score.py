"""The risk score's maths, with timed sequences of signals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud.risk.model import Severity
from cloud.risk.score import (
    ANOMALY_RULE,
    DEFAULT_CONFIG,
    Band,
    RiskScore,
    RiskSignal,
    ScoreConfig,
    anomaly_signal,
    band_of,
    decay,
    risk_changed,
    risk_score,
    weight_of,
)

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def sig(
    rule: str = "region_exit",
    severity: Severity = Severity.WARN,
    at: datetime = T0,
    resolved: datetime | None = None,
    episode: str = "",
) -> RiskSignal:
    return RiskSignal(rule, severity, at, resolved, episode)


def test_no_signals_is_zero_and_low() -> None:
    score = risk_score([], T0)
    assert score.score == 0.0
    assert score.band is Band.LOW
    assert score.reasons == ()


@pytest.mark.parametrize(
    ("score", "band"),
    [(0, Band.LOW), (29.9, Band.LOW), (30, Band.MEDIUM), (59.9, Band.MEDIUM), (60, Band.HIGH),
     (79.9, Band.HIGH), (80, Band.CRITICAL), (100, Band.CRITICAL)],
)  # fmt: skip
def test_bands(score: float, band: Band) -> None:
    assert band_of(score) is band


def test_one_critical_signal_alone_is_critical() -> None:
    score = risk_score([sig("region_exit", Severity.CRITICAL)], T0)
    assert score.score == 85.0
    assert score.band is Band.CRITICAL
    (reason,) = score.reasons
    assert reason.rule == "region_exit"
    assert reason.weight_now == pytest.approx(0.85)
    assert reason.points == 85.0


def test_many_weak_signals_saturate_below_100() -> None:
    scores = [
        risk_score([sig("offline", Severity.INFO, episode=f"e{k}") for k in range(n)], T0).score
        for n in (1, 5, 20, 100, 400)
    ]
    assert scores == sorted(scores)
    assert scores[0] == pytest.approx(100 * 0.05 * 0.8, abs=0.05)
    assert scores[-1] <= 100.0
    assert scores[-1] > 99.0
    # 20 weak signals still cannot outweigh what the formula says: 1 - (1 - 0.04)^20
    assert scores[2] == pytest.approx(100 * (1 - (1 - 0.04) ** 20), abs=0.05)


def test_decay_halves_after_the_half_life() -> None:
    s = sig(severity=Severity.HIGH)
    assert decay(s, T0) == 1.0
    assert decay(s, T0 + timedelta(days=30)) == pytest.approx(0.5)
    assert decay(s, T0 + timedelta(days=60)) == pytest.approx(0.25)
    assert risk_score([s], T0 + timedelta(days=30)).score == pytest.approx(25.0, abs=0.05)
    shorter = ScoreConfig(half_life=timedelta(days=10))
    assert decay(s, T0 + timedelta(days=10), shorter) == pytest.approx(0.5)


def test_a_resolved_alert_decays_faster() -> None:
    still_open = sig(severity=Severity.HIGH)
    resolved = sig(severity=Severity.HIGH, resolved=T0 + 2 * DAY)
    now = T0 + 5 * DAY
    # until resolution both decay alike; after it the resolved one halves every 3 days
    assert decay(resolved, T0 + 2 * DAY) == pytest.approx(decay(still_open, T0 + 2 * DAY))
    assert decay(resolved, now) == pytest.approx(decay(still_open, T0 + 2 * DAY) * 0.5)
    assert risk_score([resolved], now).score < risk_score([still_open], now).score
    (reason,) = risk_score([resolved], now).reasons
    assert reason.resolved
    # a resolution in the future of `now` is not known yet
    assert not risk_score([resolved], T0 + DAY).reasons[0].resolved


def test_weights_come_from_severity_and_rule_and_can_be_overridden() -> None:
    assert weight_of("region_exit", Severity.WARN) == pytest.approx(0.20)
    assert weight_of("gs_ip_mismatch", Severity.WARN) == pytest.approx(0.08)  # weak evidence
    assert weight_of("device_removed", Severity.CRITICAL) == pytest.approx(0.95)  # capped
    assert weight_of("resident_learned", Severity.INFO) == 0.0
    assert weight_of("some_new_rule", Severity.HIGH) == pytest.approx(0.50)  # factor 1
    cfg = ScoreConfig(overrides={("gs_ip_mismatch", Severity.WARN): 0.3})
    assert weight_of("gs_ip_mismatch", Severity.WARN, cfg) == pytest.approx(0.3)


def test_anomaly_verdicts_contribute_with_their_own_weight() -> None:
    day_end = T0
    assert anomaly_signal(day_end, score=0.5, is_anomaly=False) is None
    warn = anomaly_signal(day_end, score=0.66, is_anomaly=True, episode="2025-03-01")
    high = anomaly_signal(day_end, score=0.8, is_anomaly=True)
    assert warn is not None
    assert high is not None
    assert warn.rule == ANOMALY_RULE
    assert (warn.severity, high.severity) == (Severity.WARN, Severity.HIGH)
    score = risk_score([warn], day_end)
    assert score.score == pytest.approx(100 * 0.20 * 0.75, abs=0.05)  # 15, not a rule's 20
    assert score.reasons[0].rule == ANOMALY_RULE
    # a finished day's verdict fades at the resolved rate
    assert risk_score([warn], day_end + 3 * DAY).score == pytest.approx(7.5, abs=0.05)
    # combined with a rule's signal, both count
    both = risk_score([warn, sig("region_exit", Severity.HIGH)], day_end)
    assert both.score == pytest.approx(100 * (1 - 0.85 * 0.5), abs=0.05)
    assert [r.rule for r in both.reasons] == ["region_exit", ANOMALY_RULE]


def test_same_episode_counts_once_with_its_strongest_state() -> None:
    first = sig(severity=Severity.WARN, episode="region_exit:1")
    escalated = sig(severity=Severity.HIGH, at=T0 + DAY, episode="region_exit:1")
    score = risk_score([first, escalated], T0 + DAY)
    assert score.score == 50.0
    assert len(score.reasons) == 1


def test_future_signals_are_not_evidence_yet() -> None:
    assert risk_score([sig(at=T0 + DAY)], T0).score == 0.0


def test_reasons_are_the_top_signals_by_weight_now() -> None:
    signals = [
        sig("tamper", Severity.HIGH, at=T0 - 60 * DAY, episode="old"),  # 0.6 -> 0.15
        sig("night_anomaly", Severity.WARN, at=T0, episode="a"),  # 0.14
        sig("risk_poi_stay", Severity.HIGH, at=T0 - DAY, episode="b"),  # 0.55 x 0.977
        *(sig("low_battery", Severity.INFO, episode=f"lb{k}") for k in range(10)),  # 0.02 each
    ]
    score = risk_score(signals, T0)
    rules = [r.rule for r in score.reasons]
    assert rules[:3] == ["risk_poi_stay", "tamper", "night_anomaly"]
    assert len(score.reasons) == DEFAULT_CONFIG.top_reasons
    weights = [r.weight_now for r in score.reasons]
    assert weights == sorted(weights, reverse=True)


def test_risk_changed_on_band_change_or_ten_points() -> None:
    def at(value: float) -> RiskScore:
        return RiskScore(value, band_of(value), ())

    low_25, med_31, med_40, med_49 = at(25.0), at(31.0), at(40.0), at(49.0)
    assert risk_changed(low_25, med_31)  # band change, small delta
    assert not risk_changed(med_31, med_40)  # 9 points, same band
    assert risk_changed(med_31, at(41.0))  # 10 points
    assert risk_changed(med_49, med_40) is False
    assert risk_changed(med_40, low_25)
    assert risk_changed(None, med_31)
    assert not risk_changed(None, at(5.0))
    assert risk_changed(None, at(12.0))


def test_a_timed_sequence_rises_and_falls() -> None:
    """Region exit at day 0 (high), POI stay day 2 (high), exit resolved day 3, then quiet."""
    exit_ = sig("region_exit", Severity.HIGH, at=T0, resolved=T0 + 3 * DAY, episode="x")
    poi = sig("risk_poi_stay", Severity.HIGH, at=T0 + 2 * DAY, episode="p")
    timeline = [risk_score([exit_, poi], T0 + k * DAY) for k in range(0, 41, 1)]
    assert timeline[0].band is Band.MEDIUM
    assert timeline[2].band is Band.HIGH  # two high signals: 1 - 0.5 x 0.45 ~ 77
    peak = max(s.score for s in timeline)
    assert peak == timeline[2].score
    assert timeline[40].score < timeline[10].score < timeline[3].score
    events = [k for k in range(1, len(timeline)) if risk_changed(timeline[k - 1], timeline[k])]
    assert events[0] == 2  # the POI stay
    assert len(events) < 10  # not a change event every day
