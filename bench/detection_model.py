"""Scoring the anomaly model's vehicle-day verdicts against the simulator's labels (pure).

The model (``cloud.risk.anomaly``) judges whole China-time days of one
vehicle's movement; the labels are windows of events. A vehicle-day is:

- **positive** when it overlaps the window of an ``alert`` label whose rule is
  a mobility anomaly the day features can show (:data:`MODEL_RULES`: the car
  far from home or in other provinces, hours at a risk place, a tracker that
  went silent or onto another vehicle);
- **neutral** (counts neither way) when it is not positive but overlaps an
  ``alert`` or ``optional`` label of any other rule except
  :data:`BENIGN_RULES`: an event the model is not meant to judge but may
  legitimately notice (a power cut, jamming, a spoofed jump, a separation
  seen through the decoy's track, a night drive that may or may not happen);
- **negative** otherwise: commuters' days, the quiet days before and after an
  event, and days whose only labels are benign for the model (a blind area
  the rules must not call a removal, a SIM from another province).

An expected **event** is an ``alert`` label of a :data:`MODEL_RULES` rule; it
is detected when any flagged vehicle-day overlaps its window, and its time to
detect runs from the label's start to the end of the first such day (a
verdict describes a finished day: the daily scoring job cannot know sooner).

Precision is over vehicle-days (flagged positive / flagged non-neutral); the
summary's recall is over events (detected / expected), like the rules'.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Literal

from bench.detection_score import Truth
from cloud.risk.geo import CHINA_TZ

#: Label rules whose windows the day features can show: distance from the resident point and
#: provinces (region_exit, relocation, not_home), hours at risk places (risk_poi_*), a tracker
#: that goes silent mid-day or rides another vehicle (offline hours, a different track).
MODEL_RULES = frozenset({
    "region_exit", "relocation", "not_home", "risk_poi_stay", "risk_poi_visit",
    "device_removed", "offline", "tracker_on_other_vehicle",
})  # fmt: skip

#: Labels that leave a day negative: the labelled thing is harmless for the model to ignore
#: (a blind area is not a removal; a SIM registered elsewhere says nothing about movement).
BENIGN_RULES = frozenset({"blind_area", "gs_ip_mismatch"})

DayClass = Literal["positive", "neutral", "negative"]
DAY = timedelta(days=1)


def day_span(day: date) -> tuple[datetime, datetime]:
    """The China-time day ``[00:00, 24:00)`` as aware datetimes."""
    start = datetime.combine(day, time(0), tzinfo=CHINA_TZ)
    return start, start + DAY


@dataclass(frozen=True, slots=True)
class DayVerdict:
    """One scored vehicle-day as ``anomaly_scores`` holds it."""

    vehicle: str
    day: date
    score: float
    flagged: bool
    top: tuple[tuple[str, float], ...] = ()  # (feature, day's value), strongest first


def _overlaps(t: Truth, day: date) -> bool:
    start, end = day_span(day)
    return t.start < end and t.end >= start


def classify(vehicle: str, day: date, truths: Iterable[Truth]) -> tuple[DayClass, list[Truth]]:
    """The day's class and the labels (alert or optional) that overlap it."""
    mine = [t for t in truths if t.vehicle == vehicle and t.expect != "silent"]
    here = [t for t in mine if _overlaps(t, day)]
    if any(t.expect == "alert" and t.rule in MODEL_RULES for t in here):
        return "positive", here
    if any(t.rule not in BENIGN_RULES for t in here):
        return "neutral", here
    return "negative", here


@dataclass(slots=True)
class KindScore:
    """Per label rule of :data:`MODEL_RULES`: its events and how many the model caught."""

    rule: str
    events: int = 0
    detected: int = 0
    detect_s: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return None if self.events == 0 else self.detected / self.events

    @property
    def median_detect_s(self) -> float | None:
        return statistics.median(self.detect_s) if self.detect_s else None


@dataclass(frozen=True, slots=True)
class JudgedDay:
    verdict: DayVerdict
    cls: DayClass
    labels: tuple[Truth, ...]


@dataclass(frozen=True, slots=True)
class ModelReport:
    days: tuple[JudgedDay, ...]
    kinds: dict[str, KindScore]
    missed: tuple[Truth, ...]

    def _count(self, cls: DayClass, flagged: bool) -> int:
        return sum(1 for d in self.days if d.cls == cls and d.verdict.flagged == flagged)

    @property
    def true_pos(self) -> int:
        return self._count("positive", True)

    @property
    def false_pos(self) -> int:
        return self._count("negative", True)

    @property
    def false_neg(self) -> int:
        return self._count("positive", False)

    @property
    def true_neg(self) -> int:
        return self._count("negative", False)

    @property
    def neutral(self) -> int:
        return sum(1 for d in self.days if d.cls == "neutral")

    @property
    def precision(self) -> float | None:
        flagged = self.true_pos + self.false_pos
        return None if flagged == 0 else self.true_pos / flagged

    @property
    def day_recall(self) -> float | None:
        positives = self.true_pos + self.false_neg
        return None if positives == 0 else self.true_pos / positives

    @property
    def events(self) -> int:
        return sum(k.events for k in self.kinds.values())

    @property
    def detected(self) -> int:
        return sum(k.detected for k in self.kinds.values())

    @property
    def recall(self) -> float | None:
        """Expected events with at least one flagged day."""
        return None if self.events == 0 else self.detected / self.events

    def median_detect_s(self) -> float | None:
        all_s = [s for k in self.kinds.values() for s in k.detect_s]
        return statistics.median(all_s) if all_s else None

    @property
    def flagged(self) -> tuple[JudgedDay, ...]:
        return tuple(d for d in self.days if d.verdict.flagged)


