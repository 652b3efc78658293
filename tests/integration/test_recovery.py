"""The asset engine against real TimescaleDB and Mosquitto: queue, case lifecycle, chase mode.

Two tenants. Tenant A's cars cover the ranking rules (a risky car, a huge
loan without risk, an overdue one, an unknown balance, a closed loan, a car
without loan); tenant B has one very risky car that must never show up for
A. Fixes, alerts and scores are inserted as the ingest and risk workers
would leave them. Every time is relative to one fixed ``NOW``.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.console import main
from cloud.localsvc import PrivateMosquitto
from cloud.metrics import REGISTRY
from cloud.recovery import cases
from cloud.recovery.commands import Commander, PublishError
from cloud.recovery.mqtt import AckListener, BrokerSettings, MqttCommandPublisher, handle, serve
from cloud.recovery.worklist import CaseRef
from cloud.recovery.worklist import queue as recovery_queue
from cloud.registry.broker_auth import ServiceAccount, render_acl_file
from protocols.messages import SCHEMA_VERSION, CommandAck, SignedCommand, decode, encode
from protocols.tokens import Keyring, generate_private_key, private_key_to_pem, verify_command
from protocols.topics import Channel, device_topic
from tests.integration.ingest_support import TENANT, prepare_db

pytestmark = pytest.mark.services

OTHER = "beta-credit"
NOW = datetime.now(UTC).replace(microsecond=0)
KEY = generate_private_key()
KEYRING = Keyring([KEY.public_key()])
HOME = (30.6000, 104.0000)  # lat, lon (Chengdu)
PAWNSHOP = (30.6400, 104.0500)
TIMEOUT = 10.0


def vin(n: int) -> str:
    return f"LVGR0000000{n:06d}"


class Ids:
    """Fresh device ids per test: the broker is shared by the whole session."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.wired, self.wireless, self.revoked = f"r{tag}w1", f"r{tag}w2", f"r{tag}rv"
        self.v3, self.other = f"r{tag}v3", f"r{tag}b1"


@pytest.fixture
def ids() -> Ids:
    return Ids()


@pytest.fixture
def conn(fresh_db: str, ids: Ids) -> Iterator[psycopg.Connection[Any]]:
    prepare_db(fresh_db, [])
    with psycopg.connect(fresh_db, autocommit=True) as c:
        seed(c, ids)
        yield c


