"""The isolation-forest model on synthetic normal days: flags, attribution, storage, registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from cloud.risk.anomaly.features import FEATURE_NAMES, DayFeatures
from cloud.risk.anomaly.model import (
    MODELS,
    AnomalyModel,
    AnomalyVerdict,
    IsolationForestModel,
    ModelError,
    ModelType,
    TrainOptions,
    load_model,
    register_model,
    score_day,
    score_days,
)

Matrix = np.ndarray[Any, np.dtype[np.float64]]


def normal_days(n: int = 500, seed: int = 7) -> Matrix:
    """Commuter-like days: some driving, little at night, home most of the time."""
    rng = np.random.default_rng(seed)
    km = rng.gamma(4.0, 8.0, n)
    night = np.where(rng.random(n) < 0.7, 0.0, rng.exponential(2.0, n))
    stays = rng.integers(1, 5, n).astype(float)
    max_km = km * rng.uniform(0.3, 0.5, n)
    mean_km = max_km * rng.uniform(0.2, 0.5, n)
    poi = np.where(rng.random(n) < 0.05, rng.uniform(0.0, 0.5, n), 0.0)
    offline = np.where(rng.random(n) < 0.1, rng.uniform(0.5, 2.0, n), 0.0)
    provinces = np.where(rng.random(n) < 0.05, 2.0, 1.0)
    return np.column_stack([km, night, stays, max_km, mean_km, poi, offline, provinces])


TYPICAL = DayFeatures(
    km_driven=30.0,
    night_km=0.0,
    stay_clusters=2.0,
    max_km_from_home=12.0,
    mean_km_from_home=4.0,
    risk_poi_hours=0.0,
    offline_hours=0.0,
    provinces_visited=1.0,
)


@pytest.fixture(scope="module")
def model() -> IsolationForestModel:
    fitted, metrics = MODELS["isolation_forest"].fit(
        normal_days(), FEATURE_NAMES, TrainOptions(contamination=0.01, seed=3)
    )
    assert metrics["training_rows"] == 500
    assert isinstance(metrics["flagged_in_training"], int)
    assert 1 <= metrics["flagged_in_training"] <= 10  # ~1 % of 500
    assert isinstance(fitted, IsolationForestModel)
    return fitted


def test_a_typical_day_is_normal(model: AnomalyModel) -> None:
    verdict = score_day(model, TYPICAL)
    assert not verdict.is_anomaly
    assert 0.0 < verdict.score < 0.55


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("night_km", 150.0),
        ("offline_hours", 20.0),
        ("max_km_from_home", 400.0),
        ("risk_poi_hours", 6.0),
        ("km_driven", 900.0),
    ],
)
def test_an_abnormal_day_is_flagged_and_explained(
    model: AnomalyModel, name: str, value: float
) -> None:
    day = replace(TYPICAL, **{name: value})
    verdict = score_day(model, day)
    assert verdict.is_anomaly
    assert verdict.score > score_day(model, TYPICAL).score
    top = verdict.top_features[0]
    assert top.name == name
    assert top.value == value
    assert top.contribution > 0
    assert all(c.contribution > 0 for c in verdict.top_features)
    assert [c.contribution for c in verdict.top_features] == sorted(
        (c.contribution for c in verdict.top_features), reverse=True
    )


def test_a_day_unusual_in_combination_is_flagged_by_the_forest(
    model: IsolationForestModel,
) -> None:
    # each value within the training range, the combination rare (night driving, a POI
    # stop, an hour offline, another province, far from home, all on one day)
    day = DayFeatures(60.0, 6.0, 4.0, 30.0, 12.0, 0.3, 1.5, 2.0)
    row = np.asarray([day.vector()])
    assert not model.beyond_range(row).any()
    verdict = score_day(model, day)
    assert verdict.is_anomaly
    assert verdict.score > model.threshold
    assert len(verdict.top_features) == 5
    assert {"risk_poi_hours", "provinces_visited", "offline_hours"} <= {
        c.name for c in verdict.top_features
    }


def test_a_quieter_day_than_usual_is_not_a_risk_anomaly() -> None:
    # the car barely moved: the forest isolates the low tail too (with 10 % contamination
    # this day is above the threshold), but every feature grows with risk, so it is
    # neither flagged nor explained
    fitted, _ = MODELS["isolation_forest"].fit(
        normal_days(), FEATURE_NAMES, TrainOptions(contamination=0.1, seed=3)
    )
    assert isinstance(fitted, IsolationForestModel)
    quiet = DayFeatures(0.3, 0.0, 1.0, 0.2, 0.05, 0.0, 0.0, 1.0)
    verdict = score_day(fitted, quiet)
    assert verdict.score > fitted.threshold
    assert not verdict.is_anomaly
    assert verdict.top_features == ()
    assert score_day(fitted, replace(TYPICAL, night_km=150.0)).is_anomaly


def test_blob_and_params_round_trip(model: AnomalyModel) -> None:
    params = model.params()
    assert params["type"] == "isolation_forest"
    assert isinstance(params["threshold"], float)
    again = load_model(model.dump(), {**params, "feature_names": list(FEATURE_NAMES)})
    days = [TYPICAL, replace(TYPICAL, night_km=150.0)]
    assert score_days(again, days) == score_days(model, days)


def test_feature_mismatch_is_refused(model: AnomalyModel) -> None:
    params = {**model.params(), "feature_names": ["km_driven", *FEATURE_NAMES[1:-1], "other"]}
    old = load_model(model.dump(), params)
    with pytest.raises(ModelError, match="train a new model"):
        score_day(old, TYPICAL)


def test_training_needs_valid_options() -> None:
    fit = MODELS["isolation_forest"].fit
    with pytest.raises(ModelError, match="at least 2"):
        fit(normal_days(1), FEATURE_NAMES, TrainOptions())
    with pytest.raises(ModelError, match="contamination"):
        fit(normal_days(50), FEATURE_NAMES, TrainOptions(contamination=0.7))
    with pytest.raises(ModelError, match="features"):
        fit(normal_days(50)[:, :3], FEATURE_NAMES, TrainOptions())


class _Threshold:
    """A toy model type: anomalous when km_driven exceeds a fixed limit."""

    type_key = "km_limit"
    feature_names = FEATURE_NAMES

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def verdicts(self, rows: Matrix, *, top: int = 3) -> list[AnomalyVerdict]:
        return [AnomalyVerdict(float(r[0] / self.limit), bool(r[0] > self.limit), ()) for r in rows]

    def params(self) -> dict[str, Any]:
        return {"type": self.type_key, "limit": self.limit}

    def dump(self) -> bytes:
        return b""


def test_another_model_type_plugs_in_by_key(monkeypatch: pytest.MonkeyPatch) -> None:
    def fit(rows: Matrix, names: tuple[str, ...], options: TrainOptions) -> Any:
        return _Threshold(float(np.percentile(rows[:, 0], 99))), {}

    def load(blob: bytes, params: Mapping[str, Any]) -> AnomalyModel:
        return _Threshold(float(params["limit"]))

    monkeypatch.setattr("cloud.risk.anomaly.model.MODELS", dict(MODELS))
    from cloud.risk.anomaly import model as module

    register_model(ModelType("km_limit", fit, load, "toy"))
    fitted, _ = module.MODELS["km_limit"].fit(normal_days(), FEATURE_NAMES, TrainOptions())
    again = module.load_model(fitted.dump(), fitted.params())
    assert score_day(again, replace(TYPICAL, km_driven=900.0)).is_anomaly
    with pytest.raises(ValueError, match="twice"):
        register_model(ModelType("km_limit", fit, load, "toy"))
    with pytest.raises(ModelError, match="unknown model type"):
        load_model(b"", {"type": "nope"})
