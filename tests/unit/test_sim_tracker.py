"""The tracker model: hardware I/O signals, wake schedules and injected faults."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta

import pynmea2
import pytest

from firmware_sim.faults import (
    BlindArea,
    CutPower,
    Fault,
    Jam,
    MoveToVehicle,
    Remove,
    RestorePower,
    Spoof,
    TamperWith,
)
from firmware_sim.places import place
from firmware_sim.tracker import Tick, Tracker, TrackerKind, TrackerSpec, province_of_ip
from firmware_sim.vehicle import CHINA_TZ, Trip, Vehicle, VehicleKind
from protocols.hwio import Battery, Ignition, Link, Power, Tamper, decode_signal, encode_signal
from protocols.plausibility import haversine_m

MONDAY = datetime(2025, 3, 3, tzinfo=CHINA_TZ)
END = MONDAY + timedelta(days=2)


@pytest.fixture(scope="module")
def car() -> Vehicle:
    return Vehicle(
        seed=11, home=place("wuhan.home.0"), work=place("wuhan.work.2"), start=MONDAY, end=END
    )


def commute(car: Vehicle) -> Trip:
    return next(t for t in car.trips if t.depart > MONDAY and t.length_m > 5000)


def wired(car: Vehicle, *faults: Fault, **kw: object) -> Tracker:
    spec = TrackerSpec("860000000000001", sim_province="420000", **kw)  # type: ignore[arg-type]
    return Tracker(spec, car, seed=1, start=MONDAY, end=END, faults=faults)


def ticks(tr: Tracker, start: datetime, end: datetime, step: float = 1.0) -> Iterator[Tick]:
    t = start
    while t < end:
        yield tr.tick(t)
        t += timedelta(seconds=step)


def rmc(tick: Tick) -> pynmea2.NMEASentence | None:
    for raw in tick.nmea:
        s = pynmea2.parse(raw.decode().strip(), check=True)
        if s.sentence_type == "RMC":
            return s
    return None


def test_first_tick_reports_the_whole_state(car: Vehicle) -> None:
    first = wired(car).tick(MONDAY)
    kinds = [type(s).__name__ for s in first.io]
    assert kinds == ["Power", "Ignition", "Battery", "Antenna", "Link"]
    for sig in first.io:
        assert decode_signal(encode_signal(sig)) == sig
    assert first.alive
    assert first.awake
    assert first.nmea


def test_ignition_follows_the_trips(car: Vehicle) -> None:
    trip = commute(car)
    assert trip.ignition_on is not None
    assert trip.ignition_off is not None
    tr = wired(car)
    seen = [
        (k.time, s)
        for k in ticks(tr, trip.depart - timedelta(minutes=5), trip.arrive + timedelta(minutes=2))
        for s in k.io
        if isinstance(s, Ignition)
    ]
    assert [s.on for _, s in seen] == [False, True, False]
    assert abs((seen[1][0] - trip.ignition_on).total_seconds()) <= 1.0
    assert abs((seen[2][0] - trip.ignition_off).total_seconds()) <= 1.0


def test_power_cut_raises_power_lost_then_the_battery_drains(car: Vehicle) -> None:
    cut = MONDAY + timedelta(hours=2)
    tr = wired(car, CutPower(cut), RestorePower(cut + timedelta(hours=3)))
    io = [(k.time, s) for k in ticks(tr, cut - timedelta(minutes=1), cut + timedelta(hours=4), 5.0)
          for s in k.io]  # fmt: skip
    power = [(t, s) for t, s in io if isinstance(s, Power)]
    assert power[1][0] == cut
    assert power[1][1].state == "lost"
    assert power[2][1].state == "restored"
    assert (power[2][1].ext_v or 0) > 12.0
    volts = [s.batt_v for t, s in io if isinstance(s, Battery) and cut <= t < power[2][0]]
    assert len(volts) >= 30  # every 5 minutes on battery
    assert volts == sorted(volts, reverse=True)
    assert volts[0] - volts[-1] > 0.05


def test_flat_backup_battery_means_silence(car: Vehicle) -> None:
    cut = MONDAY + timedelta(hours=1)
    tr = wired(car, CutPower(cut))
    out = list(ticks(tr, cut - timedelta(seconds=30), cut + timedelta(hours=14), 30.0))
    lows = [s for k in out for s in k.io if isinstance(s, Battery) and s.low]
    assert lows
    assert not out[-1].alive
    assert out[-1].nmea == ()
    assert out[-1].io == ()


def test_removal_is_silence(car: Vehicle) -> None:
    gone = MONDAY + timedelta(hours=3)
    tr = wired(car, CutPower(gone - timedelta(minutes=10)), Remove(gone))
    out = list(ticks(tr, gone - timedelta(minutes=11), gone + timedelta(minutes=30), 2.0))
    before = [k for k in out if k.time < gone]
    after = [k for k in out if k.time >= gone]
    assert all(k.alive and k.nmea for k in before)
    assert all(not k.alive and not k.nmea and not k.io for k in after)


def test_wireless_wake_schedule(car: Vehicle) -> None:
    spec = TrackerSpec("860000000000002", kind=TrackerKind.WIRELESS, wakes_per_day=3)
    tr = Tracker(spec, car, seed=2, start=MONDAY, end=END)
    windows = tr.wake_windows(MONDAY, END)
    assert len(windows) in (5, 6, 7)
    for (a, b), (c, _) in itertools.pairwise(windows):
        assert timedelta(minutes=3) <= b - a <= timedelta(minutes=7)
        assert c - a == timedelta(hours=8)
    a, b = windows[1]
    assert not tr.awake(a - timedelta(seconds=1))
    assert tr.awake(a + timedelta(seconds=1))
    assert not tr.awake(b + timedelta(seconds=1))
    out = list(ticks(tr, a - timedelta(minutes=2), b + timedelta(minutes=2)))
    awake = [k for k in out if k.nmea]
    assert all(a <= k.time < b for k in awake)
    assert len(awake) >= 170
    assert any(rmc(k) is not None and rmc(k).status == "A" for k in awake)  # type: ignore[union-attr]
    assert any(isinstance(s, Battery) for k in out for s in k.io)
    assert out[0].ip is None
    every3d = Tracker(
        TrackerSpec("860000000000003", kind=TrackerKind.WIRELESS, every_hours=72),
        car, seed=2, start=MONDAY, end=MONDAY + timedelta(days=9),
    )  # fmt: skip
    assert len(every3d.wake_windows(MONDAY, MONDAY + timedelta(days=9))) == 3


def test_tamper_wakes_a_sleeping_wireless_unit(car: Vehicle) -> None:
    spec = TrackerSpec("860000000000004", kind=TrackerKind.WIRELESS, wakes_per_day=1)
    tr = Tracker(spec, car, seed=3, start=MONDAY, end=END)
    a, _ = tr.wake_windows(MONDAY, END)[0]
    when = a + timedelta(hours=6)
    tr = Tracker(spec, car, seed=3, start=MONDAY, end=END, faults=[TamperWith(when)])
    out = list(ticks(tr, when - timedelta(seconds=5), when + timedelta(minutes=4)))
    assert any(isinstance(s, Tamper) and s.source == "light" for k in out for s in k.io)
    assert out[0].awake is False
    assert out[10].awake is True
    assert out[-1].awake is False


def test_jamming_loses_the_fix_but_not_the_link(car: Vehicle) -> None:
    trip = commute(car)
    jam = Jam(trip.depart + timedelta(minutes=3), trip.depart + timedelta(minutes=8))
    tr = wired(car, jam)
    out = list(ticks(tr, trip.depart, trip.depart + timedelta(minutes=10)))
    during = [k for k in out if jam.at + timedelta(seconds=2) <= k.time < jam.until]
    assert all(rmc(k).status == "V" for k in during)  # type: ignore[union-attr]
    assert all(k.truth.ignition and k.truth.speed_mps >= 0 for k in during)
    assert not any(isinstance(s, Link) for k in during for s in k.io)
    assert all(k.link_up for k in during) or any(k.truth.environment == "tunnel" for k in during)
    assert rmc(out[-1]).status == "A"  # type: ignore[union-attr]


def test_blind_area_means_no_fix_and_no_link(car: Vehicle) -> None:
    start = MONDAY + timedelta(hours=1)
    blind = BlindArea(start, start + timedelta(minutes=30))
    tr = wired(car, blind)
    out = list(ticks(tr, start - timedelta(minutes=1), blind.until + timedelta(minutes=1)))
    during = [k for k in out if blind.at + timedelta(seconds=1) <= k.time < blind.until]
    assert all(not k.link_up and rmc(k).status == "V" for k in during)  # type: ignore[union-attr]
    links = [s.up for k in out for s in k.io if isinstance(s, Link)]
    assert links[-2:] == [False, True]
    assert out[-1].link_up


def test_spoofing_teleports_the_nmea_positions(car: Vehicle) -> None:
    trip = commute(car)
    fake = place("beijing.centre")
    spoof = Spoof(trip.depart + timedelta(minutes=2), trip.depart + timedelta(minutes=4),
                  fake.lon, fake.lat)  # fmt: skip
    tr = wired(car, spoof)
    for k in ticks(tr, trip.depart, trip.depart + timedelta(minutes=6)):
        s = rmc(k)
        if s is None or s.status != "A":
            continue
        far = haversine_m(s.latitude, s.longitude, k.truth.lat, k.truth.lon) > 500_000
        assert far == (spoof.at <= k.time < spoof.until)


def test_tracker_moved_to_an_ebike(car: Vehicle) -> None:
    when = MONDAY + timedelta(hours=5)
    spot = place("wuhan.home.0")
    bike = Vehicle(seed=4, home=spot, work=spot, start=when, end=END, kind=VehicleKind.EBIKE,
                   start_at=spot)  # fmt: skip
    tr = wired(car, MoveToVehicle(when, bike))
    out = list(ticks(tr, when - timedelta(seconds=10), when + timedelta(hours=15), 5.0))
    lost = [k.time for k in out for s in k.io if isinstance(s, Power) and s.state == "lost"]
    assert lost == [when]
    assert not any(isinstance(s, Ignition) and s.on for k in out for s in k.io)
    speeds = [float(s.spd_over_grnd) * 1.852 for k in out if (s := rmc(k)) and s.status == "A"]
    assert 8.0 < max(speeds) < 30.0


def test_ip_comes_from_the_sim_province_per_session(car: Vehicle) -> None:
    tr = wired(car, link_drops_per_day=48.0)
    ips = {k.ip for k in ticks(tr, MONDAY, MONDAY + timedelta(hours=3), 5.0) if k.ip}
    assert len(ips) >= 2
    assert {province_of_ip(ip) for ip in ips} == {"420000"}
