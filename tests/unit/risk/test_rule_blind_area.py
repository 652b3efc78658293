"""blind_area: a coverage gap > 10 min filled by stored records, no power loss, no reboot."""

from __future__ import annotations

from cloud.risk.model import LATE_FLAG, Action, Severity
from cloud.risk.rules.blind_area import RULE
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

KEY = f"blind_area:{WIRED}:2025-03-04T01:30:00Z"
LATE = (LATE_FLAG,)


def basement(resume: str = "fix") -> Timeline:
    """The ``blind_area`` scenario: parked at T0 into an underground car park for 8 h;
    the agent's gnss_fault (link down) is stored and uploaded when the car drives out."""
    tl = Timeline(T0).drive(m(-20), m(-1), s(15)).park(m(0), m(0))
    tl.event(m(5), "gnss_fault", link_up=False)
    if resume != "fix":
        tl.event(h(8) - s(30), resume)
    return tl.drive(h(8), h(8) + m(15), s(15))


def test_underground_car_park_is_recognised_when_the_car_comes_out() -> None:
    _, sigs = drive(RULE, basement().inputs())
    assert [(x.action, x.severity, x.time - T0) for x in sigs] == [
        (Action.OPEN, Severity.INFO, h(8)),
        (Action.RESOLVE, Severity.INFO, h(8)),
    ]
    assert {x.episode for x in sigs} == {KEY}
    ev = sigs[0].evidence
    assert (ev["gap_min"], ev["stored_records"], ev["link_down_markers"]) == (480.0, 1, 1)


def test_dead_spot_with_stored_fixes_uploaded_late() -> None:
    tl = Timeline(T0).drive(m(-5), m(0), s(15))
    tl.drive(m(0) + s(15), m(40), s(15), flags=LATE)  # mountain road, no cellular signal
    tl.drive(m(40) + s(15), m(50), s(15))
    _, sigs = drive(RULE, tl.inputs())
    assert [(x.action, x.time - T0) for x in sigs] == [
        (Action.OPEN, m(40) + s(15)),
        (Action.RESOLVE, m(40) + s(15)),
    ]
    assert sigs[0].evidence["stored_records"] == 160


def test_short_link_drop_is_not_a_blind_area() -> None:
    tl = Timeline(T0).drive(m(-5), m(0), s(15)).drive(m(0) + s(15), m(2), s(15), flags=LATE)
    tl.drive(m(2) + s(15), m(10), s(15))
    _, sigs = drive(RULE, tl.inputs())
    assert sigs == []


def test_removal_and_restarts_are_not_blind_areas() -> None:
    stored_cut = Timeline(T0).park(m(0), m(0)).event(m(3), "power_lost", flags=LATE)
    stored_cut.event(m(5), "gnss_fault", link_up=False).park(h(3), h(4))
    for tl in (basement("boot"), basement("power_restored"), stored_cut):
        _, sigs = drive(RULE, tl.inputs())
        assert sigs == []


def test_plain_silence_without_stored_records_is_only_offline() -> None:
    tl = Timeline(T0).park(m(0), m(0)).ticks(m(1), h(8), m(10)).park(h(8), h(9))
    _, sigs = drive(RULE, tl.inputs())
    assert sigs == []


def test_devices_are_judged_apart() -> None:
    tl = basement().fix(h(2), device=WIRELESS, kind="wireless")
    _, sigs = drive(RULE, tl.inputs(), make_ctx(*BOTH))
    assert {x.device_id for x in sigs} == {WIRED}


def test_restart_safe() -> None:
    tl = basement()
    tl.drive(h(9), h(9) + m(30), s(15), flags=LATE).drive(h(9) + m(31), h(10), s(30))
    sigs = assert_restart_safe(RULE, tl.inputs())
    assert len(sigs) == 4
