"""The engine's ordering, snapshots, isolation of failing rules and replay equivalence."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import msgspec

from cloud.risk.context import NoPlaces
from cloud.risk.engine import VehicleState, input_key, run
from cloud.risk.model import (
    Device,
    EventIn,
    FixIn,
    NoRegion,
    RuleInput,
    Severity,
    Signal,
    Tick,
    VehicleContext,
)
from cloud.risk.rules.base import Rule

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
