"""Anomaly models by type key, the isolation forest, and :func:`score_day`.

A model type registers in :data:`MODELS` under its key with a ``fit`` and a
``load`` function; ``anomaly_models.params->>'type'`` names the type that
reads a stored blob back. Adding a model type is one module calling
:func:`register_model`; nothing else dispatches on the type.

Security assumption: a model blob is a pickle. Unpickling runs code, so blobs
must come only from ``vgr cloud train`` (the only writer of
``anomaly_models``) and the table must not be writable by anyone who should
not run code on the risk workers.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import sklearn
from numpy.typing import NDArray
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from cloud.risk.anomaly.attribution import isolation_bits
from cloud.risk.anomaly.features import FEATURE_NAMES, DayFeatures
from cloud.risk.model import JsonValue

__all__ = [
    "MODELS",
    "AnomalyModel",
    "AnomalyVerdict",
    "Contribution",
    "IsolationForestModel",
    "ModelError",
    "ModelType",
    "TrainOptions",
    "TrainingReference",
    "load_model",
    "register_model",
    "score_day",
    "score_days",
]

Matrix = NDArray[np.float64]


class ModelError(ValueError):
    """A model cannot be trained or read back (the message says why)."""


class Contribution(NamedTuple):
    name: str
    value: float  # the day's value of the feature, in its own unit
    contribution: float  # how much the feature drove the verdict (model-specific unit)


@dataclass(frozen=True, slots=True)
class AnomalyVerdict:
    score: float  # higher is more anomalous
    is_anomaly: bool
    top_features: tuple[Contribution, ...]  # strongest first, only positive contributions


@dataclass(frozen=True, slots=True)
class TrainOptions:
    contamination: float = 0.01  # share of training vehicle-days the threshold flags
    n_estimators: int = 200
    max_samples: int = 256
    seed: int = 0
    range_factor: float = 2.0  # range limit: p99 + range_factor x max(p99 - p50, range_floor)
    range_floor: float = 1.0  # one unit (km, hour, count)


class AnomalyModel(Protocol):
    @property
    def type_key(self) -> str: ...

    @property
    def feature_names(self) -> tuple[str, ...]: ...

    def verdicts(self, rows: Matrix, *, top: int = 5) -> list[AnomalyVerdict]:
        """One verdict per row of feature values (columns in ``feature_names`` order)."""
        ...

    def params(self) -> dict[str, JsonValue]:
        """Everything ``load`` needs besides the blob (stored as ``params`` jsonb)."""
        ...

    def dump(self) -> bytes: ...


Metrics = dict[str, JsonValue]


@dataclass(frozen=True, slots=True)
class ModelType:
    key: str
    fit: Callable[[Matrix, tuple[str, ...], TrainOptions], tuple[AnomalyModel, Metrics]]
    load: Callable[[bytes, Mapping[str, Any]], AnomalyModel]
    description: str


MODELS: dict[str, ModelType] = {}


def register_model(model_type: ModelType) -> ModelType:
    if model_type.key in MODELS:
        raise ValueError(f"model type {model_type.key!r} registered twice")
    MODELS[model_type.key] = model_type
    return model_type


def load_model(blob: bytes, params: Mapping[str, Any]) -> AnomalyModel:
    key = params.get("type")
    if not isinstance(key, str) or key not in MODELS:
        raise ModelError(f"unknown model type {key!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[key].load(blob, params)


def score_days(model: AnomalyModel, days: Sequence[DayFeatures]) -> list[AnomalyVerdict]:
    """The model's verdicts on many vehicle-days at once (one pass over the trees)."""
    if model.feature_names != FEATURE_NAMES:
        raise ModelError(
            f"model features {list(model.feature_names)} differ from this version's "
            f"{list(FEATURE_NAMES)}: train a new model"
        )
    if not days:
        return []
    return model.verdicts(np.asarray([f.vector() for f in days], dtype=float))


def score_day(model: AnomalyModel, features: DayFeatures) -> AnomalyVerdict:
    """The model's verdict on one vehicle-day."""
    return score_days(model, [features])[0]