def seed(c: psycopg.Connection[Any], ids: Ids) -> None:
    c.execute("INSERT INTO tenants (id, name) VALUES (%s, 'Beta Credit')", (OTHER,))
    # vehicle id: (tenant, loan status, outstanding, score, band)
    cars = {
        1: (TENANT, "current", 150_000, 85.0, "high"),  # 0.614 x 150k = 92.1k
        2: (TENANT, "default", 5_000_000, None, None),  # no risk row: 0 whatever the loan
        3: (TENANT, "overdue", 100_000, 60.0, "medium"),  # 0.216 x 2 x 100k = 43.2k
        4: (TENANT, "closed", 300_000, 95.0, "critical"),  # not ranked
        5: (TENANT, "current", None, 40.0, "low"),  # median 150k: 0.064 x 150k = 9.6k
        6: (TENANT, None, None, 90.0, "high"),  # no loan: not ranked
        7: (OTHER, "default", 1_000_000, 100.0, "critical"),
    }
    for vid, (tenant, status, outstanding, score, band) in cars.items():
        c.execute(
            "INSERT INTO vehicles (id, tenant_id, vin, plate) VALUES (%s, %s, %s, %s)",
            (vid, tenant, vin(vid), f"川A{vid:05d}"),
        )
        if status is not None:
            c.execute(
                "INSERT INTO loans (tenant_id, contract_id, vehicle_id, status, outstanding, "
                "declared_lat, declared_lon) VALUES (%s, %s, %s, %s, %s, 30.5, 104.1)",
                (tenant, f"C-{vid}", vid, status, outstanding),
            )
        if score is not None:
            c.execute(
                "INSERT INTO vehicle_risk (vehicle_id, tenant_id, score, band, reasons) "
                "VALUES (%s, %s, %s, %s, %s)",
                (vid, tenant, score, band, f'[{{"rule": "r{vid}", "points": {score}}}]'),
            )
    devices = [(ids.wired, TENANT, "wired", 1, False), (ids.wireless, TENANT, "wireless", 1, False),
               (ids.revoked, TENANT, "wired", 1, True), (ids.v3, TENANT, "wired", 3, False),
               (ids.other, OTHER, "wired", 7, False)]  # fmt: skip
    c.cursor().executemany(
        "INSERT INTO devices (id, tenant_id, kind, vehicle_id, revoked) "
        "VALUES (%s, %s, %s, %s, %s)",
        devices,
    )
    c.cursor().executemany(
        "INSERT INTO device_status (device_id, state, outbox_depth) VALUES (%s, %s, %s)",
        [(ids.wired, "online", 3), (ids.wireless, "offline", None)],
    )
    # Car 1: home 20:00-06:00 two days ago (outside the answer: 8 days ago too), then 3 h at
    # the pawnshop, last wired fix 2 h ago; the wireless unit last woke a day ago.
    # Tenant B's car sleeps exactly where car 1 does.
    fixes: list[tuple[Any, ...]] = []

    def park(dev: str, tenant: str, vid: int, at: tuple[float, float], start: datetime,
             minutes: int, every: int = 10) -> None:  # fmt: skip
        for k in range(0, minutes + 1, every):
            fixes.append((start + timedelta(minutes=k), dev, tenant, vid, at[0], at[1], 0.0))

    park(ids.wired, TENANT, 1, HOME, NOW - timedelta(days=8), 300)
    park(ids.wired, TENANT, 1, HOME, NOW - timedelta(hours=30), 600)
    park(ids.wired, TENANT, 1, PAWNSHOP, NOW - timedelta(hours=5, minutes=30), 180, every=5)
    fixes.append((NOW - timedelta(hours=2), ids.wired, TENANT, 1, 30.70, 104.10, 15.0))
    fixes.append((NOW - timedelta(days=1), ids.wireless, TENANT, 1, *HOME, 0.0))
    park(ids.other, OTHER, 7, HOME, NOW - timedelta(hours=10), 300)
    c.cursor().executemany(
        "INSERT INTO fixes (time, device_id, boot_id, seq, tenant_id, vehicle_id, lat, lon, "
        "speed_mps, mode) VALUES (%s, %s, 'b', %s, %s, %s, %s, %s, %s, 3)",
        [(f[0], f[1], i, *f[2:]) for i, f in enumerate(fixes)],
    )
    alerts = [  # vehicle, rule, severity, status, hours ago, evidence
        (1, "power_cut", "high", "open", 3, "{}"),
        (1, "not_home", "warn", "acknowledged", 1, "{}"),
        (1, "offline", "warn", "resolved", 5, "{}"),
        (1, "resident_learned", "info", "open", 200, '{"lat": 30.59, "lon": 103.99}'),
        (1, "resident_learned", "info", "resolved", 400, '{"lat": 10.0, "lon": 10.0}'),
        (7, "power_cut", "critical", "open", 1, "{}"),
    ]
    for vid, rule, sev, status, hours, evidence in alerts:
        c.execute(
            "INSERT INTO alerts (tenant_id, vehicle_id, rule, episode, severity, status, "
            "fired_at, evidence) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (cars[vid][0], vid, rule, f"{rule}:{hours}", sev, status,
             NOW - timedelta(hours=hours), evidence),
        )  # fmt: skip


class FakePublisher:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, SignedCommand]] = []
        self.fail = fail

    def publish(self, device_id: str, command: SignedCommand) -> str:
        if self.fail:
            raise PublishError("broker unreachable")
        self.sent.append((device_id, command))
        return "Success"


