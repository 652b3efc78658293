"""offline: wired > 2x heartbeat and > 30 min (warn 6 h, high 24 h); wireless 2 missed reports."""

from __future__ import annotations

from cloud.risk.model import LATE_FLAG, Action, Device, Severity
from cloud.risk.rules.offline import RULE, OfflineConfig
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

KEY_0930 = f"offline:{WIRED}:2025-03-04T01:30:00Z"


def parked_then_silent(hours: float) -> Timeline:
    """Parked with a fix every 10 min and a heartbeat every 2 min until T0, then silence."""
    tl = Timeline(T0 - h(2))
    tl.park(m(0), h(2), m(10)).heartbeats(m(1), h(2) - m(1))
    tl.ticks(h(2) + m(1), h(2 + hours), m(1))
    return tl


def test_wired_silence_info_warn_high_one_episode() -> None:
    _, sigs = drive(RULE, parked_then_silent(25).inputs())
    assert [(x.severity, x.time - T0) for x in sigs] == [  # dated at each threshold,
        (Severity.INFO, m(30)),  # not at the next tick (m(31), h(6) + m(1), ...)
        (Severity.WARN, h(6)),
        (Severity.HIGH, h(24)),
    ]
    assert keys(sigs) == {KEY_0930}  # escalation re-uses the episode
    assert sigs[0].evidence["last_seen"] == "2025-03-04T01:30:00Z"


def test_normal_parked_pattern_and_jitter_never_fire() -> None:
    tl = Timeline(T0)
    tl.park(m(0), h(8), m(10)).heartbeats(m(1), h(8), m(3)).ticks(m(0), h(8), m(1))
    tl.park(h(8) + m(28), h(12), m(28))  # 28 min gaps: within the 30 min threshold
    tl.ticks(h(8), h(12), m(1))
    _, sigs = drive(RULE, tl.inputs())
    assert sigs == []


def test_heartbeat_period_sets_the_wired_threshold() -> None:
    ctx = make_ctx(Device(WIRED, "wired", heartbeat_s=1200))  # 2 x 20 min = 40 min
    _, sigs = drive(RULE, parked_then_silent(1).inputs(), ctx)
    assert [x.time - T0 for x in sigs] == [m(40)]


def test_wireless_two_missed_reports_then_four() -> None:
    ctx = make_ctx(*BOTH)  # the wireless unit wakes 4 times a day: every 6 h
    tl = Timeline(T0)
    for i in range(4):  # on schedule for a day: no alert
        tl.fix(h(6 * i), device=WIRELESS, kind="wireless").fix(
            h(6 * i) + m(4), device=WIRELESS, kind="wireless"
        )
    tl.ticks(m(0), h(18 + 4 * 6 + 2), m(10))
    _, sigs = drive(RULE, tl.inputs(), ctx)
    last = T0 + h(18) + m(4)
    assert [(x.severity, x.time - last) for x in sigs] == [
        (Severity.WARN, h(12) + m(30)),  # 2 x 6 h + 30 min grace (seen at a 10-min tick)
        (Severity.HIGH, h(24) + m(30)),
    ]


def test_one_late_tick_dates_the_episode_like_live_ticks() -> None:
    """A replay or backtest ticks once, at the end: one signal, at the severity reached,
    dated when the device became offline (the alert's fired_at a live run gives)."""
    tl = Timeline(T0 - h(2))
    tl.park(m(0), h(2), m(10)).heartbeats(m(1), h(2) - m(1)).tick(h(2 + 30))
    _, sigs = drive(RULE, tl.inputs())
    assert [(x.severity, x.time - T0, x.episode) for x in sigs] == [
        (Severity.HIGH, m(30), KEY_0930)
    ]


def test_device_back_resolves_with_the_same_key() -> None:
    tl = parked_then_silent(7).park(h(9), h(10))
    _, sigs = drive(RULE, tl.inputs())
    assert [x.action for x in sigs] == [Action.OPEN, Action.OPEN, Action.RESOLVE]
    assert keys(sigs) == {KEY_0930}
    assert "7.0 h" in sigs[-1].message


