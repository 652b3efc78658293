"""Provisioning through the real HTTP API, against real PostgreSQL and a real Mosquitto.

The session broker is shared with other tests: the registry writes the
fixture's own password and ACL files, and ``broker_files`` puts back what was
there (and reloads) after each test. Device ids are fresh random IMEIs.
"""

from __future__ import annotations

import hashlib
import json
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud.localsvc import PrivateMosquitto, ServiceError, free_port, port_accepts
from cloud.registry import cli, store
from cloud.registry.api import MqttEndpoint, RegistrySettings, build_app
from cloud.registry.broker_auth import BrokerFiles, ServiceAccount, write_atomic
from cloud.registry.ids import with_check_digit
from cloud.registry.issue import Signer
from cloud.storage.migrate import migrate
from protocols.policy import Area, Circle
from protocols.tokens import (
    Keyring,
    generate_private_key,
    load_public_key,
    private_key_to_pem,
    verify_policy,
    verify_terminal_token,
)

pytestmark = pytest.mark.services

TIMEOUT = 5.0
QUIET = 0.5  # how long "nothing arrives" is watched after the marker that follows it
VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
HOME = {"id": "home", "name": "Shanghai", "shape": {"type": "circle", "lon": 121.47,
        "lat": 31.23, "radius_m": 80000}}  # fmt: skip
CASINO = {"id": "macau", "shape": {"type": "circle", "lon": 113.54, "lat": 22.19,
          "radius_m": 15000}}  # fmt: skip


def new_imei() -> str:
    return with_check_digit("86" + "".join(secrets.choice("0123456789") for _ in range(12)))


def new_vin() -> str:
    return "".join(secrets.choice(VIN_ALPHABET) for _ in range(17))


# ---------------------------------------------------------------------- MQTT


