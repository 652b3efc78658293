"""The demo's fleet: provisionable ids, stable across starts, faults in the first minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud.demo_scenarios import GUARANTEED, chase_candidate, demo_fleet, imei
from cloud.registry.ids import imei_problem, vin_problem
from firmware_sim.places import CITIES
from firmware_sim.receiver import Environment
from firmware_sim.scenarios import build

START = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)


def test_ids_are_what_the_registry_accepts_and_unique() -> None:
    fleet = demo_fleet(1, 200, START)
    assert all(imei_problem(v.tracker_id) is None for v in fleet)
    assert all(vin_problem(v.vin) is None for v in fleet)
    assert len({v.tracker_id for v in fleet}) == 200
    assert len({v.vin for v in fleet}) == 200
    assert all(len(v.plate) <= 16 for v in fleet)
    other = demo_fleet(2, 5, START, imei_prefix="8689", name_prefix="OTHR")
    assert {v.tracker_id for v in other}.isdisjoint({v.tracker_id for v in fleet})
    with pytest.raises(ValueError, match="14 digits"):
        imei("86a8", 1)


def test_the_same_cars_whenever_the_demo_starts() -> None:
    """The fleet is registered first and its clocks start later: only times may differ."""
    a = demo_fleet(3, 30, START)
    b = demo_fleet(3, 30, START + timedelta(minutes=7, seconds=13))
    assert [(v.tracker_id, v.kind, v.city, v.plate) for v in a] == [
        (v.tracker_id, v.kind, v.city, v.plate) for v in b
    ]
    assert demo_fleet(4, 30, START) != a


@pytest.mark.parametrize("china_hour", [3, 8, 13, 19])
def test_small_fleets_still_misbehave_and_the_faults_come_early(china_hour: int) -> None:
    start = datetime(2026, 11, 25, china_hour - 8 if china_hour >= 8 else china_hour + 16,
                     tzinfo=UTC)  # fmt: skip
    fleet = demo_fleet(1, 40, start)
    assert [v.kind for v in fleet[: len(GUARANTEED)]] == list(GUARANTEED)
    early = late = 0
    for v in fleet:
        world = build(v.scenario)
        labels = {lab.rule for lab in world.labels if lab.expect == "alert"}
        expected = {
            "power_cut": {"power_cut", "device_removed"},
            "jamming": {"jamming"},
            "spoofing": {"spoofing"},
            "risk_poi": {"risk_poi_visit", "risk_poi_stay"},
        }.get(v.kind, set())
        assert expected <= labels, v.kind
        for name, (begin, _end) in world.event_windows.items():
            if name in ("cut", "tamper"):  # the tracker's own faults: whatever the car does
                assert begin - start <= timedelta(minutes=3), (v.kind, name, begin)
            elif name in ("jam", "spoof", "poi", "basement", "away"):
                # On the car's trips and stays: a commute under way may put them off a while.
                early += begin - start <= timedelta(minutes=10)
                late += begin - start > timedelta(minutes=10)
    assert early > late, (early, late)  # at rush hour (8:00 China time) 7 against 5


def test_the_other_tenant_only_drives_and_the_chased_car_parks_under_the_sky() -> None:
    other = demo_fleet(2, 6, START, mix={"drive": 1.0}, first=("drive",))
    assert {v.kind for v in other} == {"drive"}
    car = chase_candidate(demo_fleet(1, 20, START))
    assert car.kind == "drive"
    home = CITIES[car.city].homes[car.scenario.vehicles[0].home or 0]
    assert home.environment is not Environment.CARPARK
    with pytest.raises(ValueError, match="unknown kind"):
        demo_fleet(1, 2, START, mix={"flying": 1.0}, first=())
