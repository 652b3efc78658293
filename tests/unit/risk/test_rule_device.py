"""The device rules together: registration, configs, a quiet normal week, a bad week, speed."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from cloud.risk.model import LATE_FLAG, Action, RuleInput, Signal
from cloud.risk.rules.base import CATALOGUE
from cloud.risk.rules.device import DEVICE_RULES
from firmware_sim.scenarios import RULES as SCENARIO_LABELS
from tests.unit.risk.device_fakes import (
    BOTH,
    HOME,
    T0,
    WIRELESS,
    FakePlaces,
    Timeline,
    assert_restart_safe,
    drive,
    h,
    m,
    make_ctx,
    offset,
    s,
)

ZJ_IP, HENAN_IP = "198.51.100.145", "198.51.100.131"
CTX = make_ctx(*BOTH, places=FakePlaces(ips={ZJ_IP: "330000", HENAN_IP: "410000"}))
RULES = [CATALOGUE[name] for name in DEVICE_RULES]


def trip(tl: Timeline, at: Any, *, link_drop: bool) -> None:
    """30 min out and 30 min back at 50 km/h, a fix every 15 s, parked fix at once after."""
    far = offset(*HOME, 0.0, 50 / 3.6 * 1800)
    tl.drive(at, at + m(30), s(15), ext_v=14.1, heading_deg=90.0)
    back = at + m(30) + s(15)
    if link_drop:  # 90 s without cellular coverage: those fixes arrive late
        tl.drive(
            back,
            back + m(1) + s(30),
            s(15),
            ext_v=14.1,
            heading_deg=270.0,
            pos=far,
            flags=(LATE_FLAG,),
        )
        tl.drive(
            back + m(1) + s(45),
            at + h(1),
            s(15),
            ext_v=14.1,
            heading_deg=270.0,
            pos=offset(*far, 0.0, -50 / 3.6 * 105),
        )
    else:
        tl.drive(back, at + h(1), s(15), ext_v=14.1, heading_deg=270.0, pos=far)
    tl.fix(at + h(1) + s(15), ignition=False, ext_v=12.6)


def normal_week() -> Timeline:
    """A commuter: wired parked fixes every 10 min, heartbeats every 2 min, two trips a day,
    a short link drop, a session per day from a Zhejiang IP, a wireless unit waking 4x a day;
    the engine ticks every minute."""
    tl = Timeline(T0)
    for day in range(7):
        o = h(24 * day)
        for start, end in (
            (o, o + h(8)),
            (o + h(9) + m(2), o + h(18)),
            (o + h(19) + m(2), o + h(24) - m(1)),
        ):
            tl.park(start, end, m(10), ext_v=12.6).heartbeats(start + m(1), end, m(2))
        trip(tl, o + h(8) + m(1), link_drop=day % 2 == 0)
        trip(tl, o + h(18) + m(1), link_drop=False)
        tl.event(o + h(8) + m(1), "session", ip=ZJ_IP)
        for wake in range(4):
            tl.fix(o + h(6 * wake) + m(4), device=WIRELESS, kind="wireless", hdop=1.2)
        tl.ticks(o, o + h(24) - m(1), m(1))
    return tl


def bad_week() -> Timeline:
    """Everything goes wrong once: link drops, a jammer, a spoofed jump, sessions from
    another province, a tamper alarm, an 8 h basement, and finally the wired unit is
    unplugged, ridden away on an e-bike and its battery pulled."""
    tl = Timeline(T0).park(m(0), h(8), m(10), ext_v=12.6).heartbeats(m(1), h(8), m(2))
    tl.drive(h(8), h(8) + m(10), s(15), ext_v=14.1)  # then a jammer: no fix for 10 min
    tl.event(h(8) + m(11) + s(15), "jamming_suspected", link_up=True)
    tl.heartbeats(h(8) + m(12), h(8) + m(20), m(2))
    west = {"ext_v": 14.1, "heading_deg": 270.0}
    tl.drive(h(8) + m(21), h(8) + m(30), s(15), pos=offset(*HOME, 0.0, 10_000.0), **west)
    tl.drive(h(8) + m(30) + s(15), h(8) + m(32), s(15), pos=(39.9, 116.4), **west)  # spoofed
    tl.drive(h(8) + m(32) + s(15), h(8) + m(35), s(15), pos=offset(*HOME, 0.0, 2292.0), **west)
    tl.fix(h(8) + m(40) + s(15), ignition=False, ext_v=12.6)  # parked at home
    tl.event(h(9), "gnss_fault", link_up=False).park(h(17), h(18), m(10), ext_v=12.6)  # basement
    for i in range(4):
        tl.event(h(18) + h(2 * i) + m(1), "session", ip=HENAN_IP)
    tl.park(h(18), h(30), m(10), ext_v=12.6).heartbeats(h(18) + m(1), h(30), m(2))
    tl.event(h(20), "tamper", device=WIRELESS, dev_kind="wireless", source="light")
    tl.fix(h(20) + m(1), device=WIRELESS, kind="wireless", pos=offset(*HOME, 30_000.0, 0.0))
    tl.fix(h(26), device=WIRELESS, kind="wireless", pos=offset(*HOME, 30_000.0, 0.0))
    tl.event(h(30) + m(1), "power_lost", ext_v=0.0)
    tl.drive(h(30) + m(5), h(30) + m(20), s(15), speed_kmh=18.0, ignition=False, ext_v=0.0)
    tl.event(h(30) + m(21), "low_battery", batt_v=3.5)
    tl.ticks(m(0), h(32), m(1))
    return tl


def test_every_device_rule_is_registered_with_its_signals() -> None:
    raised = {sig for rule in RULES for sig in rule.raises}
    assert set(DEVICE_RULES) <= set(CATALOGUE)
    assert {
        "power_cut",
        "device_removed",
        "jamming",
        "spoofing",
        "gs_ip_mismatch",
        "device_separation",
        "tracker_on_other_vehicle",
        "blind_area",
    } <= raised & set(SCENARIO_LABELS)
    assert {"offline", "tamper", "low_battery"} <= raised


@pytest.mark.parametrize("name", DEVICE_RULES)
def test_configs_and_states_round_trip(name: str) -> None:
    rule = CATALOGUE[name]
    cfg = rule.config_type()
    assert msgspec.convert(msgspec.to_builtins(cfg), rule.config_type) == cfg
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"no_such_threshold": 1}, rule.config_type)
    state = rule.state_type()
    raw = msgspec.msgpack.encode(state)
    assert msgspec.msgpack.decode(raw, type=rule.state_type) == state
    assert rule.description


def run_all(inputs: list[RuleInput]) -> list[Signal]:
    out: list[Signal] = []
    for rule in RULES:
        out += drive(rule, inputs, CTX)[1]
    return out


def test_a_normal_week_raises_nothing() -> None:
    assert run_all(normal_week().inputs()) == []


def test_a_bad_week_raises_each_condition_once() -> None:
    sigs = run_all(bad_week().inputs())
    opened = {x.rule for x in sigs if x.action is Action.OPEN}
    assert opened == {
        "jamming",
        "spoofing",
        "blind_area",
        "offline",
        "gs_ip_mismatch",
        "tamper",
        "device_separation",
        "power_cut",
        "tracker_on_other_vehicle",
        "low_battery",
        "device_removed",
    }
    episodes = {rule: {x.episode for x in sigs if x.rule == rule} for rule in opened}
    assert len(episodes.pop("offline")) == 2  # the basement, and the silence after removal
    for rule, keys in episodes.items():  # one episode per condition, escalations included
        assert len(keys) == 1, rule


@pytest.mark.parametrize("name", DEVICE_RULES)
def test_restart_safe_over_the_bad_week(name: str) -> None:
    assert_restart_safe(CATALOGUE[name], bad_week().inputs(), CTX, splits=5)
