"""A vehicle's risk score, 0-100, from its signals: explainable, decaying, saturating. Pure.

Each signal (an alert of a rule, or an anomaly-model verdict) has a **weight**
in [0, 1): the base weight of its severity times its rule's factor, capped
at 0.95 (no single signal is certainty), or an explicit override for that
rule and severity. The weight **decays** exponentially: half-life 30 days
while the signal is open, and 3 days from the moment it was resolved (a
resolved alert is evidence that the condition ended). The signals combine as
independent pieces of evidence::

    score = 100 x (1 - prod(1 - weight_i x decay_i))

so one fresh critical signal alone scores 85 (critical band), one high
signal 50, and many weak ones saturate towards 100 without ever exceeding
it (ten fresh warnings: 89). The reasons are the signals with the largest
weight now. Time comes from the caller (``now``): signals later than ``now``
are not yet evidence and are left out, so a replay gives the same scores.

Defaults and their reasoning are in docs/anomaly-model.md ("Risk score").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from cloud.risk.model import Severity

__all__ = [
    "ANOMALY_RULE",
    "DEFAULT_CONFIG",
    "RULE_FACTOR",
    "SEVERITY_WEIGHT",
    "Band",
    "Reason",
    "RiskScore",
    "RiskSignal",
    "ScoreConfig",
    "anomaly_signal",
    "band_of",
    "decay",
    "risk_changed",
    "risk_score",
    "weight_of",
]

ANOMALY_RULE = "anomaly_model"

SEVERITY_WEIGHT: Mapping[Severity, float] = MappingProxyType(
    {
        Severity.INFO: 0.05,  # 7 fresh infos reach medium (30)
        Severity.WARN: 0.20,  # 2 fresh warnings reach medium, 5 reach high (67)
        Severity.HIGH: 0.50,  # alone: medium, at the top of the band (50)
        Severity.CRITICAL: 0.85,  # alone: critical (85); still 42 a month later if open
    }
)

# How strongly a rule's signal speaks about the collateral, relative to its severity
# (the names the rules raise; a rule not listed has factor 1). > 1: direct evidence that
# the car is being hidden or sold; < 1: weak or indirect evidence (DOMAIN.md: GS + IP is
# "evidence to combine, never a verdict on its own").
RULE_FACTOR: Mapping[str, float] = MappingProxyType(
    {
        # the tracker is being defeated: the car is about to disappear
        "device_removed": 1.2,
        "tamper": 1.2,
        "tracker_on_other_vehicle": 1.2,
        "power_cut": 1.1,
        "device_separation": 1.1,
        "jamming": 1.1,
        # the car is being pledged or sold (二押, pawnshop, used-car market)
        "risk_poi_stay": 1.1,
        "risk_poi_visit": 1.0,
        "gathering": 1.0,
        # the car is where the loan says it should not be
        "region_exit": 1.0,
        "forbidden_zone": 1.0,
        "relocation": 1.0,
        "spoofing": 1.0,
        # behaviour that often has an innocent explanation
        "not_home": 0.8,
        "offline": 0.8,
        ANOMALY_RULE: 0.75,
        "night_anomaly": 0.7,
        "long_stationary": 0.6,
        "unauthorized_terminal": 0.5,
        "low_battery": 0.4,
        "gs_ip_mismatch": 0.4,
        # information, not risk
        "resident_learned": 0.0,
    }
)


class Band(StrEnum):
    LOW = "low"  # < 30
    MEDIUM = "medium"  # 30 <= score < 60
    HIGH = "high"  # 60 <= score < 80
    CRITICAL = "critical"  # >= 80


_BAND_FLOORS = ((80.0, Band.CRITICAL), (60.0, Band.HIGH), (30.0, Band.MEDIUM))


def band_of(score: float) -> Band:
    for floor, band in _BAND_FLOORS:
        if score >= floor:
            return band
    return Band.LOW


@dataclass(frozen=True, slots=True)
class ScoreConfig:
    severity_weight: Mapping[Severity, float] = field(default_factory=lambda: SEVERITY_WEIGHT)
    rule_factor: Mapping[str, float] = field(default_factory=lambda: RULE_FACTOR)
    overrides: Mapping[tuple[str, Severity], float] = field(
        default_factory=lambda: MappingProxyType({})
    )  # exact weight for (rule, severity), e.g. a tenant's own judgement
    max_weight: float = 0.95
    half_life: timedelta = timedelta(days=30)
    resolved_half_life: timedelta = timedelta(days=3)
    min_reason_weight: float = 0.005  # below this a signal is no longer listed as a reason
    top_reasons: int = 5
    change_points: float = 10.0  # |delta| that is worth a vehicle.risk_changed event


DEFAULT_CONFIG = ScoreConfig()


@dataclass(frozen=True, slots=True)
class RiskSignal:
    """What the score needs of an alert (or of an anomaly verdict)."""

    rule: str
    severity: Severity
    time: datetime  # GNSS time the evidence was seen (or last raised)
    resolved_at: datetime | None = None
    episode: str = ""  # same (rule, episode) = same alert: counted once


@dataclass(frozen=True, slots=True)
class Reason:
    rule: str
    severity: Severity
    episode: str
    time: datetime
    resolved: bool
    weight: float  # when fresh
    weight_now: float  # after decay

    @property
    def points(self) -> float:
        """What this signal alone would score now."""
        return round(100 * self.weight_now, 1)


@dataclass(frozen=True, slots=True)
class RiskScore:
    score: float  # 0-100, one decimal
    band: Band
    reasons: tuple[Reason, ...]  # largest weight now first


def weight_of(rule: str, severity: Severity, config: ScoreConfig = DEFAULT_CONFIG) -> float:
    """A fresh signal's weight: the override, else severity weight x rule factor, capped."""
    override = config.overrides.get((rule, severity))
    if override is not None:
        return min(max(override, 0.0), config.max_weight)
    raw = config.severity_weight[severity] * config.rule_factor.get(rule, 1.0)
    return min(max(raw, 0.0), config.max_weight)


