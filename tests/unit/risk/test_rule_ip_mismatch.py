"""gs_ip_mismatch: GPS province vs IP province; warn at >= 3 sessions in 7 days; hosting high."""

from __future__ import annotations

from cloud.risk.model import Action, Severity
from cloud.risk.rules.ip_mismatch import RULE
from tests.unit.risk.device_fakes import (
    BOTH,
    T0,
    WIRED,
    WIRELESS,
    FakePlaces,
    Timeline,
    assert_restart_safe,
    drive,
    h,
    keys,
    m,
    make_ctx,
)

WUHAN = (30.5928, 114.3055)  # Hubei 420000 in the fake bands
HENAN_IP, HUBEI_IP, UNKNOWN_IP, DC_IP = (
    "198.51.100.131",
    "198.51.100.161",
    "100.64.0.1",
    "192.0.2.7",
)
PLACES = FakePlaces(ips={HENAN_IP: "410000", HUBEI_IP: "420000", UNKNOWN_IP: None}, hosting={DC_IP})
CTX = make_ctx(*BOTH, places=PLACES)


def wuhan(days: float, sessions: list[tuple[float, str]]) -> Timeline:
    """Parked in Wuhan with a fix every 10 min; link sessions at the given hours."""
    tl = Timeline(T0).park(m(0), h(24 * days), m(10), pos=WUHAN)
    for hours, ip in sessions:
        tl.event(h(hours) + m(1), "session", ip=ip)
    return tl


def test_three_mismatched_sessions_warn() -> None:
    tl = wuhan(2, [(0, HENAN_IP), (8, HENAN_IP), (16, HENAN_IP), (30, HENAN_IP)])
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert [(x.severity, x.time - T0) for x in sigs] == [(Severity.WARN, h(16) + m(1))]
    assert sigs[0].episode == f"gs_ip_mismatch:{WIRED}:2025-03-04T01:31:00Z"
    assert sigs[0].evidence["ip_province"] == "410000"
    assert sigs[0].evidence["gps_province"] == "420000"


def test_weak_evidence_alone_is_not_enough() -> None:
    one = wuhan(1, [(0, HENAN_IP), (5, HUBEI_IP), (9, HUBEI_IP)])
    spread = wuhan(20, [(0, HENAN_IP), (24 * 4, HENAN_IP), (24 * 8, HENAN_IP), (24 * 12, HENAN_IP)])
    unknown = wuhan(1, [(0, UNKNOWN_IP), (4, UNKNOWN_IP), (8, UNKNOWN_IP), (12, UNKNOWN_IP)])
    for tl in (one, spread, unknown):
        _, sigs = drive(RULE, tl.inputs(), CTX)
        assert sigs == []


def test_gps_outside_any_province_is_ignored() -> None:
    tl = Timeline(T0).park(m(0), h(12), m(10), pos=(10.0, 100.0))
    for i in range(4):
        tl.event(h(3 * i) + m(1), "session", ip=HENAN_IP)
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert sigs == []


def test_hosting_address_is_high_and_escalates_the_open_episode() -> None:
    tl = wuhan(1, [(0, DC_IP)])
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert [(x.severity, x.time - T0) for x in sigs] == [(Severity.HIGH, m(1))]
    tl = wuhan(1, [(0, HENAN_IP), (2, HENAN_IP), (4, HENAN_IP), (6, DC_IP), (8, DC_IP)])
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert [(x.severity, x.time - T0) for x in sigs] == [
        (Severity.WARN, h(4) + m(1)),
        (Severity.HIGH, h(6) + m(1)),
    ]
    assert len(keys(sigs)) == 1


def test_wireless_session_waits_for_its_first_fix() -> None:
    tl = Timeline(T0)
    for day in range(3):  # each wake: connect, then fix 4 minutes later
        tl.event(h(24 * day), "session", device=WIRELESS, dev_kind="wireless", ip=HENAN_IP)
        tl.fix(h(24 * day) + m(4), device=WIRELESS, kind="wireless", pos=WUHAN)
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert [(x.device_id, x.time - T0) for x in sigs] == [(WIRELESS, h(48))]


def test_fades_after_seven_days() -> None:
    tl = wuhan(1, [(0, HENAN_IP), (8, HENAN_IP), (16, HENAN_IP)])
    tl.ticks(h(24), h(24 * 8), h(6))
    _, sigs = drive(RULE, tl.inputs(), CTX)
    assert [(x.action, x.time - T0) for x in sigs] == [
        (Action.OPEN, h(16) + m(1)),
        (Action.RESOLVE, h(24 * 7) + h(6)),  # the first session is over 7 days old
    ]
    assert len(keys(sigs)) == 1


def test_lookups_run_per_session_not_per_fix() -> None:
    places = FakePlaces(ips={HENAN_IP: "410000"})
    tl = wuhan(1, [(0, HENAN_IP), (12, HENAN_IP)])
    drive(RULE, tl.inputs(), make_ctx(places=places))
    assert places.calls == 2


def test_restart_safe() -> None:
    tl = wuhan(3, [(0, HENAN_IP), (8, HENAN_IP), (16, HENAN_IP), (40, DC_IP), (50, HUBEI_IP)])
    tl.ticks(h(24), h(24 * 9), h(12))
    sigs = assert_restart_safe(RULE, tl.inputs(), CTX)
    assert [x.action for x in sigs] == [Action.OPEN, Action.OPEN, Action.RESOLVE]