def test_late_burst_resolves_a_live_alert_from_the_open_state() -> None:
    """The snapshot the worker re-runs from already holds the open episode."""
    live = Timeline(T0 - h(1)).park(m(0), h(1)).ticks(h(1), h(2), m(1))
    st, sigs = drive(RULE, live.inputs())
    assert [x.episode for x in opens(sigs)] == [KEY_0930]
    burst = (
        Timeline(T0)
        .drive(s(15), h(1) + m(1), s(15), flags=(LATE_FLAG,))
        .drive(h(1) + m(2), h(1) + m(3))
    )
    _, after = drive(RULE, burst.inputs(), state=st)
    assert [(x.action, x.episode) for x in after] == [(Action.RESOLVE, KEY_0930)]
    assert after[0].evidence["out_of_coverage"] is True


def test_late_burst_resolves_a_live_alert_from_an_earlier_snapshot() -> None:
    """Re-run from a snapshot taken before the tick: the late flag points at the live key."""
    snap, _ = drive(RULE, Timeline(T0 - h(1)).park(m(0), h(1)).inputs())
    burst = (
        Timeline(T0)
        .drive(s(15), h(1) + m(1), s(15), flags=(LATE_FLAG,))
        .drive(h(1) + m(2), h(1) + m(3))
    )
    _, after = drive(RULE, burst.inputs(), state=snap)
    assert [(x.action, x.episode) for x in after] == [(Action.RESOLVE, KEY_0930)]
    short = Timeline(T0).drive(s(15), m(20), s(15), flags=(LATE_FLAG,)).drive(m(21), m(22))
    _, quiet = drive(RULE, short.inputs(), state=snap)
    assert quiet == []  # a 20-min link drop never reached the threshold: nothing to resolve


def underground(live: bool) -> Timeline:
    """Eight hours under ground: no fixes, a gnss_fault raised with the link down."""
    tl = Timeline(T0 - h(1)).park(m(0), h(1))
    if live:  # the live run: only ticks, the stored event is not here yet
        tl.ticks(h(1) + m(1), h(9), m(1))
    else:
        tl.event(h(1) + m(5), "gnss_fault", link_up=False)
    return tl.drive(h(9), h(9) + m(10))


def test_underground_car_park_live_and_rerun_agree_on_the_episode() -> None:
    _, live = drive(RULE, underground(live=True).inputs())
    _, rerun = drive(RULE, underground(live=False).inputs())
    assert keys(live) == keys(rerun) == {KEY_0930}
    assert [x.severity for x in opens(live)] == [Severity.INFO, Severity.WARN]
    assert [x.severity for x in opens(rerun)] == [Severity.WARN]  # raised from stored data
    assert len(resolves(live)) == len(resolves(rerun)) == 1
    assert resolves(rerun)[0].evidence["out_of_coverage"] is True
    assert resolves(live)[0].evidence["out_of_coverage"] is False  # live never saw the marker


def test_devices_are_independent() -> None:
    ctx = make_ctx(*BOTH)
    tl = Timeline(T0).park(m(0), h(3))
    tl.fix(m(0), device=WIRELESS, kind="wireless").fix(h(6), device=WIRELESS, kind="wireless")
    tl.ticks(m(0), h(4), m(5))
    _, sigs = drive(RULE, tl.inputs(), ctx)
    assert {x.device_id for x in sigs} == {WIRED}


def test_config_override_is_validated() -> None:
    import msgspec
    import pytest

    cfg = msgspec.convert({"wired_min_s": 600}, OfflineConfig)
    assert cfg.wired_min_s == 600
    with pytest.raises(msgspec.ValidationError, match="wired_min_s"):
        msgspec.convert({"wired_min_s": -1}, OfflineConfig)


def test_restart_safe() -> None:
    ctx = make_ctx(*BOTH)
    tl = parked_then_silent(26).park(h(27), h(28))
    tl.fix(m(0), device=WIRELESS, kind="wireless").fix(h(20), device=WIRELESS, kind="wireless")
    sigs = assert_restart_safe(RULE, tl.inputs(), ctx)
    assert len(sigs) == 6  # wired info/warn/high/resolve, wireless warn/resolve
    assert_restart_safe(RULE, underground(live=False).inputs())