def _halvings(span: timedelta, half_life: timedelta) -> float:
    return max(span, timedelta()) / half_life


def decay(signal: RiskSignal, now: datetime, config: ScoreConfig = DEFAULT_CONFIG) -> float:
    """Share of the weight left at ``now``: open-rate decay until resolved, then the fast rate."""
    resolved = signal.resolved_at is not None and signal.resolved_at <= now
    open_until = signal.resolved_at if resolved and signal.resolved_at else now
    halvings = _halvings(open_until - signal.time, config.half_life)
    if resolved and signal.resolved_at is not None:
        halvings += _halvings(now - max(signal.resolved_at, signal.time), config.resolved_half_life)
    return float(0.5**halvings)


def risk_score(
    signals: Iterable[RiskSignal], now: datetime, config: ScoreConfig = DEFAULT_CONFIG
) -> RiskScore:
    """The score at ``now`` and its reasons (see the module docstring)."""
    best: dict[tuple[str, str], Reason] = {}
    for n, sig in enumerate(signals):
        if sig.time > now:
            continue
        weight = weight_of(sig.rule, sig.severity, config)
        reason = Reason(
            rule=sig.rule,
            severity=sig.severity,
            episode=sig.episode,
            time=sig.time,
            resolved=sig.resolved_at is not None and sig.resolved_at <= now,
            weight=weight,
            weight_now=weight * decay(sig, now, config),
        )
        key = (sig.rule, sig.episode or f"#{n}")  # no episode: every signal counts
        if key not in best or reason.weight_now > best[key].weight_now:
            best[key] = reason
    remaining = 1.0
    for reason in best.values():
        remaining *= 1.0 - reason.weight_now
    score = round(100.0 * (1.0 - remaining), 1)
    ranked = sorted(best.values(), key=lambda r: (-r.weight_now, r.rule, r.episode))
    reasons = tuple(r for r in ranked if r.weight_now >= config.min_reason_weight)
    return RiskScore(score, band_of(score), reasons[: config.top_reasons])


def risk_changed(
    old: RiskScore | None, new: RiskScore, config: ScoreConfig = DEFAULT_CONFIG
) -> bool:
    """Whether ``new`` deserves a ``vehicle.risk_changed`` event: band change or |delta| >= 10.

    A vehicle never scored before counts as 0 (low).
    """
    old_score = old.score if old is not None else 0.0
    old_band = old.band if old is not None else Band.LOW
    return new.band != old_band or abs(new.score - old_score) >= config.change_points


def anomaly_signal(
    day_end: datetime,
    *,
    score: float,
    is_anomaly: bool,
    high_score: float = 0.75,
    episode: str = "",
) -> RiskSignal | None:
    """An anomaly-model verdict as a signal (None for a normal day).

    A verdict describes a finished day, so the signal is resolved at the day's
    end and decays at the resolved rate: a single odd day fades within a
    week, while odd days that keep coming add up. A score of ``high_score``
    or more (a day isolated in very few splits) counts as high, else warn.
    """
    if not is_anomaly:
        return None
    severity = Severity.HIGH if score >= high_score else Severity.WARN
    return RiskSignal(ANOMALY_RULE, severity, day_end, resolved_at=day_end, episode=episode)