def commander(publisher: Any) -> Commander:
    return Commander(KEY, publisher, clock=lambda: NOW)


# ---------------------------------------------------------------- the queue


def test_queue_ranks_and_describes_the_tenants_cars(
    conn: psycopg.Connection[Any], ids: Ids
) -> None:
    entries = recovery_queue(conn, TENANT, limit=20, now=NOW)
    assert [e.vehicle_id for e in entries] == [1, 3, 5, 2]
    assert [e.rank for e in entries] == [1, 2, 3, 4]
    assert [round(e.priority) for e in entries] == [
        round(0.85**3 * 150_000), round(0.6**3 * 2 * 100_000), round(0.4**3 * 150_000), 0,
    ]  # fmt: skip
    first = entries[0]
    assert (first.contract_id, first.loan_status) == ("C-1", "current")
    assert first.outstanding == Decimal("150000.00")
    assert (first.plate, first.score, first.band) == ("川A00001", 85.0, "high")
    assert first.reasons == [{"rule": "r1", "points": 85.0}]
    assert first.open_alerts == 3  # resolved ones are not counted
    assert [a.rule for a in first.top_alerts] == ["power_cut", "not_home", "resident_learned"]
    by_id = {t.device_id: t for t in first.trackers}
    assert set(by_id) == {ids.wired, ids.wireless, ids.revoked}
    wired, wireless = by_id[ids.wired], by_id[ids.wireless]
    assert (wired.state, wired.outbox_depth, wired.age) == ("online", 3, timedelta(hours=2))
    assert (wired.lat, wired.lon) == (30.70, 104.10)
    assert (wireless.state, wireless.age) == ("offline", timedelta(days=1))
    assert by_id[ids.revoked].revoked
    assert by_id[ids.revoked].fix_time is None
    assert first.last_seen is wired
    # The newest resident_learned alert's evidence; else the loan's declared address.
    assert first.resident is not None
    assert (first.resident.lat, first.resident.lon, first.resident.source) == (
        30.59, 103.99, "resident_learned",
    )  # fmt: skip
    assert entries[1].resident is not None
    assert (entries[1].resident.lat, entries[1].resident.source) == (30.5, "declared")
    # Stays in the last 7 days, most recent first: the pawnshop, then the night at home.
    stays = [(round(s.lat, 4), s.duration) for s in first.stays]
    assert stays == [(PAWNSHOP[0], timedelta(hours=3)), (HOME[0], timedelta(hours=10))]
    assert entries[1].stays == ()
    # Paging keeps the ranks of the whole queue.
    page = recovery_queue(conn, TENANT, limit=2, offset=1, now=NOW)
    assert [(e.rank, e.vehicle_id) for e in page] == [(2, 3), (3, 5)]
    assert recovery_queue(conn, TENANT, limit=5, offset=10, now=NOW) == []
    # Tenant B sees only its own car, and A's rows never leak into it.
    (only,) = recovery_queue(conn, OTHER, now=NOW)
    assert (only.vehicle_id, only.open_alerts, [t.device_id for t in only.trackers]) == (
        7, 1, [ids.other],
    )  # fmt: skip
    assert len(only.stays) == 1


def test_queue_shows_the_open_case(conn: psycopg.Connection[Any]) -> None:
    case = cases.open_case(conn, TENANT, 3, "alice")
    entries = {e.vehicle_id: e for e in recovery_queue(conn, TENANT, now=NOW)}
    assert entries[3].case == CaseRef(case.id, "open", None)
    assert entries[1].case is None


# ---------------------------------------------------------------- cases


