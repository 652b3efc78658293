"""tamper: immediate high on a tamper event (light / case); antenna cut warns."""

from __future__ import annotations

from cloud.risk.model import Severity
from cloud.risk.rules.device_health import TAMPER_RULE as RULE
from tests.unit.risk.device_fakes import (
    BOTH,
    T0,
    WIRED,
    WIRELESS,
    Timeline,
    assert_restart_safe,
    drive,
    h,
    m,
    make_ctx,
    s,
)

CTX = make_ctx(*BOTH)


def test_tamper_fires_at_once() -> None:
    tl = Timeline(T0).fix(m(0), device=WIRELESS, kind="wireless")
    tl.event(
        m(1), "tamper", device=WIRELESS, dev_kind="wireless", source="light", pos=(30.0, 120.0)
    )
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert [(x.severity, x.time - T0, x.episode) for x in sigs] == [
        (Severity.HIGH, m(1), f"tamper:{WIRELESS}:light:2025-03-04T01:31:00Z")
    ]
    assert sigs[0].lat == 30.0
    assert sigs[0].evidence["source"] == "light"


def test_a_flapping_sensor_is_one_episode() -> None:
    tl = Timeline(T0)
    for at in (m(0), m(1), m(3), m(9)):  # the case stays open, the sensor flaps
        tl.event(at, "tamper", device=WIRELESS, dev_kind="wireless", source="case")
    tl.event(h(2), "tamper", device=WIRELESS, dev_kind="wireless", source="case")
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert [x.time - T0 for x in sigs] == [m(0), h(2)]


def test_antenna_cut_warns() -> None:
    tl = Timeline(T0).event(m(0), "antenna_cut").event(m(0) + s(30), "antenna_cut")
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert [(x.severity, x.episode) for x in sigs] == [
        (Severity.WARN, f"tamper:{WIRED}:antenna:2025-03-04T01:30:00Z")
    ]


def test_other_records_are_ignored() -> None:
    tl = Timeline(T0).park(m(0), h(1)).heartbeats(m(0), h(1))
    tl.event(m(5), "power_lost").event(m(6), "low_battery").event(m(7), "jamming_suspected")
    tl.ticks(m(0), h(1), m(5))
    state, sigs = drive(RULE, tl.inputs(), CTX)
    assert sigs == []
    assert state == RULE.state_type()


def test_restart_safe() -> None:
    tl = Timeline(T0).park(m(0), h(3)).heartbeats(m(0), h(3), m(3))
    for at in (m(10), m(12), h(1), h(2) + m(59)):
        tl.event(at, "tamper", device=WIRELESS, dev_kind="wireless", source="light")
    tl.event(h(1) + m(30), "antenna_cut")
    sigs = assert_restart_safe(RULE, tl.inputs(), CTX)
    assert len(sigs) == 4