# ---------------------------------------------------------------- isolation forest


def _floats(values: Sequence[float]) -> list[JsonValue]:
    return [float(v) for v in values]


@dataclass(frozen=True, slots=True)
class TrainingReference:
    """Per feature, what the training days looked like (stored in ``params``)."""

    median: tuple[float, ...]
    range_limit: tuple[float, ...]  # p99 + range_factor x max(p99 - p50, range_floor)


class IsolationForestModel:
    """An isolation forest for days unusual in combination, a range check for single extremes.

    - **forest**: log1p of every (non-negative) feature, then scikit-learn's
      IsolationForest. ``score`` is its anomaly score ``2^(-mean path length
      / c(n))`` in (0, 1]: about 0.4-0.5 for ordinary days, towards 1 for days
      isolated in few splits. ``threshold`` is the score that
      ``contamination`` of the training days exceed.
    - **range check**: trees only split inside the training range, so a day
      far beyond it in one feature scores like the training day at the edge,
      and with 8 features a split picks that feature 1 time in 8. A day above
      a feature's ``range_limit`` is flagged whatever its score.
    - **direction**: every feature grows with risk. A day the forest isolates
      only through features at or below their training median (a quieter day
      than usual) is not flagged, and such features are not listed.

    Contributions are excess isolation bits along the trees' paths
    (:mod:`cloud.risk.anomaly.attribution`); features beyond their range
    limit lead the explanation whatever their bits.
    """

    type_key = "isolation_forest"

    def __init__(
        self,
        pipeline: Pipeline,
        feature_names: tuple[str, ...],
        *,
        threshold: float,
        reference: TrainingReference,
        options: TrainOptions,
    ) -> None:
        n = len(feature_names)
        ref = reference
        if not len(ref.median) == len(ref.range_limit) == n:
            raise ModelError("the training reference needs one value per feature")
        self._pipeline = pipeline
        self._names = feature_names
        self._threshold = threshold
        self._ref = reference
        self._options = options

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def threshold(self) -> float:
        return self._threshold

    def _rows(self, rows: Matrix) -> Matrix:
        out: Matrix = np.clip(np.asarray(rows, dtype=float).reshape(-1, len(self._names)), 0, None)
        return out

    def _transform(self, rows: Matrix) -> Matrix:
        out: Matrix = np.asarray(self._pipeline[:-1].transform(self._rows(rows)), dtype=float)
        return out

    def scores(self, rows: Matrix) -> Matrix:
        forest = self._pipeline[-1]
        out: Matrix = -forest.score_samples(self._transform(rows))
        return out

    def beyond_range(self, rows: Matrix) -> NDArray[np.bool_]:
        out: NDArray[np.bool_] = self._rows(rows) > np.asarray(self._ref.range_limit)
        return out

    def contributions(self, rows: Matrix) -> Matrix:
        return isolation_bits(self._pipeline[-1], self._transform(rows))

    def verdicts(self, rows: Matrix, *, top: int = 5) -> list[AnomalyVerdict]:
        raw = self._rows(rows)
        scores = self.scores(raw)
        beyond = self.beyond_range(raw)
        contrib = self.contributions(raw)
        risky = (contrib > 0) & (raw > np.asarray(self._ref.median))  # isolated on the high side
        out = []
        for i in range(len(raw)):
            order = np.lexsort((-contrib[i], ~beyond[i]))  # beyond-range first, then by bits
            best = tuple(
                Contribution(self._names[k], float(raw[i, k]), round(float(contrib[i, k]), 4))
                for k in order
                if beyond[i, k] or risky[i, k]
            )[:top]
            score = float(scores[i])
            flagged = bool(beyond[i].any()) or (score > self._threshold and bool(risky[i].any()))
            out.append(AnomalyVerdict(round(score, 6), flagged, best))
        return out

    def params(self) -> dict[str, JsonValue]:
        o = self._options
        return {
            "type": self.type_key,
            "transform": "log1p",
            "n_estimators": o.n_estimators,
            "max_samples": o.max_samples,
            "contamination": o.contamination,
            "seed": o.seed,
            "range_factor": o.range_factor,
            "range_floor": o.range_floor,
            "threshold": self._threshold,
            "median": _floats(self._ref.median),
            "range_limits": _floats(self._ref.range_limit),
            "sklearn": sklearn.__version__,
        }

    def dump(self) -> bytes:
        return pickle.dumps(self._pipeline, protocol=5)