def test_case_lifecycle_with_full_history(conn: psycopg.Connection[Any], ids: Ids) -> None:
    pub = FakePublisher()
    case = cases.open_case(conn, TENANT, 1, "alice", note="borrower unreachable")
    assert (case.status, case.loan_id is not None, case.opened_by) == ("open", True, "alice")
    with pytest.raises(cases.CaseError) as info:
        cases.open_case(conn, TENANT, 1, "bob")
    assert info.value.code == "already_open"
    with pytest.raises(cases.CaseError, match="forbidden_transition"):
        cases.mark_located(conn, TENANT, case.id, "alice", 30.6, 104.0)

    assert cases.assign(conn, TENANT, case.id, "alice", "team-7").assignee == "team-7"
    result = cases.start_chase(conn, TENANT, case.id, "bob", commander(pub), duration_s=1800)
    assert result.case.status == "chasing"
    assert sorted(d for d, _ in pub.sent) == sorted([ids.wired, ids.wireless])  # not the revoked
    for device, signed in pub.sent:
        claims = verify_command(KEYRING, signed, device_id=device, now=NOW, seen_nonces=set())
        assert (claims.cmd, claims.args) == ("chase_mode", {"on": True, "duration_s": 1800})
        assert claims.expires_at - claims.issued_at == timedelta(minutes=30)
    with pytest.raises(cases.CaseError, match="forbidden_transition"):
        cases.finish(conn, TENANT, case.id, "bob", "recovered")  # not located yet

    located = cases.mark_located(conn, TENANT, case.id, "bob", 30.64, 104.05, note="in a yard")
    assert (located.status, located.located_lat, located.located_lon) == ("located", 30.64, 104.05)
    pub.sent.clear()
    done = cases.finish(conn, TENANT, case.id, "bob", "recovered", commander=commander(pub))
    assert (done.case.status, done.case.outcome) == ("recovered", "recovered")
    assert [s.jws for _, s in pub.sent] == [c.signed.jws for c in done.commands]
    for device, signed in pub.sent:  # chase goes off when the car is recovered
        off = verify_command(KEYRING, signed, device_id=device, now=NOW, seen_nonces=set())
        assert off.args == {"on": False}
    closed = cases.close(conn, TENANT, case.id, "carol").case
    assert (closed.status, closed.outcome, closed.closed_at is not None) == (
        "closed", "recovered", True,
    )  # fmt: skip
    assert closed.notes == "alice: borrower unreachable\nbob: in a yard\n"

    hist = cases.history(conn, TENANT, case.id)
    assert [(h.actor, h.action, h.from_status, h.to_status) for h in hist] == [
        ("alice", "opened", None, "open"),
        ("alice", "assigned", "open", "assigned"),
        ("bob", "chase_started", "assigned", "chasing"),
        ("bob", "commands_published", None, None),
        ("bob", "located", "chasing", "located"),
        ("bob", "recovered", "located", "recovered"),
        ("bob", "commands_published", None, None),
        ("carol", "closed", "recovered", "closed"),
    ]
    assert hist[1].detail["assignee"] == "team-7"
    assert hist[2].detail["duration_s"] == 1800
    assert len(hist[2].detail["commands"]) == 2
    assert hist[4].detail["chase_on_until"] is not None  # chase left on while approaching
    assert hist[5].detail["chase_stopped"] is True
    assert all(h.time is not None for h in hist)
    recorded = cases.case_commands(conn, TENANT, case.id)
    assert len(recorded) == 4
    assert all(r.published_at is not None and r.issued_by == "bob" for r in recorded)

    # Closed is final; a refused move writes nothing.
    with pytest.raises(cases.CaseError, match="forbidden_transition"):
        cases.assign(conn, TENANT, case.id, "alice", "team-8")
    assert len(cases.history(conn, TENANT, case.id)) == len(hist)
    # The audit trail cannot be edited.
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute("UPDATE case_history SET actor = 'mallory' WHERE case_id = %s", (case.id,))
    # The vehicle may get a new case once the old one is closed.
    assert cases.open_case(conn, TENANT, 1, "alice").id != case.id


