"""tracker_on_other_vehicle: 3-25 km/h for 5 min, ignition never on, vehicle power lost."""

from __future__ import annotations

from cloud.risk.model import Action, Severity
from cloud.risk.rules.other_vehicle import RULE
from tests.unit.risk.device_fakes import (
    HOME,
    T0,
    WIRED,
    Timeline,
    assert_restart_safe,
    drive,
    h,
    m,
    offset,
    s,
)

KEY = f"tracker_on_other_vehicle:{WIRED}:2025-03-04T01:40:00Z"


def ebike(*, event: bool = True) -> Timeline:
    """Unplugged at T0 while parked, ridden away at 18 km/h from T0 + 10 min for 12 min."""
    tl = Timeline(T0).park(m(-60), m(-1), m(10), ext_v=12.5)
    if event:
        tl.event(m(0), "power_lost", ext_v=0.0)
    tl.park(m(1), m(9), m(4), ext_v=0.0)
    return tl.drive(m(10), m(22), s(15), speed_kmh=18.0, ignition=False, ext_v=0.0)


def test_ebike_ride_fires_after_five_minutes() -> None:
    _, sigs = drive(RULE, ebike().inputs())
    assert [(x.severity, x.time - T0, x.episode) for x in sigs] == [(Severity.HIGH, m(15), KEY)]
    assert sigs[0].evidence["power_lost"] is True


def test_ext_v_alone_shows_the_lost_power() -> None:
    _, sigs = drive(RULE, ebike(event=False).inputs())
    assert [x.time - T0 for x in sigs] == [m(15)]


def test_stops_at_lights_do_not_break_the_ride() -> None:
    tl = Timeline(T0).event(m(0), "power_lost", ext_v=0.0)
    tl.drive(m(10), m(13), s(15), speed_kmh=20.0, ignition=False, ext_v=0.0)
    tl.park(m(13) + s(15), m(15), s(30), pos=offset(*HOME, 0.0, 1000.0), ignition=False)
    tl.drive(
        m(15) + s(15),
        m(20),
        s(15),
        pos=offset(*HOME, 0.0, 1000.0),
        speed_kmh=20.0,
        ignition=False,
        ext_v=0.0,
    )
    _, sigs = drive(RULE, tl.inputs())
    assert [x.time - T0 for x in sigs] == [m(17) + s(15)]


def test_the_car_itself_never_fires() -> None:
    jam = Timeline(T0).drive(m(0), h(1), s(15), speed_kmh=10.0, ext_v=14.0)  # traffic, ignition on
    towed_powered = Timeline(T0).drive(
        m(0), m(30), s(15), speed_kmh=15.0, ignition=False, ext_v=12.4
    )
    for tl in (jam, towed_powered):
        _, sigs = drive(RULE, tl.inputs())
        assert sigs == []


def test_unplugged_but_parked_jitter_never_fires() -> None:
    tl = Timeline(T0).event(m(0), "power_lost", ext_v=0.0)
    for i in range(60):  # noisy speed readings, a few metres of wander
        tl.fix(m(i), pos=offset(*HOME, (i % 3) * 5.0, 0.0), speed_kmh=4.0, ignition=False)
    _, sigs = drive(RULE, tl.inputs())
    assert sigs == []


def test_ignition_on_resolves() -> None:
    tl = ebike().drive(h(2), h(2) + m(5), s(15), speed_kmh=40.0, ignition=True, ext_v=14.0)
    _, sigs = drive(RULE, tl.inputs())
    assert [(x.action, x.episode) for x in sigs] == [(Action.OPEN, KEY), (Action.RESOLVE, KEY)]


def test_restart_safe() -> None:
    tl = ebike().drive(h(1), h(1) + m(10), s(15), speed_kmh=20.0, ignition=False, ext_v=0.0)
    tl.event(h(3), "power_restored", ext_v=12.5)
    tl.drive(h(4), h(4) + m(10), s(15), speed_kmh=20.0, ignition=False, ext_v=12.5)
    sigs = assert_restart_safe(RULE, tl.inputs())
    assert [x.action for x in sigs] == [Action.OPEN]