class Mqtt:
    """A paho MQTT 5 client on its own thread, with blocking helpers."""

    def __init__(self, port: int, username: str, password: str) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"reg-test-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        self.client.username_pw_set(username, password)
        self.port = port
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.disconnected = threading.Event()
        self._acks: dict[int, ReasonCode] = {}
        self._cond = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.disconnected.set()
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda _c, _u, mid, codes, _p: self._ack(mid, codes[0])
        self.client.on_publish = lambda _c, _u, mid, code, _p: self._ack(mid, code)

    def _on_connect(
        self, _c: mqtt.Client, _u: object, _f: Any, code: ReasonCode, _p: Properties | None
    ) -> None:
        self.connack.put(code)

    def _ack(self, mid: int, code: ReasonCode) -> None:
        with self._cond:
            self._acks[mid] = code
            self._cond.notify_all()

    def _wait(self, mid: int) -> ReasonCode:
        with self._cond:
            assert self._cond.wait_for(lambda: mid in self._acks, TIMEOUT), "no ack"
            return self._acks.pop(mid)

    def connect(self) -> ReasonCode:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        return self.connack.get(timeout=TIMEOUT)

    def subscribe(self, *topics: str) -> None:
        for topic in topics:
            _, mid = self.client.subscribe(topic, qos=1)
            assert mid is not None
            assert not self._wait(mid).is_failure, topic

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        return self._wait(self.client.publish(topic, payload, qos=1).mid)

    def until(self, topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        """Everything received up to and including ``(topic, payload)``."""
        seen: list[tuple[str, bytes]] = []
        while (topic, payload) not in seen:
            try:
                seen.append(self.messages.get(timeout=TIMEOUT))
            except queue.Empty:
                pytest.fail(f"{topic} {payload!r} never arrived; got {seen}")
        return seen

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[list[Mqtt]]:
    opened: list[Mqtt] = []
    yield opened
    for c in opened:
        c.close()


def connect(env: Env, opened: list[Mqtt], username: str, password: str) -> Mqtt:
    """A connected client (the test fails unless the broker accepts it)."""
    c = Mqtt(env.broker.auth_port, username, password)
    opened.append(c)
    code = c.connect()
    assert not code.is_failure, f"{username} refused: {code}"
    return c


def refused(env: Env, opened: list[Mqtt], username: str, password: str) -> bool:
    c = Mqtt(env.broker.auth_port, username, password)
    opened.append(c)
    return c.connect().is_failure


def topic(device: str, channel: str) -> str:
    return f"vgr/v1/dev/{device}/{channel}"


# ---------------------------------------------------------------------- the registry


@pytest.fixture
def broker_files(mosquitto: PrivateMosquitto) -> Iterator[PrivateMosquitto]:
    """The session broker; its password and ACL files are put back after the test."""
    saved = mosquitto.password_path.read_text(), mosquitto.acl_path.read_text()
    yield mosquitto
    write_atomic(mosquitto.password_path, saved[0], 0o600)
    write_atomic(mosquitto.acl_path, saved[1], 0o600)
    mosquitto.reload()


@dataclass
class Env:
    http: TestClient[Any, Any]
    dsn: str
    broker: PrivateMosquitto
    alpha: str  # installer keys
    beta: str
    internal: tuple[str, str]  # service account (username, password)
    broker_down: threading.Event  # set: the reload hook fails as a dead broker would

    async def call(
        self, method: str, path: str, key: str | None, body: object = None
    ) -> tuple[int, Any]:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        resp = await self.http.request(method, f"/v1/provision/{path}", json=body, headers=headers)
        assert resp.content_type == "application/json"
        data = await resp.json()
        if resp.status >= 400:
            assert set(data) == {"error"}
            assert {"code", "message"} <= set(data["error"])
        return resp.status, data

    async def provision(self, key: str, imei: str, *, areas: bool = False) -> dict[str, Any]:
        status, _ = await self.call("POST", "devices", key, {"imei": imei, "kind": "wired"})
        assert status == 201
        bind: dict[str, Any] = {"vin": new_vin(), "contract_id": f"HT-{imei}", "plate": "沪A12345"}
        if areas:
            bind |= {"allowed": [HOME], "forbidden": [CASINO], "declared_adcode": "310115"}
        status, device = await self.call("POST", f"devices/{imei}/bind", key, bind)
        assert status == 200, device
        status, creds = await self.call("POST", f"devices/{imei}/credentials", key)
        assert status == 200, creds
        return {**creds, "vin": bind["vin"], "bound": device}


def migrated(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    migrate(dsn)


@pytest.fixture
async def env(fresh_db: str, broker_files: PrivateMosquitto) -> AsyncIterator[Env]:
    migrated(fresh_db)
    async with await psycopg.AsyncConnection.connect(fresh_db, autocommit=True) as conn:
        await store.create_tenant(conn, "alpha", "Alpha Auto Finance")
        await store.create_tenant(conn, "beta", "Beta Leasing")
        alpha = await store.create_installer_key(conn, "alpha", "fitter-1")
        beta = await store.create_installer_key(conn, "beta", "fitter-9")
    internal = (f"reg-int-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(16))
    broker = broker_files
    broker_down = threading.Event()

    def reload() -> None:
        if broker_down.is_set():
            raise ServiceError("mosquitto is not running")
        broker.reload()

    settings = RegistrySettings(
        dsn=fresh_db,
        signer=Signer(generate_private_key(), timedelta(days=30)),
        endpoint=MqttEndpoint(
            host=broker.host,
            port=broker.auth_port,
            tls_port=broker.tls_port,
            ca_pem=broker.ca_path.read_text(),
        ),
        broker=BrokerFiles(
            broker.password_path,
            broker.acl_path,
            (ServiceAccount.with_password(*internal),),
            reload,
        ),
        pool_max=2,
        max_body_bytes=64 * 1024,
    )
    async with TestClient(TestServer(build_app(settings))) as http:
        yield Env(http, fresh_db, broker, alpha, beta, internal, broker_down)


# ---------------------------------------------------------------------- tests


async def test_devices_are_confined_to_their_own_topics(env: Env, clients: list[Mqtt]) -> None:
    a, b = new_imei(), new_imei()
    cred_a = await env.provision(env.alpha, a, areas=True)
    cred_b = await env.provision(env.alpha, b)
    assert cred_a["mqtt"]["username"] == a
    assert cred_a["mqtt"]["port"] == env.broker.auth_port
    assert cred_a["ca_pem"].startswith("-----BEGIN CERTIFICATE-----")

    watch = connect(env, clients, *env.internal)
    watch.subscribe(topic("+", "fix"))
    ingest = connect(env, clients, *env.internal)  # a service account's shared subscription
    ingest.subscribe(f"$share/reg-{uuid.uuid4().hex[:6]}/{topic(a, 'fix')}")
    dev_a = connect(env, clients, a, cred_a["mqtt"]["password"])
    dev_b = connect(env, clients, b, cred_b["mqtt"]["password"])

    # A publishes to its own fix topic: seen. To B's: never delivered.
    assert dev_a.publish(topic(b, "fix"), b"forged") == ReasonCode(
        PacketTypes.PUBACK, "Not authorized"
    )
    assert not dev_a.publish(topic(a, "fix"), b"fix-1").is_failure
    got = watch.until(topic(a, "fix"), b"fix-1")
    assert (topic(b, "fix"), b"forged") not in got
    assert ingest.until(topic(a, "fix"), b"fix-1")[-1] == (topic(a, "fix"), b"fix-1")

    # A subscribes to B's commands and to everything: it receives only its own.
    dev_a.subscribe(topic(b, "cmd"), "#")
    dev_b.subscribe(topic(b, "cmd"))
    dev_a.publish(topic(b, "cmd"), b"forged-cmd")  # A cannot command B either
    assert not watch.publish(topic(b, "cmd"), b"cmd-for-b").is_failure
    assert not watch.publish(topic(a, "cmd"), b"cmd-for-a").is_failure
    seen_by_a = dev_a.until(topic(a, "cmd"), b"cmd-for-a")
    assert all(t == topic(a, "cmd") for t, _ in seen_by_a), seen_by_a
    assert dev_b.until(topic(b, "cmd"), b"cmd-for-b") == [(topic(b, "cmd"), b"cmd-for-b")]


async def test_token_and_policy_verify_with_the_returned_key(env: Env) -> None:
    a = new_imei()
    cred = await env.provision(env.alpha, a, areas=True)
    keyring = Keyring([load_public_key(cred["platform_public_key_pem"].encode())])
    assert list(keyring) == [cred["platform_key_id"]]
    claims = verify_terminal_token(
        keyring, cred["token"], device_id=a, now=datetime.now(UTC), policy_jws=cred["policy"]
    )
    assert (claims.tenant, claims.vin, claims.token_id) == ("alpha", cred["vin"], cred["token_id"])
    assert claims.policy_id == cred["policy_id"] == f"{a}-v1"
    assert claims.expires_at - claims.issued_at == timedelta(days=30)
    policy = verify_policy(keyring, cred["policy"], device_id=a)
    assert (policy.tenant, policy.version) == ("alpha", 1)
    assert policy.allowed == [Area(id="home", name="Shanghai", shape=Circle(
        lon=121.47, lat=31.23, radius_m=80000))]  # fmt: skip
    assert [area.id for area in policy.forbidden] == ["macau"]

    # Issuing again signs the next policy version; the database keeps only hashes.
    status, again = await env.call("POST", f"devices/{a}/credentials", env.alpha)
    assert status == 200
    assert (again["policy_version"], again["policy_id"]) == (2, f"{a}-v2")
    with psycopg.connect(env.dsn) as conn:
        row = conn.execute(
            "SELECT credential_hash, token_id FROM devices WHERE id = %s", (a,)
        ).fetchone()
        keys = conn.execute("SELECT api_key_hash FROM users ORDER BY username").fetchall()
        versions = conn.execute(
            "SELECT version FROM policies WHERE device_id = %s ORDER BY version", (a,)
        ).fetchall()
    assert row is not None
    assert row[0].startswith("$7$")
    assert again["mqtt"]["password"] not in row[0]
    assert row[1] == again["token_id"]
    assert [k for (k,) in keys] == [hashlib.sha256(env.alpha.encode()).hexdigest(),
                                    hashlib.sha256(env.beta.encode()).hexdigest()]  # fmt: skip
    assert versions == [(1,), (2,)]


async def test_rotate_and_revoke_cut_off_the_old_password(env: Env, clients: list[Mqtt]) -> None:
    a = new_imei()
    cred = await env.provision(env.alpha, a)
    old = cred["mqtt"]["password"]
    connected = connect(env, clients, a, old)

    status, rotated = await env.call("POST", f"devices/{a}/rotate", env.alpha)
    assert status == 200
    new = rotated["mqtt"]["password"]
    assert new != old
    assert rotated["token"] != cred["token"]
    assert rotated["policy_id"] == cred["policy_id"]  # rotation keeps the policy
    # Mosquitto re-checks connected clients on reload: the old password is cut off at once.
    assert connected.disconnected.wait(TIMEOUT)
    assert refused(env, clients, a, old)
    survivor = connect(env, clients, a, new)

    status, revoked = await env.call("POST", f"devices/{a}/revoke", env.alpha)
    assert status == 200
    assert revoked["revoked"] is True
    assert revoked["has_credentials"] is False
    assert survivor.disconnected.wait(TIMEOUT)
    assert refused(env, clients, a, new)
    assert a not in env.broker.password_path.read_text()
    assert env.internal[0] in env.broker.password_path.read_text()

    assert (await env.call("POST", f"devices/{a}/revoke", env.alpha))[0] == 200  # idempotent
    for action in ("credentials", "rotate"):
        status, err = await env.call("POST", f"devices/{a}/{action}", env.alpha)
        assert (status, err["error"]["code"]) == (409, "device_revoked")


async def test_nothing_changes_when_the_broker_cannot_be_updated(
    env: Env, clients: list[Mqtt]
) -> None:
    a = new_imei()
    cred = await env.provision(env.alpha, a)
    env.broker_down.set()
    for action in ("credentials", "rotate", "revoke"):
        status, err = await env.call("POST", f"devices/{a}/{action}", env.alpha)
        assert (status, err["error"]["code"]) == (503, "broker_unavailable"), action
    status, dev = await env.call("GET", f"devices/{a}", env.alpha)
    assert (dev["revoked"], dev["token_id"]) == (False, cred["token_id"])
    with psycopg.connect(env.dsn) as conn:
        versions = conn.execute("SELECT count(*) FROM policies WHERE device_id = %s", (a,))
        assert versions.fetchone() == (1,)
    env.broker_down.clear()
    connect(env, clients, a, cred["mqtt"]["password"])  # the issued password still works


async def test_installers_see_only_their_tenant(env: Env) -> None:
    a = new_imei()
    await env.provision(env.alpha, a)
    for key in (None, "not-a-key", env.alpha[:-1]):
        status, err = await env.call("GET", f"devices/{a}", key)
        assert (status, err["error"]["code"]) == (401, "unauthorized")
    resp = await env.http.get(f"/v1/provision/devices/{a}", headers={"Authorization": "Basic x"})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")

    status, dev = await env.call("GET", f"devices/{a}", env.alpha)
    assert status == 200
    assert (dev["tenant"], dev["has_credentials"], dev["revoked"]) == ("alpha", True, False)

    absent = new_imei()
    for imei in (a, absent):  # another tenant's device looks exactly like a missing one
        for method, action, body in [
            ("GET", "", None),
            ("POST", "/bind", {"vin": new_vin(), "contract_id": "B-1"}),
            ("POST", "/credentials", None),
            ("POST", "/rotate", None),
            ("POST", "/revoke", None),
        ]:
            status, err = await env.call(method, f"devices/{imei}{action}", env.beta, body)
            assert (status, err["error"]["code"]) == (404, "device_not_found"), action
    status, err = await env.call("POST", "devices", env.beta, {"imei": a, "kind": "wired"})
    assert (status, err["error"]["code"]) == (409, "imei_registered_elsewhere")

    status, _ = await env.call("POST", "devices", env.alpha, {"imei": a, "kind": "wired"})
    assert status == 200  # registering again is harmless
    status, err = await env.call("POST", "devices", env.alpha, {"imei": a, "kind": "wireless"})
    assert (status, err["error"]["code"]) == (409, "kind_mismatch")
    status, dev = await env.call("GET", f"devices/{a}", env.alpha)
    assert (dev["revoked"], dev["kind"]) == (False, "wired")


async def test_bad_requests_get_a_code_and_never_a_500(env: Env) -> None:
    a, b = new_imei(), new_imei()
    for imei in (a, b):
        await env.call("POST", "devices", env.alpha, {"imei": imei, "kind": "wireless"})
    bad_luhn = a[:-1] + str((int(a[-1]) + 1) % 10)
    circle = {"type": "circle", "lon": 121.0, "lat": 31.0, "radius_m": 1000}
    point = {"type": "geojson", "geometry": {"type": "Point", "coordinates": [121.0, 31.0]}}
    bind = {"vin": new_vin(), "contract_id": "HT-X"}
    cases: list[tuple[str, str, object, int, str, str | None]] = [
        ("POST", "devices", {"kind": "wired"}, 422, "validation_failed", "imei"),
        ("POST", "devices", {"imei": "123", "kind": "wired"}, 422, "invalid_imei", "imei"),
        ("POST", "devices", {"imei": bad_luhn, "kind": "wired"}, 422, "invalid_imei", "imei"),
        ("POST", "devices", {"imei": a, "kind": "solar"}, 422, "validation_failed", "kind"),
        ("POST", "devices", {"imei": a, "kind": "wired", "x": 1}, 422, "validation_failed", "x"),
        ("POST", "devices", [a], 422, "validation_failed", None),
        ("POST", "devices", "just a string", 422, "validation_failed", None),
        ("GET", "devices/12345", None, 422, "invalid_imei", "imei"),
        ("POST", f"devices/{a}/bind", {"contract_id": "c"}, 422, "validation_failed", "vin"),
        ("POST", f"devices/{a}/bind", bind | {"vin": "abc"}, 422, "invalid_vin", "vin"),
        ("POST", f"devices/{a}/bind", bind | {"contract_id": "a b"}, 422,
         "invalid_contract_id", "contract_id"),
        ("POST", f"devices/{a}/bind", bind | {"allowed": [{"id": "x", "shape": circle | {
            "radius_m": -1}}]}, 422, "validation_failed", "allowed[0].shape.radius_m"),
        ("POST", f"devices/{a}/bind", bind | {"forbidden": [{"id": "p", "shape": point}]},
         422, "invalid_area", "forbidden[0]"),
        ("POST", f"devices/{a}/bind", bind | {"allowed": [{"id": "d", "shape": circle},
         {"id": "d", "shape": circle}]}, 422, "invalid_area", "allowed[1]"),
        ("POST", f"devices/{a}/bind", bind | {"plate": "A\x00"}, 422, "validation_failed",
         "plate"),
        ("POST", f"devices/{a}/bind", bind | {"allowed": [{"id": "n", "name": "\x00",
         "shape": circle}]}, 422, "validation_failed", "allowed[0].name"),
        ("POST", f"devices/{a}/credentials", None, 409, "device_not_bound", None),
        ("POST", f"devices/{a}/rotate", None, 409, "device_not_bound", None),
        ("POST", f"devices/{a}/credentials", {"force": True}, 422, "validation_failed", "force"),
        ("POST", "devices/nothing/here/at/all", None, 404, "not_found", None),
        ("DELETE", f"devices/{a}", None, 405, "method_not_allowed", None),
        ("POST", "devices", {"imei": a, "kind": "wired", "pad": "x" * 70_000}, 413,
         "payload_too_large", None),
    ]  # fmt: skip
    for method, path, body, status, code, field in cases:
        got_status, err = await env.call(method, path, env.alpha, body)
        assert (got_status, err["error"]["code"], err["error"].get("field")) == (
            status, code, field), (method, path, err)  # fmt: skip

    headers = {"Authorization": f"Bearer {env.alpha}"}
    raw_cases = [
        ("application/json", b'{"imei": ', 400, "malformed_json"),
        ("application/json", b"\xff\xfe", 400, "malformed_json"),
        ("application/json", b'{"imei": "\\ud800", "kind": "wired"}', 400, "malformed_json"),
        ("text/plain", b'{"imei": "1", "kind": "wired"}', 415, "unsupported_media_type"),
        ("application/x-www-form-urlencoded", b"imei=1", 415, "unsupported_media_type"),
    ]
    for ctype, data, status, code in raw_cases:
        resp = await env.http.post(
            "/v1/provision/devices", data=data, headers=headers | {"Content-Type": ctype}
        )
        err = await resp.json()
        assert (resp.status, err["error"]["code"]) == (status, code), data

    # A loan already securing one vehicle cannot be bound to another.
    status, _ = await env.call("POST", f"devices/{a}/bind", env.alpha, bind)
    assert status == 200
    other = {"vin": new_vin(), "contract_id": bind["contract_id"]}
    status, err = await env.call("POST", f"devices/{b}/bind", env.alpha, other)
    assert (status, err["error"]["code"], err["error"]["field"]) == (
        409, "loan_vehicle_mismatch", "contract_id")  # fmt: skip
    status, err = await env.call("POST", f"devices/{a}/rotate", env.alpha)
    assert (status, err["error"]["code"]) == (409, "no_credentials")


def test_commands_and_the_served_api(
    fresh_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tenant create``, ``installer-key create``, ``registry sync-broker`` and ``serve``."""
    migrated(fresh_db)
    key_file = tmp_path / "platform.key"
    key_file.write_bytes(private_key_to_pem(generate_private_key()))
    config = tmp_path / "cloud.toml"
    config.write_text(
        f"""kind = "cloud"
[database]
dsn = "{fresh_db}"
[registry]
signing_key = "file:{key_file}"
mosquitto_password_file = "{tmp_path / "passwords"}"
mosquitto_acl_file = "{tmp_path / "acl"}"
"""
    )
    assert cli.tenant_create(config, "gamma", "Gamma Credit") == 0
    assert cli.tenant_create(config, "gamma", "Gamma Credit") == 1
    assert "tenant_exists" in capsys.readouterr().err
    assert cli.installer_key_create(config, "gamma", "fitter", replace=False) == 0
    first = capsys.readouterr().out.strip()
    assert cli.installer_key_create(config, "gamma", "fitter", replace=False) == 1
    assert cli.installer_key_create(config, "gamma", "fitter", replace=True) == 0
    key = capsys.readouterr().out.strip()
    assert len(key) == 43
    assert key != first
    assert cli.installer_key_create(config, "nobody", "fitter", replace=False) == 1
    assert cli.sync_broker(config) == 0
    assert (tmp_path / "passwords").read_text() == ""
    assert "pattern write vgr/v1/dev/%u/fix" in (tmp_path / "acl").read_text()

    port = free_port()
    script = "import sys; from pathlib import Path; from cloud.registry.cli import serve; "
    script += f"sys.exit(serve(Path({str(config)!r}), '127.0.0.1', {port}))"
    log_path = tmp_path / "serve.log"
    with (
        log_path.open("wb") as log,
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=log, stderr=subprocess.STDOUT
        ) as proc,
    ):
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while not port_accepts("127.0.0.1", port):
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)

            def post(key: str) -> int:
                body = json.dumps({"imei": new_imei(), "kind": "wired"}).encode()
                request = urllib.request.Request(
                    f"{base}/v1/provision/devices",
                    data=body,
                    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as resp:
                        return int(resp.status)
                except urllib.error.HTTPError as exc:
                    return exc.code

            assert post(key) == 201
            assert post(first) == 401  # replaced
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0, log_path.read_text()
