"""The recovery-case workflow as one table: which action moves a case from which status to which.

Pure code: no database, no clock. The service (:mod:`cloud.recovery.cases`)
asks :func:`transition` before it changes anything, so a forbidden move or a
missing field is refused with the same :class:`CaseError` everywhere.

::

    open -assign-> assigned -chase-> chasing -locate-> located -recover-> recovered -close-> closed
                                        |                  |                                  ^
                                        +------fail--------+----fail----> failed ----close----+

    open | assigned | chasing | located  -cancel (with a reason)->  closed (outcome "cancelled")

Besides the main line: ``assign`` again in ``assigned`` (reassign);
``chase`` again in ``chasing`` (re-send or extend) and from ``located`` (the
car moved again); ``locate`` straight from ``assigned`` (found without a
chase); ``stop_chase`` takes ``chasing`` back to ``assigned`` and, in
``located``, switches chase mode off without changing the status.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

MAX_CHASE_S = 24 * 3600  # the agent caps chase mode at 24 h (edge/agent/commands.py)
MAX_TEXT = 500


class CaseError(Exception):
    """A case operation was refused; ``code`` is stable, ``message`` says why.

    Codes: ``not_found`` (no such case or vehicle in this tenant, including
    another tenant's), ``forbidden_transition``, ``missing_field``,
    ``invalid_field``, ``already_open``, ``no_devices``, ``no_signing_key``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Status(StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    CHASING = "chasing"
    LOCATED = "located"
    RECOVERED = "recovered"
    FAILED = "failed"
    CLOSED = "closed"


class Action(StrEnum):
    ASSIGN = "assign"
    CHASE = "chase"
    STOP_CHASE = "stop_chase"
    LOCATE = "locate"
    RECOVER = "recover"
    FAIL = "fail"
    CLOSE = "close"  # a finished case (recovered / failed) is closed
    CANCEL = "cancel"  # an unfinished case is closed as cancelled, with a reason


S, A = Status, Action
TRANSITIONS: Mapping[tuple[Status, Action], Status] = {
    (S.OPEN, A.ASSIGN): S.ASSIGNED,
    (S.ASSIGNED, A.ASSIGN): S.ASSIGNED,  # reassign
    (S.ASSIGNED, A.CHASE): S.CHASING,
    (S.CHASING, A.CHASE): S.CHASING,  # re-send or extend chase mode
    (S.LOCATED, A.CHASE): S.CHASING,  # the car moved again before it was recovered
    (S.CHASING, A.STOP_CHASE): S.ASSIGNED,
    (S.LOCATED, A.STOP_CHASE): S.LOCATED,
    (S.ASSIGNED, A.LOCATE): S.LOCATED,  # found without chasing (e.g. at the resident point)
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
"""Every allowed ``(from, action) -> to``; anything absent is forbidden."""

REQUIRED: Mapping[Action, tuple[str, ...]] = {
    A.ASSIGN: ("assignee",),
    A.CHASE: ("duration_s",),
    A.LOCATE: ("lat", "lon"),
    A.CANCEL: ("reason",),
}
"""Fields an action cannot do without (besides the actor, always required)."""

HISTORY_ACTION: Mapping[Action, str] = {
    A.ASSIGN: "assigned",
    A.CHASE: "chase_started",
    A.STOP_CHASE: "chase_stopped",
    A.LOCATE: "located",
    A.RECOVER: "recovered",
    A.FAIL: "failed",
    A.CLOSE: "closed",
    A.CANCEL: "cancelled",
}
"""The ``case_history.action`` each workflow action is recorded as."""


@dataclass(frozen=True, slots=True)
class Move:
    """An allowed transition with its checked fields."""

    action: Action
    from_status: Status
    to_status: Status
    fields: Mapping[str, object]


def allowed_actions(status: Status) -> list[Action]:
    """The actions a case in ``status`` accepts, in table order."""
    return [action for (frm, action) in TRANSITIONS if frm is status]


def transition(
    status: Status | str, action: Action | str, actor: str, fields: Mapping[str, object]
) -> Move:
    """Check one move; raise :class:`CaseError` when it is forbidden or a field is wrong."""
    current, act = Status(status), Action(action)
    _check_text("actor", actor, required=True)
    target = TRANSITIONS.get((current, act))
    if target is None:
        options = ", ".join(a.value for a in allowed_actions(current)) or "none"
        raise CaseError(
            "forbidden_transition",
            f"cannot {act.value} a case that is {current.value} (allowed: {options})",
        )
    for name in REQUIRED.get(act, ()):
        if fields.get(name) is None or fields.get(name) == "":
            raise CaseError("missing_field", f"{act.value} needs {name}")
    check_input(actor, fields)
    return Move(act, current, target, dict(fields))


def check_input(actor: str, fields: Mapping[str, object]) -> None:
    """Check the actor and any known field present (text length, ranges, types)."""
    _check_text("actor", actor, required=True)
    for name in ("assignee", "reason", "note"):
        if fields.get(name) is not None:
            _check_text(name, fields[name], required=False)
    if fields.get("duration_s") is not None:
        duration = fields["duration_s"]
        if not isinstance(duration, int) or isinstance(duration, bool):
            raise CaseError("invalid_field", "duration_s must be a whole number of seconds")
        if not 0 < duration <= MAX_CHASE_S:
            raise CaseError(
                "invalid_field", f"duration_s must be 1..{MAX_CHASE_S} (got {duration})"
            )
    for name, bound in (("lat", 90.0), ("lon", 180.0)):
        value = fields.get(name)
        if value is None:
            continue
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or abs(value) > bound
        ):
            raise CaseError("invalid_field", f"{name} must be a number in -{bound:g}..{bound:g}")


def _check_text(name: str, value: object, *, required: bool) -> None:
    if not isinstance(value, str):
        raise CaseError("invalid_field", f"{name} must be text")
    if required and not value.strip():
        raise CaseError("missing_field", f"{name} is required")
    if len(value) > MAX_TEXT:
        raise CaseError("invalid_field", f"{name} is longer than {MAX_TEXT} characters")
