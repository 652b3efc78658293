"""The simulated GNSS receiver: NMEA that real parsers accept, and the noise DOMAIN.md states."""

from __future__ import annotations

import math
import random
import statistics
from datetime import UTC, datetime, timedelta, timezone

import pynmea2
import pytest

from firmware_sim import nmea
from firmware_sim.receiver import (
    Environment,
    Receiver,
    ReceiverConfig,
    StartKind,
    Talker,
    TrueState,
)
from protocols.plausibility import haversine_m

T0 = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
LON, LAT = 121.4737, 31.2304


def truth(i: int, **kw: object) -> TrueState:
    base: dict[str, object] = {"time": T0 + timedelta(seconds=i), "lon": LON, "lat": LAT}
    base.update(kw)
    return TrueState(**base)  # type: ignore[arg-type]


def moving(
    i: int, env: Environment = Environment.OPEN, extra: dict[str, object] | None = None
) -> TrueState:
    """Eastbound at 15 m/s from the start point."""
    lon = LON + 15.0 * i / (111_320.0 * math.cos(math.radians(LAT)))
    args: dict[str, object] = {"environment": env, **(extra or {})}
    return truth(i, lon=lon, speed_mps=15.0, course_deg=90.0, **args)


def parse_all(lines: list[bytes]) -> tuple[list[pynmea2.NMEASentence], int]:
    good: list[pynmea2.NMEASentence] = []
    bad = 0
    for raw in lines:
        try:
            good.append(pynmea2.parse(raw.decode("ascii").strip(), check=True))
        except (UnicodeDecodeError, pynmea2.ParseError):
            bad += 1
    return good, bad


def run(rx: Receiver, states: list[TrueState]) -> list[list[bytes]]:
    return [rx.epoch(s) for s in states]


def test_checksum_matches_real_captures() -> None:
    # Lines from ../shared/data/nmea/gpsd (quectel-eg25-g.log, beidou-gb.log).
    for real in (
        "$GPVTG,,T,,M,,N,,K,N*2C",
        "$GNGSA,A,1,,,,,,,,,,,,,,,*00",
        "$GPRMC,,V,,,,,,,,,,N*53",
    ):
        body, _, check = real[1:].partition("*")
        assert nmea.checksum(body) == int(check, 16)
        assert nmea.line(body) == f"{real}\r\n".encode()


def test_angles_format_as_ddmm() -> None:
    assert nmea.fmt_lat(31.5) == ("3130.00000", "N")
    assert nmea.fmt_lon(-121.25) == ("12115.00000", "W")
    assert nmea.fmt_lat(22.9999999999) == ("2300.00000", "N")


@pytest.mark.parametrize("talker", ["GP", "GN", "BD", "GB"])
def test_every_sentence_parses_with_its_talker(talker: Talker) -> None:
    rx = Receiver(random.Random(1), ReceiverConfig(talker=talker))
    rx.power_on(T0, StartKind.COLD)
    epochs = run(rx, [moving(i) for i in range(60)])
    sentences, bad = parse_all([x for e in epochs for x in e])
    assert bad == 0
    kinds = {s.sentence_type for s in sentences}
    assert kinds == {"RMC", "VTG", "GGA", "GSA", "GSV"}
    main = {s.talker for s in sentences if s.sentence_type in ("RMC", "GGA", "VTG", "GSA")}
    assert main == {talker}
    if talker == "GN":
        assert {s.talker for s in sentences if s.sentence_type == "GSV"} == {"GP", "BD"}
    first = [s for s in sentences if s.sentence_type == "RMC"]
    assert first[0].status == "V"  # cold start: no fix yet
    assert first[-1].status == "A"
    assert rx.stats.lines == sum(len(e) for e in epochs)


