"""Scoring alerts against the simulator's ground-truth labels (pure).

A label says: for this vehicle, rule R should raise an alert (``expect =
"alert"``) or must stay quiet (``expect = "silent"``) in the window
``[start, end]`` (``end`` already includes the label's grace).

- An expected label is **detected** when an alert of rule R for that vehicle
  fired (GNSS time) inside the window; its time to detect is fired - start.
- An alert is a **true positive** when it falls inside an expected label's
  window for its vehicle and rule; inside an ``optional`` label's window it
  counts neither way (``RuleScore.optional``: a consequence that may or may
  not happen, such as a night-time drive home); otherwise it is a **false
  positive** (alerts of rules no label mentions for that vehicle count as
  false positives too: a commuter with any alert is a false alarm).
- Which alerts take part is the caller's choice (:func:`scored`): warn and
  above, plus the signals that are info by design but labelled by the
  simulator (:data:`INFO_RULES`: a risk-POI visit, a recognised blind area).
- Precision per rule = TP / (TP + FP); recall per rule = detected / expected.
  A rule with no alerts has no precision (``None``) unless it had expected
  labels, then recall 0 says it missed them.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

#: Rules whose signal is info-level by design and which the scenarios label: scored at any
#: severity (other info signals, e.g. ``resident_learned``, are not alerts a lender acts on).
INFO_RULES = frozenset({"blind_area", "risk_poi_visit"})


def scored(rule: str, severity: str) -> bool:
    """Whether an alert of ``rule`` at ``severity`` (``info``/``warn``/...) is scored."""
    return severity != "info" or rule in INFO_RULES


@dataclass(frozen=True, slots=True)
class Truth:
    rule: str
    vehicle: str
    start: datetime
    end: datetime
    expect: str  # "alert" | "silent"
    scenario: str = ""


@dataclass(frozen=True, slots=True)
class Raised:
    rule: str
    vehicle: str
    fired_at: datetime
    severity: str = ""


@dataclass(slots=True)
class RuleScore:
    rule: str
    expected: int = 0
    detected: int = 0
    true_pos: int = 0
    false_pos: int = 0
    optional: int = 0  # alerts inside an optional label's window (neither TP nor FP)
    silent_violations: int = 0
    detect_s: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        raised = self.true_pos + self.false_pos
        return None if raised == 0 else self.true_pos / raised

    @property
    def recall(self) -> float | None:
        return None if self.expected == 0 else self.detected / self.expected

    @property
    def median_detect_s(self) -> float | None:
        return statistics.median(self.detect_s) if self.detect_s else None


@dataclass(frozen=True, slots=True)
class Report:
    rules: dict[str, RuleScore]
    missed: list[Truth]
    false_alarms: list[Raised]

    def min_precision(self) -> float:
        values = [r.precision for r in self.rules.values() if r.precision is not None]
        return min(values, default=1.0)

    def min_recall(self) -> float:
        values = [r.recall for r in self.rules.values() if r.recall is not None]
        return min(values, default=1.0)

    def median_detect_s(self) -> float:
        all_s = [s for r in self.rules.values() for s in r.detect_s]
        return statistics.median(all_s) if all_s else 0.0


def _inside(a: Raised, t: Truth) -> bool:
    return a.vehicle == t.vehicle and a.rule == t.rule and t.start <= a.fired_at <= t.end


def score(truths: Sequence[Truth], raised: Iterable[Raised]) -> Report:
    """Match alerts to labels; see the module docstring for the definitions."""
    alerts = list(raised)
    rules: dict[str, RuleScore] = {}

    def rule(name: str) -> RuleScore:
        return rules.setdefault(name, RuleScore(name))

    expected = [t for t in truths if t.expect == "alert"]
    silent = [t for t in truths if t.expect == "silent"]
    optional = [t for t in truths if t.expect == "optional"]
    missed: list[Truth] = []
    for t in expected:
        r = rule(t.rule)
        r.expected += 1
        hits = sorted(a.fired_at for a in alerts if _inside(a, t))
        if hits:
            r.detected += 1
            r.detect_s.append(max(0.0, (hits[0] - t.start).total_seconds()))
        else:
            missed.append(t)
    false_alarms: list[Raised] = []
    for a in alerts:
        r = rule(a.rule)
        if any(_inside(a, t) for t in expected):
            r.true_pos += 1
        elif any(_inside(a, t) for t in optional):
            r.optional += 1
        else:
            r.false_pos += 1
            false_alarms.append(a)
            if any(_inside(a, t) for t in silent):
                r.silent_violations += 1
    for t in silent:
        rule(t.rule)
    return Report(dict(sorted(rules.items())), missed, false_alarms)
