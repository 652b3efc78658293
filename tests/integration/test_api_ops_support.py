"""Shared set-up for the operations routes' tests (no tests here).

On top of :func:`tests.integration.test_api_support.build_world` (two tenants,
users per role, vehicles with fixes, alerts, a recovery case assigned to
``recovery``): loans with balances and risk scores, one tracker per vehicle,
a webhook endpoint per tenant with a message, deliveries and attempts, and a
commander that signs with a test key and publishes to the test broker.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from cloud.api.commands import CommanderFactory
from cloud.recovery.commands import Commander
from cloud.recovery.mqtt import BrokerSettings, MqttCommandPublisher
from protocols.messages import SignedCommand, decode
from protocols.tokens import Keyring, generate_private_key
from protocols.topics import Channel, device_topic
from tests.integration.ingest_support import TENANT
from tests.integration.test_api_support import OTHER, World, build_world

KEY = generate_private_key()
KEYRING = Keyring([KEY.public_key()])
TIMEOUT = 10.0


@dataclass
class OpsWorld:
    base: World
    devices: dict[str, str] = field(default_factory=dict)  # vehicle name -> tracker id
    loans: dict[str, int] = field(default_factory=dict)  # vehicle name -> loan id
    endpoints: dict[str, str] = field(default_factory=dict)  # tenant -> endpoint id
    messages: dict[str, str] = field(default_factory=dict)  # tenant -> message id
    deliveries: dict[str, list[int]] = field(default_factory=dict)  # tenant -> [dead, succeeded]
    users: dict[tuple[str, str], int] = field(default_factory=dict)  # (tenant, username) -> id

    @property
    def dsn(self) -> str:
        return self.base.dsn

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.base.sql(query, params)


# vehicle name -> (contract, loan status, outstanding, risk score)
LOANS = {
    "assigned": ("A-100", "default", "120000.00", 90.0),
    "unassigned": ("A-200", "overdue", "80000.00", 70.0),
    "closed": ("A-300", "current", "10000.00", 20.0),
    "other": ("B-100", "default", "900000.00", 99.0),
}


def build_ops_world(dsn: str) -> OpsWorld:
    w = OpsWorld(build_world(dsn))
    tag = uuid.uuid4().hex[:6]
    with psycopg.connect(dsn) as conn:
        for name, vid in w.base.vehicles.items():
            tenant = OTHER if name == "other" else TENANT
            contract, status, outstanding, score = LOANS[name]
            row = conn.execute(
                "INSERT INTO loans (tenant_id, contract_id, vehicle_id, status, outstanding, "
                "declared_lat, declared_lon) VALUES (%s, %s, %s, %s, %s, 30.6, 104.0) RETURNING id",
                (tenant, contract, vid, status, outstanding),
            ).fetchone()
            assert row is not None
            w.loans[name] = int(row[0])
            conn.execute(
                "INSERT INTO vehicle_risk (vehicle_id, tenant_id, score, band, reasons) "
                "VALUES (%s, %s, %s, 'high', '[\"device_removed\"]')",
                (vid, tenant, score),
            )
            device = f"o{tag}{name[:2]}"
            conn.execute(
                "INSERT INTO devices (id, tenant_id, kind, vehicle_id) "
                "VALUES (%s, %s, 'wired', %s)",
                (device, tenant, vid),
            )
            conn.execute("UPDATE fixes SET device_id = %s WHERE vehicle_id = %s", (device, vid))
            w.devices[name] = device
        conn.execute("UPDATE recovery_cases SET loan_id = %s WHERE vehicle_id = %s",
                     (w.loans["assigned"], w.base.vehicles["assigned"]))  # fmt: skip
        for tenant in (TENANT, OTHER):
            _webhooks(conn, w, tenant, tag)
        for tenant, username, uid in conn.execute("SELECT tenant_id, username, id FROM users"):
            w.users[(tenant, username)] = int(uid)
        conn.commit()
    return w


def _webhooks(conn: psycopg.Connection[Any], w: OpsWorld, tenant: str, tag: str) -> None:
    endpoint = f"ep_{tag}{'a' if tenant == TENANT else 'b'}"
    conn.execute(
        "INSERT INTO webhook_endpoints (id, tenant_id, url, description) "
        "VALUES (%s, %s, %s, 'seeded')",
        (endpoint, tenant, f"https://hooks.{tenant}.example/vgr"),
    )
    conn.execute("INSERT INTO webhook_secrets (endpoint_id, secret) VALUES (%s, %s)",
                 (endpoint, f"whsec_{uuid.uuid4().hex}"))  # fmt: skip
    message = f"msg_{tag}_{tenant}"
    conn.execute(
        "INSERT INTO webhook_messages (id, tenant_id, event_type, payload) "
        "VALUES (%s, %s, 'alert.opened', '{\"lat\": 31.0}')",
        (message, tenant),
    )
    ids = []
    for series, state in ((1, "dead"), (2, "succeeded")):
        row = conn.execute(
            "INSERT INTO webhook_deliveries (message_id, endpoint_id, tenant_id, series, "
            "attempt_no, state, last_status) VALUES (%s, %s, %s, %s, 1, %s, %s) RETURNING id",
            (message, endpoint, tenant, series, state, 500 if state == "dead" else 200),
        ).fetchone()
        assert row is not None
        ids.append(int(row[0]))
        conn.execute(
            "INSERT INTO webhook_attempts (delivery_id, attempt_no, dispatcher, started_at, "
            "latency_ms, outcome, status, response_body) VALUES (%s, 1, 'd1', now(), 12.5, %s, "
            "%s, 'body')",
            (row[0], "http_error" if state == "dead" else "succeeded",
             500 if state == "dead" else 200),
        )  # fmt: skip
    w.endpoints[tenant], w.messages[tenant], w.deliveries[tenant] = endpoint, message, ids


def commander_for(port: int) -> CommanderFactory:
    """Commanders that sign with :data:`KEY` and publish to the broker on ``port``."""

    @contextmanager
    def make() -> Iterator[Commander]:
        settings = BrokerSettings("127.0.0.1", port, f"api-{uuid.uuid4().hex[:10]}")
        with MqttCommandPublisher(settings, timeout_s=TIMEOUT) as publisher:
            yield Commander(KEY, publisher)

    return make


class Tracker:
    """A tracker's side of the broker: receives its signed commands."""

    def __init__(self, port: int, device_id: str) -> None:
        self.device_id = device_id
        self.commands: queue.Queue[bytes] = queue.Queue()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id,
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        self.client.on_message = lambda _c, _u, m: self.commands.put(bytes(m.payload))
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(device_topic(device_id, Channel.CMD), qos=1)
        assert subscribed.wait(TIMEOUT)

    def next_command(self) -> SignedCommand:
        return decode(self.commands.get(timeout=TIMEOUT), SignedCommand)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