def score_model(truths: Sequence[Truth], verdicts: Iterable[DayVerdict]) -> ModelReport:
    """Classify every scored vehicle-day and match flagged days to expected events."""
    judged = []
    for v in sorted(verdicts, key=lambda v: (v.vehicle, v.day)):
        cls, labels = classify(v.vehicle, v.day, truths)
        judged.append(JudgedDay(v, cls, tuple(labels)))
    days = tuple(judged)
    kinds = {rule: KindScore(rule) for rule in sorted(MODEL_RULES)}
    missed: list[Truth] = []
    for t in truths:
        if t.expect != "alert" or t.rule not in MODEL_RULES:
            continue
        k = kinds[t.rule]
        k.events += 1
        hits = sorted(
            d.verdict.day
            for d in days
            if d.verdict.flagged and d.verdict.vehicle == t.vehicle and _overlaps(t, d.verdict.day)
        )
        if hits:
            k.detected += 1
            k.detect_s.append(max(0.0, (day_span(hits[0])[1] - t.start).total_seconds()))
        else:
            missed.append(t)
    return ModelReport(days, {r: k for r, k in kinds.items() if k.events}, tuple(missed))


def at_share(verdicts: Sequence[DayVerdict], share: float) -> list[DayVerdict]:
    """The verdicts with the threshold moved so that about ``share`` of the days score above it.

    A day stays flagged if it was; a day with at least one reason (a feature
    above its training median the model isolated it on) is flagged when its
    score is in the top ``share``. Days without reasons are never flagged (the
    model's direction rule). This re-reads the same forest's scores; it does
    not retrain.
    """
    if not verdicts:
        return []
    ranked = sorted((v.score for v in verdicts), reverse=True)
    cut = ranked[min(len(ranked) - 1, max(0, round(share * len(ranked)) - 1))]
    return [replace(v, flagged=v.flagged or (bool(v.top) and v.score >= cut)) for v in verdicts]


def summary_line(report: ModelReport) -> str:
    """``model_precision=X model_recall=Y model_median_detect_s=Z vehicle_days=N``."""
    med = report.median_detect_s()
    return (
        f"model_precision={_num(report.precision)} model_recall={_num(report.recall)} "
        f"model_median_detect_s={'-' if med is None else f'{med:.0f}'} "
        f"vehicle_days={len(report.days)}"
    )


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f} s ({x / 3600:.1f} h)"


def _reasons(v: DayVerdict, n: int = 3) -> str:
    return ", ".join(f"{name}={value:.1f}" for name, value in v.top[:n]) or "-"


def render_rows(report: ModelReport, scenario_of: dict[str, str]) -> list[str]:
    """The markdown tables of the model section (per label rule, flagged days, misses)."""
    lines = [
        "| label rule | events | detected | recall | median detect |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {k.rule} | {k.events} | {k.detected} | {_num(k.recall)} | "
              f"{_secs(k.median_detect_s)} |" for k in report.kinds.values()]  # fmt: skip
    lines += [
        "",
        "Vehicle-days: "
        f"{report.true_pos + report.false_neg} positive, {report.true_neg + report.false_pos} "
        f"negative, {report.neutral} neutral; flagged {len(report.flagged)}: "
        f"{report.true_pos} positive, {report.false_pos} negative, "
        f"{len(report.flagged) - report.true_pos - report.false_pos} neutral. "
        f"Precision {_num(report.precision)} (days), recall {_num(report.recall)} (events; "
        f"{_num(report.day_recall)} of positive days).",
        "",
        "### Flagged vehicle-days",
        "",
        "| vehicle | scenario | day (China) | score | class | labels that day | top 3 features |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in report.flagged:
        v = d.verdict
        labels = ", ".join(sorted({f"{t.rule}" + ("?" if t.expect == "optional" else "")
                                   for t in d.labels})) or "-"  # fmt: skip
        lines.append(
            f"| {v.vehicle} | {scenario_of.get(v.vehicle, '')} | {v.day.isoformat()} | "
            f"{v.score:.3f} | {d.cls} | {labels} | {_reasons(v)} |"
        )
    if not report.flagged:
        lines.append("| - | - | - | - | - | - | - |")
    lines += ["", "### Missed events", ""]
    lines += [f"- {t.rule} on {t.vehicle} ({t.scenario}), window {t.start:%Y-%m-%d %H:%M} to "
              f"{t.end:%Y-%m-%d %H:%M} UTC" for t in report.missed] or ["- none"]  # fmt: skip
    return lines


def render_sweep(truths: Sequence[Truth], verdicts: Sequence[DayVerdict]) -> list[str]:
    """What the same scores would flag at fixed larger shares (not tuned on the labels)."""
    lines = [
        "| share of days above threshold | flagged days | precision (days) | recall (events) | "
        "median detect |",
        "|---|---|---|---|---|",
    ]
    for share in (0.01, 0.05, 0.10, 0.20):
        r = score_model(truths, at_share(verdicts, share))
        lines.append(
            f"| {share:.0%} | {len(r.flagged)} | {_num(r.precision)} | {_num(r.recall)} | "
            f"{_secs(r.median_detect_s())} |"
        )
    return lines
