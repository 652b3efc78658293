"""The private services the other integration tests stand on, checked for real.

TimescaleDB (Apache edition) in the private PostgreSQL; Mosquitto's three
listeners, password file, ACL patterns and TLS; restarts and crashes of both.
"""

from __future__ import annotations

import datetime as dt
import queue
import ssl
import threading
import uuid
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud.localsvc import (
    PrivateMosquitto,
    PrivatePostgres,
    ServiceError,
    make_tls_files,
    mqtt_probe,
    port_accepts,
)

pytestmark = pytest.mark.services

TIMEOUT = 5.0


class Mqtt:
    """A paho MQTT 5 client on its own network thread, with blocking helpers for tests."""

    def __init__(
        self,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.port = port
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls is not None:
            self.client.tls_set_context(tls)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._connack = threading.Event()
        self.connack: ReasonCode | None = None
        self._acks: dict[int, list[ReasonCode]] = {}
        self._acked = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.on_subscribe = lambda _c, _u, mid, codes, _p: self._ack(mid, codes)
        self.client.on_publish = lambda _c, _u, mid, code, _p: self._ack(mid, [code])

    def _on_connect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        self.connack = reason
        self._connack.set()

    def _ack(self, mid: int, codes: list[ReasonCode]) -> None:
        with self._acked:
            self._acks[mid] = codes
            self._acked.notify_all()

    def _wait_ack(self, mid: int) -> list[ReasonCode]:
        with self._acked:
            assert self._acked.wait_for(lambda: mid in self._acks, TIMEOUT), f"no ack for {mid}"
            return self._acks.pop(mid)

    def connect(self, host: str = "127.0.0.1") -> ReasonCode:
        """Connect and wait for the CONNACK; return its reason code."""
        self.client.connect(host, self.port, keepalive=30)
        self.client.loop_start()
        assert self._connack.wait(TIMEOUT), "no CONNACK"
        assert self.connack is not None
        return self.connack

    def subscribe(self, topic: str) -> ReasonCode:
        """Subscribe at QoS 1 and return the SUBACK reason code."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        return self._wait_ack(mid)[0]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        return self._wait_ack(info.mid)[0]

    def receive_until(self, topic: str) -> list[mqtt.MQTTMessage]:
        """Every message received up to and including the first one on ``topic``."""
        seen: list[mqtt.MQTTMessage] = []
        while not seen or seen[-1].topic != topic:
            try:
                seen.append(self.messages.get(timeout=TIMEOUT))
            except queue.Empty:
                pytest.fail(f"nothing on {topic}; got {[m.topic for m in seen]}")
        return seen

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[list[Mqtt]]:
    """Clients a test opens are appended here and closed after it."""
    opened: list[Mqtt] = []
    yield opened
    for client in opened:
        client.close()


def trust(broker: PrivateMosquitto) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(broker.ca_path))


# ---------------------------------------------------------------------- TimescaleDB


def test_session_cluster_has_vgr_database(postgres: PrivatePostgres) -> None:
    assert postgres.dsn == f"postgresql://postgres@127.0.0.1:{postgres.port}/vgr"
    with psycopg.connect(postgres.dsn) as conn:
        row = conn.execute("SELECT current_database(), current_setting('fsync')").fetchone()
    assert row == ("vgr", "on")


def test_timescaledb_hypertable_and_time_bucket(fresh_db: str) -> None:
    start = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)
    # minutes after 08:00 UTC: 4 fixes in hour 08, 1 in 09, none in 10, 3 in 11
    minutes = [0, 15, 30, 59, 60 + 59, 180, 180 + 1, 180 + 45]
    expected = {
        start: 4,
        start + dt.timedelta(hours=1): 1,
        start + dt.timedelta(hours=3): 3,
    }
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION timescaledb")
        license_row = conn.execute("SHOW timescaledb.license").fetchone()
        assert license_row == ("apache",)
        conn.execute(
            "CREATE TABLE fixes (t timestamptz NOT NULL, device text NOT NULL, speed real)"
        )
        conn.execute("SELECT create_hypertable('fixes', by_range('t', INTERVAL '1 hour'))")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO fixes (t, device, speed) VALUES (%s, %s, %s)",
                [(start + dt.timedelta(minutes=m), "dev-a", float(m)) for m in minutes],
            )
        buckets = conn.execute(
            "SELECT time_bucket('1 hour', t) AS hour, count(*) FROM fixes GROUP BY hour"
        ).fetchall()
        chunks = conn.execute("SELECT count(*) FROM show_chunks('fixes')").fetchone()
    assert dict(buckets) == expected
    assert chunks == (3,)  # one chunk per hour that holds data


def test_postgres_restart_and_crash_keep_committed_data() -> None:
    with PrivatePostgres() as pg:
        port, base_dir = pg.port, pg.base_dir
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (n int PRIMARY KEY)")
            conn.execute("INSERT INTO kept VALUES (1)")
        pg.restart()
        assert pg.port == port
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            assert conn.execute("SELECT n FROM kept").fetchall() == [(1,)]
            conn.execute("INSERT INTO kept VALUES (2)")  # committed, then the server dies
        pg.kill()
        assert not pg.running
        assert not port_accepts("127.0.0.1", port)
        with pytest.raises(ServiceError, match="not running"):
            pg.kill()
        pg.restart()
        assert pg.port == port
        with psycopg.connect(pg.dsn) as conn:
            assert conn.execute("SELECT n FROM kept ORDER BY n").fetchall() == [(1,), (2,)]
        assert "not properly shut down" in pg.log_path.read_text()  # crash recovery ran
    assert not pg.running
    assert not base_dir.exists()


def test_postgres_start_failure_reports_log_tail_and_cleans_up() -> None:
    pg = PrivatePostgres(settings={"shared_buffers": "nonsense"})
    with pytest.raises(ServiceError, match='invalid value for parameter "shared_buffers"'):
        pg.start()
    assert not pg.running
    assert not pg.base_dir.exists()


# ---------------------------------------------------------------------- Mosquitto


@pytest.fixture(scope="module")
def acl_broker(mosquitto: PrivateMosquitto) -> PrivateMosquitto:
    """The session broker with an internal superuser, two devices and per-device ACL patterns."""
    mosquitto.add_user("internal", "internal-secret")
    mosquitto.add_user("dev-a", "secret-a")
    mosquitto.add_user("dev-b", "secret-b")
    mosquitto.set_acl(
        [
            "user internal",
            "topic readwrite #",
            "pattern write vgr/v1/dev/%u/fix",
            "pattern read vgr/v1/dev/%u/cmd",
        ]
    )
    mosquitto.reload()
    return mosquitto


def test_plain_listener_round_trip_mqtt5(mosquitto: PrivateMosquitto, clients: list[Mqtt]) -> None:
    sub, pub = Mqtt(mosquitto.plain_port), Mqtt(mosquitto.plain_port)
    clients += [sub, pub]
    assert not sub.connect().is_failure
    assert not pub.connect().is_failure
    topic = f"test/{uuid.uuid4().hex}/plain"
    assert sub.subscribe(topic).value == 1  # granted QoS 1
    # MQTT 5 only: a PUBACK reason code saying nobody was listening
    assert pub.publish(f"{topic}/unheard", b"x").getName() == "No matching subscribers"
    assert pub.publish(topic, b"hello").value == 0
    (msg,) = sub.receive_until(topic)
    assert (msg.payload, msg.qos) == (b"hello", 1)


@pytest.mark.parametrize(
    ("username", "password"),
    [("dev-a", "wrong"), ("nobody", "secret-a"), (None, None)],
    ids=["wrong-password", "unknown-user", "anonymous"],
)
def test_auth_listener_refuses_bad_credentials(
    acl_broker: PrivateMosquitto,
    clients: list[Mqtt],
    username: str | None,
    password: str | None,
) -> None:
    client = Mqtt(acl_broker.auth_port, username=username, password=password)
    clients.append(client)
    reason = client.connect()
    assert reason.is_failure
    assert reason.getName() in {"Bad user name or password", "Not authorized"}


def test_auth_listener_accepts_right_password(
    acl_broker: PrivateMosquitto, clients: list[Mqtt]
) -> None:
    client = Mqtt(acl_broker.auth_port, username="dev-a", password="secret-a")
    clients.append(client)
    assert not client.connect().is_failure


def test_added_and_removed_users_take_effect_on_reload(
    acl_broker: PrivateMosquitto, clients: list[Mqtt]
) -> None:
    acl_broker.add_user("dev-tmp", "tmp-pass")
    acl_broker.reload()
    first = Mqtt(acl_broker.auth_port, username="dev-tmp", password="tmp-pass")
    clients.append(first)
    assert not first.connect().is_failure
    acl_broker.remove_user("dev-tmp")
    acl_broker.reload()
    second = Mqtt(acl_broker.auth_port, username="dev-tmp", password="tmp-pass")
    clients.append(second)
    assert second.connect().is_failure


def test_acl_confines_a_device_to_its_own_topics(
    acl_broker: PrivateMosquitto, clients: list[Mqtt]
) -> None:
    port = acl_broker.auth_port
    internal = Mqtt(port, username="internal", password="internal-secret")
    dev_a = Mqtt(port, username="dev-a", password="secret-a")
    clients += [internal, dev_a]
    assert not internal.connect().is_failure
    assert not dev_a.connect().is_failure
    # Every device's fixes: the spoofed one would show here. (Not "#": the broker is shared by
    # the session, and other tests' devices leave retained status messages on it.)
    assert not internal.subscribe("vgr/v1/dev/+/fix").is_failure

    # Broker order per client: once the allowed message arrives, the forbidden
    # one sent before it can no longer come.
    assert dev_a.publish("vgr/v1/dev/dev-b/fix", b"spoofed").getName() == "Not authorized"
    assert not dev_a.publish("vgr/v1/dev/dev-a/fix", b"own").is_failure
    seen = internal.receive_until("vgr/v1/dev/dev-a/fix")
    assert [(m.topic, m.payload) for m in seen if not m.retain] == [
        ("vgr/v1/dev/dev-a/fix", b"own")
    ]

    # Mosquitto 2.0 grants these subscriptions and filters each delivery by the ACL.
    dev_a.subscribe("vgr/v1/dev/dev-b/cmd")
    dev_a.subscribe("vgr/v1/dev/+/cmd")
    internal.publish("vgr/v1/dev/dev-b/cmd", b"for b")
    internal.publish("vgr/v1/dev/dev-a/cmd", b"for a")
    seen = dev_a.receive_until("vgr/v1/dev/dev-a/cmd")
    assert [m.topic for m in seen] == ["vgr/v1/dev/dev-a/cmd"]
    assert dev_a.messages.empty()


def test_tls_listener_verifies_with_the_ca(
    acl_broker: PrivateMosquitto, clients: list[Mqtt]
) -> None:
    trusted = Mqtt(
        acl_broker.tls_port, username="dev-a", password="secret-a", tls=trust(acl_broker)
    )
    clients.append(trusted)
    assert not trusted.connect().is_failure
    # the server certificate names localhost too (DNS SAN), and the CONNACK is real MQTT
    assert mqtt_probe("localhost", acl_broker.tls_port, trust(acl_broker)) == 5  # anonymous


def test_tls_listener_refused_without_trusting_the_ca(
    acl_broker: PrivateMosquitto, clients: list[Mqtt]
) -> None:
    untrusting = Mqtt(
        acl_broker.tls_port,
        username="dev-a",
        password="secret-a",
        tls=ssl.create_default_context(),
    )
    clients.append(untrusting)
    with pytest.raises(ssl.SSLCertVerificationError):
        untrusting.connect()
    other_ca = make_tls_files(acl_broker.base_dir / "other-ca")
    with pytest.raises(ssl.SSLCertVerificationError):
        mqtt_probe(
            "127.0.0.1",
            acl_broker.tls_port,
            ssl.create_default_context(cafile=str(other_ca.ca_cert)),
        )


def test_tls_client_certificate_chains_to_the_ca(acl_broker: PrivateMosquitto) -> None:
    files = acl_broker.tls
    assert files.client_cert is not None
    assert files.client_key is not None
    context = trust(acl_broker)
    context.load_cert_chain(files.client_cert, files.client_key)
    assert mqtt_probe("127.0.0.1", acl_broker.tls_port, context) == 5  # handshake ok, anonymous


def test_broker_restart_and_kill_keep_ports(clients: list[Mqtt]) -> None:
    with PrivateMosquitto() as broker:
        ports = broker.ports
        topic = f"test/{uuid.uuid4().hex}/retained"
        first = Mqtt(broker.plain_port)
        clients.append(first)
        first.connect()
        first.publish(topic, b"saved", retain=True)
        first.close()

        broker.restart()  # SIGTERM: the broker writes its persistence file
        assert broker.ports == ports
        second = Mqtt(broker.plain_port)
        clients.append(second)
        second.connect()
        second.subscribe(topic)
        assert second.receive_until(topic)[-1].payload == b"saved"
        second.publish(topic, b"unsaved", retain=True)
        second.close()

        broker.kill()  # no save since the last one: "unsaved" is lost
        assert not broker.running
        assert not any(port_accepts("127.0.0.1", port) for port in ports)
        broker.restart()
        assert broker.ports == ports
        assert all(port_accepts("127.0.0.1", port) for port in ports)
        third = Mqtt(broker.plain_port)
        clients.append(third)
        third.connect()
        third.subscribe(topic)
        assert third.receive_until(topic)[-1].payload == b"saved"
        base_dir = broker.base_dir
    assert not base_dir.exists()
