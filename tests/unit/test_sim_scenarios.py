"""Scenario files: they load, labels are well-formed, errors name keys, generation is seeded."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from firmware_sim.places import CITIES
from firmware_sim.scenarios import (
    EVENT_KINDS,
    RULES,
    RelocateEvent,
    ScenarioError,
    VisitEvent,
    build,
    bundled,
    generate,
    load_named,
    loads,
    parse_duration,
)
from firmware_sim.world import World
from protocols.hwio import Power

GOOD = """
name = "t"
start = 2025-03-03T00:00:00+08:00
duration = "2d"
seed = 1

[[vehicles]]
id = "V1"
home_city = "nanjing"
trackers = [{ id = "d1", kind = "wired" }, { id = "d2", kind = "wireless" }]

[[events]]
id = "poi"
kind = "visit"
vehicle = "V1"
at = 2025-03-04T10:00:00+08:00
place = "nanjing.pawnshop"
stay = "1h"

[[labels]]
rule = "risk_poi_visit"
vehicle = "V1"
event = "poi"
"""


def check_labels(world: World) -> None:
    assert world.end > world.start
    for lab in world.labels:
        assert lab.rule in RULES
        assert lab.vehicle in world.vehicles
        assert lab.tracker is None or world.vehicle_of[lab.tracker] == lab.vehicle
        assert lab.start < lab.end
        assert world.start <= lab.start < world.end
        assert lab.expect in ("alert", "silent", "optional")


def test_bundled_scenarios_exist() -> None:
    assert {
        "commuter", "region_exit", "risk_poi_stay", "unplugged", "jamming", "spoofing",
        "relocation", "separation", "blind_area", "ip_mismatch", "tracker_on_ebike",
    } <= set(bundled())  # fmt: skip


@pytest.mark.parametrize("name", bundled())
def test_bundled_scenario_loads_and_builds(name: str) -> None:
    scenario = load_named(name)
    world = build(scenario)
    check_labels(world)
    assert set(world.trackers) == {t.id for v in scenario.vehicles for t in v.trackers}


def test_bundled_labels_cover_every_rule() -> None:
    rules = {lab.rule for name in bundled() for lab in load_named(name).labels}
    assert rules == set(RULES)
    commuter = load_named("commuter")
    assert commuter.labels == []  # no alert expected


def test_good_scenario_resolves_the_visit_window() -> None:
    world = build(loads(GOOD))
    (lab,) = world.labels
    depart, leave = world.event_windows["poi"]
    assert (lab.start, lab.end) == (depart, leave)
    assert timedelta(hours=1) <= leave - depart <= timedelta(hours=2, minutes=30)
    car = world.vehicles["V1"]
    assert car.state_at(leave - timedelta(minutes=5)).place == "nanjing.pawnshop"


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('home_city = "nanjing"', 'home_city = "atlantis"', "vehicles[0].home_city"),
        ('stay = "1h"', 'stay = "an hour"', "events[0].stay"),
        ('stay = "1h"', "stay = 60", "events[0].stay"),
        ('kind = "visit"', 'kind = "teleport"', "events[0].kind"),
        ('place = "nanjing.pawnshop"', 'place = "nanjing.casino"', "events[0].place"),
        ('vehicle = "V1"\nat', 'vehicle = "V9"\nat', "events[0].vehicle"),
        ('id = "d2"', 'id = "d1"', "vehicles[0].trackers[1].id"),
        ('event = "poi"', 'event = "nope"', "labels[0].event"),
        ('rule = "risk_poi_visit"', 'rule = "speeding"', "labels[0].rule"),
        ("at = 2025-03-04T10:00:00+08:00", "at = 2025-03-09T10:00:00+08:00", "events[0].at"),
        ("at = 2025-03-04T10:00:00+08:00", "at = 2025-03-04T10:00:00", "events[0].at"),
        ("seed = 1", 'seed = 1\ncolour = "red"', "(top)"),
        (
            'event = "poi"',
            "start = 2025-03-04T10:00:00+08:00\nend = 2025-03-04T09:00:00+08:00",
            "labels[0].end",
        ),
    ],
)
def test_errors_name_their_key(old: str, new: str, key: str) -> None:
    assert old in GOOD
    with pytest.raises(ScenarioError) as err:
        loads(GOOD.replace(old, new, 1))
    assert err.value.key == key


def test_not_toml_is_reported() -> None:
    with pytest.raises(ScenarioError, match="not valid TOML"):
        loads("name = ", source="x.toml")
    with pytest.raises(ScenarioError):
        load_named("no-such-scenario")


def test_durations() -> None:
    assert parse_duration("1d2h3m4s") == timedelta(days=1, hours=2, minutes=3, seconds=4)
    assert parse_duration("90m") == timedelta(minutes=90)
    assert "move_tracker" in EVENT_KINDS


def test_generate_is_deterministic_per_seed() -> None:
    a, b, c = generate(7, 25), generate(7, 25), generate(8, 25)
    assert msgspec.json.encode(a) == msgspec.json.encode(b)
    assert msgspec.json.encode(a) != msgspec.json.encode(c)
    assert len(a) == 25
    assert len({s.vehicles[0].id for s in a}) == 25
    assert len({t.id for s in a for v in s.vehicles for t in v.trackers}) == sum(
        len(v.trackers) for s in a for v in s.vehicles
    )


def test_generate_follows_the_mix() -> None:
    only = generate(3, 6, {"jamming": 1.0})
    assert {s.name.split("-")[0] for s in only} == {"jamming"}
    with pytest.raises(ValueError, match="mix"):
        generate(3, 2, {"flying": 1.0})
    with pytest.raises(ValueError, match="mix"):
        generate(3, 2, {"jamming": 0.0})


def test_generated_scenarios_build_with_well_formed_labels() -> None:
    kinds = [
        "commuter", "region_exit", "risk_poi_stay", "risk_poi_visit", "unplugged", "jamming",
        "spoofing", "relocation", "separation", "blind_area", "ip_mismatch", "tracker_on_ebike",
    ]  # fmt: skip
    for n, kind in enumerate(kinds):
        (scenario,) = generate(n, 1, {kind: 1.0})
        world = build(scenario)
        check_labels(world)
        if kind != "commuter":
            assert world.labels


def test_unplugged_world_streams_power_lost_then_silence() -> None:
    world = build(load_named("unplugged"))
    cut, _ = world.event_windows["cut"]
    gone, _ = world.event_windows["gone"]
    assert gone - cut == timedelta(minutes=12)
    tracker = world.trackers["860104000000001"]
    t = cut - timedelta(minutes=1)
    lost_at = None
    while t < gone + timedelta(minutes=5):
        tick = tracker.tick(t)
        if any(isinstance(s, Power) and s.state == "lost" for s in tick.io):
            lost_at = t
        if t >= gone:
            assert not tick.alive
            assert not tick.nmea
        t += timedelta(seconds=1)
    assert lost_at is not None
    assert cut <= lost_at < cut + timedelta(seconds=2)
    # The car was parked when the power was cut (align = "parked").
    assert not world.vehicles["GZ-UNPLUG"].state_at(cut).moving


def test_generated_labels_follow_where_the_car_ends_up() -> None:
    """A car that ends up in another province should raise region_exit; in its own
    province nothing should (the detection report flagged the first as a false alarm)."""
    for kind in ("separation", "relocation"):
        seen = set()
        for seed in range(40):
            (scenario,) = generate(seed, 1, {kind: 1.0})
            home = CITIES[scenario.vehicles[0].home_city].province
            event = next(e for e in scenario.events if e.id in ("away", "move"))
            if isinstance(event, VisitEvent):
                dest = event.place.split(".")[0]
            else:
                assert isinstance(event, RelocateEvent)
                dest = event.city
            left = CITIES[dest].province != home
            rules = {lab.rule: lab.expect for lab in scenario.labels}
            assert (rules.get("region_exit") == "alert") == left
            seen.add(left)
        assert seen == {True, False}


def test_separation_car_leaves_the_decoy_on_its_first_trip_after_the_swap() -> None:
    for seed in range(10):
        world = build(generate(seed, 1, {"separation": 1.0})[0])
        swap, _ = world.event_windows["swap"]
        away, _ = world.event_windows["away"]
        vehicle = next(iter(world.vehicles.values()))
        first = next(trip for trip in vehicle.trips if trip.depart > swap)
        assert first.depart == away
