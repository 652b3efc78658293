"""Stay points from timed sequences of fixes: 200 m, 30 minutes, consecutive fixes only."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from cloud.recovery.stays import Stay, stay_points

T0 = datetime(2025, 3, 3, 20, 0, tzinfo=UTC)
HOME = (30.6000, 104.0000)  # lat, lon (Chengdu)
M_PER_DEG_LAT = 111_195.0


@dataclass(frozen=True)
class P:
    time: datetime
    lat: float
    lon: float


def north(origin: tuple[float, float], metres: float) -> tuple[float, float]:
    return origin[0] + metres / M_PER_DEG_LAT, origin[1]


def east(origin: tuple[float, float], metres: float) -> tuple[float, float]:
    return origin[0], origin[1] + metres / (M_PER_DEG_LAT * math.cos(math.radians(origin[0])))


def parked(at: tuple[float, float], start: datetime, minutes: int, every: int = 5) -> list[P]:
    """A parked car: a fix every ``every`` minutes, wandering a few metres."""
    out = []
    for k in range(0, minutes + 1, every):
        lat, lon = north(at, (k % 3) * 4.0)
        out.append(P(start + timedelta(minutes=k), lat, lon))
    return out


def drive(a: tuple[float, float], metres: float, start: datetime, minutes: int) -> list[P]:
    """Driving east from ``a``, one fix a minute."""
    return [
        P(start + timedelta(minutes=k), *east(a, metres * k / minutes)) for k in range(1, minutes)
    ]


def test_no_points_no_stays() -> None:
    assert stay_points([]) == []


def test_a_night_at_home_is_one_stay_at_its_centre() -> None:
    fixes = parked(HOME, T0, 600)
    stays = stay_points(fixes)
    assert len(stays) == 1
    stay = stays[0]
    assert (stay.arrived, stay.left, stay.fixes) == (T0, T0 + timedelta(minutes=600), len(fixes))
    assert stay.duration == timedelta(hours=10)
    assert stay.lat == pytest.approx(HOME[0], abs=1e-4)
    assert stay.lon == pytest.approx(HOME[1], abs=1e-9)


def test_exactly_thirty_minutes_counts_twenty_nine_does_not() -> None:
    assert len(stay_points(parked(HOME, T0, 30))) == 1
    assert stay_points(parked(HOME, T0, 29, every=1)) == []


def test_radius_is_measured_from_the_first_fix_of_the_run() -> None:
    inside = [P(T0, *HOME), P(T0 + timedelta(minutes=40), *north(HOME, 199.0))]
    outside = [P(T0, *HOME), P(T0 + timedelta(minutes=40), *north(HOME, 201.0))]
    assert len(stay_points(inside)) == 1
    assert stay_points(outside) == []
    assert len(stay_points(outside, radius_m=250.0)) == 1


def test_home_drive_office_drive_home() -> None:
    office_start = T0 + timedelta(minutes=120 + 25)
    office = east(HOME, 8000.0)
    fixes = [
        *parked(HOME, T0, 120),
        *drive(HOME, 8000.0, T0 + timedelta(minutes=120), 25),
        *parked(office, office_start, 45),
        *drive(office, -8000.0, office_start + timedelta(minutes=45), 25),
        *parked(HOME, office_start + timedelta(minutes=70), 20),  # too short at the end
    ]
    stays = stay_points(fixes)
    assert [(s.arrived, s.left) for s in stays] == [
        (T0, T0 + timedelta(minutes=120)),
        (office_start, office_start + timedelta(minutes=45)),
    ]
    assert stays[1].lon == pytest.approx(office[1], abs=1e-6)


def test_a_short_stop_in_traffic_is_not_a_stay() -> None:
    light = east(HOME, 3000.0)
    fixes = [
        *drive(HOME, 3000.0, T0, 10),
        *parked(light, T0 + timedelta(minutes=10), 10, every=1),
        *drive(light, 3000.0, T0 + timedelta(minutes=20), 10),
    ]
    assert stay_points(fixes) == []


def test_a_gap_in_the_data_does_not_split_a_stay() -> None:
    # A wireless tracker: one report at 20:00, the next at 06:00, same place.
    fixes = [P(T0, *HOME), P(T0 + timedelta(hours=10), *north(HOME, 12.0))]
    assert stay_points(fixes) == [
        Stay(HOME[0] + 6.0 / M_PER_DEG_LAT, HOME[1], T0, T0 + timedelta(hours=10), 2)
    ]


def test_an_outlier_ends_the_run() -> None:
    """Consecutive fixes only: an urban-canyon jump of 300 m breaks the run there."""
    before = parked(HOME, T0, 40)
    jump = P(T0 + timedelta(minutes=42), *north(HOME, 300.0))
    after = parked(HOME, T0 + timedelta(minutes=45), 20)
    stays = stay_points([*before, jump, *after])
    assert [(s.arrived, s.left) for s in stays] == [(T0, T0 + timedelta(minutes=40))]


def test_order_of_input_does_not_matter() -> None:
    fixes = parked(HOME, T0, 90)
    assert stay_points(reversed(fixes)) == stay_points(fixes)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="radius_m"):
        stay_points([], radius_m=0)
    with pytest.raises(ValueError, match="min_duration"):
        stay_points([], min_duration=timedelta(0))
