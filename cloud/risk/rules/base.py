"""The shape every rule has, and the catalogue they register in by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from cloud.risk.model import RuleInput, Signal, VehicleContext

S = TypeVar("S", bound=msgspec.Struct)
C = TypeVar("C", bound=msgspec.Struct)

StepResult = tuple[S, Sequence[Signal]]


@dataclass(frozen=True, slots=True)
class Rule(Generic[S, C]):
    """A pure state machine: ``step(state, input, context, config) -> (state, signals)``.

    ``step`` must not read the clock or do I/O; time comes from the input.
    ``state_type()`` must give the initial state. Signals' ``rule`` is usually
    ``name`` but one rule may raise several signal kinds (e.g. the resident
    area rule raises ``not_home`` and ``relocation``); list them in ``raises``.
    """

    name: str
    state_type: type[S]
    config_type: type[C]
    step: Callable[[S, RuleInput, VehicleContext, C], tuple[S, Sequence[Signal]]]
    raises: tuple[str, ...]
    description: str
    # Event kinds the rule reads; None: every event. The engine does not step a rule
    # on other events (heartbeats are half of all inputs and most rules ignore them).
    events: frozenset[str] | None = None


CATALOGUE: dict[str, Rule[Any, Any]] = {}


def register(rule: Rule[S, C]) -> Rule[S, C]:
    """Add a rule to :data:`CATALOGUE` (a name may be registered once)."""
    if rule.name in CATALOGUE:
        raise ValueError(f"rule {rule.name!r} registered twice")
    CATALOGUE[rule.name] = rule
    return rule
