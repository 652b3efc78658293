"""Runs the rule catalogue over one vehicle's inputs: pure, no I/O, no clock.

The engine keeps every rule's state together as one :class:`VehicleState`,
orders inputs by :func:`input_key` (GNSS time first), and takes a snapshot of
the state whenever GNSS time enters a new hour, so the worker can re-run late
data from the snapshot before it (``DESIGN.md`` contract 3: late data gives
the answer live data would have given).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from cloud.risk.model import EventIn, FixIn, RuleInput, Signal, Tick, VehicleContext
from cloud.risk.rules.base import CATALOGUE, Rule

# Bump when a rule's state layout changes incompatibly: stored states of an
# older version are dropped and the vehicle re-learns from its next inputs.
ENGINE_VERSION = 1

InputKey = tuple[int, int, str, int]  # (GNSS time in µs, 0 event / 1 fix, device id, seq)
AnyRule = Rule[Any, Any]
RuleConfigs = Mapping[str, msgspec.Struct]


def input_key(inp: FixIn | EventIn) -> InputKey:
    """Total order of a vehicle's inputs: GNSS time, events before fixes, device, seq."""
    micros = int(inp.time.timestamp() * 1_000_000)
    return (micros, 0 if isinstance(inp, EventIn) else 1, inp.device_id, inp.seq)


def encode_key(key: InputKey) -> bytes:
    return msgspec.msgpack.encode(key)


def decode_key(raw: bytes) -> InputKey:
    return msgspec.msgpack.decode(raw, type=tuple[int, int, str, int])


def default_configs(overrides: Mapping[str, Mapping[str, object]] | None = None) -> RuleConfigs:
    """Every rule's thresholds: ``DOMAIN.md`` defaults, then a tenant's partial overrides.

    Raises ``msgspec.ValidationError`` naming the field when an override is out of bounds.
    """
    configs: dict[str, msgspec.Struct] = {}
    for name, rule in CATALOGUE.items():
        base = msgspec.to_builtins(rule.config_type())
        extra = dict((overrides or {}).get(name, {}))
        configs[name] = msgspec.convert({**base, **extra}, rule.config_type)
    return configs


@dataclass(slots=True)
class VehicleState:
    """All rule states of one vehicle, and where in its input stream they stand."""

    rules: dict[str, msgspec.Struct] = field(default_factory=dict)
    pos: InputKey | None = None
    pos_time: datetime | None = None
    tick_time: datetime | None = None

    def encode(self) -> bytes:
        return msgspec.msgpack.encode(self.rules)

    @classmethod
    def decode(
        cls,
        raw: bytes,
        pos: InputKey | None,
        pos_time: datetime | None,
        catalogue: Mapping[str, AnyRule] | None = None,
    ) -> VehicleState:
        """Restore; rules missing from ``raw`` (new rules) start from their initial state."""
        known = CATALOGUE if catalogue is None else catalogue
        parts = msgspec.msgpack.decode(raw, type=dict[str, msgspec.Raw])
        rules: dict[str, msgspec.Struct] = {}
        for name, blob in parts.items():
            rule = known.get(name)
            if rule is not None:
                rules[name] = msgspec.msgpack.decode(blob, type=rule.state_type)
        return cls(rules, pos, pos_time)


@dataclass(frozen=True, slots=True)
class Snapshot:
    pos: InputKey
    pos_time: datetime
    state: bytes


@dataclass(slots=True)
class RunResult:
    state: VehicleState
    signals: list[Signal]
    snapshots: list[Snapshot]
    inputs: int
    errors: list[tuple[str, str]]  # (rule, error) for rules that raised; the run goes on


def _step_all(
    state: VehicleState,
    inp: RuleInput,
    ctx: VehicleContext,
    configs: RuleConfigs,
    rules: Sequence[AnyRule],
    out: list[Signal],
    errors: list[tuple[str, str]],
) -> None:
    for rule in rules:
        current = state.rules.get(rule.name)
        if current is None:
            current = rule.state_type()
        try:
            new, signals = rule.step(current, inp, ctx, configs[rule.name])
        except Exception as exc:  # a rule bug must not stop the others or lose the input
            errors.append((rule.name, f"{type(exc).__name__}: {exc}"))
            continue
        state.rules[rule.name] = new
        out.extend(signals)


def _hour(key: InputKey) -> int:
    return key[0] // 3_600_000_000


def run(
    state: VehicleState,
    inputs: Iterable[FixIn | EventIn],
    ctx: VehicleContext,
    configs: RuleConfigs,
    *,
    tick: datetime | None = None,
    rules: Sequence[AnyRule] | None = None,
) -> RunResult:
    """Step every rule over the inputs after ``state.pos``, in key order, then ``tick``.

    Inputs at or before ``state.pos`` are skipped (already run). A snapshot is
    taken before the first input of each new GNSS hour.
    """
    active = list(CATALOGUE.values()) if rules is None else list(rules)
    ordered = sorted(((input_key(i), i) for i in inputs), key=lambda p: p[0])
    signals: list[Signal] = []
    snapshots: list[Snapshot] = []
    errors: list[tuple[str, str]] = []
    count = 0
    for key, inp in ordered:
        if state.pos is not None and key <= state.pos:
            continue
        if state.pos is not None and state.pos_time is not None and _hour(key) != _hour(state.pos):
            snapshots.append(Snapshot(state.pos, state.pos_time, state.encode()))
        _step_all(state, inp, ctx, configs, active, signals, errors)
        state.pos, state.pos_time = key, inp.time
        count += 1
    if tick is not None and (state.pos_time is None or tick > state.pos_time):
        _step_all(state, Tick(tick), ctx, configs, active, signals, errors)
        state.tick_time = tick
    return RunResult(state, signals, snapshots, count, errors)