def test_times_are_written_in_utc() -> None:
    rx = Receiver(random.Random(9))
    rx.power_on(T0, StartKind.HOT)
    china = timezone(timedelta(hours=8))
    lines = [
        rx.epoch(truth(i, time=(T0 + timedelta(seconds=i)).astimezone(china))) for i in range(3)
    ]
    rmc = pynmea2.parse(lines[-1][0].decode().strip(), check=True)
    assert rmc.datetime == datetime(2025, 3, 3, 1, 0, 2, tzinfo=UTC)  # 09:00:02 in China


def test_units_speed_in_knots_and_kmh() -> None:
    rx = Receiver(random.Random(2))
    rx.power_on(T0, StartKind.HOT)
    sentences, _ = parse_all([x for e in run(rx, [moving(i) for i in range(30)]) for x in e])
    rmc = [s for s in sentences if s.sentence_type == "RMC" and s.status == "A"]
    vtg = [s for s in sentences if s.sentence_type == "VTG" and s.spd_over_grnd_kmph]
    assert rmc
    assert vtg
    for s in rmc:
        assert float(s.spd_over_grnd) == pytest.approx(15.0 * 3600 / 1852, abs=1.0)
        assert abs(float(s.true_course) - 90.0) < 5.0
        assert abs(s.latitude - LAT) < 1e-3
    for s in vtg:
        assert float(s.spd_over_grnd_kmph) == pytest.approx(54.0, abs=2.0)
        assert float(s.spd_over_grnd_kmph) == pytest.approx(
            float(s.spd_over_grnd_kts) * 1.852, abs=0.01
        )


def test_corrupted_lines_are_the_only_failures_and_are_counted() -> None:
    rx = Receiver(random.Random(3), ReceiverConfig(corrupt_rate=0.05))
    rx.power_on(T0, StartKind.HOT)
    lines = [x for e in run(rx, [moving(i) for i in range(400)]) for x in e]
    _, bad = parse_all(lines)
    assert bad == rx.stats.corrupted_total > 0
    assert set(rx.stats.corrupted) == {"checksum", "truncated", "garbage"}
    assert all(x.endswith(b"\r\n") for x in lines)


def first_fix(seed: int, kind: StartKind) -> float:
    rx = Receiver(random.Random(seed))
    rx.power_on(T0, kind)
    for i in range(400):
        rx.epoch(truth(i, environment=Environment.OPEN))
        if rx.fixed:
            assert rx.stats.ttffs[-1][0] is kind
            assert i == math.ceil(rx.stats.ttffs[-1][1])  # the first epoch past the drawn TTFF
            return rx.stats.ttffs[-1][1]
    raise AssertionError("no fix")


def test_time_to_first_fix_distributions() -> None:
    hot = [first_fix(s, StartKind.HOT) for s in range(40)]
    warm = [first_fix(s, StartKind.WARM) for s in range(40)]
    cold = [first_fix(s, StartKind.COLD) for s in range(40)]
    assert all(0 < x < 1.0 for x in hot)
    assert all(20.0 <= x <= 30.0 for x in warm)
    assert statistics.mean(warm) == pytest.approx(25.0, abs=1.5)
    assert all(23.0 <= x <= 35.0 for x in cold)
    assert max(cold) - min(cold) > 6.0  # spread over the range, not a constant


def test_start_kind_follows_the_age_of_the_last_fix() -> None:
    rx = Receiver(random.Random(4))
    assert rx.start_kind(T0) is StartKind.COLD
    rx.power_on(T0, StartKind.HOT)
    run(rx, [truth(i, environment=Environment.OPEN) for i in range(3)])
    rx.power_off()
    assert rx.start_kind(T0 + timedelta(hours=1)) is StartKind.HOT
    assert rx.start_kind(T0 + timedelta(hours=72)) is StartKind.WARM
    assert rx.start_kind(T0 + timedelta(days=60)) is StartKind.COLD
    assert rx.epoch(truth(10)) == []  # powered off: silent


