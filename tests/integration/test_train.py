"""``vgr cloud train`` and ``vgr cloud score-days`` on a real TimescaleDB.

Twelve cars commute in Shanghai for 20 days; on one evening car 3 drives to
Suzhou and back (a night trip into another province, Jiangsu). The model is trained
from the fixes table through the command functions, stored as a new version,
and scoring that day flags car 3 and names what was odd.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cloud.risk.anomaly import cli
from cloud.risk.anomaly.features import FEATURE_NAMES
from cloud.risk.geo import CHINA_TZ
from cloud.risk.model import FixIn
from cloud.storage.migrate import migrate
from tests.unit.risk.test_anomaly_support import at, drive, end_of, park

pytestmark = pytest.mark.services

TENANT = "acme-finance"
OTHER = "other-bank"
FIRST = date(2025, 3, 1)
DAYS = 20
CARS = 12
ODD_CAR, ODD_DAY = 3, FIRST + timedelta(days=14)
SUZHOU = (31.2990, 120.5853)  # ~90 km west of the fleet, in Jiangsu
PROVINCES = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "regions" / "cn_provinces.geojson"
)


def _places_of(car: int) -> tuple[tuple[float, float], tuple[float, float]]:
    rng = random.Random(car)
    home = (31.15 + rng.uniform(0, 0.15), 121.35 + rng.uniform(0, 0.2))
    work = (home[0] + rng.uniform(-0.08, 0.08), home[1] + rng.uniform(0.03, 0.12))
    return home, work


def car_day(car: int, day: date) -> list[FixIn]:
    """A commute with a little day-to-day variety; the odd car's odd day adds the trip."""
    rng = random.Random(f"{car}-{day}")
    home, work = _places_of(car)
    device = f"dev{car:04d}"
    leave = at(7, 30, day) + timedelta(minutes=rng.randint(0, 60))
    back_at = at(17, 30, day) + timedelta(minutes=rng.randint(0, 90))
    speed = rng.uniform(8, 12)
    out = park(at(0, 0, day), leave, home, seed=rng.randint(0, 999), device=device)
    go = drive(leave, home, work, speed_mps=speed, every_s=30, device=device)
    out += go
    out += park(end_of(go) + timedelta(minutes=5), back_at, work, seed=1, device=device)
    ret = drive(back_at, work, home, speed_mps=speed, every_s=30, device=device)
    out += ret
    if car == ODD_CAR and day == ODD_DAY:
        out += park(end_of(ret) + timedelta(minutes=5), at(21, 0, day), home, device=device)
        trip = drive(at(21, 0, day), home, SUZHOU, speed_mps=25, every_s=30, device=device)
        stay = park(end_of(trip) + timedelta(minutes=5), end_of(trip) + timedelta(minutes=40),
                    SUZHOU, device=device)  # fmt: skip
        trip_back = drive(end_of(trip) + timedelta(minutes=40), SUZHOU, home, speed_mps=25,
                          every_s=30, device=device)  # fmt: skip
        out += trip + stay + trip_back
        ret = trip_back
    out += park(end_of(ret) + timedelta(minutes=5), at(0, 0, day + timedelta(days=1)), home,
                seed=2, device=device)  # fmt: skip
    return out


def _copy_fixes(conn: psycopg.Connection[Any], rows: Sequence[tuple[Any, ...]]) -> None:
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY fixes (time, device_id, boot_id, seq, tenant_id, vehicle_id, lat, lon, "
            "speed_mps, mode) FROM STDIN"
        ) as copy,
    ):
        for row in rows:
            copy.write_row(row)


@pytest.fixture(scope="module")
def fleet_db(postgres: Any) -> Iterator[str]:
    dsn: str = postgres.create_database("anomaly_train")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    migrate(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO tenants (id, name) VALUES (%s, 'Acme'), (%s, 'Other')", (TENANT, OTHER)
        )
        vehicle_ids = {}
        for car in range(CARS):
            row = conn.execute(
                "INSERT INTO vehicles (tenant_id, vin) VALUES (%s, %s) RETURNING id",
                (TENANT, f"LSVAX{car:012d}"),
            ).fetchone()
            assert row is not None
            vehicle_ids[car] = int(row[0])
            conn.execute(
                "INSERT INTO devices (id, tenant_id, kind, vehicle_id) "
                "VALUES (%s, %s, 'wired', %s)",
                (f"dev{car:04d}", TENANT, vehicle_ids[car]),
            )
        rows = [
            (f.time, f.device_id, "boot", f.seq, TENANT, vehicle_ids[car], f.lat, f.lon,
             f.speed_mps, 3)
            for car in range(CARS)
            for k in range(DAYS)
            for f in car_day(car, FIRST + timedelta(days=k))
        ]  # fmt: skip
        _copy_fixes(conn, rows)
    yield dsn
    if postgres.running:
        postgres.drop_database("anomaly_train")


