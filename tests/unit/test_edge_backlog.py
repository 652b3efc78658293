"""edge.agent.backlog: marks of records stored while the modem had no link."""

from __future__ import annotations

from edge.agent import backlog
from edge.agent.backlog import BacklogMarks


def test_runs_grow_in_order_and_answer_membership() -> None:
    marks = BacklogMarks()
    for seq in (*range(10, 20), *range(40, 43)):
        marks.mark(seq)
    assert len(marks) == 2
    assert [s for s in range(0, 50) if s in marks] == [*range(10, 20), *range(40, 43)]
    marks.mark(15)  # already marked: nothing changes
    marks.mark(5)  # out of order: its own run, kept sorted
    assert len(marks) == 3
    assert 5 in marks
    assert 6 not in marks
    assert "5" not in marks


def test_the_oldest_runs_are_forgotten_past_the_bound() -> None:
    marks = BacklogMarks()
    for i in range(backlog.MAX_RUNS + 3):
        marks.mark(i * 10)  # every mark its own run
    assert len(marks) == backlog.MAX_RUNS
    assert 0 not in marks
    assert 20 not in marks
    assert 30 in marks
    assert (backlog.MAX_RUNS + 2) * 10 in marks
