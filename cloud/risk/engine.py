"""Runs the rule catalogue over one vehicle's inputs: pure, no I/O, no clock.

The engine keeps every rule's state together as one :class:`VehicleState`,
orders inputs by :func:`input_key` (GNSS time first), and takes a snapshot of
the state whenever GNSS time enters a new hour, so the worker can re-run late
data from the snapshot before it (``DESIGN.md`` contract 3: late data gives
the answer live data would have given).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
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


# A rule as the loop calls it: name, step, initial state, config, event kinds it reads.
_Planned = tuple[
    str, Callable[..., tuple[Any, Sequence[Signal]]], Callable[[], Any], Any, frozenset[str] | None
]


def _missing_config(name: str) -> Callable[..., tuple[Any, Sequence[Signal]]]:
    def step(*_: object) -> tuple[Any, Sequence[Signal]]:
        raise KeyError(name)  # as ``configs[name]`` would: recorded as the rule's error

    return step


def _plan(rules: Sequence[AnyRule], configs: RuleConfigs) -> list[_Planned]:
    """What the loop needs of each rule, looked up once per run instead of per input."""
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"a rule may run once per input: {names}")
    return [
        (r.name, r.step, r.state_type, configs[r.name], r.events)
        if r.name in configs
        else (r.name, _missing_config(r.name), r.state_type, None, r.events)
        for r in rules
    ]


_HOUR_US = 3_600_000_000


def _hour(key: InputKey) -> int:
    return key[0] // _HOUR_US


@dataclass(slots=True)
class _Trace:
    """One rule's run over the inputs: its state before each snapshot and at the end (None:
    not stepped without error yet, so not in the state dict), and its first good step."""

    before_cut: list[msgspec.Struct | None]
    final: msgspec.Struct | None = None
    first_ok: int = -1


def _run_rule(
    rule: _Planned,
    k: int,
    current: msgspec.Struct | None,
    seen: _Seen,
    ctx: VehicleContext,
    out: list[tuple[int, int, Sequence[Signal]]],
    errors: list[tuple[int, int, str, str]],
) -> _Trace:
    """Step rule ``k`` over the inputs it reads; signals and errors tagged (input, rule).

    A step returns a state (``Rule.step``'s type): once the rule has one, ``None`` is not
    looked for again (it would be passed on, where the input-by-input loop restarted)."""
    name, step, initial, config, _ = rule
    trace = _Trace([])
    where, items, bounds = seen
    for c in range(len(bounds) - 1):
        if c:
            trace.before_cut.append(current)
        i, end = bounds[c], bounds[c + 1]
        while current is None and i < end:  # no good step yet: each try starts afresh
            try:
                current, signals = step(initial(), items[i], ctx, config)
            except Exception as exc:  # a rule bug must not stop the others or lose the input
                errors.append((where[i], k, name, f"{type(exc).__name__}: {exc}"))
            else:
                trace.first_ok = where[i]
                if signals:
                    out.append((where[i], k, signals))
            i += 1
        for n, inp in zip(where[i:end], items[i:end], strict=True):
            try:
                current, signals = step(current, inp, ctx, config)
            except Exception as exc:
                errors.append((n, k, name, f"{type(exc).__name__}: {exc}"))
                continue
            if signals:
                out.append((n, k, signals))
    trace.final = current
    return trace


# The inputs a rule reads: their indexes in the run, the inputs, and where each
# snapshot segment begins and ends in them (0, the cuts, the count).
_Seen = tuple[Sequence[int], Sequence[RuleInput], list[int]]


class _Reads:
    """The inputs each rule is stepped on: all of them for a rule reading every event kind,
    else the fixes and ticks plus the events of the kinds it declares. Inputs are sorted
    into kinds once per run; each distinct declaration is then a merge of a few lists."""

    def __init__(self, todo: Sequence[RuleInput], cuts: Sequence[int]) -> None:
        self._todo, self._cuts = todo, cuts
        self._others: list[int] = []  # fixes and ticks
        self._kinds: dict[str, list[int]] = {}
        self._seen: dict[frozenset[str] | None, _Seen] = {}
        others, kinds = self._others, self._kinds
        for n, inp in enumerate(todo):
            if isinstance(inp, EventIn):
                found = kinds.get(inp.kind)
                if found is None:
                    kinds[inp.kind] = [n]
                else:
                    found.append(n)
            else:
                others.append(n)

    def of(self, events: frozenset[str] | None) -> _Seen:
        seen = self._seen.get(events)
        if seen is None:
            seen = self._seen[events] = self._select(events)
        return seen

    def _select(self, events: frozenset[str] | None) -> _Seen:
        todo, cuts = self._todo, self._cuts
        if events is None:
            return range(len(todo)), todo, [0, *cuts, len(todo)]
        parts = [self._kinds[kind] for kind in sorted(events) if kind in self._kinds]
        where = self._others
        if parts:
            where = sorted(where + [n for part in parts for n in part])  # runs: merged in O(n)
        items = list(map(todo.__getitem__, where))
        return where, items, [0, *(bisect_left(where, c) for c in cuts), len(where)]


def _layout(
    start: Mapping[str, msgspec.Struct], plan: Sequence[_Planned], traces: Sequence[_Trace]
) -> list[tuple[str, int]]:
    """The keys of the state dict as stepping input by input would have left it, in order,
    each with its rule's place in the plan (-1: a stored rule not run now): the stored keys
    keep their places, and a rule's key is added when it first stepped without error."""
    index = {rule[0]: k for k, rule in enumerate(plan)}
    slots = [(name, index.get(name, -1)) for name in start]
    fresh = sorted(
        (t.first_ok, k) for k, t in enumerate(traces) if t.first_ok >= 0 and plan[k][0] not in start
    )
    slots += [(plan[k][0], k) for _, k in fresh]
    return slots


def _merged(
    start: Mapping[str, msgspec.Struct],
    layout: Sequence[tuple[str, int]],
    states: Sequence[msgspec.Struct | None],
) -> dict[str, msgspec.Struct]:
    """The state dict with these rule states (None: not stepped without error yet, so the
    stored state, or no key for a rule that had none)."""
    rules: dict[str, msgspec.Struct] = {}
    for name, k in layout:
        value = states[k] if k >= 0 else None
        if value is None:
            value = start.get(name)
            if value is None:
                continue
        rules[name] = value
    return rules


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
    taken before the first input of each new GNSS hour. A rule's name may
    appear once in ``rules`` (ValueError otherwise).

    The result is that of stepping every rule over one input, then the next
    input; but as rules are independent (each sees only its own state, the
    input and the immutable context), each rule runs over all the inputs in
    turn, which keeps its code hot in the CPU caches (1.4x faster for the
    catalogue over a vehicle's day), and the signals, errors, snapshots and
    state dict are put back in input order.
    """
    plan = _plan(list(CATALOGUE.values()) if rules is None else rules, configs)
    ordered = [(input_key(i), i) for i in inputs]
    ordered.sort(key=itemgetter(0))
    todo: list[RuleInput] = []
    cuts: list[int] = []  # snapshots: taken before these inputs…
    marks: list[tuple[InputKey, datetime]] = []  # …at these positions
    pos, pos_time = state.pos, state.pos_time
    hour = None if pos is None else _hour(pos)
    for key, inp in ordered:
        if pos is not None and key <= pos:
            continue
        here = key[0] // _HOUR_US  # _hour(key), inlined: once per input
        if pos is not None and pos_time is not None and here != hour:
            cuts.append(len(todo))
            marks.append((pos, pos_time))
        todo.append(inp)
        pos, pos_time, hour = key, inp.time, here
    count = len(todo)
    ticked = tick is not None and (pos_time is None or tick > pos_time)
    if tick is not None and ticked:
        todo.append(Tick(tick))
    found: list[tuple[int, int, Sequence[Signal]]] = []
    failed: list[tuple[int, int, str, str]] = []
    start = dict(state.rules)
    reads = _Reads(todo, cuts)
    traces = [
        _run_rule(rule, k, start.get(rule[0]), reads.of(rule[4]), ctx, found, failed)
        for k, rule in enumerate(plan)
    ]
    layout = _layout(start, plan, traces)
    snapshots = [
        Snapshot(
            at,
            at_time,
            VehicleState(_merged(start, layout, [t.before_cut[c] for t in traces])).encode(),
        )
        for c, (at, at_time) in enumerate(marks)
    ]
    state.rules.update(_merged(start, layout, [t.final for t in traces]))
    state.pos, state.pos_time = pos, pos_time
    if ticked:
        state.tick_time = tick
    found.sort(key=lambda f: (f[0], f[1]))
    failed.sort(key=lambda f: (f[0], f[1]))
    signals = [signal for _, _, out in found for signal in out]
    return RunResult(state, signals, snapshots, count, [(r, e) for _, _, r, e in failed])
