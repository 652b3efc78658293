"""Training and scoring runs over a tenant's stored fixes (the I/O around the pure parts).

``train_tenant`` reads every vehicle-day of the window, computes its
features and stores a new model version; ``score_tenant_days`` scores given
days with the tenant's latest model and upserts the verdicts. Both report
progress through a callback and never read the clock: the caller passes the
days.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import groupby

import numpy as np

from cloud.risk.anomaly import store
from cloud.risk.anomaly.features import FEATURE_NAMES, DayFeatures, day_features
from cloud.risk.anomaly.model import (
    MODELS,
    AnomalyVerdict,
    ModelError,
    TrainOptions,
    load_model,
    score_days,
)
from cloud.risk.anomaly.resident import resident_point
from cloud.risk.model import JsonValue, PlaceLookup

Progress = Callable[[int, int], None]  # (vehicle-days done, total)

RESIDENT_DAYS = 30  # nights that define the resident point (DOMAIN.md: 14-30 days)


class NotEnoughData(Exception):  # noqa: N818 - reads as the condition it reports
    def __init__(self, tenant_id: str, have: int, need: int, days: int) -> None:
        self.have, self.need = have, need
        super().__init__(
            f"tenant {tenant_id!r} has {have} vehicle-days with fixes in the last {days} days; "
            f"training needs at least {need} (--min-vehicle-days). Wait for more data, or "
            "train on a longer window (--days)."
        )


class NoModel(Exception):  # noqa: N818
    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"tenant {tenant_id!r} has no anomaly model: run `vgr cloud train` first")


def _resident(
    conn: store.Conn, tenant_id: str, vehicle_id: int, end: date
) -> tuple[float, float] | None:
    """Learned from the nights before ``end``, else the loan's declared address, else None."""
    samples = store.night_samples(
        conn, tenant_id, vehicle_id, end - timedelta(days=RESIDENT_DAYS), end
    )
    return resident_point(samples) or store.declared_point(conn, tenant_id, vehicle_id)


@dataclass
class _Collected:
    keys: list[tuple[int, date]] = field(default_factory=list)
    features: list[DayFeatures] = field(default_factory=list)


def _collect(
    conn: store.Conn,
    tenant_id: str,
    vdays: Sequence[store.VehicleDay],
    places: PlaceLookup,
    progress: Progress,
    *,
    resident_end: date | None,
) -> _Collected:
    """Features of each vehicle-day; the resident point ends at ``resident_end`` or the day."""
    out = _Collected()
    done = 0
    progress(0, len(vdays))
    for vehicle_id, group in groupby(vdays, key=lambda vd: vd.vehicle_id):
        devices = store.vehicle_devices(conn, tenant_id, vehicle_id)
        fixed = _resident(conn, tenant_id, vehicle_id, resident_end) if resident_end else None
        for vd in group:
            resident = fixed if resident_end else _resident(conn, tenant_id, vehicle_id, vd.day)
            fixes = store.day_fixes(conn, tenant_id, vehicle_id, vd.day)
            heard = store.day_reports(conn, tenant_id, list(devices), vd.day)
            feats = day_features(vd.day, fixes, places, resident, devices=devices, heard=heard)
            if feats is not None:
                out.keys.append((vehicle_id, vd.day))
                out.features.append(feats)
            done += 1
            progress(done, len(vdays))
    return out


@dataclass(frozen=True, slots=True)
class TrainResult:
    tenant_id: str
    version: int
    model_type: str
    vehicle_days: int
    vehicles: int
    feature_names: tuple[str, ...]
    contamination: float
    flagged_in_training: int


def train_tenant(
    conn: store.Conn,
    tenant_id: str,
    *,
    until: date,
    days: int,
    min_vehicle_days: int,
    places: PlaceLookup,
    places_source: str,
    model_type: str = "isolation_forest",
    options: TrainOptions | None = None,
    progress: Progress = lambda _done, _total: None,
) -> TrainResult:
    """Train on China days ``[until - days, until)`` and store the next model version.

    Raises :class:`NotEnoughData` below ``min_vehicle_days`` and ModelError
    for an unknown ``model_type``.
    """
    if model_type not in MODELS:
        raise ModelError(f"unknown model type {model_type!r}; known: {', '.join(sorted(MODELS))}")
    options = options or TrainOptions()
    vdays = store.vehicle_days(conn, tenant_id, until - timedelta(days=days), until)
    if len(vdays) < min_vehicle_days:
        raise NotEnoughData(tenant_id, len(vdays), min_vehicle_days, days)
    # one resident point per vehicle: its nights up to the end of the window
    got = _collect(conn, tenant_id, vdays, places, progress, resident_end=until)
    rows = np.asarray([f.vector() for f in got.features], dtype=float)
    model, metrics = MODELS[model_type].fit(rows, FEATURE_NAMES, options)
    window: dict[str, JsonValue] = {"until": until.isoformat(), "days": days}
    params: dict[str, JsonValue] = {
        **model.params(),
        "places": places_source,
        "window": window,
    }
    version = store.insert_model(
        conn,
        tenant_id,
        feature_names=FEATURE_NAMES,
        params=params,
        training_rows=len(rows),
        blob=model.dump(),
        metrics=metrics,
    )
    flagged = metrics.get("flagged_in_training", 0)
    return TrainResult(
        tenant_id=tenant_id,
        version=version,
        model_type=model_type,
        vehicle_days=len(rows),
        vehicles=len({v for v, _ in got.keys}),
        feature_names=FEATURE_NAMES,
        contamination=options.contamination,
        flagged_in_training=flagged if isinstance(flagged, int) else 0,
    )


@dataclass(frozen=True, slots=True)
class ScoreResult:
    tenant_id: str
    model_version: int
    days: tuple[date, ...]
    scored: int
    anomalies: tuple[tuple[int, date, AnomalyVerdict], ...]
    warnings: tuple[str, ...]


def score_tenant_days(
    conn: store.Conn,
    tenant_id: str,
    days: Iterable[date],
    *,
    places: PlaceLookup,
    places_source: str,
    progress: Progress = lambda _done, _total: None,
) -> ScoreResult:
    """Score every vehicle with fixes on each of ``days`` with the latest model; upsert."""
    stored = store.latest_model(conn, tenant_id)
    if stored is None:
        raise NoModel(tenant_id)
    model = load_model(stored.blob, {**stored.params, "feature_names": stored.feature_names})
    warnings = []
    trained_with = stored.params.get("places")
    if trained_with != places_source:
        warnings.append(
            f"model v{stored.version} was trained with places {trained_with!r}, scoring with "
            f"{places_source!r}: province and POI features are not comparable"
        )
    all_days = tuple(sorted(set(days)))
    scored = 0
    anomalies: list[tuple[int, date, AnomalyVerdict]] = []
    for day in all_days:
        vdays = store.vehicle_days(conn, tenant_id, day, day + timedelta(days=1))
        got = _collect(conn, tenant_id, vdays, places, progress, resident_end=None)
        verdicts = [
            (v, d, verdict)
            for (v, d), verdict in zip(got.keys, score_days(model, got.features), strict=True)
        ]
        store.save_scores(conn, tenant_id, stored.version, verdicts)
        scored += len(verdicts)
        anomalies.extend(item for item in verdicts if item[2].is_anomaly)
    return ScoreResult(
        tenant_id, stored.version, all_days, scored, tuple(anomalies), tuple(warnings)
    )
