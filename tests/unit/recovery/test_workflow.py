"""The case workflow table: every (status, action) pair is allowed as listed here, or refused."""

from __future__ import annotations

import itertools

import pytest

from cloud.recovery.workflow import (
    HISTORY_ACTION,
    MAX_CHASE_S,
    REQUIRED,
    TRANSITIONS,
    Action,
    CaseError,
    Status,
    allowed_actions,
    transition,
)

S, A = Status, Action

# Written out independently of the module's table: the workflow as the issue states it.
EXPECTED = {
    (S.OPEN, A.ASSIGN): S.ASSIGNED,
    (S.ASSIGNED, A.ASSIGN): S.ASSIGNED,
    (S.ASSIGNED, A.CHASE): S.CHASING,
    (S.CHASING, A.CHASE): S.CHASING,
    (S.LOCATED, A.CHASE): S.CHASING,
    (S.CHASING, A.STOP_CHASE): S.ASSIGNED,
    (S.LOCATED, A.STOP_CHASE): S.LOCATED,
    (S.ASSIGNED, A.LOCATE): S.LOCATED,
    (S.CHASING, A.LOCATE): S.LOCATED,
    (S.LOCATED, A.RECOVER): S.RECOVERED,
    (S.CHASING, A.FAIL): S.FAILED,
    (S.LOCATED, A.FAIL): S.FAILED,
    (S.RECOVERED, A.CLOSE): S.CLOSED,
    (S.FAILED, A.CLOSE): S.CLOSED,
    (S.OPEN, A.CANCEL): S.CLOSED,
    (S.ASSIGNED, A.CANCEL): S.CLOSED,
    (S.CHASING, A.CANCEL): S.CLOSED,
    (S.LOCATED, A.CANCEL): S.CLOSED,
}
FIELDS = {"assignee": "team-7", "duration_s": 3600, "lat": 31.23, "lon": 121.47, "reason": "paid"}
ALL_PAIRS = list(itertools.product(Status, Action))


def test_the_table_is_the_documented_workflow() -> None:
    assert dict(TRANSITIONS) == EXPECTED


@pytest.mark.parametrize(("status", "action"), sorted(EXPECTED), ids=lambda v: v.value)
def test_allowed(status: Status, action: Action) -> None:
    move = transition(status, action, "alice", FIELDS)
    assert (move.from_status, move.action, move.to_status) == (
        status, action, EXPECTED[status, action],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("status", "action"), [p for p in ALL_PAIRS if p not in EXPECTED], ids=lambda v: v.value
)
def test_forbidden(status: Status, action: Action) -> None:
    with pytest.raises(CaseError) as info:
        transition(status, action, "alice", FIELDS)
    assert info.value.code == "forbidden_transition"
    assert f"cannot {action.value} a case that is {status.value}" in info.value.message


def test_closed_is_final() -> None:
    assert allowed_actions(S.CLOSED) == []
    with pytest.raises(CaseError, match=r"allowed: none"):
        transition("closed", "assign", "alice", FIELDS)


def test_cancel_is_the_only_way_to_close_an_unfinished_case() -> None:
    for status in (S.OPEN, S.ASSIGNED, S.CHASING, S.LOCATED):
        assert TRANSITIONS.get((status, A.CLOSE)) is None
        assert TRANSITIONS[status, A.CANCEL] is S.CLOSED
    for status in (S.RECOVERED, S.FAILED):
        assert TRANSITIONS.get((status, A.CANCEL)) is None


@pytest.mark.parametrize(
    ("status", "action", "missing"),
    [
        (S.OPEN, A.ASSIGN, "assignee"),
        (S.ASSIGNED, A.CHASE, "duration_s"),
        (S.CHASING, A.LOCATE, "lat"),
        (S.CHASING, A.LOCATE, "lon"),
        (S.OPEN, A.CANCEL, "reason"),
    ],
)
def test_required_fields(status: Status, action: Action, missing: str) -> None:
    fields = {k: v for k, v in FIELDS.items() if k != missing}
    with pytest.raises(CaseError) as info:
        transition(status, action, "alice", fields)
    assert (info.value.code, info.value.message) == ("missing_field", f"{action} needs {missing}")
    blank = {**FIELDS, missing: ""}
    with pytest.raises(CaseError, match="missing_field"):
        transition(status, action, "alice", blank)


def test_required_fields_cover_every_action_that_needs_one() -> None:
    assert set(REQUIRED) == {A.ASSIGN, A.CHASE, A.LOCATE, A.CANCEL}
    assert set(HISTORY_ACTION) == set(Action)


@pytest.mark.parametrize("actor", ["", "   "])
def test_actor_is_required(actor: str) -> None:
    with pytest.raises(CaseError) as info:
        transition(S.OPEN, A.ASSIGN, actor, FIELDS)
    assert info.value.code == "missing_field"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("duration_s", 0),
        ("duration_s", -5),
        ("duration_s", MAX_CHASE_S + 1),
        ("duration_s", 1.5),
        ("duration_s", True),
        ("lat", 91.0),
        ("lon", -180.5),
        ("lat", float("nan")),
        ("lon", "121.4"),
        ("assignee", "x" * 501),
        ("reason", 7),
    ],
)
def test_invalid_fields(field: str, value: object) -> None:
    with pytest.raises(CaseError) as info:
        transition(S.ASSIGNED, A.CHASE, "alice", {**FIELDS, field: value})
    assert info.value.code == "invalid_field"


def test_strings_are_accepted_for_status_and_action() -> None:
    move = transition("located", "recover", "bob", {})
    assert move.to_status is S.RECOVERED
    with pytest.raises(ValueError, match="not a valid Status"):
        transition("lost", "recover", "bob", {})
