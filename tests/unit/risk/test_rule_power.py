"""power_cut (high parked, warn moving, 5 s debounce) and device_removed (cut, then silence)."""

from __future__ import annotations

from cloud.risk.model import LATE_FLAG, Action, Severity
from cloud.risk.rules.power import RULE
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
    opens,
    resolves,
    s,
)

CUT_KEY = f"power_cut:{WIRED}:2025-03-04T01:30:00Z"
GONE_KEY = f"device_removed:{WIRED}:2025-03-04T01:30:00Z"


def parked() -> Timeline:
    """Parked and powered from T0 - 1 h until just before T0: a fix every 10 min, heartbeats."""
    tl = Timeline(T0 - h(1))
    return tl.park(m(0), h(1) - s(1), m(10), ext_v=12.5).heartbeats(m(1), h(1) - s(1))


def test_parked_cut_is_high_at_once_and_resolves_on_restore() -> None:
    tl = parked().event(h(1), "power_lost", ext_v=0.0).park(h(1) + m(1), h(1.4), ext_v=0.0)
    tl.event(h(1.5), "power_restored", ext_v=12.6).park(h(1.5) + m(1), h(2), ext_v=12.6)
    _, sigs = drive(RULE, tl.inputs())
    assert [(x.action, x.severity, x.time - T0) for x in sigs] == [
        (Action.OPEN, Severity.HIGH, m(0)),
        (Action.RESOLVE, Severity.HIGH, m(30)),
    ]
    assert keys(sigs) == {CUT_KEY}
    assert sigs[0].evidence["parked"] is True
    assert sigs[0].lat is not None


def test_cut_in_a_car_park_is_parked_by_the_heartbeats_ignition() -> None:
    """Seen in the detection report: the last fix is the car park entrance at 30 km/h; the
    heartbeats since say the ignition is off. A cut there is a parked cut: high at once."""
    tl = Timeline(T0 - h(1)).drive(m(0), m(5), s(15), speed_kmh=30.0, ext_v=14.0)
    tl.heartbeats(m(7), h(1) - s(1), ignition=False, sats=8, ext_v=12.6)
    tl.event(h(1), "power_lost", ext_v=0.0).heartbeats(h(1) + m(2), h(2), ignition=False)
    _, sigs = drive(RULE, tl.inputs())
    assert [(x.rule, x.severity, x.time - T0) for x in sigs] == [("power_cut", Severity.HIGH, m(0))]
    assert sigs[0].evidence["parked"] is True


def test_moving_glitch_under_five_seconds_is_debounced() -> None:
    tl = Timeline(T0).drive(m(0), m(10), s(15), ext_v=14.0)
    tl.event(m(2) + s(1), "power_lost", ext_v=0.0).event(m(2) + s(4), "power_restored", ext_v=13.9)
    _, sigs = drive(RULE, tl.inputs())
    assert sigs == []


def test_moving_cut_warns_after_debounce_then_escalates_when_parked() -> None:
    tl = Timeline(T0 - m(10)).drive(m(0), m(10) + m(3), s(15))
    tl.event(m(10), "power_lost", ext_v=0.0)
    tl.park(m(10) + m(4), m(40), m(10))
    _, sigs = drive(RULE, tl.inputs())
    assert [(x.severity, x.time - T0) for x in sigs] == [
        (Severity.WARN, s(15)),  # the next fix, 15 s later, shows the loss persists
        (Severity.HIGH, m(4)),  # parked with the power still cut: same episode
    ]
    assert keys(sigs) == {CUT_KEY}


def test_ext_v_drop_without_an_event() -> None:
    tl = parked()
    tl.fix(h(1), ext_v=0.3, ignition=False)  # T0: the supply reads zero
    tl.heartbeats(h(1) + m(2), h(1.2))
    tl.fix(h(1) + m(30), ext_v=10.1, ignition=False)  # cranking-level dip is not a cut ...
    tl.fix(h(1) + m(40), ext_v=12.4, ignition=False)  # ... and a healthy supply restores
    _, sigs = drive(RULE, tl.inputs())
    assert [(x.action, x.severity, x.time - T0) for x in sigs] == [
        (Action.OPEN, Severity.HIGH, m(2)),  # debounced at the next heartbeat
        (Action.RESOLVE, Severity.HIGH, m(30)),  # 10.1 V >= 9 V restore threshold
    ]
    assert sigs[0].evidence["source"] == "ext_v"


def unplugged(live_ticks: bool = True) -> Timeline:
    """The ``unplugged`` scenario: cut at T0 while parked, silent 12 minutes later."""
    tl = Timeline(T0 - h(1)).park(m(0), h(1), m(10)).heartbeats(m(1), h(1))
    tl.event(h(1), "power_lost", ext_v=0.0).heartbeats(h(1) + m(2), h(1) + m(12))
    tl.fix(h(1) + m(10), ext_v=0.0)
    if live_ticks:
        tl.ticks(h(1) + m(13), h(3), m(1))
    return tl


