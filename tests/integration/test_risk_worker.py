"""The risk worker against a real TimescaleDB: ingest's inbox row → rules → one alert.

Uses a small test rule so the machinery (inbox, advisory locks, snapshots,
late-data re-runs, rollback on a crash mid-round) is tested on its own; the
real catalogue has its own tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
import pytest

from cloud.ingest.model import FixRow, Work
from cloud.ingest.writer import BatchWriter
from cloud.risk.model import FixIn, RuleInput, Severity, Signal, VehicleContext
from cloud.risk.rules.base import CATALOGUE, Rule
from cloud.risk.worker import RiskWorker
from protocols.messages import Fix
from tests.integration.ingest_support import TENANT, prepare_db

T0 = datetime(2025, 3, 4, 2, 0, tzinfo=UTC)
DEVICE = "860000000000017"


class FastState(msgspec.Struct, frozen=True):
    run_start: datetime | None = None
    fired: bool = False


class FastConfig(msgspec.Struct, frozen=True):
    speed_mps: float = 30.0
    hold_s: float = 60.0


def _fast_step(
    s: FastState, inp: RuleInput, ctx: VehicleContext, cfg: FastConfig
) -> tuple[FastState, Sequence[Signal]]:
    if not isinstance(inp, FixIn):
        return s, ()
    if inp.speed_mps <= cfg.speed_mps:
        return FastState(), ()
    start = s.run_start or inp.time
    if not s.fired and (inp.time - start).total_seconds() >= cfg.hold_s:
        sig = Signal("fast", f"fast:{start.isoformat()}", inp.time, Severity.WARN, lat=inp.lat)
        return FastState(start, True), (sig,)
    return FastState(start, s.fired), ()


@pytest.fixture
def only_fast_rule() -> Iterator[None]:
    saved = dict(CATALOGUE)
    CATALOGUE.clear()
    CATALOGUE["fast"] = Rule("fast", FastState, FastConfig, _fast_step, ("fast",), "test")
    yield
    CATALOGUE.clear()
    CATALOGUE.update(saved)


@pytest.fixture
def db(fresh_db: str, only_fast_rule: None) -> tuple[str, int]:
    prepare_db(fresh_db, [DEVICE])
    with psycopg.connect(fresh_db) as conn:
        row = conn.execute(
            "INSERT INTO vehicles (tenant_id, vin) VALUES (%s, 'LSVAB4BR0EN000017') RETURNING id",
            (TENANT,),
        ).fetchone()
        assert row is not None
        conn.execute("UPDATE devices SET vehicle_id = %s WHERE id = %s", (row[0], DEVICE))
    return fresh_db, row[0]


def _store(dsn: str, vehicle: int, fixes: list[tuple[int, datetime, float]]) -> None:
    """Write fixes the way ingest does (same transaction as the inbox row)."""
    rows = [
        FixRow(Fix(device_id=DEVICE, boot_id="b1", seq=seq, time=t, lat=31.2, lon=121.4,
                   speed_mps=speed), TENANT, vehicle, ())
        for seq, t, speed in fixes
    ]  # fmt: skip
    with psycopg.connect(dsn) as conn:
        BatchWriter(conn).write(Work(fixes=rows), received_at=datetime.now(UTC))


def _alerts(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT rule, episode, status, occurrences FROM alerts ORDER BY id"
        ).fetchall()


def _drain(dsn: str) -> int:
    inputs = 0
    with psycopg.connect(dsn) as conn:
        worker = RiskWorker(conn)
        while (stats := worker.round()).vehicles:
            inputs += stats.inputs
    return inputs


def _fast_run(first_seq: int, start: datetime, n: int = 6) -> list[tuple[int, datetime, float]]:
    return [(first_seq + i, start + timedelta(seconds=20 * i), 40.0) for i in range(n)]


def test_ingested_fixes_reach_the_rules_and_raise_one_alert(db: tuple[str, int]) -> None:
    dsn, vehicle = db
    _store(dsn, vehicle, _fast_run(0, T0)[:3])
    _store(dsn, vehicle, _fast_run(0, T0)[3:])
    assert _drain(dsn) == 6
    assert _alerts(dsn) == [("fast", f"fast:{T0.isoformat()}", "open", 1)]
    with psycopg.connect(dsn) as conn:
        left = conn.execute("SELECT count(*) FROM risk_inbox").fetchone()
        history = conn.execute("SELECT action FROM alert_history").fetchall()
    assert left == (0,)
    assert history == [("opened",)]
    with psycopg.connect(dsn) as conn:
        risk = conn.execute("SELECT score, band FROM vehicle_risk").fetchall()
    assert len(risk) == 1
    assert risk[0][0] > 0  # one open warn-level alert: a score above zero, with its band


def test_late_data_re_runs_from_a_snapshot_and_gives_the_live_answer(db: tuple[str, int]) -> None:
    dsn, vehicle = db
    slow = [(i, T0 + timedelta(seconds=30 * i), 5.0) for i in range(0, 400)]  # 3h20 of driving
    gap = T0 + timedelta(hours=1, minutes=10)
    burst = _fast_run(1000, gap)  # a fast stretch inside the second hour, uploaded late
    live = [f for f in slow if not gap <= f[1] < gap + timedelta(minutes=3)]
    _store(dsn, vehicle, live)
    _drain(dsn)
    assert _alerts(dsn) == []
    _store(dsn, vehicle, burst)
    _drain(dsn)
    assert _alerts(dsn) == [("fast", f"fast:{gap.isoformat()}", "open", 1)]
    _store(dsn, vehicle, burst)  # a replay of the same burst stores nothing new
    _drain(dsn)
    assert len(_alerts(dsn)) == 1


def test_a_round_that_dies_midway_leaves_its_work_for_the_next(db: tuple[str, int]) -> None:
    dsn, vehicle = db
    _store(dsn, vehicle, _fast_run(0, T0))

    class CrashError(Exception):
        pass

    with psycopg.connect(dsn) as conn:
        worker = RiskWorker(conn)

        def explode(*_: object, **__: object) -> list[Signal]:
            raise CrashError

        worker._run_vehicle = explode  # type: ignore[method-assign]
        with pytest.raises(CrashError):
            worker.round()
    assert _alerts(dsn) == []
    assert _drain(dsn) == 6
    assert len(_alerts(dsn)) == 1


def test_two_workers_never_run_one_vehicle_at_once(db: tuple[str, int]) -> None:
    dsn, vehicle = db
    _store(dsn, vehicle, _fast_run(0, T0))
    with psycopg.connect(dsn) as holder, psycopg.connect(dsn) as other:
        with holder.transaction():
            holder.execute("SELECT pg_advisory_xact_lock(7301, %s)", (vehicle,))
            stats = RiskWorker(other).round()
            assert stats.vehicles == 0  # held elsewhere: given back to the inbox
        row = other.execute("SELECT count(*) FROM risk_inbox").fetchone()
        assert row == (1,)
    assert _drain(dsn) == 6


def test_event_details_are_stored_as_json_objects_and_read_back(db: tuple[str, int]) -> None:
    from cloud.ingest.model import EventRow
    from cloud.risk.model import EventIn
    from cloud.risk.store import load_inputs
    from protocols.messages import Event, EventKind

    dsn, vehicle = db
    event = Event(device_id=DEVICE, boot_id="b1", seq=1, time=T0, kind=EventKind.SESSION,
                  detail={"ip": "198.51.100.7", "n": 2})  # fmt: skip
    with psycopg.connect(dsn) as conn:
        BatchWriter(conn).write(
            Work(events=[EventRow(event, TENANT, vehicle, ("late",))]), received_at=T0
        )
        kind = conn.execute("SELECT jsonb_typeof(detail) FROM device_events").fetchone()
        loaded = load_inputs(conn, {vehicle: None}, {DEVICE: "wired"})[vehicle]
    assert kind == ("object",)
    assert len(loaded) == 1
    assert isinstance(loaded[0], EventIn)
    assert dict(loaded[0].detail) == {"ip": "198.51.100.7", "n": 2}
    assert loaded[0].flags == ("late",)


def test_three_cars_at_one_poi_raise_one_gathering_alert_each(db: tuple[str, int]) -> None:
    from cloud.risk.alerts import AlertPolicy, Outcome, no_webhooks
    from cloud.risk.fleet_rules import run_gathering
    from cloud.risk.rules.gathering import GatheringConfig, PoiVisit

    dsn, first = db
    with psycopg.connect(dsn) as conn:
        others = [
            conn.execute(
                "INSERT INTO vehicles (tenant_id, vin) VALUES (%s, %s) RETURNING id",
                (TENANT, vin),
            ).fetchone()
            for vin in ("LSVAB4BR0EN000018", "LSVAB4BR0EN000019")
        ]
        vehicles = [first, *(row[0] for row in others if row is not None)]
        visits = [
            PoiVisit(poi_id="pawn-1", vehicle_id=v, time=T0 + timedelta(hours=3 * i),
                     category="pawnshop", poi_name="Pawn 1")
            for i, v in enumerate(vehicles)
        ]  # fmt: skip
        for _ in range(2):  # the second pass is a replay: nothing new
            with conn.transaction():
                run_gathering(
                    conn, TENANT, visits, loans={}, config=GatheringConfig(),
                    policy=AlertPolicy(), notify=no_webhooks, outcome=Outcome(),
                )  # fmt: skip
        rows = conn.execute(
            "SELECT vehicle_id, episode, severity FROM alerts WHERE rule = 'gathering' "
            "ORDER BY vehicle_id"
        ).fetchall()
    assert [r[0] for r in rows] == sorted(vehicles)
    assert len({r[1] for r in rows}) == 1
    assert {r[2] for r in rows} == {"warn"}