def test_cancel_needs_a_reason_and_failures_are_recorded(conn: psycopg.Connection[Any]) -> None:
    case = cases.open_case(conn, TENANT, 5, "alice")
    with pytest.raises(cases.CaseError) as info:
        cases.close(conn, TENANT, case.id, "alice")
    assert (info.value.code, info.value.message) == ("missing_field", "cancel needs reason")
    cases.assign(conn, TENANT, case.id, "alice", "team-1")
    with pytest.raises(cases.CaseError) as info:  # car 5 has no tracker
        cases.start_chase(conn, TENANT, case.id, "alice", commander(FakePublisher()))
    assert info.value.code == "no_devices"
    cancelled = cases.close(conn, TENANT, case.id, "alice", reason="loan repaid").case
    assert (cancelled.status, cancelled.outcome) == ("closed", "cancelled")
    last = cases.history(conn, TENANT, case.id)[-1]
    assert (last.action, last.from_status, last.detail["reason"]) == (
        "cancelled", "assigned", "loan repaid",
    )  # fmt: skip

    # Publishing fails: the case is chasing, the rows say nothing was published.
    case3 = cases.open_case(conn, TENANT, 3, "alice")
    cases.assign(conn, TENANT, case3.id, "alice", "team-2")
    result = cases.start_chase(conn, TENANT, case3.id, "bob", commander(FakePublisher(fail=True)))
    assert result.case.status == "chasing"
    assert result.report is not None
    assert result.report.failed == [(result.commands[0].device_id, "broker unreachable")]
    (row,) = cases.case_commands(conn, TENANT, case3.id)
    assert (row.published_at, row.publish_note) == (None, "broker unreachable")
    # Failing without a way to send "off": the history says until when chase may run.
    failed = cases.finish(conn, TENANT, case3.id, "bob", "failed")
    assert failed.case.status == "failed"
    last = cases.history(conn, TENANT, case3.id)[-1]
    assert last.detail["chase_stopped"] is False
    assert datetime.fromisoformat(last.detail["chase_on_until"]) > NOW


def test_another_tenants_case_is_not_reachable(conn: psycopg.Connection[Any]) -> None:
    mine = cases.open_case(conn, TENANT, 1, "alice")
    with pytest.raises(cases.CaseError) as info:
        cases.open_case(conn, OTHER, 1, "mallory")  # A's vehicle, from B
    assert info.value.code == "not_found"
    pub = FakePublisher()
    attempts: list[Callable[[], object]] = [
        lambda: cases.get_case(conn, OTHER, mine.id),
        lambda: cases.history(conn, OTHER, mine.id),
        lambda: cases.assign(conn, OTHER, mine.id, "mallory", "mallory"),
        lambda: cases.start_chase(conn, OTHER, mine.id, "mallory", commander(pub)),
        lambda: cases.close(conn, OTHER, mine.id, "mallory", reason="x"),
    ]
    for attempt in attempts:
        with pytest.raises(cases.CaseError) as info:
            attempt()
        assert (info.value.code, info.value.message) == ("not_found", f"case {mine.id} not found")
    assert cases.case_commands(conn, OTHER, mine.id) == []
    assert pub.sent == []
    assert len(cases.history(conn, TENANT, mine.id)) == 1
    assert cases.get_case(conn, TENANT, mine.id).status == "open"


# ---------------------------------------------------------------- over MQTT


