"""The queue's order: score-weighted expected loss, loan status, ties."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cloud.recovery.ranking import Candidate, priority, rank, risk_weight, status_factor


def order(*candidates: Candidate) -> list[int]:
    return [r.candidate.vehicle_id for r in rank(candidates)]


def test_risk_weight_is_the_cubed_score() -> None:
    assert risk_weight(0) == 0.0
    assert risk_weight(50) == pytest.approx(0.125)
    assert risk_weight(100) == 1.0
    assert risk_weight(-5) == 0.0
    assert risk_weight(140) == 1.0


def test_priority_formula() -> None:
    assert priority(80, 200_000, "current") == pytest.approx(0.512 * 200_000)
    assert priority(80, 200_000, "overdue") == pytest.approx(2 * 0.512 * 200_000)
    assert priority(80, 200_000, "default") == pytest.approx(4 * 0.512 * 200_000)
    assert priority(80, -10, "current") == 0.0
    with pytest.raises(ValueError, match="closed"):
        status_factor("closed")


def test_a_huge_loan_without_risk_never_tops_the_list() -> None:
    huge = Candidate(1, "default", Decimal("50000000.00"), 0.0)
    small_risky = Candidate(2, "current", Decimal("30000.00"), 35.0)
    assert priority(0.0, 5e7, "default") == 0.0
    assert order(huge, small_risky) == [2, 1]


def test_risk_leads_and_exposure_refines() -> None:
    # Score 40 needs more than 8x the loan of score 80 to outrank it.
    a = Candidate(1, "current", Decimal("100000"), 80.0)
    b = Candidate(2, "current", Decimal("790000"), 40.0)
    c = Candidate(3, "current", Decimal("810000"), 40.0)
    assert order(a, b) == [1, 2]
    assert order(a, c) == [3, 1]


def test_overdue_and_default_rank_up() -> None:
    current = Candidate(1, "current", Decimal("100000"), 70.0)
    overdue = Candidate(2, "overdue", Decimal("100000"), 60.0)  # 2 x 0.216 = 0.432
    default = Candidate(3, "default", Decimal("100000"), 45.0)  # 4 x 0.091 = 0.365
    assert order(current, overdue, default) == [2, 3, 1]  # 0.432 > 0.365 > 0.343
    assert order(current, Candidate(4, "default", Decimal("100000"), 40.0)) == [1, 4]


def test_missing_outstanding_is_taken_at_the_median() -> None:
    known = [Candidate(i, "current", Decimal(v), 50.0) for i, v in
             ((1, "100000"), (2, "200000"), (3, "300000"))]  # fmt: skip
    unknown = Candidate(4, "current", None, 50.0)
    ranked = rank([*known, unknown])
    by_id = {r.candidate.vehicle_id: r for r in ranked}
    assert by_id[4].exposure == 200_000.0
    assert [r.candidate.vehicle_id for r in ranked] == [3, 2, 4, 1]  # tie 2/4: vehicle id
    # Only unknown figures: ranked by score and status alone.
    assert order(Candidate(1, "current", None, 30.0), Candidate(2, "current", None, 60.0)) == [
        2, 1,
    ]  # fmt: skip


def test_ties_break_by_score_status_outstanding_then_id() -> None:
    zero = [
        Candidate(5, "current", Decimal("1000"), 0.0),
        Candidate(4, "default", Decimal("1000"), 0.0),
        Candidate(3, "current", Decimal("9000"), 0.0),
        Candidate(2, "current", Decimal("1000"), 0.0),
    ]
    assert order(*zero) == [4, 3, 2, 5]
    same = [
        Candidate(9, "current", Decimal("0"), 90.0),
        Candidate(8, "current", Decimal("0"), 20.0),
    ]
    assert order(*same) == [9, 8]