@pytest.fixture
def config(fleet_db: str, tmp_path: Path) -> Path:
    path = tmp_path / "cloud.toml"
    path.write_text(f'kind = "cloud"\n[database]\ndsn = "{fleet_db}"\n')
    return path


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def _train(config: Path, *extra: str) -> int:
    return run(
        "train", "--tenant", TENANT, "--config", str(config), "--until",
        (FIRST + timedelta(days=DAYS)).isoformat(), "--days", "30", "--min-vehicle-days", "100",
        "--provinces", str(PROVINCES), *extra,
    )  # fmt: skip


@pytest.mark.skipif(not PROVINCES.exists(), reason="needs ../shared/data/regions")
def test_train_stores_a_version_and_score_days_flags_the_odd_day(
    config: Path, fleet_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(config) == 0
    out, err = capsys.readouterr()
    assert f"vehicle-days   {CARS * DAYS} from {CARS} vehicles" in out
    assert "features       8: km_driven" in out
    assert "contamination  0.01" in out
    assert f"train {TENANT}: {CARS * DAYS}/{CARS * DAYS} vehicle-days" in err

    with psycopg.connect(fleet_db) as conn:
        before = conn.execute("SELECT max(version) FROM anomaly_models").fetchone()
    assert before is not None
    assert _train(config, "--seed", "1") == 0  # a retrain is a new version
    out, _ = capsys.readouterr()
    version = before[0] + 1
    assert f"model version  {version}" in out
    with psycopg.connect(fleet_db) as conn:
        names, params, rows, metrics = conn.execute(
            "SELECT feature_names, params, training_rows, metrics FROM anomaly_models "
            "WHERE tenant_id = %s AND version = %s",
            (TENANT, version),
        ).fetchone() or (None, None, None, None)
    assert tuple(names) == FEATURE_NAMES
    assert params["type"] == "isolation_forest"
    assert params["places"] == "provinces:cn_provinces.geojson"
    assert params["seed"] == 1
    assert rows == CARS * DAYS
    assert metrics["flagged_in_training"] >= 1

    code = run(
        "score-days", "--tenant", TENANT, "--config", str(config), "--day",
        ODD_DAY.isoformat(), "--provinces", str(PROVINCES),
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{CARS} vehicle-days scored with model v{version}" in out
    with psycopg.connect(fleet_db) as conn:
        scored = conn.execute(
            "SELECT v.vin, s.score, s.is_anomaly, s.top_features FROM anomaly_scores s "
            "JOIN vehicles v ON v.id = s.vehicle_id "
            "WHERE s.tenant_id = %s AND s.day = %s AND s.model_version = %s",
            (TENANT, ODD_DAY, version),
        ).fetchall()
    assert len(scored) == CARS
    by_car = {int(vin[5:]): (score, flagged, top) for vin, score, flagged, top in scored}
    score, flagged, top = by_car[ODD_CAR]
    assert flagged
    assert score == max(s for s, _, _ in by_car.values())
    assert [car for car, (_, f, _) in by_car.items() if f] == [ODD_CAR]
    named = {t["name"] for t in top}
    assert named & {"km_driven", "night_km", "max_km_from_home", "provinces_visited"}
    assert all(t["contribution"] > 0 or t["name"] in named for t in top)
    assert ": 1 anomalous" in out

    # scoring again replaces the rows instead of adding to them
    assert run("score-days", "--tenant", TENANT, "--config", str(config), "--day",
               ODD_DAY.isoformat(), "--provinces", str(PROVINCES)) == 0  # fmt: skip
    with psycopg.connect(fleet_db) as conn:
        again = conn.execute(
            "SELECT count(*) FROM anomaly_scores WHERE tenant_id = %s AND day = %s",
            (TENANT, ODD_DAY),
        ).fetchone()
    assert again == (CARS,)
    capsys.readouterr()

    # without --day: the week up to yesterday (nothing stored there), never the past again
    assert run("score-days", "--tenant", TENANT, "--config", str(config),
               "--provinces", str(PROVINCES)) == 0  # fmt: skip
    out, _ = capsys.readouterr()
    yesterday = cli._today() - timedelta(days=1)
    assert f"0 vehicle-days scored with model v{version}" in out
    assert yesterday.isoformat() in out
    assert (yesterday - timedelta(days=cli.CATCH_UP_DAYS - 1)).isoformat() in out
    assert ODD_DAY.isoformat() not in out


def test_train_refuses_with_too_little_data(
    config: Path, fleet_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(fleet_db) as conn:
        before = conn.execute("SELECT count(*) FROM anomaly_models").fetchone()
    until = (FIRST + timedelta(days=DAYS)).isoformat()
    code = run(
        "train", "--tenant", TENANT, "--config", str(config), "--until", until,
        "--min-vehicle-days", "1000",
    )  # fmt: skip
    _, err = capsys.readouterr()
    assert code == cli.EXIT_NO_DATA
    assert f"has {CARS * DAYS} vehicle-days" in err
    assert "needs at least 1000" in err
    code = run("train", "--tenant", OTHER, "--config", str(config))
    _, err = capsys.readouterr()
    assert code == cli.EXIT_NO_DATA
    assert "has 0 vehicle-days" in err
    with psycopg.connect(fleet_db) as conn:
        after = conn.execute("SELECT count(*) FROM anomaly_models").fetchone()
    assert after == before


def test_score_days_without_a_model(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run("score-days", "--tenant", OTHER, "--config", str(config), "--day", "2025-03-02")
    _, err = capsys.readouterr()
    assert code == cli.EXIT_NO_DATA
    assert "no anomaly model" in err


def test_the_worker_scores_ended_days_once_and_raises_the_vehicle_risk(
    config: Path, fleet_db: str
) -> None:
    """Daily scoring (cloud.risk.daily): what `score-days` does, run by the risk worker."""
    from cloud.risk import daily

    assert _train(config, "--seed", "2") == 0
    sent: list[tuple[str, dict[str, Any]]] = []

    def notify(
        conn: Any,
        tenant_id: str,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        message_id: str | None = None,
    ) -> str:
        sent.append((event_type, dict(payload)))
        return message_id or f"{tenant_id}-{len(sent)}"

    today = ODD_DAY + timedelta(days=1)
    soon_after = datetime.combine(today, time(2, 0), tzinfo=CHINA_TZ)  # the check after midnight
    with psycopg.connect(fleet_db) as conn:  # as the risk worker connects: not autocommit
        with conn.transaction():
            version = (conn.execute("SELECT max(version) FROM anomaly_models").fetchone() or [0])[0]
        outcomes = daily.score_due(conn, notify, today=today, now=lambda: soon_after)
        # committed, nothing left open: the worker's next rounds commit as before
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert [(o.tenant_id, o.days, o.scored) for o in outcomes] == [
            (TENANT, tuple(ODD_DAY - timedelta(days=i) for i in reversed(range(7))), CARS * 7)
        ]
        assert daily.score_due(conn, notify, today=today, now=lambda: soon_after) == []
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        flagged = conn.execute(
            "SELECT DISTINCT v.vin FROM anomaly_scores s JOIN vehicles v ON v.id = s.vehicle_id "
            "WHERE s.model_version = %s AND s.is_anomaly AND s.day = %s",
            (version, ODD_DAY),
        ).fetchall()
        assert [int(vin[5:]) for (vin,) in flagged] == [ODD_CAR]
        risk = conn.execute(
            "SELECT r.reasons FROM vehicle_risk r JOIN vehicles v ON v.id = r.vehicle_id "
            "WHERE v.vin = %s",
            (f"LSVAX{ODD_CAR:012d}",),
        ).fetchone()
        assert risk is not None
        assert "anomaly_model" in str(risk[0])
    assert [e for e, _ in sent] == ["vehicle.risk_changed"]  # the band went up


def test_days_to_score_catch_up_at_most_a_week() -> None:
    from cloud.risk.daily import days_to_score

    today = date(2025, 3, 20)
    assert days_to_score(None, today) == [date(2025, 3, d) for d in range(13, 20)]
    assert days_to_score(date(2025, 3, 17), today) == [date(2025, 3, 18), date(2025, 3, 19)]
    assert days_to_score(date(2025, 3, 19), today) == []
    assert days_to_score(date(2025, 1, 1), today, catch_up=2) == [
        date(2025, 3, 18),
        date(2025, 3, 19),
    ]