def _pipeline(options: TrainOptions, rows: int) -> Pipeline:
    forest = IsolationForest(
        n_estimators=options.n_estimators,
        max_samples=min(options.max_samples, rows),
        contamination=options.contamination,
        max_features=1.0,  # attribution relies on every tree seeing every column in order
        random_state=options.seed,
    )
    return Pipeline([("log1p", FunctionTransformer(np.log1p)), ("forest", forest)])


def _fit_forest(
    rows: Matrix, names: tuple[str, ...], options: TrainOptions
) -> tuple[AnomalyModel, Metrics]:
    x = np.clip(np.asarray(rows, dtype=float), 0.0, None)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ModelError(f"expected rows of {len(names)} features, got shape {x.shape}")
    if len(x) < 2:
        raise ModelError("an isolation forest needs at least 2 training rows")
    if not 0.0 < options.contamination <= 0.5:
        raise ModelError("contamination must be in (0, 0.5]")
    if options.range_factor < 0 or options.range_floor <= 0:
        raise ModelError("range_factor must be >= 0 and range_floor > 0")
    pipeline = _pipeline(options, len(x)).fit(x)
    forest = pipeline[-1]
    q1, p50, q3, p99 = np.percentile(x, [25, 50, 75, 99], axis=0)
    reference = TrainingReference(
        median=tuple(p50.tolist()),
        range_limit=tuple(
            (p99 + options.range_factor * np.maximum(p99 - p50, options.range_floor)).tolist()
        ),
    )
    model = IsolationForestModel(
        pipeline, names, threshold=float(-forest.offset_), reference=reference, options=options
    )
    verdicts = model.verdicts(x)
    scores = model.scores(x)
    metrics: Metrics = {
        "training_rows": len(x),
        "flagged_in_training": sum(v.is_anomaly for v in verdicts),
        "above_threshold": int((scores > model.threshold).sum()),
        "beyond_range": int(model.beyond_range(x).any(axis=1).sum()),
        "score_quantiles": {f"p{q}": float(np.percentile(scores, q)) for q in (50, 90, 99)},
        "feature_iqr": dict(zip(names, _floats((q3 - q1).tolist()), strict=True)),
        "feature_p99": dict(zip(names, _floats(p99.tolist()), strict=True)),
    }
    return model, metrics


def _load_forest(blob: bytes, params: Mapping[str, Any]) -> AnomalyModel:
    # Blobs are written only by `vgr cloud train` (see the module docstring).
    pipeline = pickle.loads(blob)  # noqa: S301
    if not isinstance(pipeline, Pipeline) or not isinstance(pipeline[-1], IsolationForest):
        raise ModelError("the blob is not an isolation-forest pipeline")
    try:
        reference = TrainingReference(
            median=tuple(float(v) for v in params["median"]),
            range_limit=tuple(float(v) for v in params["range_limits"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"params lack the training reference: {exc}") from None
    names = tuple(str(n) for n in params.get("feature_names", FEATURE_NAMES))
    options = TrainOptions(
        contamination=float(params["contamination"]),
        n_estimators=int(params["n_estimators"]),
        max_samples=int(params["max_samples"]),
        seed=int(params["seed"]),
        range_factor=float(params["range_factor"]),
        range_floor=float(params["range_floor"]),
    )
    return IsolationForestModel(
        pipeline,
        names,
        threshold=float(params["threshold"]),
        reference=reference,
        options=options,
    )


register_model(
    ModelType(
        key=IsolationForestModel.type_key,
        fit=_fit_forest,
        load=_load_forest,
        description="IsolationForest on log1p features + training-range check; isolation bits",
    )
)
