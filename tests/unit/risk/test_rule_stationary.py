"""long_stationary: 3 days info, 7 days warn, one level higher away from where the car sleeps."""

from __future__ import annotations

from datetime import datetime, timedelta

from cloud.risk.model import Action, Severity, Signal, Tick, VehicleContext
from cloud.risk.rules.region import stamp
from cloud.risk.rules.stationary import StationaryConfig, StationaryState, step_stationary
from tests.unit.risk.location_fakes import (
    SHANGHAI,
    T0,
    Track,
    assert_restartable,
    context,
    daily_life,
    num,
    offset,
    opens,
    ordered,
    resolves,
    run,
)

HOME = offset(*SHANGHAI, -3_000.0, -2_000.0)
FRIEND = offset(*SHANGHAI, 8_000.0, 3_000.0)
CFG = StationaryConfig()
CTX = context()
DAY = timedelta(days=1)


def _stop_after_commuting(where: tuple[float, float], days: float = 8.5) -> tuple[Track, datetime]:
    """Twenty days of commuting from HOME, then parked at ``where`` for ``days``.

    Returns the track and the time the car arrived at ``where``.
    """
    t = daily_life(Track(T0, HOME), 20, lambda d: HOME)
    if where != HOME:
        t.drive_to(where, speed_kmh=40, every_s=30)
    arrived = max(f.time for f in t.fixes if f.speed_mps > 0) + timedelta(seconds=30)
    t.park(days * DAY, wander_m=15.0)
    return t.drive_to(offset(*where, 5_000.0, 0.0), speed_kmh=40, every_s=30), arrived


def _since(s: Signal) -> datetime:
    return datetime.fromisoformat(s.episode.split(":", 1)[1])


def _first_at_or_after(t: Track, when: datetime) -> datetime:
    return next(f.time for f in t.fixes if f.time >= when)


def _run(t: Track, ctx: VehicleContext = CTX) -> list[Signal]:
    _, out = run(step_stationary, StationaryState(), t.fixes, ctx, CFG)
    return [s for s in out if s.time >= t.fixes[0].time + 19 * DAY]  # the commute's own stops


def test_at_home_info_at_3_days_warn_at_7_resolved_when_driven() -> None:
    t, arrived = _stop_after_commuting(HOME)
    out = _run(t)
    stop = _since(out[0])
    assert arrived - timedelta(minutes=2) <= stop <= arrived  # the approach's last fixes
    episode = f"long_stationary:{stamp(stop)}"
    assert [(s.action, s.severity, s.episode) for s in out] == [
        (Action.OPEN, Severity.INFO, episode),
        (Action.OPEN, Severity.WARN, episode),
        (Action.RESOLVE, Severity.WARN, episode),
    ]
    assert out[0].time == _first_at_or_after(t, stop + 3 * DAY)
    assert out[1].time == _first_at_or_after(t, stop + 7 * DAY)
    assert out[0].evidence["at_resident"] is True
    assert out[0].evidence["home_source"] == "learned"


def test_away_from_home_escalates_one_level() -> None:
    t, arrived = _stop_after_commuting(FRIEND)
    out = assert_restartable(step_stationary, StationaryState(), t.fixes, CTX, CFG)
    out = [s for s in out if s.time > arrived]
    assert [(s.action, s.severity) for s in out] == [
        (Action.OPEN, Severity.WARN),
        (Action.OPEN, Severity.HIGH),
        (Action.RESOLVE, Severity.HIGH),
    ]
    assert out[0].evidence["at_resident"] is False
    assert 11_000 < num(out[0].evidence["home_distance_m"]) < 13_000
    assert len({s.episode for s in out}) == 1


def test_declared_address_serves_until_nights_are_known() -> None:
    t = Track(T0, HOME).park(4 * DAY)
    _, out = run(step_stationary, StationaryState(), t.fixes, context(declared=HOME), CFG)
    assert [(s.severity, s.evidence["home_source"]) for s in out] == [(Severity.INFO, "declared")]
    _, out = run(step_stationary, StationaryState(), t.fixes, context(declared=FRIEND), CFG)
    assert [(s.severity, s.evidence["at_resident"]) for s in out] == [(Severity.WARN, False)]
    _, out = run(step_stationary, StationaryState(), t.fixes, CTX, CFG)
    assert [(s.severity, s.evidence["at_resident"]) for s in out] == [(Severity.INFO, None)]


def test_jitter_jumps_and_moving_within_the_compound_keep_one_stop() -> None:
    t = Track(T0, HOME).park(2 * DAY, wander_m=15.0)
    for _ in range(6):
        t.jump(300.0).park(DAY / 2, wander_m=15.0)
    t.drive_to(offset(*HOME, 200.0, 0.0), speed_kmh=10, every_s=10).park(2 * DAY)
    _, out = run(step_stationary, StationaryState(), t.fixes, CTX, CFG)
    assert len({s.episode for s in out}) == 1
    assert resolves(out) == []
    assert [s.severity for s in opens(out)] == [Severity.INFO, Severity.WARN]


def test_wireless_reporting_every_72_h_raises_at_the_first_report_past_3_days() -> None:
    t = Track(T0, HOME, device="wireless-1", kind="wireless")
    for _ in range(4):
        t.fix(offset(*HOME, 8.0, -5.0))
        t.wait(timedelta(hours=72, minutes=5))
    _, out = run(step_stationary, StationaryState(), t.fixes, CTX, CFG)
    assert [(s.time, s.severity) for s in out] == [
        (t.fixes[1].time, Severity.INFO),
        (t.fixes[3].time, Severity.WARN),  # 9 days: past 7 at this report
    ]


def test_silence_is_not_stationarity() -> None:
    t = Track(T0, HOME).park(DAY)
    ticks = [Tick(T0 + timedelta(hours=h)) for h in range(1, 24 * 10)]
    _, out = run(step_stationary, StationaryState(), ordered(t.fixes, ticks), CTX, CFG)
    assert out == []
