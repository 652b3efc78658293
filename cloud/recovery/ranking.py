"""The recovery queue's order: a score-weighted expected loss. Pure code.

::

    priority = (score / 100) ** 3  x  exposure  x  status_factor

- ``score`` is the vehicle's risk score, 0-100 (``vehicle_risk``; 0 when the
  vehicle has none). Cubed, it acts as a steep loss likelihood: 0 at score 0,
  0.001 at 10, 0.125 at 50, 0.51 at 80, 1 at 100. Doubling the score
  multiplies the priority by 8, so risk leads and the loan size refines: a
  car with no risk signal has priority 0 whatever its loan, and a car at
  score 40 needs a loan 8 times larger to outrank the same loan at score 80.
- ``exposure`` is the loan's outstanding balance. A loan with no outstanding
  recorded is taken at the median outstanding of the ranked loans (1 when
  none has one), so a missing figure neither buries nor promotes a car.
- ``status_factor``: ``current`` 1, ``overdue`` 2, ``default`` 4. Closed
  loans are not in the queue at all. A defaulted loan counts as much as a
  current one whose car scores 1.59x higher (4 ** (1/3)).

Ties (all the zero priorities, for one) are broken by score, then loan
status, then outstanding, then vehicle id, so the order is total and stable.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

RISK_EXPONENT = 3
STATUS_FACTOR: Mapping[str, float] = {"current": 1.0, "overdue": 2.0, "default": 4.0}
RANKED_STATUSES = tuple(STATUS_FACTOR)


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the order needs to know of one vehicle and its (not closed) loan."""

    vehicle_id: int
    loan_status: str
    outstanding: Decimal | float | None
    score: float


@dataclass(frozen=True, slots=True)
class Ranked:
    candidate: Candidate
    exposure: float  # the outstanding used (the median when the loan has none)
    priority: float


def risk_weight(score: float) -> float:
    """``(score / 100) ** 3``, the score clamped to 0-100."""
    return (min(max(score, 0.0), 100.0) / 100.0) ** RISK_EXPONENT


def status_factor(loan_status: str) -> float:
    """``current`` 1, ``overdue`` 2, ``default`` 4; ValueError for others (closed is not ranked)."""
    try:
        return STATUS_FACTOR[loan_status]
    except KeyError:
        raise ValueError(f"loan status {loan_status!r} is not ranked") from None


def priority(score: float, exposure: float, loan_status: str) -> float:
    """The expected-loss priority of one vehicle (see the module docstring)."""
    return risk_weight(score) * max(exposure, 0.0) * status_factor(loan_status)


def rank(candidates: Sequence[Candidate]) -> list[Ranked]:
    """Candidates in queue order, highest priority first."""
    known = [float(c.outstanding) for c in candidates if c.outstanding is not None]
    typical = statistics.median(known) if known else 1.0
    ranked = []
    for c in candidates:
        exposure = typical if c.outstanding is None else float(c.outstanding)
        ranked.append(Ranked(c, exposure, priority(c.score, exposure, c.loan_status)))
    ranked.sort(
        key=lambda r: (
            -r.priority,
            -r.candidate.score,
            -status_factor(r.candidate.loan_status),
            -r.exposure,
            r.candidate.vehicle_id,
        )
    )
    return ranked