def test_cut_then_silence_is_removed() -> None:
    _, sigs = drive(RULE, unplugged().inputs())
    assert [(x.rule, x.severity, x.time - T0) for x in sigs] == [
        ("power_cut", Severity.HIGH, m(0)),
        ("device_removed", Severity.CRITICAL, m(32)),  # last heartbeat 12 min + 20 min silence
    ]
    assert sigs[1].episode == GONE_KEY


def test_removal_is_dated_when_the_silence_was_long_enough_however_late_the_tick() -> None:
    """Seen in the detection report: a replay ticks once, at the end; the alert must carry
    the time a live worker ticking every minute would have given it (cut + 12 + 20 min)."""
    one_tick = parked().event(h(1), "power_lost", ext_v=0.0).heartbeats(h(1) + m(2), h(1) + m(12))
    one_tick.tick(h(30))
    _, late = drive(RULE, one_tick.inputs())
    _, live = drive(RULE, unplugged().inputs())
    assert [(x.rule, x.time - T0) for x in late] == [("power_cut", m(0)),
                                                      ("device_removed", m(32))]  # fmt: skip
    assert [(x.episode, x.time) for x in late] == [(x.episode, x.time) for x in live]
    seen = late[1].evidence["silence_min"]
    assert isinstance(seen, float)
    assert seen > 24 * 60  # what the tick saw


def test_blind_area_is_neither_cut_nor_removed() -> None:
    tl = Timeline(T0 - h(1)).park(m(0), h(1), m(10), ext_v=12.5).heartbeats(m(1), h(1))
    tl.event(h(1) + m(5), "gnss_fault", link_up=False)
    tl.ticks(h(1) + m(1), h(9), m(1))
    tl.drive(h(9), h(9) + m(20), s(15), ext_v=14.1)
    _, sigs = drive(RULE, tl.inputs())
    assert sigs == []


def test_battery_running_flat_hours_later_is_not_removal() -> None:
    tl = parked().event(h(1), "power_lost", ext_v=0.0)
    tl.park(h(1) + m(10), h(7), m(10), ext_v=0.0).heartbeats(h(1) + m(2), h(7))
    tl.ticks(h(7), h(10), m(1))
    _, sigs = drive(RULE, tl.inputs())
    assert [x.rule for x in sigs] == ["power_cut"]


def test_device_heard_again_resolves_removed_but_not_the_cut() -> None:
    tl = unplugged().event(h(3) + m(1), "boot").fix(h(3) + m(2), ext_v=0.0)
    _, sigs = drive(RULE, tl.inputs())
    assert [(x.rule, x.action) for x in sigs] == [
        ("power_cut", Action.OPEN),
        ("device_removed", Action.OPEN),
        ("device_removed", Action.RESOLVE),
    ]


def test_rerun_without_ticks_raises_the_same_removal_from_stored_data() -> None:
    back = unplugged(live_ticks=False).event(h(3) + m(1), "boot").fix(h(3) + m(2), ext_v=0.0)
    _, sigs = drive(RULE, back.inputs())
    assert [(x.rule, x.action, x.episode) for x in sigs] == [
        ("power_cut", Action.OPEN, CUT_KEY),
        ("device_removed", Action.OPEN, GONE_KEY),
        ("device_removed", Action.RESOLVE, GONE_KEY),
    ]
    assert sigs[1].time - T0 == m(32)  # dated like the live tick, not by the record


def test_late_burst_after_a_live_removal_resolves_it() -> None:
    """Power cut, then a tunnel: live, the unit looked removed; the burst shows it was not."""
    live = unplugged()
    st_open, sigs = drive(RULE, live.inputs())
    assert [x.episode for x in opens(sigs, "device_removed")] == [GONE_KEY]
    snap, _ = drive(RULE, unplugged(live_ticks=False).inputs())  # snapshot before the ticks
    burst = Timeline(T0).park(m(20), h(2), m(10), ext_v=0.0, flags=(LATE_FLAG,))
    burst.fix(h(2) + m(5), ext_v=0.0)
    for state in (st_open, snap):
        _, after = drive(RULE, burst.inputs(), state=state)
        assert [(x.rule, x.action, x.episode) for x in after] == [
            ("device_removed", Action.RESOLVE, GONE_KEY)
        ]


def test_wireless_units_are_ignored() -> None:
    tl = Timeline(T0).event(m(0), "power_lost", device=WIRELESS, dev_kind="wireless")
    tl.ticks(m(1), h(2), m(5))
    _, sigs = drive(RULE, tl.inputs(), make_ctx(*BOTH))
    assert sigs == []


def test_restart_safe() -> None:
    tl = unplugged().event(h(3) + m(1), "boot").fix(h(3) + m(2), ext_v=0.0)
    tl.event(h(4), "power_restored", ext_v=12.6).fix(h(4) + m(1), ext_v=12.6)
    sigs = assert_restart_safe(RULE, tl.inputs())
    assert len(resolves(sigs)) == 2