class Device:
    """A tracker's side of the broker: receives its commands, sends acks."""

    def __init__(self, port: int, device_id: str, password: str | None = None) -> None:
        self.device_id = device_id
        self.commands: queue.Queue[bytes] = queue.Queue()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id,
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        if password is not None:
            self.client.username_pw_set(device_id, password)
        self.client.on_message = lambda _c, _u, m: self.commands.put(bytes(m.payload))
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(device_topic(device_id, Channel.CMD), qos=1)
        assert self.subscribed.wait(TIMEOUT)

    def next_command(self) -> SignedCommand:
        return decode(self.commands.get(timeout=TIMEOUT), SignedCommand)

    def ack(self, nonce: str, *, ok: bool = True, reason: str | None = None) -> None:
        ack = CommandAck(v=SCHEMA_VERSION, device_id=self.device_id, nonce=nonce, ok=ok,
                         reason=reason)  # fmt: skip
        self.publish(Channel.CMD_ACK, encode(ack))

    def publish(self, channel: Channel, payload: bytes) -> None:
        self.client.publish(device_topic(self.device_id, channel), payload, qos=1).wait_for_publish(
            TIMEOUT
        )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def settings(port: int, user: str | None = None, password: str | None = None) -> BrokerSettings:
    return BrokerSettings("127.0.0.1", port, f"rt-{uuid.uuid4().hex[:10]}", user, password)


def ack_row(conn: psycopg.Connection[Any], nonce: str) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT ack_ok, ack_reason, ack_at IS NOT NULL FROM commands WHERE nonce = %s", (nonce,)
    ).fetchone()


def acks(outcome: str) -> float:
    return REGISTRY.get_sample_value("vgr_command_acks_total", {"outcome": outcome}) or 0.0


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=TIMEOUT)
    while not check():
        if datetime.now(UTC) > deadline:
            pytest.fail(f"timed out waiting for {what}")
        threading.Event().wait(0.05)


def test_chase_is_published_signed_and_its_ack_recorded(
    conn: psycopg.Connection[Any], fresh_db: str, mosquitto: PrivateMosquitto, ids: Ids
) -> None:
    port = mosquitto.plain_port
    device = Device(port, ids.v3)
    listener = AckListener(settings(port), group=f"rt{uuid.uuid4().hex[:6]}")
    listener.start()
    assert listener.wait_connected(TIMEOUT)
    stop = threading.Event()
    with psycopg.connect(fresh_db, autocommit=True) as listener_conn:
        worker = threading.Thread(target=serve, args=(listener_conn, listener, stop.is_set),
                                  kwargs={"poll_s": 0.05})  # fmt: skip
        worker.start()
        try:
            case = cases.open_case(conn, TENANT, 3, "alice")
            cases.assign(conn, TENANT, case.id, "alice", "team-7")
            with MqttCommandPublisher(settings(port)) as publisher:
                result = cases.start_chase(
                    conn, TENANT, case.id, "bob", Commander(KEY, publisher), duration_s=600
                )
            assert result.report is not None
            assert result.report.failed == []
            (issued,) = result.commands
            got = device.next_command()
            claims = verify_command(
                KEYRING, got, device_id=ids.v3, now=datetime.now(UTC), seen_nonces=set()
            )
            assert (claims.cmd, claims.nonce, claims.args) == (
                "chase_mode", issued.nonce, {"on": True, "duration_s": 600},
            )  # fmt: skip
            with pytest.raises(Exception, match="wrong_device"):
                verify_command(KEYRING, got, device_id=ids.wired, now=NOW, seen_nonces=set())

            before = {k: acks(k) for k in ("recorded", "duplicate", "unknown", "bad_payload")}
            device.ack(claims.nonce)
            wait_for(lambda: ack_row(conn, claims.nonce) == (True, None, True), "the ack row")
            device.ack(claims.nonce, ok=False, reason="replayed")  # a redelivery: first wins
            device.ack("0" * 32, ok=True)  # a nonce nobody sent
            device.publish(Channel.CMD_ACK, b"{not json")
            wait_for(
                lambda: all(acks(k) == before[k] + 1 for k in before), "every ack to be counted"
            )
            assert ack_row(conn, claims.nonce) == (True, None, True)

            # Car 1's trackers are not connected: the broker says so, the command is still sent.
            other = cases.open_case(conn, TENANT, 1, "alice")
            cases.assign(conn, TENANT, other.id, "alice", "team-8")
            with MqttCommandPublisher(settings(port)) as publisher:
                offline = cases.start_chase(
                    conn, TENANT, other.id, "bob", Commander(KEY, publisher)
                )
            assert offline.report is not None
            assert sorted(offline.report.published) == sorted(
                [(ids.wired, "No matching subscribers"), (ids.wireless, "No matching subscribers")]
            )
        finally:
            stop.set()
            worker.join(TIMEOUT)
            listener.stop()
            device.close()
    last = cases.history(conn, TENANT, case.id)[-1]
    assert (last.actor, last.action) == (f"device:{ids.v3}", "command_acked")
    assert (last.detail["nonce"], last.detail["ok"]) == (claims.nonce, True)
    (row,) = cases.case_commands(conn, TENANT, case.id)
    assert row.published_at is not None
    assert row.publish_note == "Success"


