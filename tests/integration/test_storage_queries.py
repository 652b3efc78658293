"""Read queries (cloud.storage.queries) against a real TimescaleDB with four days of fixes.

Two tenants around Chengdu. Each car sleeps at home, drives to the office at
08:00 and back at 18:00 (one fix a minute while driving, a heartbeat fix every
five minutes while parked). Tenant B's first car sleeps exactly where tenant
A's first car does, so any query that leaks across tenants shows it. A's third
car goes silent half-way through; A's fourth never reported; an unbound
tracker (no vehicle) reports from A1's home. Expected answers come from the
generated rows, computed in Python.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from cloud.localsvc import PrivatePostgres
from cloud.storage.migrate import migrate
from cloud.storage.queries import (
    LastPosition,
    TrackPoint,
    fixes_in_bbox,
    last_positions,
    track,
)

pytestmark = pytest.mark.services

TENANT_A = "acme-finance"
TENANT_B = "beta-credit"
DAY0 = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday
DAYS = 4
OFFICE = (104.10, 30.70)  # (lon, lat)
SILENT_AFTER = DAY0 + timedelta(days=1, hours=12)
# south-west of the city: holds the homes of A1, A3 and B1
SW_BOX = (103.95, 30.55, 104.05, 30.65)  # min_lon, min_lat, max_lon, max_lat


@dataclass(frozen=True)
class Car:
    name: str
    tenant: str
    device: str
    home: tuple[float, float]  # (lon, lat)
    leaves_min: int  # minutes after 08:00 and 18:00 the trips start
    silent_after: datetime | None = None


CARS = (
    Car("A1", TENANT_A, "860000000000011", (104.00, 30.60), 0),
    Car("A2", TENANT_A, "860000000000012", (104.20, 30.80), 20),
    Car("A3", TENANT_A, "860000000000013", (104.02, 30.62), 5, SILENT_AFTER),
    Car("B1", TENANT_B, "860000000000021", (104.00, 30.60), 0),
    Car("B2", TENANT_B, "860000000000022", (104.15, 30.75), 10),
)
UNBOUND_DEVICE = "860000000000099"

Conn = psycopg.Connection[tuple[object, ...]]


@dataclass(frozen=True)
class Row:
    time: datetime
    device: str
    seq: int
    tenant: str
    vehicle_id: int | None
    lon: float
    lat: float
    speed_mps: float
    course_deg: float | None
    ignition: bool


def _position(car: Car, t: datetime) -> tuple[float, float, float, bool]:
    """(lon, lat, speed, ignition) of a car at time t on its daily schedule."""
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    minute = (t - day) / timedelta(minutes=1)
    for start_h, src, dst in ((8, car.home, OFFICE), (18, OFFICE, car.home)):
        start = start_h * 60 + car.leaves_min
        if start <= minute <= start + 60:
            k = (minute - start) / 60
            lon = src[0] + (dst[0] - src[0]) * k
            lat = src[1] + (dst[1] - src[1]) * k
            return lon, lat, 12.5 + 3 * ((minute - start) % 7), True
    at_work = 8 * 60 + car.leaves_min + 60 < minute < 18 * 60 + car.leaves_min
    lon, lat = OFFICE if at_work else car.home
    return lon, lat, 0.0, False


def generate(vehicle_ids: dict[str, int]) -> list[Row]:
    rows: list[Row] = []
    for car in CARS:
        seq = 0
        t = DAY0
        while t < DAY0 + timedelta(days=DAYS):
            if car.silent_after is not None and t > car.silent_after:
                break
            lon, lat, speed, ign = _position(car, t)
            if ign or t.minute % 5 == 0:
                seq += 1
                rows.append(
                    Row(t, car.device, seq, car.tenant, vehicle_ids[car.name], lon, lat, speed,
                        45.0 if ign else None, ign)
                )  # fmt: skip
            t += timedelta(minutes=1)
    for i in range(200):  # a tracker not yet bound to a vehicle, parked at A1's home
        t = DAY0 + timedelta(minutes=5 * i)
        rows.append(Row(t, UNBOUND_DEVICE, i + 1, TENANT_A, None, 104.0, 30.6, 0.0, None, False))
    return rows


@dataclass(frozen=True)
class Fleet:
    dsn: str
    ids: dict[str, int]  # car name -> vehicle id
    rows: list[Row]

    def car_rows(self, name: str) -> list[Row]:
        vid = self.ids[name]
        return sorted((r for r in self.rows if r.vehicle_id == vid), key=lambda r: r.time)


@pytest.fixture(scope="module")
def fleet(postgres: PrivatePostgres) -> Iterator[Fleet]:
    name = f"test_queries_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION timescaledb")
        migrate(dsn)
        with psycopg.connect(dsn) as conn:
            conn.execute(
                "INSERT INTO tenants (id, name) VALUES (%s, 'Acme'), (%s, 'Beta')",
                (TENANT_A, TENANT_B),
            )
            ids: dict[str, int] = {}
            for n, car in enumerate([*CARS, Car("A4", TENANT_A, "-", (0, 0), 0)]):
                row = conn.execute(
                    "INSERT INTO vehicles (tenant_id, vin, plate) VALUES (%s, %s, %s) RETURNING id",
                    (car.tenant, f"LSVAU2180N21{n:05d}", f"川A{n:05d}"),
                ).fetchone()
                assert row is not None
                ids[car.name] = int(row[0])
            rows = generate(ids)
            with (
                conn.cursor() as cur,
                cur.copy(
                    "COPY fixes (time, device_id, boot_id, seq, tenant_id, vehicle_id, lat, lon, "
                    "speed_mps, course_deg, mode, ignition) FROM STDIN"
                ) as copy,
            ):
                for r in rows:
                    copy.write_row(
                        (r.time, r.device, "boot-1", r.seq, r.tenant, r.vehicle_id,
                         r.lat, r.lon, r.speed_mps, r.course_deg, 3, r.ignition)
                    )  # fmt: skip
            conn.execute("ANALYZE fixes")
        yield Fleet(dsn, ids, rows)
    finally:
        postgres.drop_database(name)


@pytest.fixture
def conn(fleet: Fleet) -> Iterator[Conn]:
    with psycopg.connect(fleet.dsn, autocommit=True) as c:
        yield c


def _as_point(r: Row) -> tuple[datetime, float, float]:
    return r.time, r.lat, r.lon


# --------------------------------------------------------------------------- last_positions
def test_last_position_of_each_vehicle_is_its_newest_fix(fleet: Fleet, conn: Conn) -> None:
    got = last_positions(conn, TENANT_A)
    assert [p.vehicle_id for p in got] == sorted(fleet.ids[n] for n in ("A1", "A2", "A3"))
    for p in got:
        name = next(n for n, i in fleet.ids.items() if i == p.vehicle_id)
        newest = fleet.car_rows(name)[-1]
        assert isinstance(p, LastPosition)
        assert (p.time, p.lat, p.lon, p.device_id) == (
            newest.time, newest.lat, newest.lon, newest.device
        )  # fmt: skip
    a3 = next(p for p in got if p.vehicle_id == fleet.ids["A3"])
    assert a3.time <= SILENT_AFTER  # a silent car keeps its last known position


def test_last_positions_are_tenant_scoped(fleet: Fleet, conn: Conn) -> None:
    b = last_positions(conn, TENANT_B)
    assert [p.vehicle_id for p in b] == sorted([fleet.ids["B1"], fleet.ids["B2"]])
    assert {p.device_id for p in b} == {"860000000000021", "860000000000022"}
    # asking for another tenant's vehicle by id gives nothing
    assert last_positions(conn, TENANT_A, [fleet.ids["B1"], fleet.ids["B2"]]) == []
    assert last_positions(conn, "nobody") == []


def test_last_positions_for_chosen_vehicles(fleet: Fleet, conn: Conn) -> None:
    got = last_positions(conn, TENANT_A, [fleet.ids["A2"], fleet.ids["A4"], fleet.ids["B1"]])
    assert [p.vehicle_id for p in got] == [fleet.ids["A2"]]  # A4 never reported, B1 is B's
    assert last_positions(conn, TENANT_A, []) == []


# --------------------------------------------------------------------------- track
def test_short_track_is_raw_and_in_time_order(fleet: Fleet, conn: Conn) -> None:
    start = DAY0 + timedelta(days=1, hours=7, minutes=30)
    end = DAY0 + timedelta(days=1, hours=9, minutes=30)
    got = track(conn, TENANT_A, fleet.ids["A1"], start, end)
    want = [r for r in fleet.car_rows("A1") if start <= r.time < end]
    assert [(p.time, p.lat, p.lon) for p in got] == [_as_point(r) for r in want]
    assert all(isinstance(p, TrackPoint) and p.fixes == 1 for p in got)
    assert all(p.max_speed_mps == p.speed_mps for p in got)
    assert max(p.speed_mps for p in got) > 12  # the morning trip is in it


def test_track_at_exactly_max_points_stays_raw(fleet: Fleet, conn: Conn) -> None:
    start, end = DAY0, DAY0 + timedelta(days=1)
    want = [r for r in fleet.car_rows("A2") if start <= r.time < end]
    got = track(conn, TENANT_A, fleet.ids["A2"], start, end, max_points=len(want))
    assert [(p.time, p.lat, p.lon) for p in got] == [_as_point(r) for r in want]


@pytest.mark.parametrize("max_points", [2, 3, 50, 333])
def test_long_track_is_downsampled_with_exact_ends(
    fleet: Fleet, conn: Conn, max_points: int
) -> None:
    start, end = DAY0 - timedelta(days=1), DAY0 + timedelta(days=DAYS + 1)
    raw = fleet.car_rows("A1")
    assert len(raw) > max_points
    got = track(conn, TENANT_A, fleet.ids["A1"], start, end, max_points=max_points)
    assert 2 <= len(got) <= max_points
    assert _as_point(raw[0]) == (got[0].time, got[0].lat, got[0].lon)
    assert _as_point(raw[-1]) == (got[-1].time, got[-1].lat, got[-1].lon)
    times = [p.time for p in got]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    # every point is a fix the car really reported, and together they account for all fixes
    real = {_as_point(r) for r in raw}
    assert all((p.time, p.lat, p.lon) in real for p in got)
    assert sum(p.fixes for p in got) == len(raw)
    # the highest speed survives downsampling
    assert max(p.max_speed_mps for p in got) == pytest.approx(max(r.speed_mps for r in raw))


def test_default_max_points_bounds_a_dense_track(fleet: Fleet, conn: Conn) -> None:
    raw = fleet.car_rows("A2")
    got = track(conn, TENANT_A, fleet.ids["A2"], DAY0, DAY0 + timedelta(days=DAYS))
    assert len(raw) > 500
    assert len(got) == len(raw)  # under the default 2000 points: raw
    got = track(conn, TENANT_A, fleet.ids["A2"], DAY0, DAY0 + timedelta(days=DAYS), max_points=500)
    assert len(got) <= 500
    assert len(got) > 400  # buckets are spread over the whole span, not collapsed


def test_track_is_tenant_scoped(fleet: Fleet, conn: Conn) -> None:
    start, end = DAY0, DAY0 + timedelta(days=DAYS)
    assert track(conn, TENANT_B, fleet.ids["A1"], start, end) == []
    assert track(conn, TENANT_A, fleet.ids["B1"], start, end, max_points=10) == []
    assert track(conn, TENANT_A, fleet.ids["A4"], start, end) == []


def test_track_of_silent_car_ends_at_its_last_fix(fleet: Fleet, conn: Conn) -> None:
    got = track(conn, TENANT_A, fleet.ids["A3"], DAY0, DAY0 + timedelta(days=DAYS), max_points=20)
    last = fleet.car_rows("A3")[-1]
    assert len(got) <= 20
    assert (got[-1].time, got[-1].lat, got[-1].lon) == _as_point(last)


# --------------------------------------------------------------------------- fixes_in_bbox
def _expected_in_box(
    fleet: Fleet,
    tenant: str,
    box: tuple[float, float, float, float],
    at: datetime,
    window: timedelta,
) -> list[tuple[int, datetime]]:
    latest: dict[int, Row] = {}
    for r in fleet.rows:
        if r.tenant != tenant or r.vehicle_id is None or not at - window < r.time <= at:
            continue
        if r.vehicle_id not in latest or r.time > latest[r.vehicle_id].time:
            latest[r.vehicle_id] = r
    min_lon, min_lat, max_lon, max_lat = box
    return sorted(
        (v, r.time)
        for v, r in latest.items()
        if min_lon <= r.lon <= max_lon and min_lat <= r.lat <= max_lat
    )


def test_bbox_at_night_finds_the_cars_sleeping_in_it(fleet: Fleet, conn: Conn) -> None:
    night = DAY0 + timedelta(days=3, hours=2, minutes=3)
    a = fixes_in_bbox(conn, TENANT_A, *SW_BOX, night)
    assert [p.vehicle_id for p in a] == [fleet.ids["A1"]]  # A3 is silent, unbound tracker skipped
    assert a[0].time == night.replace(minute=0)
    b = fixes_in_bbox(conn, TENANT_B, *SW_BOX, night)
    assert [p.vehicle_id for p in b] == [fleet.ids["B1"]]  # same spot, other tenant
    # before A3 went silent it slept there too
    earlier = DAY0 + timedelta(hours=2)
    got = fixes_in_bbox(conn, TENANT_A, *SW_BOX, earlier)
    assert [p.vehicle_id for p in got] == sorted([fleet.ids["A1"], fleet.ids["A3"]])


def test_bbox_uses_each_cars_latest_fix_in_the_window(fleet: Fleet, conn: Conn) -> None:
    # A1 leaves the box at about 08:30: at 08:35 it had fixes inside the box
    # within the last 10 minutes, but its latest fix is outside.
    at = DAY0 + timedelta(days=2, hours=8, minutes=35)
    inside_earlier = [
        r for r in fleet.car_rows("A1")
        if at - timedelta(minutes=10) < r.time <= at and r.lon <= SW_BOX[2] and r.lat <= SW_BOX[3]
    ]  # fmt: skip
    assert inside_earlier
    got = fixes_in_bbox(conn, TENANT_A, *SW_BOX, at)
    assert fleet.ids["A1"] not in [p.vehicle_id for p in got]
    assert [(p.vehicle_id, p.time) for p in got] == _expected_in_box(
        fleet, TENANT_A, SW_BOX, at, timedelta(minutes=10)
    )


@pytest.mark.parametrize("tenant", [TENANT_A, TENANT_B])
@pytest.mark.parametrize("hours", [0.5, 8.2, 8.6, 12, 18.4, 23.9, 36.1, 60.25])
def test_bbox_matches_a_plain_computation(
    fleet: Fleet, conn: Conn, tenant: str, hours: float
) -> None:
    at = DAY0 + timedelta(hours=hours)
    box = (104.0, 30.6, 104.12, 30.72)
    window = timedelta(minutes=7)
    got = fixes_in_bbox(conn, tenant, *box, at, window=window)
    assert [(p.vehicle_id, p.time) for p in got] == _expected_in_box(fleet, tenant, box, at, window)


def test_bbox_with_no_recent_fixes_is_empty(fleet: Fleet, conn: Conn) -> None:
    later = DAY0 + timedelta(days=DAYS, hours=1)
    assert fixes_in_bbox(conn, TENANT_A, 100.0, 20.0, 110.0, 40.0, later) == []
    assert fixes_in_bbox(conn, TENANT_A, 100.0, 20.0, 110.0, 40.0, later, window=timedelta(hours=2))


# --------------------------------------------------------------------------- validation
def test_arguments_are_validated(fleet: Fleet, conn: Conn) -> None:
    vid = fleet.ids["A1"]
    with pytest.raises(ValueError, match="before end"):
        track(conn, TENANT_A, vid, DAY0, DAY0)
    with pytest.raises(ValueError, match="before end"):
        track(conn, TENANT_A, vid, DAY0 + timedelta(hours=1), DAY0)
    with pytest.raises(ValueError, match="max_points"):
        track(conn, TENANT_A, vid, DAY0, DAY0 + timedelta(days=1), max_points=1)
    with pytest.raises(ValueError, match="timezone-aware"):
        track(conn, TENANT_A, vid, datetime(2025, 3, 3), DAY0 + timedelta(days=1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="min_lon < max_lon"):
        fixes_in_bbox(conn, TENANT_A, 104.1, 30.0, 104.0, 31.0, DAY0)
    with pytest.raises(ValueError, match="min_lat < max_lat"):
        fixes_in_bbox(conn, TENANT_A, 104.0, 31.0, 104.1, 30.0, DAY0)
    with pytest.raises(ValueError, match="min_lat < max_lat"):
        fixes_in_bbox(conn, TENANT_A, 104.0, -91.0, 104.1, 30.0, DAY0)
    with pytest.raises(ValueError, match="finite"):
        fixes_in_bbox(conn, TENANT_A, float("nan"), 30.0, 104.1, 31.0, DAY0)
    with pytest.raises(ValueError, match="window"):
        fixes_in_bbox(conn, TENANT_A, 104.0, 30.0, 104.1, 31.0, DAY0, window=timedelta(0))
    with pytest.raises(ValueError, match="timezone-aware"):
        fixes_in_bbox(conn, TENANT_A, 104.0, 30.0, 104.1, 31.0, datetime(2025, 3, 3))  # noqa: DTZ001
