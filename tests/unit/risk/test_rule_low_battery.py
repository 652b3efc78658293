"""low_battery: a device's low_battery event, or vehicle < 11.4 V after 1 h with ignition off."""

from __future__ import annotations

from cloud.risk.model import Action, Severity
from cloud.risk.rules.device_health import LOW_BATTERY_RULE as RULE
from tests.unit.risk.device_fakes import (
    BOTH,
    T0,
    WIRED,
    WIRELESS,
    Timeline,
    assert_restart_safe,
    drive,
    h,
    keys,
    m,
    make_ctx,
)

CTX = make_ctx(*BOTH)


def test_device_battery_event_fires_once() -> None:
    tl = Timeline(T0)
    tl.event(m(0), "low_battery", device=WIRELESS, dev_kind="wireless", batt_v=3.52)
    tl.event(h(6), "low_battery", device=WIRELESS, dev_kind="wireless", batt_v=3.50)
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert [(x.severity, x.episode) for x in sigs] == [
        (Severity.WARN, f"low_battery:{WIRELESS}:battery:2025-03-04T01:30:00Z")
    ]
    assert sigs[0].evidence["batt_v"] == 3.52


def test_backup_battery_resolves_when_power_returns() -> None:
    tl = Timeline(T0).event(m(0), "power_lost").event(h(5), "low_battery", batt_v=3.5)
    tl.event(h(6), "power_restored", ext_v=12.6)
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert [x.action for x in sigs] == [Action.OPEN, Action.RESOLVE]
    assert len(keys(sigs)) == 1


def asleep(volts: float, hours: float = 3.0) -> Timeline:
    """Driven until T0, ignition off from T0, parked fixes every 10 min reading ``volts``."""
    tl = Timeline(T0).drive(m(-30), m(-1), ext_v=14.2)
    return tl.park(m(0), h(hours), m(10), ext_v=volts)


def test_vehicle_under_voltage_after_one_hour_asleep() -> None:
    _, sigs = drive(RULE, asleep(11.2).inputs(), CTX)
    assert [(x.severity, x.time - T0) for x in sigs] == [(Severity.WARN, m(70))]
    assert sigs[0].episode == f"low_battery:{WIRED}:vehicle:2025-03-04T02:30:00Z"
    assert sigs[0].evidence["asleep_h"] == 1.2


def test_healthy_cut_or_single_noisy_reading_never_fire() -> None:
    for volts in (12.4, 11.5, 0.0):  # healthy, just above 11.4 V, and a power cut
        _, sigs = drive(RULE, asleep(volts).inputs(), CTX)
        assert sigs == [], volts
    tl = asleep(12.3).fix(h(2) + m(5), ext_v=11.0, ignition=False)  # one dip among good readings
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert sigs == []


def test_ignition_on_restarts_the_hour_and_recovery_resolves() -> None:
    tl = asleep(11.2, hours=0.8).drive(h(0.9), h(1), ext_v=14.0)  # a short trip before the hour
    tl.park(h(1) + m(5), h(1.9), m(10), ext_v=11.2)  # 55 min asleep since the trip: nothing
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert sigs == []
    tl = asleep(11.2).park(h(3) + m(5), h(4), m(10), ext_v=12.1)
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert [(x.action, x.time - T0) for x in sigs] == [
        (Action.OPEN, m(70)),
        (Action.RESOLVE, h(3) + m(5)),
    ]


def test_restart_safe() -> None:
    tl = asleep(11.2).park(h(3) + m(5), h(4), m(10), ext_v=12.1)
    tl.event(h(1), "low_battery", device=WIRELESS, dev_kind="wireless", batt_v=3.5)
    sigs = assert_restart_safe(RULE, tl.inputs(), CTX)
    assert len(sigs) == 3
