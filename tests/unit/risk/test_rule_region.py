"""region_exit and forbidden_zone as timed sequences: Shanghai is the allowed area."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from cloud.risk.engine import VehicleState
from cloud.risk.engine import run as engine_run
from cloud.risk.model import Action, EventIn, FixIn, Severity
from cloud.risk.rules.region import (
    FORBIDDEN_ZONE,
    REGION_EXIT,
    ForbiddenZoneConfig,
    ForbiddenZoneState,
    RegionExitConfig,
    RegionExitState,
    stamp,
    step_forbidden_zone,
    step_region_exit,
)
from tests.unit.risk.location_fakes import (
    HANGZHOU,
    SHANGHAI,
    T0,
    FakeRegion,
    Track,
    assert_restartable,
    context,
    num,
    offset,
    opens,
    ordered,
    resolves,
    run,
)

# Shanghai as a 40 km circle: the loan's allowed area.
REGION = FakeRegion(allowed=[(*SHANGHAI, 40_000.0)])
CTX = context(region=REGION)
CFG = RegionExitConfig()


def _trip_to_hangzhou() -> Track:
    """Park at home, drive to Hangzhou at 100 km/h (20 s fixes), stay a day, drive back."""
    t = Track(T0, SHANGHAI).park(timedelta(hours=2))
    t.drive_to(HANGZHOU, speed_kmh=100).park(timedelta(hours=24))
    return t.drive_to(SHANGHAI, speed_kmh=100).park(timedelta(hours=2))


def _outside(f: FixIn) -> float:
    return REGION.metres_outside_allowed(f.lat, f.lon)


def test_fires_at_second_fix_beyond_5km_and_resolves_back_inside() -> None:
    fixes = _trip_to_hangzhou().fixes
    _, signals = run(step_region_exit, RegionExitState(), fixes, CTX, CFG)
    beyond = [f for f in fixes if _outside(f) > 5000]
    assert [s.action for s in signals] == [Action.OPEN, Action.RESOLVE]
    opened, resolved = signals
    assert opened.time == beyond[1].time  # the second consecutive fix > 5 km out
    assert opened.episode == f"region_exit:{stamp(beyond[1].time)}"
    assert opened.severity is Severity.HIGH
    assert opened.evidence["first_outside"] == stamp(beyond[0].time)
    assert opened.evidence["threshold_m"] == 5000.0
    back = [f for f in fixes if f.time > beyond[-1].time and _outside(f) == 0]
    assert resolved.episode == opened.episode
    assert resolved.time == back[1].time  # two fixes back inside
    assert num(resolved.evidence["max_outside_m"]) > 120_000  # Hangzhou is ~125 km past the border


def test_restart_and_replay_give_the_same_signals() -> None:
    fixes = _trip_to_hangzhou().fixes
    full = assert_restartable(step_region_exit, RegionExitState(), fixes, CTX, CFG)
    assert len(full) == 2


def test_border_jitter_and_single_fixes_never_fire() -> None:
    near = offset(*SHANGHAI, 0.0, 43_000.0)  # 3 km past the border: inside the 5 km margin
    t = Track(T0, near).park(timedelta(hours=12), wander_m=15.0)
    for _ in range(5):
        t.jump(300.0)  # urban-canyon jumps stay well inside the margin
    t.wait(timedelta(minutes=5)).fix(offset(*SHANGHAI, 0.0, 60_000.0))  # one glitch 20 km out
    t.move_to(SHANGHAI).wait(timedelta(minutes=5)).park(timedelta(hours=1))
    _, signals = run(step_region_exit, RegionExitState(), t.fixes, CTX, CFG)
    assert signals == []


def test_a_fix_inside_resets_but_the_margin_is_neutral() -> None:
    far, margin = offset(*SHANGHAI, 0.0, 50_000.0), offset(*SHANGHAI, 0.0, 42_000.0)
    t = Track(T0, SHANGHAI)
    for at in (far, SHANGHAI, far):  # inside in between: no run of two
        t.wait(timedelta(minutes=10)).fix(at)
    _, signals = run(step_region_exit, RegionExitState(), t.fixes, CTX, CFG)
    assert signals == []
    for at in (margin, far):  # within the margin in between: still consecutive
        t.wait(timedelta(minutes=10)).fix(at)
    _, signals = run(step_region_exit, RegionExitState(), t.fixes, CTX, CFG)
    assert [s.time for s in opens(signals)] == [t.fixes[-1].time]


def test_one_episode_while_outside_even_with_fixes_back_near_the_border() -> None:
    t = Track(T0, SHANGHAI).drive_to(offset(*SHANGHAI, 0.0, 60_000.0), speed_kmh=90)
    t.park(timedelta(hours=6))
    t.wait(timedelta(minutes=5)).fix(SHANGHAI)  # a single fix inside (glitch) does not resolve
    t.move_to(offset(*SHANGHAI, 0.0, 60_000.0)).wait(timedelta(minutes=5)).park(timedelta(hours=6))
    _, signals = run(step_region_exit, RegionExitState(), t.fixes, CTX, CFG)
    assert len(opens(signals)) == 1
    assert resolves(signals) == []


def test_teleport_flagged_fixes_are_not_positions() -> None:
    t = Track(T0, SHANGHAI)
    far = offset(*SHANGHAI, 0.0, 200_000.0)
    for _ in range(3):
        t.wait(timedelta(seconds=20)).fix(far, flags=("teleport",))
    _, signals = run(step_region_exit, RegionExitState(), t.fixes, CTX, CFG)
    assert signals == []


def test_two_devices_reporting_the_same_second_count_once() -> None:
    far = offset(*SHANGHAI, 0.0, 60_000.0)
    wired = Track(T0, far).wait(timedelta(minutes=5))
    wireless = Track(T0, far, device="wireless-1", kind="wireless").wait(timedelta(minutes=5))
    wired.fix()
    wireless.fix()  # same GNSS second from the hidden unit: not a second consecutive fix
    _, signals = run(
        step_region_exit, RegionExitState(), ordered(wired.fixes, wireless.fixes), CTX, CFG
    )
    assert signals == []
    wireless.wait(timedelta(seconds=30)).fix()
    inputs = ordered(wired.fixes, wireless.fixes)
    _, signals = run(step_region_exit, RegionExitState(), inputs, CTX, CFG)
    assert [(s.time, s.device_id) for s in signals] == [(wireless.now, "wireless-1")]


def _exit_event(fix: FixIn, kind: str = "region_exit") -> EventIn:
    detail: dict[str, str | int] = {
        "areas": "shanghai",
        "policy_id": "p1",
        "version": 3,
        "distance_m": 6100,
    }
    return EventIn(fix.time, "wired-1", "wired", 10_000 + fix.seq, kind, fix.lat, fix.lon, detail)


def test_device_event_opens_the_episode_and_fixes_join_it() -> None:
    fixes = _trip_to_hangzhou().fixes
    beyond = [f for f in fixes if _outside(f) > 5000]
    # The agent evaluates every 1 s epoch, so it confirms before the cloud's second fix.
    event = _exit_event(beyond[0])
    back = next(f for f in fixes if f.time > beyond[-1].time and _outside(f) == 0)
    ret = _exit_event(back, "region_return")
    inputs = ordered(fixes, [event, ret])
    _, signals = run(step_region_exit, RegionExitState(), inputs, CTX, CFG)
    assert [s.action for s in signals] == [Action.OPEN, Action.RESOLVE]
    assert signals[0].episode == f"region_exit:{stamp(event.time)}"
    assert signals[0].evidence["source"] == "device"
    assert signals[1].evidence["source"] == "device"  # the tracker's return came first
    assert signals[1].episode == signals[0].episode
    assert_restartable(step_region_exit, RegionExitState(), inputs, CTX, CFG)


def test_device_event_after_the_cloud_opened_is_confirmation_not_a_second_alert() -> None:
    fixes = _trip_to_hangzhou().fixes
    beyond = [f for f in fixes if _outside(f) > 5000]
    late = _exit_event(beyond[4])
    _, signals = run(step_region_exit, RegionExitState(), ordered(fixes, [late]), CTX, CFG)
    assert len(opens(signals)) == 1
    assert signals[0].evidence["source"] == "fixes"
    assert signals[-1].action is Action.RESOLVE
    assert signals[-1].evidence["device_confirmed"] is True


def test_runs_under_the_engine_with_snapshot_restore() -> None:
    fixes = _trip_to_hangzhou().fixes
    configs = {"region_exit": CFG}
    half = len(fixes) // 2
    first = engine_run(VehicleState(), fixes[:half], CTX, configs, rules=[REGION_EXIT])
    state = first.state
    restored = VehicleState.decode(
        state.encode(), state.pos, state.pos_time, catalogue={"region_exit": REGION_EXIT}
    )
    second = engine_run(restored, fixes, CTX, configs, rules=[REGION_EXIT])  # re-sent: skipped
    whole = engine_run(VehicleState(), fixes, CTX, configs, rules=[REGION_EXIT])
    assert first.signals + second.signals == whole.signals
    assert [s.action for s in whole.signals] == [Action.OPEN, Action.RESOLVE]


# ---------------------------------------------------------------- forbidden zone

MARKET = offset(*SHANGHAI, 5_000.0, 3_000.0)  # a zone the lender forbids, 400 m radius
ZONES = FakeRegion(forbidden={"market-1": (*MARKET, 400.0)})
ZCTX = context(region=ZONES)
ZCFG = ForbiddenZoneConfig()


def test_forbidden_zone_fires_on_second_fix_inside_and_resolves_on_leaving() -> None:
    t = Track(T0, SHANGHAI).park(timedelta(hours=1)).drive_to(MARKET, speed_kmh=30)
    t.wait(timedelta(minutes=2)).park(timedelta(hours=3))
    t.drive_to(SHANGHAI, speed_kmh=30).park(timedelta(hours=1))
    full = assert_restartable(step_forbidden_zone, ForbiddenZoneState(), t.fixes, ZCTX, ZCFG)
    inside = [f for f in t.fixes if ZONES.forbidden_zone_at(f.lat, f.lon)]
    assert [s.action for s in full] == [Action.OPEN, Action.RESOLVE]
    assert full[0].time == inside[1].time
    assert full[0].episode == f"forbidden_zone:market-1:{stamp(inside[0].time)}"
    assert full[1].episode == full[0].episode
    assert full[0].severity is Severity.HIGH


def test_forbidden_zone_ignores_jitter_at_the_edge_and_single_jumps_in() -> None:
    edge = offset(*MARKET, 0.0, 430.0)  # 30 m outside the zone
    t = Track(T0, edge).park(timedelta(hours=8), wander_m=15.0)
    t.jump(-300.0)  # one urban jump into the zone
    t.park(timedelta(hours=2), wander_m=15.0)
    _, signals = run(step_forbidden_zone, ForbiddenZoneState(), t.fixes, ZCTX, ZCFG)
    assert signals == []


def test_forbidden_zone_single_fix_outside_keeps_the_episode() -> None:
    t = Track(T0, MARKET).park(timedelta(hours=2), wander_m=10.0)
    t.jump(800.0).park(timedelta(hours=2), wander_m=10.0)
    _, signals = run(step_forbidden_zone, ForbiddenZoneState(), t.fixes, ZCTX, ZCFG)
    assert len(signals) == 1
    assert signals[0].action is Action.OPEN


def test_location_rules_register_with_configs_the_engine_can_override() -> None:
    from cloud.risk.rules.base import CATALOGUE
    from cloud.risk.rules.location import LOCATION_RULES

    assert CATALOGUE["region_exit"] is REGION_EXIT
    assert CATALOGUE["forbidden_zone"] is FORBIDDEN_ZONE
    for name in LOCATION_RULES:
        rule = CATALOGUE[name]
        base = msgspec.to_builtins(rule.config_type())
        assert msgspec.convert(base, rule.config_type) == rule.config_type()
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({**base, "no_such_threshold": 1}, rule.config_type)
        initial = rule.state_type()
        assert (
            msgspec.msgpack.decode(msgspec.msgpack.encode(initial), type=rule.state_type) == initial
        )


def test_a_decoy_unit_at_home_neither_resolves_nor_splits_the_exit() -> None:
    """Seen in the detection report (six alerts for one stay): the wired unit, left on a
    decoy at home, reports inside every 10 min; the car's hidden wireless unit wakes every
    6 h in Hangzhou. One exit, resolved only when the wireless unit is back inside."""
    decoy = Track(T0, SHANGHAI).park(timedelta(hours=40), every_s=(600.0, 600.0))
    car = Track(T0, HANGZHOU, device="wireless-1", kind="wireless")
    for _ in range(5):
        car.wait(timedelta(hours=6))
        for _ in range(3):
            car.wait(timedelta(minutes=1)).fix()
    car.move_to(SHANGHAI).wait(timedelta(hours=6))
    for _ in range(3):
        car.wait(timedelta(minutes=1)).fix()
    inputs = ordered(decoy.fixes, car.fixes)
    _, signals = run(step_region_exit, RegionExitState(), inputs, CTX, CFG)
    assert [(s.action, s.device_id) for s in signals] == [
        (Action.OPEN, "wireless-1"),
        (Action.RESOLVE, "wireless-1"),
    ]
    assert signals[0].time == car.fixes[1].time
    assert signals[1].time == car.fixes[-2].time