@pytest.fixture
def broker_accounts(mosquitto: PrivateMosquitto) -> Iterator[PrivateMosquitto]:
    """The session broker; users added by the test are removed and the ACL put back after."""
    acl = mosquitto.acl_path.read_text().splitlines()
    users = set(mosquitto.users)
    yield mosquitto
    for user in set(mosquitto.users) - users:
        mosquitto.remove_user(user)
    mosquitto.set_acl(acl)
    mosquitto.reload()


def test_the_shipped_acl_lets_the_service_account_command_and_hear_acks(
    conn: psycopg.Connection[Any], broker_accounts: PrivateMosquitto, ids: Ids
) -> None:
    broker = broker_accounts
    service = (f"svc-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex)
    readonly = (f"ro-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex)
    device_pw = uuid.uuid4().hex
    accounts = [ServiceAccount.with_password(*service),
                ServiceAccount.with_password(*readonly, acl=("topic read vgr/v1/#",))]  # fmt: skip
    broker.set_acl(render_acl_file(accounts).splitlines())  # as the registry writes it
    for name, password in (service, readonly, (ids.v3, device_pw)):
        broker.add_user(name, password)
    broker.reload()
    port = broker.auth_port
    device = Device(port, ids.v3, device_pw)
    listener = AckListener(settings(port, *service), group=f"rt{uuid.uuid4().hex[:6]}")
    listener.start()
    try:
        assert listener.wait_connected(TIMEOUT)
        case = cases.open_case(conn, TENANT, 3, "alice")
        cases.assign(conn, TENANT, case.id, "alice", "team-7")
        # An account without write access: the refusal is an error, not a silent drop.
        with MqttCommandPublisher(settings(port, *readonly)) as publisher:
            refused = cases.start_chase(conn, TENANT, case.id, "bob", Commander(KEY, publisher))
        assert refused.report is not None
        assert "Not authorized" in refused.report.failed[0][1]
        with MqttCommandPublisher(settings(port, *service)) as publisher:
            result = cases.start_chase(conn, TENANT, case.id, "bob", Commander(KEY, publisher))
        assert result.report is not None
        assert result.report.failed == []
        got = device.next_command()
        assert got.jws == result.commands[0].signed.jws
        device.ack(result.commands[0].nonce)
        delivery = listener.deliveries.get(timeout=TIMEOUT)
        assert handle(conn, delivery) == "recorded"
        listener.release(delivery)
        assert ack_row(conn, result.commands[0].nonce) == (True, None, True)
        with pytest.raises(PublishError, match="refused the connection"):
            MqttCommandPublisher(settings(port, service[0], "wrong"), timeout_s=3).connect()
    finally:
        listener.stop()
        device.close()


def test_cli(
    conn: psycopg.Connection[Any],
    fresh_db: str,
    mosquitto: PrivateMosquitto,
    ids: Ids,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key_file = tmp_path / "platform.key"
    key_file.write_bytes(private_key_to_pem(KEY))
    cfg = tmp_path / "cloud.toml"
    cfg.write_text(
        f'kind = "cloud"\n[database]\ndsn = "{fresh_db}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.plain_port}\n'
        f'[registry]\nsigning_key = "file:{key_file}"\n'
    )
    device = Device(mosquitto.plain_port, ids.v3)

    def vgr(*args: str) -> tuple[int, str, str]:
        code = main(["cloud", "recovery", *args, "--config", str(cfg), "--tenant", TENANT])
        out, err = capsys.readouterr()
        return code, out, err

    try:
        code, out, _ = vgr("queue", "--limit", "3")
        assert code == 0
        lines = out.splitlines()
        assert lines[0].split()[:3] == ["#", "VEHICLE", "CONTRACT"]
        assert [line.split()[1] for line in lines[1:]] == ["川A00001", "川A00003", "川A00005"]
        assert "power_cut(high)" in lines[1]
        assert "home 30.59000,103.99000" in lines[1]
        assert f"{ids.wired} wired online q=3" in lines[1]

        assert vgr("case", "open", "--vehicle", "3", "--by", "alice")[:2] == (0, "case 1: open\n")
        assert vgr("case", "assign", "1", "--to", "team-7", "--by", "alice")[0] == 0
        code, out, _ = vgr("case", "chase", "1", "--duration", "30m", "--by", "bob")
        assert (code, out) == (0, f"case 1: chasing\n  sent to {ids.v3}: Success\n")
        claims = verify_command(
            KEYRING,
            device.next_command(),
            device_id=ids.v3,
            now=datetime.now(UTC),
            seen_nonces=set(),  # the CLI signs with the wall clock, not the test's NOW
        )
        assert claims.args == {"on": True, "duration_s": 1800}
        code, _, err = vgr("case", "finish", "1", "--outcome", "recovered", "--by", "bob")
        assert code == 1
        assert err == (
            "refused: forbidden_transition: cannot recover a case that is chasing "
            "(allowed: chase, stop_chase, locate, fail, cancel)\n"
        )
        code, _, err = vgr("case", "located", "1", "--lat", "95", "--lon", "104", "--by", "bob")
        assert (code, err) == (1, "refused: invalid_field: lat must be a number in -90..90\n")
        assert vgr("case", "show", "7")[:3] == (1, "", "refused: not_found: case 7 not found\n")
        code, out, _ = vgr("case", "show", "1")
        assert code == 0
        assert "status chasing  assignee team-7" in out
        assert "chase_started" in out
        assert "commands_published" in out
        code, _, err = vgr("case", "chase", "1", "--duration", "25h", "--by", "bob")
        assert (code, err) == (
            1,
            "refused: invalid_field: duration_s must be 1..86400 (got 90000)\n",
        )
        assert vgr("case", "located", "1", "--lat", "30.6", "--lon", "104", "--by", "bob")[0] == 0
        code, out, _ = vgr("case", "finish", "1", "--outcome", "recovered", "--by", "bob")
        assert (code, out) == (0, f"case 1: recovered (recovered)\n  sent to {ids.v3}: Success\n")
        off = verify_command(
            KEYRING,
            device.next_command(),
            device_id=ids.v3,
            now=datetime.now(UTC),
            seen_nonces=set(),  # the CLI signs with the wall clock, not the test's NOW
        )
        assert off.args == {"on": False}
        assert vgr("case", "close", "1", "--by", "carol")[:2] == (0, "case 1: closed (recovered)\n")
        with pytest.raises(SystemExit) as exited:  # argparse: usage error
            vgr("case", "chase", "1", "--duration", "2d", "--by", "bob")
        assert exited.value.code == 2
        assert "not a duration" in capsys.readouterr().err
    finally:
        device.close()
    bad = tmp_path / "bad.toml"
    bad.write_text('kind = "cloud"\n[database]\ndsn = 5\n')
    assert main(["cloud", "recovery", "queue", "--config", str(bad), "--tenant", TENANT]) == 2
