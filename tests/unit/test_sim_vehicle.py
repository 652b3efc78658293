"""The vehicle model: a commuter's week in China time, plausible trips, visits and moves."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from firmware_sim.places import CITIES, RISK_KINDS, place
from firmware_sim.vehicle import (
    CHINA_TZ,
    Relocation,
    Vehicle,
    VehicleKind,
    Visit,
    bearing_deg,
)
from protocols.plausibility import haversine_m

MONDAY = datetime(2025, 3, 3, tzinfo=CHINA_TZ)
PREFECTURES = Path(__file__).resolve().parents[3] / "shared/data/regions/cn_prefectures.geojson"


def commuter(seed: int = 1, days: int = 7, **kw: object) -> Vehicle:
    return Vehicle(
        seed=seed,
        home=place("shanghai.home.0"),
        work=place("shanghai.work.1"),
        start=MONDAY,
        end=MONDAY + timedelta(days=days),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def week() -> Vehicle:
    return commuter()


def test_catalogue_has_the_places_the_rules_need() -> None:
    assert len(CITIES) == 8
    for city in CITIES.values():
        assert len(city.homes) == 3
        assert len(city.works) == 3
        assert set(city.risk) == set(RISK_KINDS)
        for p in city.places():
            assert haversine_m(p.lat, p.lon, city.centre.lat, city.centre.lon) < 25_000
    assert place("beijing.second_mortgage").kind.value == "second_mortgage"
    with pytest.raises(KeyError):
        place("beijing.home.7")
    with pytest.raises(KeyError):
        place("lhasa.centre")


@pytest.mark.skipif(not PREFECTURES.exists(), reason="needs ../shared/data/regions")
def test_catalogue_places_lie_in_their_prefecture() -> None:
    shapely_geometry = pytest.importorskip("shapely.geometry")
    features = json.loads(PREFECTURES.read_text(encoding="utf-8"))["features"]
    shapes = {
        f["properties"]["adcode"]: shapely_geometry.shape(f["geometry"]).buffer(0) for f in features
    }
    for city in CITIES.values():
        for p in city.places():
            assert shapes[city.adcode].contains(shapely_geometry.Point(p.lon, p.lat)), p.id


def test_sleeps_at_home_every_night_china_time(week: Vehicle) -> None:
    for day in range(7):
        for minutes in range(0, 7 * 60, 20):  # 23:00 .. 05:40
            t = MONDAY + timedelta(days=day, hours=23, minutes=minutes)
            if t >= week.end:
                continue
            st = week.state_at(t)
            assert st.place == week.home.id, t
            assert not st.moving
            assert not st.ignition
            assert st.speed_mps == 0.0


def test_at_work_by_day_on_workdays(week: Vehicle) -> None:
    for day in range(5):
        for hour in (10.5, 15.5):
            st = week.state_at(MONDAY + timedelta(days=day, hours=hour))
            assert st.place == week.work.id
    weekend = [week.state_at(MONDAY + timedelta(days=d, hours=h)) for d in (5, 6) for h in (11, 15)]
    assert all(st.place != week.work.id for st in weekend)


def test_commute_times(week: Vehicle) -> None:
    for day in range(5):
        date = (MONDAY + timedelta(days=day)).date()
        trips = [t for t in week.trips if t.depart.astimezone(CHINA_TZ).date() == date]
        out = next(t for t in trips if t.origin.id == week.home.id)
        back = next(t for t in trips if t.dest.id == week.home.id)
        leave = out.depart.astimezone(CHINA_TZ)
        assert 7.5 <= leave.hour + leave.minute / 60 <= 8.5
        home = back.depart.astimezone(CHINA_TZ)
        assert 18.0 <= home.hour + home.minute / 60 <= 19.6 or back.origin.kind.value == "leisure"


def test_trips_have_plausible_speeds_and_course(week: Vehicle) -> None:
    top = 0.0
    checked = 0
    for trip in week.trips:
        if trip.depart < MONDAY:
            continue
        avg_kmh = trip.length_m / (trip.arrive - trip.depart).total_seconds() * 3.6
        assert 10.0 <= avg_kmh <= 70.0, avg_kmh
        t = trip.depart
        prev = week.state_at(t)
        while t + timedelta(seconds=1) < trip.arrive:
            t += timedelta(seconds=1)
            st = week.state_at(t)
            top = max(top, st.speed_mps * 3.6)
            moved = haversine_m(prev.lat, prev.lon, st.lat, st.lon)
            assert moved <= max(prev.speed_mps, st.speed_mps) + 1.0
            if moved > 5.0 and st.speed_mps > 3.0:
                diff = abs(
                    (bearing_deg(prev.lon, prev.lat, st.lon, st.lat) - st.course_deg + 180) % 360
                    - 180
                )
                if prev.course_deg == st.course_deg:  # not at a corner
                    assert diff < 2.0
                    checked += 1
            assert st.ignition
            assert st.moving
            prev = st
    assert checked > 1000
    assert 40.0 < top <= 100.0  # never near 130 km/h on city roads


def test_deterministic_per_seed() -> None:
    a, b, c = commuter(5, 3), commuter(5, 3), commuter(6, 3)
    assert [(t.depart, t.points) for t in a.trips] == [(t.depart, t.points) for t in b.trips]
    assert [t.depart for t in a.trips] != [t.depart for t in c.trips]


def test_visit_stays_at_the_place() -> None:
    lender = place("shanghai.second_mortgage")
    at = MONDAY + timedelta(days=1, hours=10)
    v = commuter(visits=[Visit(at, lender, timedelta(hours=3))])
    trip = next(t for t in v.trips if t.dest.id == lender.id)
    assert at <= trip.depart < at + timedelta(minutes=3)
    for minutes in (10, 90, 170):
        assert v.state_at(trip.arrive + timedelta(minutes=minutes)).place == lender.id
    assert v.state_at(trip.arrive + timedelta(hours=3, minutes=5)).place != lender.id
    assert v.state_at(MONDAY + timedelta(days=2, hours=2)).place == v.home.id


def test_intercity_visit_uses_the_highway() -> None:
    at = MONDAY + timedelta(days=1, hours=9)
    v = commuter(visits=[Visit(at, place("hangzhou.centre"), timedelta(hours=20))])
    trip = next(t for t in v.trips if t.dest.id == "hangzhou.centre")
    assert trip.length_m > 150_000
    assert 1.5 < (trip.arrive - trip.depart).total_seconds() / 3600 < 3.5
    assert v.state_at(at + timedelta(hours=12)).place == "hangzhou.centre"


def test_relocation_changes_where_it_sleeps() -> None:
    new_home, new_work = place("hangzhou.home.1"), place("hangzhou.work.0")
    move = MONDAY + timedelta(days=2, hours=12)
    v = commuter(relocations=[Relocation(move, new_home, new_work)])
    assert v.state_at(MONDAY + timedelta(days=1, hours=2)).place == "shanghai.home.0"
    for day in (4, 5, 6):
        assert v.state_at(MONDAY + timedelta(days=day, hours=2)).place == new_home.id


def test_ebike_is_slow_and_never_starts_an_engine() -> None:
    spot = place("shenzhen.home.2")
    start = MONDAY + timedelta(hours=6)
    bike = Vehicle(
        seed=3, home=spot, work=spot, start=start, end=start + timedelta(days=2),
        kind=VehicleKind.EBIKE, start_at=spot,
    )  # fmt: skip
    assert bike.state_at(start).place == spot.id
    assert len(bike.trips) >= 4
    speeds = []
    t = start
    while t < bike.end:
        st = bike.state_at(t)
        assert not st.ignition
        speeds.append(st.speed_mps * 3.6)
        t += timedelta(seconds=5)
    assert 10.0 < max(speeds) <= 25.0


def test_static_vehicle_never_moves() -> None:
    spot = place("nanjing.centre")
    decoy = Vehicle(
        seed=1, home=spot, work=spot, start=MONDAY, end=MONDAY + timedelta(days=2),
        kind=VehicleKind.STATIC, start_at=spot,
    )  # fmt: skip
    assert decoy.trips == []
    assert decoy.state_at(MONDAY + timedelta(hours=30)).place == spot.id
