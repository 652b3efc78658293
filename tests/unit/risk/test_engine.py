"""The engine's ordering, snapshots, isolation of failing rules and replay equivalence."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

import cloud.risk.rules.catalogue  # noqa: F401  (registers the rules)
from bench.rules import day_of_inputs
from cloud.refdata.lookup import Places
from cloud.risk.context import NoPlaces, PolicyRegion
from cloud.risk.engine import RunResult, Snapshot, VehicleState, default_configs, input_key, run
from cloud.risk.model import (
    Device,
    EventIn,
    FixIn,
    NoRegion,
    Poi,
    RuleInput,
    Severity,
    Signal,
    Tick,
    VehicleContext,
)
from cloud.risk.rules.base import CATALOGUE, Rule
from protocols.policy import Area, Circle, GeoJsonShape, Hysteresis, Policy
from protocols.regions import compile_policy

T0 = datetime(2025, 3, 4, 2, 0, tzinfo=UTC)


class FastState(msgspec.Struct, frozen=True):
    run_start: datetime | None = None
    fired: bool = False
    seen: int = 0


class FastConfig(msgspec.Struct, frozen=True):
    speed_mps: float = 30.0
    hold_s: float = 60.0


def _fast_step(
    s: FastState, inp: RuleInput, ctx: VehicleContext, cfg: FastConfig
) -> tuple[FastState, Sequence[Signal]]:
    """Test rule: fires once when speed stays above cfg.speed_mps for hold_s."""
    if not isinstance(inp, FixIn):
        return s, ()
    seen = s.seen + 1
    if inp.speed_mps <= cfg.speed_mps:
        return FastState(None, False, seen), ()
    start = s.run_start or inp.time
    if not s.fired and (inp.time - start).total_seconds() >= cfg.hold_s:
        sig = Signal("fast", f"fast:{start.isoformat()}", inp.time, Severity.WARN)
        return FastState(start, True, seen), (sig,)
    return FastState(start, s.fired, seen), ()


FAST = Rule("fast", FastState, FastConfig, _fast_step, ("fast",), "test rule")


def _boom(
    s: FastState, inp: RuleInput, ctx: VehicleContext, cfg: FastConfig
) -> tuple[FastState, Sequence[Signal]]:
    raise RuntimeError("bug")


BOOM = Rule("boom", FastState, FastConfig, _boom, (), "always raises")
CTX = VehicleContext("t", 1, {"d1": Device("d1", "wired")}, NoRegion(), NoPlaces())
CONFIGS = {"fast": FastConfig(), "boom": FastConfig()}


def _fix(i: int, speed: float, minutes: float = 0.0) -> FixIn:
    t = T0 + timedelta(seconds=20 * i, minutes=minutes)
    return FixIn(t, "d1", "wired", i, 31.2, 121.4, speed)


def test_orders_by_gnss_time_and_fires_once() -> None:
    fixes = [_fix(i, 40.0) for i in range(10)]
    result = run(VehicleState(), reversed(fixes), CTX, CONFIGS, rules=[FAST])
    assert [s.episode for s in result.signals] == [f"fast:{T0.isoformat()}"]
    assert result.signals[0].time == fixes[3].time  # 60 s after the first fast fix
    assert result.inputs == 10


def test_skips_inputs_already_run() -> None:
    fixes = [_fix(i, 10.0) for i in range(5)]
    state = run(VehicleState(), fixes, CTX, CONFIGS, rules=[FAST]).state
    again = run(state, fixes, CTX, CONFIGS, rules=[FAST])
    assert again.inputs == 0
    assert msgspec.to_builtins(again.state.rules["fast"])["seen"] == 5


def test_events_sort_before_fixes_at_the_same_time() -> None:
    fix = _fix(0, 0.0)
    event = EventIn(fix.time, "d1", "wired", 7, "heartbeat")
    assert input_key(event) < input_key(fix)


def test_snapshot_at_each_new_gnss_hour_and_replay_from_it_is_identical() -> None:
    fixes = [_fix(i, 40.0 if 200 < i < 215 else 5.0) for i in range(400)]  # ~2.2 h
    whole = run(VehicleState(), fixes, CTX, CONFIGS, rules=[FAST])
    assert len(whole.snapshots) == 2
    snap = whole.snapshots[0]
    restored = VehicleState.decode(snap.state, snap.pos, snap.pos_time, {"fast": FAST})
    rerun = run(restored, fixes, CTX, CONFIGS, rules=[FAST])
    assert [(s.episode, s.time) for s in rerun.signals] == [
        (s.episode, s.time) for s in whole.signals
    ]
    assert rerun.state.encode() == whole.state.encode()


def test_a_failing_rule_is_reported_and_the_others_still_run() -> None:
    fixes = [_fix(i, 40.0) for i in range(5)]
    result = run(VehicleState(), fixes, CTX, CONFIGS, rules=[BOOM, FAST])
    assert len(result.signals) == 1
    assert len(result.errors) == 5
    assert result.errors[0] == ("boom", "RuntimeError: bug")


def test_tick_runs_after_inputs_only_when_later() -> None:
    seen: list[datetime] = []

    def step(
        s: FastState, inp: RuleInput, ctx: VehicleContext, cfg: FastConfig
    ) -> tuple[FastState, Sequence[Signal]]:
        if isinstance(inp, Tick):
            seen.append(inp.time)
        return s, ()

    rule = Rule("tick", FastState, FastConfig, step, (), "records ticks")
    configs = {"tick": FastConfig()}
    state = run(VehicleState(), [_fix(0, 0)], CTX, configs, tick=T0 - timedelta(1), rules=[rule])
    assert seen == []
    assert state.state.tick_time is None
    later = T0 + timedelta(hours=1)
    state = run(state.state, [], CTX, configs, tick=later, rules=[rule])
    assert seen == [later]
    assert state.state.tick_time == later


# ------------------------------------------------ rule by rule = input by input


def reference_run(
    state: VehicleState,
    inputs: Sequence[FixIn | EventIn],
    ctx: VehicleContext,
    configs: Mapping[str, msgspec.Struct],
    *,
    tick: datetime | None = None,
    rules: Sequence[Rule[Any, Any]],
) -> RunResult:
    """The engine as it was: every rule over one input, then the next input."""
    signals: list[Signal] = []
    snapshots: list[Snapshot] = []
    errors: list[tuple[str, str]] = []
    count = 0

    def step_all(inp: RuleInput) -> None:
        for rule in rules:
            if rule.events is not None and isinstance(inp, EventIn) and inp.kind not in rule.events:
                continue  # the declared kinds: not stepped on other events
            current = state.rules.get(rule.name)
            if current is None:
                current = rule.state_type()
            try:
                new, out = rule.step(current, inp, ctx, configs[rule.name])
            except Exception as exc:
                errors.append((rule.name, f"{type(exc).__name__}: {exc}"))
                continue
            state.rules[rule.name] = new
            signals.extend(out)

    for key, inp in sorted(((input_key(i), i) for i in inputs), key=lambda p: p[0]):
        if state.pos is not None and key <= state.pos:
            continue
        hour = 3_600_000_000
        if (
            state.pos is not None
            and state.pos_time is not None
            and key[0] // hour != (state.pos[0] // hour)
        ):
            snapshots.append(Snapshot(state.pos, state.pos_time, state.encode()))
        step_all(inp)
        state.pos, state.pos_time = key, inp.time
        count += 1
    if tick is not None and (state.pos_time is None or tick > state.pos_time):
        step_all(Tick(tick))
        state.tick_time = tick
    return RunResult(state, signals, snapshots, count, errors)


def same_result(a: RunResult, b: RunResult) -> None:
    assert a.signals == b.signals
    assert a.errors == b.errors
    assert a.inputs == b.inputs
    assert [(s.pos, s.pos_time, s.state) for s in a.snapshots] == [
        (s.pos, s.pos_time, s.state) for s in b.snapshots
    ]
    assert list(a.state.rules) == list(b.state.rules)  # the same keys in the same order
    assert a.state.encode() == b.state.encode()
    assert (a.state.pos, a.state.pos_time, a.state.tick_time) == (
        b.state.pos,
        b.state.pos_time,
        b.state.tick_time,
    )


class CountState(msgspec.Struct, frozen=True):
    n: int = 0


def counting(
    name: str,
    fail_every: int,
    fail_first: int,
    fire_every: int,
    events: frozenset[str] | None = None,
) -> Rule[Any, Any]:
    """A rule that counts its inputs, raises on some and signals on others; ``events``: the
    event kinds it declares it reads (None: all)."""

    def step(
        s: CountState, inp: RuleInput, ctx: VehicleContext, cfg: FastConfig
    ) -> tuple[CountState, Sequence[Signal]]:
        seq = inp.seq if isinstance(inp, FixIn | EventIn) else -1
        if seq < fail_first or (fail_every and seq % fail_every == 0):
            raise ValueError(f"{name} at {seq}")
        n = s.n + 1
        out = [Signal(name, f"{name}:{n}", inp.time, Severity.INFO)] if n % fire_every == 0 else []
        return CountState(n), out

    return Rule(name, CountState, FastConfig, step, (name,), "test rule", events=events)


def test_rule_by_rule_gives_what_input_by_input_gave() -> None:
    """Signals, errors, snapshots, state keys and bytes: random rules (some reading only some
    event kinds), resumes and ticks."""
    rng = random.Random(5)
    declared = [None, None, frozenset(), frozenset({"heartbeat"}), frozenset({"boot", "session"})]
    for case in range(60):
        rules = [
            counting(
                f"r{k}",
                rng.choice([0, 0, 3, 7]),
                rng.choice([0, 0, 2, 40]),
                rng.randint(1, 9),
                rng.choice(declared),
            )
            for k in range(rng.randint(1, 6))
        ]
        configs: dict[str, msgspec.Struct] = {r.name: FastConfig() for r in rules}
        if case % 5 == 0:
            del configs[rules[-1].name]  # a missing config is that rule's error on every input
        inputs: list[FixIn | EventIn] = []
        for i in range(rng.randint(0, 400)):
            t = T0 + timedelta(minutes=rng.uniform(0, 300))
            if rng.random() < 0.3:
                kind = rng.choice(["heartbeat", "heartbeat", "boot", "session", "tamper"])
                inputs.append(EventIn(t, "d1", "wired", i, kind))
            else:
                inputs.append(FixIn(t, "d1", "wired", i, 31.2, 121.4))
        start = VehicleState()
        if case % 3 == 0:  # resume: some keys stored already, one of a rule not run now
            start.rules = {"gone": CountState(9), rules[0].name: CountState(3)}
            if inputs:
                pivot = sorted(inputs, key=input_key)[len(inputs) // 2]
                start.pos, start.pos_time = input_key(pivot), pivot.time
        tick = T0 + timedelta(hours=rng.choice([1, 6])) if case % 2 else None
        ours = run(_copy(start), inputs, CTX, configs, tick=tick, rules=rules)
        theirs = reference_run(_copy(start), inputs, CTX, configs, tick=tick, rules=rules)
        same_result(ours, theirs)


def _copy(state: VehicleState) -> VehicleState:
    return VehicleState(dict(state.rules), state.pos, state.pos_time, state.tick_time)


def test_the_catalogue_rule_by_rule_gives_what_input_by_input_gave() -> None:
    """The real rules over a commuter's day that leaves its region, parks at POIs, loses power,
    goes silent and uploads late data."""
    rng = random.Random(11)
    home = (31.23, 121.47)
    inputs = day_of_inputs(rng, "d1", *home)
    gone = [(timedelta(hours=2), timedelta(hours=5)), (timedelta(hours=13), timedelta(hours=14))]
    inputs = [i for i in inputs if not any(T0 + a < i.time < T0 + b for a, b in gone)]
    inputs += [  # stored during the second gap, uploaded late, the power cut on the way
        FixIn(
            T0 + timedelta(hours=13, seconds=s),
            "d1",
            "wired",
            9_000 + s,
            *home,
            0.0,
            ext_v=0.0 if s > 900 else 12.4,
            flags=("late",),
        )
        for s in range(30, 1800, 30)
    ]
    corners = [
        (121.46, 31.228),
        (121.48, 31.228),
        (121.48, 31.25),
        (121.46, 31.25),
        (121.46, 31.228),
    ]
    square = {"type": "Polygon", "coordinates": [[list(c) for c in corners]]}
    policy = Policy(
        policy_id="p", version=1, tenant="t", device_id="d1", issued_at=T0,
        allowed=[Area(id="home", shape=GeoJsonShape(geometry=square))],
        forbidden=[Area(id="z", shape=Circle(lon=home[1] + 0.03, lat=home[0], radius_m=3_000))],
        hysteresis=Hysteresis(exit_margin_m=300.0),
    )  # fmt: skip
    pois = [Poi("p1", "pawnshop", "P", home[0], home[1], 150.0)]
    region = PolicyRegion(compile_policy(policy))
    places = Places.from_records((), pois)
    ctx = VehicleContext("t", 1, {"d1": Device("d1", "wired")}, region, places,
                         declared_lat=home[0], declared_lon=home[1])  # fmt: skip
    configs = default_configs({"region_exit": {"exit_margin_m": 300.0}})
    rules = list(CATALOGUE.values())
    tick = T0 + timedelta(days=2)
    ours = run(VehicleState(), inputs, ctx, configs, tick=tick)
    theirs = reference_run(VehicleState(), inputs, ctx, configs, tick=tick, rules=rules)
    assert {s.rule for s in theirs.signals} >= {
        "offline", "power_cut", "region_exit", "forbidden_zone", "risk_poi_visit", "blind_area"
    }  # fmt: skip
    assert len(theirs.snapshots) >= 20
    same_result(ours, theirs)
    half = theirs.snapshots[len(theirs.snapshots) // 2]
    restored = VehicleState.decode(half.state, half.pos, half.pos_time)
    again = run(_copy(restored), inputs, ctx, configs, tick=tick)
    same_result(again, reference_run(_copy(restored), inputs, ctx, configs, tick=tick, rules=rules))


def test_a_rule_runs_once_per_input() -> None:
    with pytest.raises(ValueError, match="once per input"):
        run(VehicleState(), [_fix(0, 0)], CTX, CONFIGS, rules=[FAST, FAST])


def test_a_rule_is_not_stepped_on_event_kinds_it_does_not_read() -> None:
    seen: list[str] = []

    def step(
        s: FastState, inp: RuleInput, ctx: VehicleContext, cfg: FastConfig
    ) -> tuple[FastState, Sequence[Signal]]:
        seen.append(inp.kind if isinstance(inp, EventIn) else type(inp).__name__)
        return s, ()

    rule = Rule("power", FastState, FastConfig, step, (), "reads power events",
                events=frozenset({"power_lost"}))  # fmt: skip
    t = T0
    inputs: list[FixIn | EventIn] = [
        EventIn(t, "d1", "wired", 1, "heartbeat"),
        EventIn(t + timedelta(seconds=1), "d1", "wired", 2, "power_lost"),
        _fix(3, 0.0, minutes=1),
    ]
    run(VehicleState(), inputs, CTX, {"power": FastConfig()}, rules=[rule])
    assert seen == ["power_lost", "FixIn"]
