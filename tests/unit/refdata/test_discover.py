"""Candidate POIs from long stops: stop detection and clustering on timed fix sequences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloud.refdata.discover import DiscoverSettings, StopFix, cluster_stops, find_stops
from protocols.plausibility import haversine_m

T0 = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)
SETTINGS = DiscoverSettings()
PAWNSHOP = (32.0400, 118.7800)
HOME = (32.1000, 118.9000)
MARKET = (31.9500, 118.7000)


def parked(
    vehicle: int,
    at: tuple[float, float],
    start_h: float,
    hours: float,
    every_min: int = 10,
    jitter: float = 0.0002,
) -> list[StopFix]:
    """Fixes of a parked car: wandering a few metres, every ``every_min`` minutes."""
    n = int(hours * 60 / every_min) + 1
    return [
        StopFix(
            vehicle,
            T0 + timedelta(hours=start_h, minutes=i * every_min),
            at[0] + jitter * ((i % 3) - 1) / 4,
            at[1] + jitter * ((i % 2) - 0.5) / 4,
            0.2,
        )
        for i in range(n)
    ]


def drive(vehicle: int, start_h: float) -> list[StopFix]:
    return [
        StopFix(
            vehicle, T0 + timedelta(hours=start_h, seconds=30 * i), 32.0 + 0.001 * i, 118.5, 12.0
        )
        for i in range(10)
    ]


def fleet() -> list[StopFix]:
    fixes = [
        *parked(1, PAWNSHOP, 0, 3),
        *drive(1, 3.2),
        *parked(1, HOME, 4, 12),
        *drive(1, 16.5),
        *parked(1, HOME, 17, 12),
        *parked(2, (PAWNSHOP[0] + 0.0004, PAWNSHOP[1]), 1, 2.5),
        *drive(2, 3.6),
        *parked(2, MARKET, 30, 4),
        *parked(3, PAWNSHOP, 5, 1),  # too short
        # a sleeping wireless tracker: two fixes five hours apart, same place
        StopFix(4, T0 + timedelta(hours=2), MARKET[0] + 0.0003, MARKET[1], 0.0),
        StopFix(4, T0 + timedelta(hours=7), MARKET[0] + 0.0003, MARKET[1] + 0.0002, 0.0),
    ]
    return sorted(fixes, key=lambda f: (f.vehicle_id, f.time))


def test_long_stops_only() -> None:
    stops = find_stops(fleet(), SETTINGS)
    summary = sorted((s.vehicle_id, round(s.hours, 1)) for s in stops)
    assert summary == [(1, 3.0), (1, 12.0), (1, 12.0), (2, 2.5), (2, 4.0), (4, 5.0)]


def test_moving_or_far_fixes_end_a_stop() -> None:
    fixes = parked(9, PAWNSHOP, 0, 1.5) + parked(9, (PAWNSHOP[0] + 0.01, PAWNSHOP[1]), 1.6, 1.5)
    assert find_stops(fixes, SETTINGS) == []  # two 1.5 h stops 1.1 km apart, not one of 3 h


def test_clusters_need_two_vehicles() -> None:
    candidates = cluster_stops(find_stops(fleet(), SETTINGS), SETTINGS)
    assert len(candidates) == 2  # the pawnshop (1, 2) and the market (2, 4); home is one car
    places = {c.vehicles: c for c in candidates}
    pawnshop, market = places[(1, 2)], places[(2, 4)]
    assert haversine_m(pawnshop.lat, pawnshop.lon, *PAWNSHOP) < 40
    assert haversine_m(market.lat, market.lon, *MARKET) < 40
    assert pawnshop.radius_m == SETTINGS.default_radius_m
    evidence = pawnshop.evidence
    assert evidence["vehicles"] == 2
    assert evidence["stops"] == 2
    assert evidence["stop_hours"] == 5.5


def test_three_vehicles_settings() -> None:
    strict = DiscoverSettings(min_vehicles=3)
    assert cluster_stops(find_stops(fleet(), strict), strict) == []
    assert cluster_stops([], SETTINGS) == []