@pytest.mark.parametrize(
    ("kw", "max_sats"),
    [
        ({"environment": Environment.TUNNEL}, 3),
        ({"jammed": True}, 3),
        ({"antenna_ok": False}, 0),
    ],
)
def test_no_fix_without_sky(kw: dict[str, object], max_sats: int) -> None:
    rx = Receiver(random.Random(5))
    rx.power_on(T0, StartKind.HOT)
    run(rx, [moving(i) for i in range(5)])
    assert rx.fixed
    sentences, _ = parse_all(
        [x for e in run(rx, [moving(i, extra=kw) for i in range(5, 65)]) for x in e]
    )
    assert {s.status for s in sentences if s.sentence_type == "RMC"} == {"V"}
    gga = [s for s in sentences if s.sentence_type == "GGA"]
    assert {s.gps_qual for s in gga} == {0}
    assert all(int(s.num_sats) <= max_sats for s in gga)
    # Sky back: a hot re-acquisition within a second or two.
    back = run(rx, [moving(i) for i in range(65, 68)])
    assert rx.fixed
    assert parse_all(back[-1])[0][0].status == "A"


def test_gives_up_after_five_minutes_without_sky() -> None:
    rx = Receiver(random.Random(6))
    rx.power_on(T0, StartKind.COLD)
    run(rx, [truth(i, environment=Environment.TUNNEL) for i in range(700)])
    assert rx.stats.gave_up == 2
    assert not rx.fixed


@pytest.mark.parametrize("seed", range(6))
def test_parked_positions_wander_3_to_15_m(seed: int) -> None:
    rx = Receiver(random.Random(seed))
    rx.power_on(T0, StartKind.HOT)
    dist: list[float] = []
    for i in range(900):
        for s in parse_all(rx.epoch(truth(i, environment=Environment.OPEN)))[0]:
            if s.sentence_type == "GGA" and s.gps_qual == 1:
                dist.append(haversine_m(LAT, LON, s.latitude, s.longitude))
    assert len(dist) >= 899
    assert 3.0 <= max(dist) <= 15.0


@pytest.mark.parametrize(
    ("env", "hdop", "sats_mean"),
    [
        (Environment.OPEN, (0.8, 1.5), (10.0, 14.0)),
        (Environment.URBAN, (2.0, 5.0), (10.0, 14.0)),
        (Environment.CARPARK, (5.0, 12.0), (6.0, 10.0)),
    ],
)
def test_satellites_and_hdop_per_environment(
    env: Environment, hdop: tuple[float, float], sats_mean: tuple[float, float]
) -> None:
    sats: list[int] = []
    for seed in range(5):
        rx = Receiver(random.Random(seed), ReceiverConfig(jump_rate=0.0))
        rx.power_on(T0, StartKind.HOT)
        for i in range(400):
            for s in parse_all(rx.epoch(moving(i, env)))[0]:
                if s.sentence_type == "GGA" and s.gps_qual == 1:
                    assert hdop[0] <= float(s.horizontal_dil) <= hdop[1]
                    sats.append(int(s.num_sats))
    assert min(sats) >= 4
    assert sats_mean[0] <= statistics.mean(sats) <= sats_mean[1]
    if env is not Environment.CARPARK:
        assert 1.5 <= statistics.stdev(sats) <= 4.5


def test_urban_canyon_jumps_are_50_to_300_m() -> None:
    rx = Receiver(random.Random(7), ReceiverConfig(jump_rate=0.02))
    rx.power_on(T0, StartKind.HOT)
    errors: list[float] = []
    for i in range(1500):
        st = moving(i, Environment.URBAN)
        rx.epoch(st)
        sol = rx.last_solution
        assert sol is not None
        if sol.lat is not None and sol.lon is not None:
            errors.append(haversine_m(st.lat, st.lon, sol.lat, sol.lon))
    assert rx.stats.jumps >= 10
    jumps = [e for e in errors if e > 40.0]
    assert jumps
    assert min(jumps) >= 40.0
    assert max(errors) <= 330.0
    assert statistics.median(errors) < 15.0  # most epochs are ordinary noise
