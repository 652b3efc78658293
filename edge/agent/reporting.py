"""When a gated fix becomes a report: moving, parked and chase-mode intervals.

Pure state machine over GNSS time. Every gated fix is offered; the decision
says whether it goes into the outbox. A change between moving and parked is
reported at once (trip start and end matter to the rules), and chase mode
(a signed command, or a local region violation) shortens the interval.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from protocols.messages import Fix


@dataclass(frozen=True, slots=True)
class ReportingRules:
    moving_interval: timedelta = timedelta(seconds=15)
    parked_interval: timedelta = timedelta(minutes=10)
    chase_interval: timedelta = timedelta(seconds=10)
    moving_speed_mps: float = 1.5


@dataclass(frozen=True, slots=True)
class ReportingState:
    last_report: datetime | None = None
    moving: bool | None = None
    chase_until: datetime | None = None  # from a signed command
    violation: bool = False  # a local region violation is active

    def chasing(self, at: datetime) -> bool:
        return self.violation or (self.chase_until is not None and at < self.chase_until)


def is_moving(fix: Fix, rules: ReportingRules) -> bool:
    return fix.speed_mps >= rules.moving_speed_mps or bool(fix.ignition)


def interval(state: ReportingState, at: datetime, moving: bool, rules: ReportingRules) -> timedelta:
    if state.chasing(at):
        return rules.chase_interval
    return rules.moving_interval if moving else rules.parked_interval


def step(state: ReportingState, fix: Fix, rules: ReportingRules) -> tuple[ReportingState, bool]:
    """Offer one gated fix; return the new state and whether to report it."""
    moving = is_moving(fix, rules)
    due = (
        state.last_report is None
        or moving != state.moving
        or fix.time - state.last_report >= interval(state, fix.time, moving, rules)
    )
    if not due:
        return state, False
    return replace(state, last_report=fix.time, moving=moving), True


def start_chase(state: ReportingState, until: datetime) -> ReportingState:
    return replace(state, chase_until=until)


def stop_chase(state: ReportingState) -> ReportingState:
    return replace(state, chase_until=None)


def set_violation(state: ReportingState, active: bool) -> ReportingState:
    return state if state.violation == active else replace(state, violation=active)
