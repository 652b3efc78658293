"""Resident area learning, not_home, relocation and night_anomaly over weeks of commuting.

The car lives 3.6 km south-west of People's Square, works 7 km away, and
sleeps at home unless a test says otherwise. Day ``d`` starts at 08:00 China
time on 2025-03-03 + d; its night's key is that date.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import msgspec

from cloud.risk.geo import distance_m
from cloud.risk.model import Severity, Signal, Tick
from cloud.risk.rules.nightdwell import (
    DwellParams,
    NightTally,
    night_end,
    tally_fix,
    tally_tick,
    window_of,
)
from cloud.risk.rules.resident import ResidentConfig, ResidentState, step_resident
from tests.unit.risk.location_fakes import (
    HANGZHOU,
    SHANGHAI,
    T0,
    Place,
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
FRIEND = offset(*SHANGHAI, 8_000.0, 3_000.0)  # 12 km from home, same city
NEW_FLAT = offset(*SHANGHAI, 5_000.0, 6_000.0)  # 11 km from home, same city
CFG = ResidentConfig()
CTX = context()


def night(day: int) -> str:
    return (date(2025, 3, 3) + timedelta(days=day)).isoformat()


def end_of(day: int) -> datetime:
    return night_end(night(day), CFG.dwell)


def live(days: int, sleep: Callable[[int], Place], **kw: object) -> Track:
    return daily_life(Track(T0, sleep(0)), days, sleep, **kw)  # type: ignore[arg-type]


def signals_of(t: Track, ctx: object = CTX) -> list[Signal]:
    _, out = run(step_resident, ResidentState(), t.fixes, ctx, CFG)  # type: ignore[arg-type]
    return out


def kinds(signals: list[Signal]) -> list[tuple[str, str, str]]:
    return [(s.rule, s.action.value, s.episode) for s in signals]


def test_learns_the_resident_area_after_14_nights_with_the_point_in_evidence() -> None:
    out = signals_of(live(20, lambda d: HOME))
    assert kinds(out) == [("resident_learned", "open", f"resident_learned:{night(13)}")]
    learned = out[0]
    assert learned.time == end_of(13)
    assert learned.severity is Severity.INFO
    assert learned.lat is not None
    assert learned.lon is not None
    assert distance_m(learned.lat, learned.lon, *HOME) < 20
    assert learned.evidence["share"] == 1.0
    assert learned.evidence["observed_nights"] == 14


def test_not_home_after_three_nights_away_resolved_when_back_and_no_double_alert() -> None:
    away = {20, 21, 22}
    t = live(30, lambda d: FRIEND if d in away else HOME)
    out = assert_restartable(step_resident, ResidentState(), t.fixes, CTX, CFG)
    assert kinds(out)[1:] == [
        ("not_home", "open", f"not_home:{night(20)}"),
        ("not_home", "resolve", f"not_home:{night(20)}"),
    ]
    opened = out[1]
    assert opened.time == end_of(22)
    assert opened.severity is Severity.WARN
    assert opened.evidence["nights"] == 3
    assert 11_000 < num(opened.evidence["distance_m"]) < 13_000
    assert out[2].time == end_of(23)


def test_two_nights_away_or_parked_jitter_raise_nothing() -> None:
    t = live(30, lambda d: FRIEND if d in (20, 21, 28) else HOME)  # 2 of 7, then 1
    assert kinds(signals_of(t)) == [("resident_learned", "open", f"resident_learned:{night(13)}")]


def test_scattered_nights_away_are_a_night_anomaly_not_home_takes_over_a_streak() -> None:
    away = {20, 22, 24}  # away, home, away, home, away: 3 of 7 nights
    out = signals_of(live(34, lambda d: FRIEND if d in away else HOME))
    assert kinds(out)[1:] == [
        ("night_anomaly", "open", f"night_anomaly:parking:{night(20)}"),
        ("night_anomaly", "resolve", f"night_anomaly:parking:{night(20)}"),
    ]
    assert out[1].time == end_of(24)
    assert out[2].time == end_of(27)  # night 20 left the 7-night window
    # away, home, away, away, away: the anomaly opens, then not_home supersedes it
    away = {20, 22, 23, 24}
    out = signals_of(live(30, lambda d: FRIEND if d in away else HOME))
    assert kinds(out)[1:] == [
        ("night_anomaly", "open", f"night_anomaly:parking:{night(20)}"),
        ("not_home", "open", f"not_home:{night(22)}"),
        ("night_anomaly", "resolve", f"night_anomaly:parking:{night(20)}"),
        ("not_home", "resolve", f"not_home:{night(22)}"),
    ]
    assert out[3].evidence["superseded_by"] == f"not_home:{night(22)}"


def test_relocation_to_another_city_is_high_and_rebases_home() -> None:
    t = live(45, lambda d: HANGZHOU if d >= 25 else HOME)
    out = assert_restartable(step_resident, ResidentState(), t.fixes, CTX, CFG)
    assert kinds(out)[1:] == [
        ("not_home", "open", f"not_home:{night(25)}"),
        ("relocation", "open", f"relocation:{night(25)}"),
        ("resident_learned", "open", f"resident_learned:{night(31)}"),
        ("not_home", "resolve", f"not_home:{night(25)}"),
    ]
    moved = out[2]
    assert moved.time == end_of(31)  # the 7th night: half of the last 14 nights' dwell
    assert moved.severity is Severity.HIGH
    assert (moved.evidence["old_city"], moved.evidence["new_city"]) == ("310100", "330100")
    assert moved.lat is not None
    assert moved.lon is not None
    assert distance_m(moved.lat, moved.lon, *HANGZHOU) < 20
    assert out[4].evidence["reason"] == "relocation"


def test_relocation_within_the_city_is_a_warning() -> None:
    out = signals_of(live(45, lambda d: NEW_FLAT if d >= 25 else HOME))
    moved = opens(out, "relocation")
    assert [(s.severity, s.episode) for s in moved] == [(Severity.WARN, f"relocation:{night(25)}")]
    assert 10_000 < num(moved[0].evidence["distance_m"]) < 12_000


def test_declared_address_is_a_provisional_home_until_the_area_is_learned() -> None:
    ctx = context(declared=FRIEND)  # the declared address is 12 km from where it sleeps
    t = live(20, lambda d: HOME)
    _, out = run(step_resident, ResidentState(), t.fixes, ctx, CFG)
    assert kinds(out) == [
        ("not_home", "open", f"not_home:{night(0)}"),
        ("resident_learned", "open", f"resident_learned:{night(13)}"),
        ("relocation", "open", f"relocation:{night(0)}"),
        ("not_home", "resolve", f"not_home:{night(0)}"),
    ]
    assert out[0].evidence["home_source"] == "declared"
    assert out[2].evidence["from"] == "declared"
    ctx = context(declared=offset(*HOME, 300.0, 300.0))  # a good geocode: nothing to say
    _, out = run(step_resident, ResidentState(), t.fixes, ctx, CFG)
    assert kinds(out) == [("resident_learned", "open", f"resident_learned:{night(13)}")]


def test_night_trip_over_50_km_fires_once_at_the_crossing_fix() -> None:
    t = live(16, lambda d: HOME)
    late = t.now + timedelta(hours=15)  # 23:00 China time
    t.now = late
    t.drive_to(HANGZHOU, speed_kmh=110, every_s=20).park(timedelta(hours=5))
    out = signals_of(t)
    trips = opens(out, "night_anomaly")
    assert [s.episode for s in trips] == [f"night_anomaly:trip:{night(16)}"]
    crossing = trips[0]
    assert 50_000 < num(crossing.evidence["moved_m"]) < 51_000
    assert crossing.time - late < timedelta(minutes=30)  # 50 km at 110 km/h


def test_parked_wander_and_urban_jumps_are_not_night_driving() -> None:
    t = Track(T0, HOME).park(timedelta(hours=12), every_s=(300.0, 600.0), wander_m=15.0)
    for _ in range(20):
        t.jump(250.0).park(timedelta(minutes=20), every_s=(300.0, 600.0), wander_m=15.0)
    state, out = run(step_resident, ResidentState(), t.fixes, CTX, CFG)
    assert opens(out) == []
    assert state.tally.moved_m < 1_000


def test_sparse_wireless_reports_twice_a_day_still_learn() -> None:
    t = Track(T0, HOME, device="wireless-1", kind="wireless")
    for _ in range(16):
        t.fix(offset(*HOME, 10.0, -10.0))
        t.wait(timedelta(hours=12)).fix()  # 20:00 and 08:00 China time
        t.wait(timedelta(hours=12))
    out = signals_of(t)
    assert kinds(out) == [("resident_learned", "open", f"resident_learned:{night(13)}")]


def test_ticks_never_change_the_answer_even_when_the_car_goes_silent() -> None:
    t = live(20, lambda d: FRIEND if d in (17, 18, 19) else HOME)
    t.now += timedelta(days=2)
    t.park(timedelta(days=1))  # back after two silent days
    ticks = [Tick(T0 + timedelta(minutes=30 * i)) for i in range(2 * 24 * 24)]
    with_ticks = ordered(t.fixes, ticks)
    _, a = run(step_resident, ResidentState(), t.fixes, CTX, CFG)
    _, b = run(step_resident, ResidentState(), with_ticks, CTX, CFG)
    assert a == b
    assert [s.rule for s in resolves(a)] == []
    assert opens(a, "not_home")[0].time == end_of(19)


def test_state_stays_bounded_over_two_months() -> None:
    state, _ = run(step_resident, ResidentState(), live(60, lambda d: HOME).fixes, CTX, CFG)
    assert len(state.history) <= CFG.window_nights
    assert len(msgspec.msgpack.encode(state)) < 4_000
    assert state.homes[0].share == 1.0


def _cst(day: int, hour: int, minute: int = 0) -> datetime:
    """2025-03-03 + day at hour:minute China time, as UTC."""
    return datetime(2025, 3, 3, tzinfo=UTC) + timedelta(days=day, hours=hour - 8, minutes=minute)


def test_night_windows_cross_midnight_in_china_time() -> None:
    for t in (_cst(0, 23), _cst(1, 3), _cst(1, 5, 59)):
        assert window_of(t, 22, 6) == (night(0), _cst(0, 22), _cst(1, 6))
    assert window_of(_cst(1, 6), 22, 6)[0] == night(1)  # 06:00 belongs to the next night
    assert window_of(_cst(1, 12), 22, 6)[0] == night(1)  # daytime: the coming night


def test_tally_counts_only_the_night_part_of_a_parked_pair() -> None:
    p = DwellParams()
    tally, closed = tally_fix(NightTally(), _cst(0, 21), *HOME, p)
    tally, closed = tally_fix(tally, _cst(1, 7), *offset(*HOME, 10.0, 5.0), p)  # sparse pair
    assert [(n.night, n.dwell_s) for n in closed] == [(night(0), 8 * 3600.0)]
    tally, closed = tally_fix(tally, _cst(2, 5), *HOME, p)  # 22 h gap: says nothing
    tally, closed = tally_fix(tally, _cst(2, 7), *HOME, p)
    assert [(n.night, n.dwell_s) for n in closed] == [(night(1), 3600.0)]
    tally, closed = tally_fix(tally, _cst(2, 22), *HOME, p)
    tally, closed = tally_fix(tally, _cst(2, 22, 30), *HOME, p)  # then silence
    tally, none = tally_tick(tally, _cst(3, 12), p)  # a fix now could still add to it
    assert none is None
    tally, night2 = tally_tick(tally, _cst(3, 12, 30), p)  # 14 h after the last fix: closed
    assert night2 is not None
    assert (night2.night, night2.dwell_s) == (night(2), 1800.0)
