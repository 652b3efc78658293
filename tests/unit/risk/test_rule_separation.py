"""device_separation: wired and wireless fixes within 10 min > max(2 km, 3x accuracy) apart."""

from __future__ import annotations

from cloud.risk.model import Action, Severity
from cloud.risk.rules.separation import RULE
from tests.unit.risk.device_fakes import (
    BOTH,
    HOME,
    T0,
    WIRELESS,
    Timeline,
    assert_restart_safe,
    drive,
    h,
    m,
    make_ctx,
    offset,
    s,
)

CTX = make_ctx(*BOTH)
MARKET = offset(*HOME, 120_000.0, 90_000.0)  # 150 km away


def decoy(wireless_at: tuple[float, ...], where: tuple[float, float], **kw: float) -> Timeline:
    """Wired unit parked at HOME all day (a fix every 10 min); one wireless fix per wake."""
    tl = Timeline(T0).park(m(0), h(24), m(10), hdop=kw.get("hdop", 1.0))
    for hours in wireless_at:
        tl.fix(
            h(hours) + m(3), device=WIRELESS, kind="wireless", pos=where, hdop=kw.get("hdop", 1.0)
        )
    return tl


def test_far_apart_fires_on_the_first_wake() -> None:
    _, sigs = drive(RULE, decoy((6, 12), MARKET).inputs(), CTX)
    assert [(x.severity, x.time - T0) for x in sigs] == [(Severity.HIGH, h(6) + m(10))]
    assert sigs[0].episode == f"device_separation:{WIRELESS}:2025-03-04T07:30:00Z"
    assert isinstance(dist := sigs[0].evidence["distance_m"], int)
    assert dist > 140_000


def test_near_decoy_needs_a_second_wireless_fix() -> None:
    around_the_corner = offset(*HOME, 4000.0, 3000.0)  # 5 km: more than 2 km, less than 20
    _, sigs = drive(RULE, decoy((6, 12, 18), around_the_corner).inputs(), CTX)
    assert [(x.time - T0) for x in sigs] == [h(12) + m(3)]
    assert sigs[0].episode == f"device_separation:{WIRELESS}:2025-03-04T07:30:00Z"


def car_park_decoy(ignition: bool, wireless_at: tuple[float, ...] = (6, 12)) -> Timeline:
    """Seen in the detection report: the car drove into a car park at home (its last wired
    fix is the entrance, at speed); from then on the wired unit, moved to a decoy there,
    sends only heartbeats: the gate drops every fix (HDOP > 5). The car leaves with its
    wireless unit, which wakes far away."""
    tl = Timeline(T0).drive(m(-5), m(0), s(15), speed_kmh=30.0, heading_deg=0.0)
    tl.heartbeats(m(2), h(24), m(2), ignition=ignition, sats=8, ext_v=12.6)
    for hours in wireless_at:
        for k in range(3):
            tl.fix(h(hours) + m(k), device=WIRELESS, kind="wireless", pos=MARKET)
    return tl


def test_car_park_decoy_with_the_ignition_off_fires_on_the_first_wake() -> None:
    _, sigs = drive(RULE, car_park_decoy(ignition=False).inputs(), CTX)
    assert [(x.action, x.severity, x.time - T0) for x in sigs] == [
        (Action.OPEN, Severity.HIGH, h(6) + m(1))
    ]
    assert isinstance(dist := sigs[0].evidence["distance_m"], int)
    assert dist > 140_000


def test_a_held_position_needs_the_ignition_off() -> None:
    """Heartbeats with the engine running (or without an ignition reading) hold nothing:
    the car may be driving with a blind receiver."""
    _, sigs = drive(RULE, car_park_decoy(ignition=True).inputs(), CTX)
    assert sigs == []


def test_both_units_in_a_car_park_then_driving_together_is_quiet() -> None:
    """The commuter's night: the wired unit's position is held in the car park, the
    wireless unit wakes there without a fix; in the morning both fix again together."""
    tl = Timeline(T0).drive(m(-5), m(0), s(15), speed_kmh=30.0, heading_deg=0.0)
    tl.heartbeats(m(2), h(8), m(2), ignition=False, sats=8)
    tl.drive(h(8) + m(1), h(9), s(15), speed_kmh=40.0, heading_deg=0.0)
    on_the_way = offset(*HOME, 40.0 / 3.6 * 19 * 60, 0.0)  # where the car is at h(8) + m(20)
    tl.drive(h(8) + m(20), h(8) + m(24), m(1), device=WIRELESS, kind="wireless",
             pos=on_the_way, speed_kmh=40.0, heading_deg=0.0, ignition=None)  # fmt: skip
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert sigs == []


def test_one_bad_wireless_fix_is_not_enough() -> None:
    tl = decoy((6, 18), HOME).fix(
        h(12) + m(3), device=WIRELESS, kind="wireless", pos=offset(*HOME, 4000.0, 0.0)
    )
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert sigs == []


def test_driving_together_is_not_separation() -> None:
    tl = Timeline(T0).drive(m(0), h(1), s(30), speed_kmh=110.0)
    for minute in (7.8, 8.1, 31.3, 55.0):  # wireless fixes between the wired ones
        at = m(minute)
        where = offset(*HOME, 0.0, 110 / 3.6 * at.total_seconds())
        tl.fix(at, device=WIRELESS, kind="wireless", pos=where, speed_kmh=110.0)
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert sigs == []


def test_accuracy_widens_the_threshold() -> None:
    near = offset(*HOME, 2060.0, 0.0)  # over 2 km, under 3 x hypot(495, 495) = 2.1 km
    _, sharp = drive(RULE, decoy((6, 12), near).inputs(), CTX)
    _, blurred = drive(RULE, decoy((6, 12), near, hdop=99.0).inputs(), CTX)
    assert len(sharp) == 1
    assert blurred == []


def test_back_together_resolves() -> None:
    tl = decoy((6, 12), MARKET).fix(h(18) + m(3), device=WIRELESS, kind="wireless", pos=HOME)
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert [(x.action, x.time - T0) for x in sigs] == [
        (Action.OPEN, h(6) + m(10)),
        (Action.RESOLVE, h(18) + m(10)),  # the wired fix after it agrees too
    ]
    assert sigs[0].episode == sigs[1].episode


def test_single_device_vehicle_never_compares() -> None:
    _, sigs = drive(RULE, Timeline(T0).park(m(0), h(5)).inputs())
    assert sigs == []


def test_restart_safe() -> None:
    tl = decoy((6, 12, 18), offset(*HOME, 4000.0, 3000.0))
    tl.fix(h(23) + m(3), device=WIRELESS, kind="wireless", pos=HOME)
    sigs = assert_restart_safe(RULE, tl.inputs(), CTX)
    assert [x.action for x in sigs] == [Action.OPEN, Action.RESOLVE]
