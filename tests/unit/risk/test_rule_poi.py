"""risk_poi_visit / risk_poi_stay as timed sequences around real-sized POIs in Shanghai."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloud.risk.model import Action, Poi, Severity
from cloud.risk.rules.poi import PoiConfig, PoiState, step_poi
from cloud.risk.rules.region import stamp
from tests.unit.risk.location_fakes import (
    CITIES,
    SHANGHAI,
    T0,
    FakePlaces,
    Track,
    assert_restartable,
    context,
    num,
    offset,
    opens,
    resolves,
    run,
)

HOME = offset(*SHANGHAI, -3_000.0, -2_000.0)
PAWN = Poi("pawn-1", "pawnshop", "Heng Xin pawnshop", *offset(*SHANGHAI, 2_000.0, 1_000.0), 150.0)
MARKET = Poi(
    "ucm-1", "used_car_market", "Hongqiao used cars", *offset(*SHANGHAI, 2_000.0, 1_600.0), 200.0
)
PLACES = FakePlaces([PAWN, MARKET], CITIES)
CTX = context(places=PLACES)
CFG = PoiConfig()


def _at(poi: Poi) -> tuple[float, float]:
    return poi.lat, poi.lon


def _visit(stay: timedelta, start: datetime = T0) -> Track:
    t = Track(start, HOME).park(timedelta(hours=1)).drive_to(_at(PAWN), speed_kmh=30)
    t.wait(timedelta(minutes=6)).park(stay, wander_m=12.0)
    return t.drive_to(HOME, speed_kmh=30).park(timedelta(hours=1))


def _inside_slow(t: Track, poi: Poi) -> list[datetime]:
    from cloud.risk.geo import distance_m

    return [
        f.time
        for f in t.fixes
        if distance_m(f.lat, f.lon, poi.lat, poi.lon) <= poi.radius_m and f.speed_mps <= 15 / 3.6
    ]


def test_entry_after_two_slow_fixes_inside_and_resolved_on_leaving() -> None:
    t = _visit(timedelta(minutes=20))
    _, signals = run(step_poi, PoiState(), t.fixes, CTX, CFG)
    inside = _inside_slow(t, PAWN)
    assert [(s.rule, s.action) for s in signals] == [
        ("risk_poi_visit", Action.OPEN),
        ("risk_poi_visit", Action.RESOLVE),
    ]
    entry, left = signals
    assert entry.time == inside[1]
    assert entry.episode == f"risk_poi_visit:pawn-1:{stamp(inside[0])}"
    assert entry.severity is Severity.INFO
    assert entry.evidence["poi_id"] == "pawn-1"
    assert entry.evidence["category"] == "pawnshop"
    assert entry.evidence["poi_name"] == "Heng Xin pawnshop"
    assert left.episode == entry.episode
    assert left.evidence["reason"] == "left"
    assert 15 * 60 < num(left.evidence["stayed_s"]) < 30 * 60


def test_stay_warns_at_30_min_escalates_at_2_h_on_one_episode() -> None:
    t = _visit(timedelta(hours=3))
    full = assert_restartable(step_poi, PoiState(), t.fixes, CTX, CFG)
    inside = _inside_slow(t, PAWN)
    stays = opens(full, "risk_poi_stay")
    assert [s.severity for s in stays] == [Severity.WARN, Severity.HIGH]
    assert {s.episode for s in stays} == {f"risk_poi_stay:pawn-1:{stamp(inside[0])}"}
    assert stays[0].time == next(x for x in inside if x - inside[0] >= timedelta(minutes=30))
    assert stays[1].time == next(x for x in inside if x - inside[0] >= timedelta(hours=2))
    assert len(opens(full, "risk_poi_visit")) == 1
    assert len(resolves(full, "risk_poi_visit")) == 1
    assert resolves(full, "risk_poi_stay") == []  # a long stay stays on record


def test_overnight_stay_is_high_before_two_hours() -> None:
    evening = datetime(2025, 3, 3, 14, 10, tzinfo=UTC)  # 22:10 China time
    t = Track(evening, _at(PAWN)).park(timedelta(minutes=50), wander_m=10.0)
    t.drive_to(HOME, speed_kmh=30)
    _, signals = run(step_poi, PoiState(), t.fixes, CTX, CFG)
    stays = opens(signals, "risk_poi_stay")
    assert [s.severity for s in stays] == [Severity.HIGH]
    assert stays[0].evidence["overnight"] is True
    daytime = Track(T0 + timedelta(hours=2), _at(PAWN)).park(timedelta(minutes=50), wander_m=10.0)
    _, signals = run(step_poi, PoiState(), daytime.fixes, CTX, CFG)
    assert [s.severity for s in opens(signals, "risk_poi_stay")] == [Severity.WARN]


def test_sparse_wireless_fixes_measure_the_stay_by_time() -> None:
    t = Track(T0, _at(MARKET), device="wireless-1", kind="wireless")
    t.fix()  # 08:00 China time
    t.wait(timedelta(hours=6)).fix(offset(*_at(MARKET), 20.0, -30.0))  # 14:00, still there
    t.wait(timedelta(hours=6)).fix(HOME)  # 20:00 at home
    t.wait(timedelta(hours=6)).fix(HOME)
    _, signals = run(step_poi, PoiState(), t.fixes, CTX, CFG)
    assert [(s.rule, s.action, s.severity) for s in signals] == [
        ("risk_poi_visit", Action.OPEN, Severity.INFO),
        ("risk_poi_stay", Action.OPEN, Severity.HIGH),
        ("risk_poi_visit", Action.RESOLVE, Severity.INFO),
    ]
    assert signals[1].evidence["stayed_s"] == 6 * 3600


def test_a_gap_longer_than_max_gap_ends_the_visit() -> None:
    t = Track(T0, _at(MARKET)).park(timedelta(minutes=15))
    t.wait(timedelta(hours=13)).park(timedelta(minutes=15))
    _, signals = run(step_poi, PoiState(), t.fixes, CTX, CFG)
    visits = [s for s in signals if s.rule == "risk_poi_visit"]
    assert [s.action for s in visits] == [Action.OPEN, Action.RESOLVE, Action.OPEN]
    assert visits[1].evidence["reason"] == "data_gap"
    assert visits[0].episode != visits[2].episode
    assert opens(signals, "risk_poi_stay") == []  # neither stay reached 30 min


def test_driving_past_is_not_a_visit_and_skips_the_lookup() -> None:
    places = FakePlaces([PAWN, MARKET], CITIES)
    beyond = offset(*_at(MARKET), 0.0, 3_000.0)
    t = Track(T0, offset(*_at(MARKET), 0.0, -3_000.0)).drive_to(beyond, speed_kmh=40, every_s=10)
    t.park(timedelta(minutes=30))
    _, signals = run(step_poi, PoiState(), t.fixes, context(places=places), CFG)
    assert signals == []
    assert places.poi_lookups < 10  # only the slow (parked) fixes look POIs up


def test_parked_near_the_edge_with_jitter_and_jumps() -> None:
    outside = offset(*_at(PAWN), 175.0, 0.0)  # 25 m beyond the 150 m area
    t = Track(T0, outside).park(timedelta(hours=6), wander_m=15.0)
    _, signals = run(step_poi, PoiState(), t.fixes, CTX, CFG)
    assert signals == []
    on_edge = offset(*_at(PAWN), 140.0, 0.0)  # in and out of the area by wander
    t = Track(T0, on_edge).park(timedelta(hours=3), wander_m=15.0).jump(300.0)
    t.park(timedelta(hours=1), wander_m=15.0)
    _, signals = run(step_poi, PoiState(), t.fixes, CTX, CFG)
    assert len(opens(signals, "risk_poi_visit")) == 1
    assert resolves(signals) == []  # one jump out is not leaving
    assert [s.severity for s in opens(signals, "risk_poi_stay")] == [Severity.WARN, Severity.HIGH]


def test_moving_between_neighbouring_pois_gives_two_visits() -> None:
    t = Track(T0, _at(PAWN)).park(timedelta(minutes=20), wander_m=10.0)
    t.drive_to(_at(MARKET), speed_kmh=10, every_s=30).park(timedelta(minutes=20), wander_m=10.0)
    full = assert_restartable(step_poi, PoiState(), t.fixes, CTX, CFG)
    visits = [(s.evidence["poi_id"], s.action) for s in full]
    assert visits == [
        ("pawn-1", Action.OPEN),
        ("pawn-1", Action.RESOLVE),
        ("ucm-1", Action.OPEN),
    ]


def test_categories_config_limits_the_pois() -> None:
    t = Track(T0, _at(MARKET)).park(timedelta(hours=1))
    _, signals = run(step_poi, PoiState(), t.fixes, CTX, PoiConfig(categories=("pawnshop",)))
    assert signals == []


def test_small_poi_radius_is_raised_to_100_m() -> None:
    tiny = Poi("sm-1", "second_mortgage", "Er Ya Finance", *offset(*SHANGHAI, -5_000.0, 0.0), 30.0)
    ctx = context(places=FakePlaces([tiny], CITIES))
    t = Track(T0, offset(tiny.lat, tiny.lon, 70.0, 0.0)).park(timedelta(minutes=40), wander_m=8.0)
    _, signals = run(step_poi, PoiState(), t.fixes, ctx, CFG)
    assert [s.rule for s in signals] == ["risk_poi_visit", "risk_poi_stay"]
    assert signals[0].evidence["radius_m"] == 100.0


def _engine_on(t: Track, at: tuple[float, float], n: int) -> Track:
    """``n`` fixes 15 s apart at ``at`` with the engine running (a car that is not parked)."""
    t.move_to(at)
    for _ in range(n):
        t.wait(timedelta(seconds=15)).fix(ignition=True)
    return t


def test_waiting_at_the_lights_beside_a_pawnshop_is_not_a_visit() -> None:
    """Seen in the detection report: 3 fixes 15 s apart at 0 km/h, engine running, inside
    the pawnshop's area (a red light at the corner); then the car drives on."""
    t = Track(T0, HOME).park(timedelta(hours=1), every_s=(600.0, 600.0))
    t.wait(timedelta(minutes=10)).fix(offset(*_at(PAWN), 0.0, -400.0), 8.0, ignition=True)
    _engine_on(t, offset(*_at(PAWN), 0.0, -60.0), 3)
    t.wait(timedelta(seconds=15)).fix(offset(*_at(PAWN), 0.0, 300.0), 8.0, ignition=True)
    t.wait(timedelta(seconds=15)).fix(offset(*_at(PAWN), 0.0, 500.0), 8.0, ignition=True)
    _, signals = run(step_poi, PoiState(), t.fixes, CTX, CFG)
    assert signals == []


def test_a_stop_with_the_engine_running_for_three_minutes_is_a_visit() -> None:
    t = Track(T0, HOME).park(timedelta(hours=1), every_s=(600.0, 600.0))
    _engine_on(t, _at(PAWN), 14)
    first_inside = t.fixes[-14].time
    _, signals = run(step_poi, PoiState(), t.fixes, CTX, CFG)
    assert [(s.rule, s.time - first_inside) for s in opens(signals)] == [
        ("risk_poi_visit", timedelta(minutes=3))
    ]


def test_parking_with_the_engine_off_is_a_visit_at_once() -> None:
    t = Track(T0, HOME).park(timedelta(hours=1), every_s=(600.0, 600.0))
    _engine_on(t, _at(PAWN), 1).wait(timedelta(seconds=20)).fix(ignition=False)
    _, signals = run(step_poi, PoiState(), t.fixes, CTX, CFG)
    assert [(s.rule, s.time) for s in opens(signals)] == [("risk_poi_visit", t.fixes[-1].time)]
