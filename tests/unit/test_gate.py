"""The fix quality gate: a pure state machine, tested with timed sequences of fixes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.gate import (
    DUPLICATE,
    HDOP_TOO_HIGH,
    JUMP_TOO_FAST,
    NO_FIX,
    NULL_ISLAND,
    REASONS,
    TIME_IN_FUTURE,
    TOO_FEW_SATS,
    GateConfig,
    GateState,
    Verdict,
    step,
)
from edge.nmea.assembler import GnssFix
from edge.nmea.replay import replay

GPSD_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nmea" / "gpsd"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(seconds=30)
SHANGHAI = GnssFix(
    time=T0, mode=3, lat=31.2304, lon=121.4737, alt_m=10.0, speed_mps=0.0, hdop=0.9, sats=12
)


def at(seconds: float, **over: object) -> GnssFix:
    return replace(SHANGHAI, time=T0 + timedelta(seconds=seconds), **over)  # type: ignore[arg-type]


def run(fixes: list[GnssFix], state: GateState | None = None) -> tuple[GateState, list[Verdict]]:
    s = state if state is not None else GateState()
    verdicts = []
    for f in fixes:
        s, v = step(s, f, now=NOW)
        verdicts.append(v)
    return s, verdicts


def reasons(verdicts: list[Verdict]) -> list[str | None]:
    return [v.reason for v in verdicts]


def log(name: str) -> list[GnssFix]:
    return list(replay([(GPSD_DIR / name).read_bytes()]))


def test_config_mirrors_gate_settings() -> None:
    import msgspec

    from edge.config import GateSettings

    cfg = GateConfig(**msgspec.structs.asdict(GateSettings()))
    assert cfg == GateConfig()
    assert (cfg.max_hdop, cfg.min_sats, cfg.max_jump_kmh, cfg.max_future_s) == (
        5.0,
        4,
        300.0,
        600.0,
    )


def test_good_sequence_is_accepted_and_counted() -> None:
    state, verdicts = run([at(0), at(1, lat=31.2305), at(2, lat=31.2306)])
    assert all(v.accepted for v in verdicts)
    assert state.accepted == 3
    assert state.dropped == {}
    assert state.last == at(2, lat=31.2306)


def test_step_is_pure() -> None:
    start = GateState()
    s1, _ = step(start, at(0, mode=1), now=NOW)
    assert start.dropped == {}
    assert s1.dropped == {NO_FIX: 1}
    with pytest.raises(TypeError):
        s1.dropped[NO_FIX] = 5  # type: ignore[index]


# --- each reason -----------------------------------------------------------------


def test_no_fix_from_a_real_cold_start() -> None:
    # beidou-bd: five epochs without a fix, then five with.
    fixes = log("beidou-bd.log")
    now = fixes[-1].time + timedelta(seconds=1)
    state = GateState(GateConfig(min_sats=5))
    got = []
    for f in fixes:
        state, v = step(state, f, now=now)
        got.append(v.reason)
    assert got == [NO_FIX] * 5 + [None] * 5
    assert state.dropped == {NO_FIX: 5}


def test_too_few_sats_from_a_real_capture() -> None:
    # garmin25lp: fixed with 3 satellites used (GGA says 00, GSA lists 3).
    fixes = [f for f in log("garmin25lp.log") if f.fixed]
    now = fixes[-1].time
    state, v = step(GateState(), fixes[0], now=now)
    assert v.reason == TOO_FEW_SATS
    assert state.dropped == {TOO_FEW_SATS: 1}


def test_duplicate_when_a_capture_is_replayed() -> None:
    fixes = [f for f in log("ublox-8.log") if f.fixed]
    now = fixes[-1].time
    state = GateState()
    for f in fixes:
        state, v = step(state, f, now=now)
        assert v.accepted, v
    for f in fixes[:3]:
        state, v = step(state, f, now=now)
        assert v.reason == DUPLICATE
    assert state.dropped == {DUPLICATE: 3}
    assert state.accepted == len(fixes)


def test_null_island() -> None:
    _, verdicts = run([at(0, lat=0.0, lon=0.0)])
    assert reasons(verdicts) == [NULL_ISLAND]


def test_hdop_too_high_and_unknown_hdop_passes() -> None:
    _, verdicts = run([at(0, hdop=5.1), at(1, hdop=5.0), at(2, hdop=None)])
    assert reasons(verdicts) == [HDOP_TOO_HIGH, None, None]


def test_min_sats_boundary() -> None:
    _, verdicts = run([at(0, sats=3), at(1, sats=4), at(2, sats=None)])
    assert reasons(verdicts) == [TOO_FEW_SATS, None, None]


def test_time_in_future() -> None:
    _, verdicts = run([at(30 + 601), at(30 + 600)])
    assert reasons(verdicts) == [TIME_IN_FUTURE, None]


def test_older_than_last_accepted_is_duplicate() -> None:
    _, verdicts = run([at(5), at(5), at(4)])
    assert reasons(verdicts) == [None, DUPLICATE, DUPLICATE]


def test_jump_too_fast_and_the_reference_stays_the_last_accepted() -> None:
    # 0.01° of latitude is 1.11 km: in 10 s that is 400 km/h.
    far = 31.2404
    state, verdicts = run([at(0), at(10, lat=far), at(11, lat=31.2305)])
    assert reasons(verdicts) == [None, JUMP_TOO_FAST, None]
    assert state.last is not None
    assert state.last.lat == 31.2305
    # The same place, reached in time: 1.11 km in 20 s is 200 km/h.
    _, verdicts = run([at(0), at(20, lat=far)])
    assert reasons(verdicts) == [None, None]


def test_small_moves_are_not_judged_by_implied_speed() -> None:
    # 10 Hz noise: 20 m in 0.1 s would "be" 720 km/h.
    _, verdicts = run([at(0), at(0.1, lat=31.2304 + 20 / 111_195)])
    assert reasons(verdicts) == [None, None]


def test_first_failing_check_names_the_drop() -> None:
    _, verdicts = run([at(0, lat=0.0, lon=0.0, hdop=9.0, sats=1)])
    assert reasons(verdicts) == [NULL_ISLAND]


def test_reasons_are_the_documented_set() -> None:
    assert set(REASONS) == {
        "no_fix",
        "hdop_too_high",
        "too_few_sats",
        "null_island",
        "time_in_future",
        "jump_too_fast",
        "duplicate",
    }
