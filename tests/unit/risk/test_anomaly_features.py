"""Per vehicle-day features on synthetic days whose answers are known in advance."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from cloud.risk.anomaly.features import (
    FEATURE_NAMES,
    DayFeatures,
    choose_track,
    day_features,
)
from cloud.risk.anomaly.resident import resident_point
from cloud.risk.geo import distance_m
from cloud.risk.model import Device, FixIn
from tests.unit.risk.test_anomaly_support import (
    DAY,
    HANGZHOU,
    HOME,
    OFFICE,
    PAWNSHOP,
    FakePlaces,
    at,
    commute_day,
    drive,
    end_of,
    park,
    pawnshop,
)

COMMUTE_KM = distance_m(*HOME, *OFFICE) / 1000  # ~9.51
TRIP_KM = distance_m(*HOME, *HANGZHOU) / 1000  # ~165


def test_names_and_order_are_stable() -> None:
    assert FEATURE_NAMES == (
        "km_driven",
        "night_km",
        "stay_clusters",
        "max_km_from_home",
        "mean_km_from_home",
        "risk_poi_hours",
        "offline_hours",
        "provinces_visited",
    )
    f = DayFeatures(*range(8))
    assert f.vector() == tuple(float(v) for v in range(8))
    assert DayFeatures.from_vector(f.vector()) == f


def test_commute_in_shanghai() -> None:
    f = day_features(DAY, commute_day(), FakePlaces(), HOME)
    assert f is not None
    assert f.km_driven == pytest.approx(2 * COMMUTE_KM, abs=0.1)
    assert f.night_km == 0.0
    assert f.stay_clusters == 2  # home (morning and evening are one place) and office
    assert f.max_km_from_home == pytest.approx(COMMUTE_KM, abs=0.05)
    # at the office ~9.7 h of the ~23.9 h covered, and 2 x 16 min on the road at half way
    office_h = (at(18) - at(8, 16)).total_seconds() / 3600
    expected_mean = (COMMUTE_KM * office_h + COMMUTE_KM * 16 / 60) / 23.9
    assert f.mean_km_from_home == pytest.approx(expected_mean, rel=0.05)
    assert f.risk_poi_hours == 0.0
    assert f.offline_hours == 0.0
    assert f.provinces_visited == 1


def test_parked_all_day_wander_is_not_driving() -> None:
    fixes = park(at(0), at(0) + timedelta(days=1), HOME, every_s=300)
    f = day_features(DAY, fixes, FakePlaces(), HOME)
    assert f is not None
    assert f.km_driven == 0.0
    assert f.stay_clusters == 1
    assert f.max_km_from_home < 0.02


def _trip_day(*, spoof: bool) -> list[FixIn]:
    home = park(at(0), at(21), HOME)
    trip = drive(at(21), HOME, HANGZHOU, speed_mps=25.0, every_s=30.0)
    if spoof:  # one fix 50 km off, a second after its neighbour: > 300 km/h, ignored
        k = len(trip) // 2
        bad = replace(trip[k], time=trip[k].time + timedelta(seconds=1), lat=trip[k].lat + 0.45)
        trip.insert(k + 1, bad)
    there = park(end_of(trip) + timedelta(minutes=10), at(0) + timedelta(days=1), HANGZHOU)
    return [*home, *trip, *there]


@pytest.mark.parametrize("spoof", [False, True])
def test_out_of_province_night_trip(spoof: bool) -> None:
    places = FakePlaces()
    f = day_features(DAY, _trip_day(spoof=spoof), places, HOME)
    assert f is not None
    assert f.km_driven == pytest.approx(TRIP_KM, rel=0.01)
    duration_s = TRIP_KM * 1000 / 25.0
    night_share = (duration_s - 3600) / duration_s  # the drive starts at 21:00
    assert f.night_km == pytest.approx(TRIP_KM * night_share, rel=0.03)
    assert f.max_km_from_home == pytest.approx(TRIP_KM, rel=0.01)
    assert f.stay_clusters == 2
    assert f.provinces_visited == 2
    assert f.offline_hours == 0.0
    # provinces are looked up per kilometre moved, not per fix
    assert places.lookups < TRIP_KM + 10


def test_teleport_then_consistent_fixes_reanchor_without_counting_the_jump() -> None:
    fixes = [
        *park(at(0), at(10), HOME),
        *park(at(10, 1), at(10, 30), HANGZHOU, every_s=60),  # moved while silent
    ]
    f = day_features(DAY, fixes, FakePlaces(), HOME)
    assert f is not None
    assert f.km_driven < 0.1
    assert f.max_km_from_home == pytest.approx(TRIP_KM, rel=0.01)
    assert f.provinces_visited == 2
    assert f.offline_hours == pytest.approx(
        (at(0) + timedelta(days=1) - at(10, 29)) / timedelta(hours=1)
    )


def test_risk_poi_visit() -> None:
    go = drive(at(10), HOME, PAWNSHOP)
    stay = park(end_of(go), end_of(go) + timedelta(hours=2), PAWNSHOP, every_s=300)
    back = drive(end_of(go) + timedelta(hours=2), PAWNSHOP, HOME)
    fixes = [
        *park(at(0), at(10), HOME),
        *go,
        *stay,
        *back,
        *park(end_of(back) + timedelta(minutes=5), at(0) + timedelta(days=1), HOME),
    ]
    f = day_features(DAY, fixes, FakePlaces(pois=[pawnshop()]), HOME)
    assert f is not None
    # arrival to the last parked report: 115 min (the leaving fix is already moving)
    assert f.risk_poi_hours == pytest.approx(115 / 60, abs=0.02)
    assert f.stay_clusters == 2
    assert f.max_km_from_home == pytest.approx(distance_m(*HOME, *PAWNSHOP) / 1000, abs=0.05)
    assert f.km_driven == pytest.approx(2 * distance_m(*HOME, *PAWNSHOP) / 1000, abs=0.1)


def test_offline_after_the_wired_unit_goes_silent() -> None:
    fixes = [f for f in commute_day() if f.time < at(14)]
    f = day_features(DAY, fixes, FakePlaces(), HOME)
    assert f is not None
    last = max(x.time for x in fixes)
    assert f.offline_hours == pytest.approx(
        (at(0) + timedelta(days=1) - last).total_seconds() / 3600
    )


def test_offline_allowance_follows_the_heartbeat() -> None:
    fixes = [f for f in commute_day() if not at(12) <= f.time < at(12, 50)]  # a ~55 min gap
    lenient = day_features(DAY, fixes, FakePlaces(), HOME)
    strict = day_features(
        DAY, fixes, FakePlaces(), HOME, devices={"wired-1": Device("wired-1", "wired", 1800)}
    )
    assert lenient is not None
    assert strict is not None
    assert lenient.offline_hours == pytest.approx(0.9, abs=0.1)  # > 30 min counts
    assert strict.offline_hours == 0.0  # 2 x 30 min heartbeat allows it


def test_the_wired_track_wins_over_the_wireless_one() -> None:
    wired = commute_day()
    wireless = park(at(3), at(23), HANGZHOU, every_s=6 * 3600, device="wl-1", kind="wireless")
    both = day_features(DAY, [*wired, *wireless], FakePlaces(), HOME)
    alone = day_features(DAY, wired, FakePlaces(), HOME)
    assert both == alone
    assert {f.device_id for f in choose_track([*wireless, *wired])} == {"wired-1"}


def test_wireless_only_day_uses_its_sparse_track() -> None:
    fixes = commute_day(device="wl-1", kind="wireless")[::12]
    f = day_features(DAY, fixes, FakePlaces(), HOME)
    assert f is not None
    assert f.offline_hours == 0.0  # two missed 12-hour reports are allowed
    assert f.max_km_from_home == pytest.approx(COMMUTE_KM, abs=0.1)


def test_without_resident_point_the_reference_is_the_median_night_position() -> None:
    with_home = day_features(DAY, commute_day(), FakePlaces(), HOME)
    without = day_features(DAY, commute_day(), FakePlaces(), None)
    assert with_home is not None
    assert without is not None
    assert without.max_km_from_home == pytest.approx(with_home.max_km_from_home, abs=0.03)


def test_fixes_outside_the_day_are_ignored_and_an_empty_day_has_no_features() -> None:
    assert day_features(DAY, [], FakePlaces(), HOME) is None
    tomorrow = commute_day(DAY + timedelta(days=1))
    assert day_features(DAY, tomorrow, FakePlaces(), HOME) is None
    today = day_features(DAY, [*commute_day(), *tomorrow], FakePlaces(), HOME)
    assert today == day_features(DAY, commute_day(), FakePlaces(), HOME)


def test_resident_point_is_the_dominant_night_place() -> None:
    home_nights = [(HOME[0] + k * 1e-6, HOME[1]) for k in range(30)]
    elsewhere = [(OFFICE[0], OFFICE[1] + k * 1e-6) for k in range(12)]
    point = resident_point([*home_nights, *elsewhere])
    assert point is not None
    assert distance_m(*point, *HOME) < 5
    far = [(HANGZHOU[0], HANGZHOU[1] + k * 1e-6) for k in range(8)]
    assert resident_point([*home_nights[:10], *elsewhere[:8], *far]) is None  # none holds half
    assert resident_point(home_nights[:5]) is None  # too little night data
