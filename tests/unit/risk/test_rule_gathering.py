"""Gathering: >= 3 of a tenant's cars entering one POI within 24 h."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import msgspec

from cloud.risk.model import Action, Poi, Severity, Signal
from cloud.risk.rules.gathering import (
    GatheringConfig,
    GatheringState,
    PoiVisit,
    step_gathering,
    visit_of,
)
from cloud.risk.rules.poi import PoiConfig, PoiState, step_poi
from cloud.risk.rules.region import stamp
from tests.unit.risk.location_fakes import (
    CITIES,
    SHANGHAI,
    T0,
    FakePlaces,
    Track,
    context,
    offset,
    roundtrip,
    run,
)

CFG = GatheringConfig()
H = timedelta(hours=1)


def _v(vehicle: int, hours: float, poi: str = "ucm-1") -> PoiVisit:
    return PoiVisit(
        poi_id=poi, vehicle_id=vehicle, time=T0 + hours * H, category="used_car_market",
        poi_name="Hongqiao used cars", lat=31.25, lon=121.49,
    )  # fmt: skip


def _feed(
    visits: Iterable[PoiVisit], state: GatheringState | None = None
) -> tuple[GatheringState, list[Signal]]:
    s = state or GatheringState()
    out: list[Signal] = []
    for v in visits:
        s, signals = step_gathering(s, v, CFG)
        out.extend(signals)
    return s, out


def test_third_car_within_24_h_opens_and_fifth_escalates_the_same_episode() -> None:
    visits = [_v(1, 0), _v(2, 5), _v(3, 20), _v(4, 21), _v(5, 22), _v(6, 23)]
    _, signals = _feed(visits)
    assert [s.severity for s in signals] == [Severity.WARN, Severity.HIGH]
    assert {s.episode for s in signals} == {f"gathering:ucm-1:{stamp(T0)}"}
    assert signals[0].time == T0 + 20 * H
    assert signals[0].evidence["vehicles"] == [1, 2, 3]
    assert signals[1].evidence["vehicles"] == [1, 2, 3, 4, 5]
    assert signals[0].evidence["poi_name"] == "Hongqiao used cars"
    assert all(s.action is Action.OPEN for s in signals)


def test_cars_more_than_24_h_apart_do_not_gather_until_three_fit_a_window() -> None:
    _, signals = _feed([_v(1, 0), _v(2, 13), _v(3, 26)])
    assert signals == []
    _, signals = _feed([_v(1, 0), _v(2, 13), _v(3, 26), _v(4, 30)])
    assert [s.episode for s in signals] == [f"gathering:ucm-1:{stamp(T0 + 13 * H)}"]


def test_one_car_coming_back_duplicates_and_other_pois_do_not_count() -> None:
    visits = [_v(1, 0), _v(1, 3), _v(1, 6), _v(2, 7), _v(2, 7), _v(3, 8, poi="pawn-1")]
    state, signals = _feed(visits)
    assert signals == []
    again, more = step_gathering(state, _v(2, 7), CFG)
    assert more == []
    assert again == state


def test_late_arrivals_name_the_same_episode_as_in_order_data() -> None:
    in_order = [_v(1, 10), _v(3, 11), _v(2, 12)]
    late = [_v(1, 10), _v(2, 12), _v(3, 11)]  # car 3's blind-area upload came last
    _, a = _feed(in_order)
    _, b = _feed(late)
    assert (
        [s.episode for s in a]
        == [s.episode for s in b]
        == [f"gathering:ucm-1:{stamp(T0 + 10 * H)}"]
    )
    # a late entry inside an open episode joins it: no second alert
    state, _ = _feed([_v(1, 10), _v(2, 11), _v(3, 12), _v(4, 13)])
    _, extra = step_gathering(state, _v(5, 9.5), CFG)
    assert [s.episode for s in extra] == [f"gathering:ucm-1:{stamp(T0 + 10 * H)}"]
    assert extra[0].severity is Severity.HIGH  # the fifth car escalates


def test_restart_mid_stream_and_replay_give_the_same_signals() -> None:
    visits = [_v(i % 7, i * 2.5, poi=f"p{i % 3}") for i in range(40)]
    _, full = _feed(visits)
    assert full
    for k in (5, 17, 33):
        snap, head = _feed(visits[:k])
        _, tail = _feed(visits[k:], roundtrip(snap))
        assert head + tail == full
        _, again = _feed(visits[k:], snap)
        assert again == tail


def test_state_stays_bounded_and_very_late_entries_are_dropped() -> None:
    visits = [_v(i, i * 1.0, poi=f"poi-{i}") for i in range(24 * 20)]  # 20 days, new POI each hour
    state, _ = _feed(visits)
    assert len(state.pois) <= 50  # ~48 h of POIs, swept hourly
    state, signals = step_gathering(state, _v(999, 0.5), CFG)
    assert signals == []
    assert state.dropped_late == 1
    assert len(msgspec.msgpack.encode(state)) < 10_000


def test_fed_from_poi_visit_signals_of_three_vehicles() -> None:
    market = Poi(
        "ucm-1", "used_car_market", "Hongqiao used cars", *offset(*SHANGHAI, 2e3, 1.6e3), 200.0
    )
    ctx = context(places=FakePlaces([market], CITIES))
    state, out = GatheringState(), []
    for vehicle, hours in ((11, 1), (12, 4), (13, 9)):
        t = Track(T0 + hours * H, offset(market.lat, market.lon, 60.0, 0.0), seed=vehicle)
        t.park(timedelta(minutes=40))
        _, signals = run(step_poi, PoiState(), t.fixes, ctx, PoiConfig())
        for sig in signals:
            visit = visit_of(sig, vehicle)
            if visit is not None:
                state, found = step_gathering(state, visit, CFG)
                out.extend(found)
    assert len(out) == 1
    assert out[0].evidence["vehicles"] == [11, 12, 13]
    assert out[0].evidence["category"] == "used_car_market"
    assert out[0].episode == f"gathering:ucm-1:{stamp(T0 + H)}"
