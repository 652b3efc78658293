"""spoofing: teleports (> 300 km/h implied, confirmed), > 250 km/h, altitude, time ahead."""

from __future__ import annotations

from cloud.risk.model import Action, Severity
from cloud.risk.rules.spoofing import RULE
from tests.unit.risk.device_fakes import (
    HOME,
    T0,
    WIRED,
    Timeline,
    assert_restart_safe,
    drive,
    h,
    keys,
    m,
    offset,
    s,
)

BEIJING = (39.9042, 116.4074)
KEY = f"spoofing:{WIRED}:2025-03-04T01:30:00Z"


def spoofed() -> Timeline:
    """Driving at home; from T0 the NMEA says Beijing for 10 min, then home again."""
    tl = Timeline(T0).drive(m(-10), m(-1) + s(45), s(15))
    tl.drive(m(0), m(10) - s(15), s(15), pos=BEIJING)
    return tl.drive(m(10), m(20), s(15), pos=offset(*HOME, 0.0, 10_000.0))


def test_teleport_is_high_once_confirmed_and_the_return_is_the_same_episode() -> None:
    tl = spoofed().ticks(m(20), h(1), m(5))
    _, sigs = drive(RULE, tl.inputs())
    assert [(x.action, x.severity, x.time - T0) for x in sigs] == [
        (Action.OPEN, Severity.HIGH, s(15)),  # the next fake fix carries on from the jump
        (Action.RESOLVE, Severity.HIGH, m(45)),  # 30 min after the jump back was confirmed
    ]
    assert keys(sigs) == {KEY}
    assert isinstance(jump := sigs[0].evidence["jump_km"], float)
    assert jump > 1000
    assert sigs[0].lat is not None
    assert sigs[0].lat > 39


def test_urban_jumps_and_a_single_outlier_never_fire() -> None:
    tl = Timeline(T0).drive(m(0), m(30), s(15), speed_kmh=30.0)
    tl.fix(m(5) + s(1), pos=offset(*HOME, 300.0, 250.0), speed_kmh=30.0)  # 300 m multipath
    tl.fix(m(10) + s(7), pos=offset(*HOME, 2_000.0, 1_000.0), speed_kmh=30.0)  # one wild fix
    _, sigs = drive(RULE, tl.inputs())
    assert sigs == []


def test_long_gap_makes_a_big_move_plausible() -> None:
    tl = Timeline(T0).park(m(0), h(1)).park(h(3), h(4), pos=offset(*HOME, 150_000.0, 0.0))
    _, sigs = drive(RULE, tl.inputs())
    assert sigs == []


def test_one_bad_speed_is_noise_two_are_a_warning() -> None:
    tl = Timeline(T0).drive(m(0), m(20), s(15), speed_kmh=80.0)
    tl.fix(m(2) + s(5), speed_kmh=260.0, pos=offset(*HOME, 0.0, 3000.0))
    _, sigs = drive(RULE, tl.inputs())
    assert sigs == []
    tl.fix(m(8) + s(5), alt_m=7200.0, speed_kmh=80.0, pos=offset(*HOME, 0.0, 11_000.0))
    _, sigs = drive(RULE, tl.inputs())
    assert [(x.severity, x.time - T0) for x in sigs] == [(Severity.WARN, m(8) + s(5))]
    assert sigs[0].episode == f"spoofing:{WIRED}:2025-03-04T01:32:05Z"


def test_time_ahead_comes_from_the_plausibility_flag() -> None:
    tl = Timeline(T0).park(m(0), m(30), m(5), flags=("time_ahead",))
    _, sigs = drive(RULE, tl.inputs())
    assert [(x.severity, x.time - T0) for x in sigs] == [(Severity.WARN, m(5))]
    assert sigs[0].evidence["findings"] == ["time_ahead"]


def test_restart_safe() -> None:
    tl = spoofed().ticks(m(20), h(1), m(5))
    tl.fix(h(1) + s(5), speed_kmh=300.0).fix(h(1) + m(1), speed_kmh=300.0)
    sigs = assert_restart_safe(RULE, tl.inputs())
    assert [x.action for x in sigs] == [Action.OPEN, Action.RESOLVE, Action.OPEN]


def test_teleports_dropped_by_the_edge_gate_count_when_the_device_reports_them() -> None:
    """Seen in the detection report: the gate refused every spoofed fix, so the cloud saw
    only heartbeats. The device contract: ``spoofing_suspected`` after 30 s of refusals."""
    tl = Timeline(T0).drive(m(-10), m(0), s(15)).heartbeats(m(1), m(9), sats=14)
    tl.event(m(1), "spoofing_suspected", pos=HOME, reason="jump_too_fast", rejected_lat=39.9,
             rejected_lon=116.4, implied_kmh=99999, dropped=30)  # fmt: skip
    tl.event(m(2), "spoofing_suspected", reason="jump_too_fast", dropped=90)  # same episode
    tl.event(m(3), "gnss_fault", reason="jump_too_fast")  # only the contract's event counts
    tl.drive(m(10), m(15), s(15), pos=offset(*HOME, 0.0, 8300.0)).ticks(m(15), h(1), m(5))
    _, sigs = drive(RULE, tl.inputs())
    assert [(x.action, x.severity, x.time - T0) for x in sigs] == [
        (Action.OPEN, Severity.HIGH, m(1)),
        (Action.RESOLVE, Severity.HIGH, m(35)),
    ]
    assert sigs[0].evidence["source"] == "edge_gate"
    assert sigs[0].evidence["to"] == [39.9, 116.4]
    assert sigs[0].evidence["from"] == list(HOME)
    assert (sigs[0].lat, sigs[0].lon) == HOME  # where the car really was


def test_future_times_dropped_by_the_edge_gate_are_weak_findings() -> None:
    tl = Timeline(T0).park(m(0), h(1))
    tl.event(m(5), "spoofing_suspected", reason="time_in_future")
    _, sigs = drive(RULE, tl.inputs())
    assert sigs == []
    tl.event(m(9), "spoofing_suspected", reason="time_in_future")
    _, sigs = drive(RULE, tl.inputs())
    assert [(x.action, x.severity, x.time - T0) for x in sigs] == [
        (Action.OPEN, Severity.WARN, m(9)),
        (Action.RESOLVE, Severity.WARN, m(40)),  # the first parked fix 30 min after
    ]
