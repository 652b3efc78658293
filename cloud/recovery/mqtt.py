"""The MQTT side of commands: a QoS 1 publisher and the acknowledgement listener (paho-mqtt 2).

Both connect as a cloud service account (``[mqtt]`` in the cloud config,
like ingest). The account ACL the registry writes
(:data:`cloud.registry.broker_auth.SERVICE_ACL`, ``topic readwrite vgr/v1/#``)
lets it publish to ``vgr/v1/dev/<id>/cmd`` and read ``vgr/v1/dev/+/cmd/ack``;
devices may read only their own ``cmd`` and write only their own ``cmd/ack``.

The publisher waits for each PUBACK and reads its MQTT 5 reason code, so a
command the broker refuses (``Not authorized``) is an error, not a silent
drop; ``No matching subscribers`` (the tracker is not connected and has no
session) is reported as the broker's note.

The listener is a shared subscription (``$share/vgr-recovery/…``, so several
listeners split the acks) on a persistent session with ``manual_ack``: the
PUBACK of an ack is sent only after :func:`record_ack` committed it.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import MQTTErrorCode
from prometheus_client import Counter

from cloud.metrics import REGISTRY
from cloud.mqtt_session import connect_persistent, new_client
from cloud.recovery.commands import PublishError, record_ack
from protocols.errors import SchemaError
from protocols.messages import CommandAck, SignedCommand, decode, encode
from protocols.topics import Channel, device_topic, parse_topic, shared, wildcard

log = logging.getLogger(__name__)

ACK_GROUP = "vgr-recovery"

COMMAND_ACKS = Counter(
    "vgr_command_acks",
    "Command acknowledgements received, by outcome (recorded, duplicate, unknown, "
    "bad_topic, bad_payload).",
    ["outcome"],
    registry=REGISTRY,
)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    keepalive_s: int = 30


def _client(settings: BrokerSettings, *, manual_ack: bool = False) -> mqtt.Client:
    return new_client(settings.client_id, username=settings.username, password=settings.password,
                      tls_ca=settings.tls_ca, manual_ack=manual_ack)  # fmt: skip


class MqttCommandPublisher:
    """Publishes :class:`SignedCommand` s, QoS 1, to each device's ``cmd`` topic.

    Connects on first use (a command that needs no publishing opens no
    connection); use it as a context manager or call :meth:`close`.
    """

    def __init__(self, settings: BrokerSettings, *, timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._cond = threading.Condition()
        self._acked: dict[int, Any] = {}
        self._refused: Any = None  # the CONNACK reason when the broker refused us
        self._connected = False
        self._started = False
        client = _client(settings)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client

    def __enter__(self) -> MqttCommandPublisher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def connect(self) -> None:
        """Connect and wait for the CONNACK; PublishError if refused or unreachable."""
        if self._connected:
            return
        if not self._started:
            try:
                self._client.connect(
                    self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s
                )
            except OSError as exc:
                msg = f"broker {self.settings.host}:{self.settings.port} unreachable: {exc}"
                raise PublishError(msg) from None
            self._client.loop_start()
            self._started = True
        with self._cond:
            self._cond.wait_for(
                lambda: self._connected or self._refused is not None, self.timeout_s
            )
            connected, refused = self._connected, self._refused
        if not connected:
            self.close()  # no retrying in the background after the caller was told
            if refused is None:
                raise PublishError(f"not connected to the broker in {self.timeout_s:g} s")
            raise PublishError(f"broker refused the connection: {refused}")

    def publish(self, device_id: str, command: SignedCommand) -> str:
        self.connect()
        info = self._client.publish(device_topic(device_id, Channel.CMD), encode(command), qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise PublishError(f"not sent: {mqtt.error_string(info.rc)}")
        with self._cond:
            done = self._cond.wait_for(
                lambda: info.mid in self._acked or not self._connected, self.timeout_s
            )
            reason = self._acked.pop(info.mid, None)
        if reason is None:
            raise PublishError("no PUBACK" if done else f"no PUBACK in {self.timeout_s:g} s")
        if reason.is_failure:
            raise PublishError(f"broker refused the command: {reason}")
        return str(reason)

    def close(self) -> None:
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()
            self._started = False

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._cond:
            self._connected = not reason.is_failure
            self._refused = reason if reason.is_failure else None
            self._cond.notify_all()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._cond:
            self._connected = False
            self._cond.notify_all()
        log.info("command publisher disconnected (%s)", reason)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        with self._cond:
            self._acked[mid] = reason
            self._cond.notify_all()


@dataclass(frozen=True, slots=True)
class AckDelivery:
    topic: str
    payload: bytes
    generation: int
    mid: int
    qos: int


class AckListener:
    """Receives every device's ``cmd/ack`` into :attr:`deliveries`; PUBACKs on :meth:`release`."""

    def __init__(
        self, settings: BrokerSettings, *, group: str = ACK_GROUP, receive_maximum: int = 100
    ) -> None:
        self.settings = settings
        self.group = group
        self.receive_maximum = receive_maximum
        self.deliveries: queue.Queue[AckDelivery] = queue.Queue()
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._generation = 0
        client = _client(settings, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    def start(self) -> None:
        connect_persistent(
            self._client,
            self.settings.host,
            self.settings.port,
            keepalive_s=self.settings.keepalive_s,
            receive_maximum=self.receive_maximum,
        )

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def release(self, delivery: AckDelivery) -> None:
        """PUBACK a delivery, unless it came on an earlier connection (it will come again)."""
        with self._lock:
            if delivery.qos == 0 or delivery.generation != self._generation:
                return
        self._client.ack(delivery.mid, delivery.qos)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the ack listener: %s", reason)
            return
        with self._lock:
            self._generation += 1
        client.subscribe(shared(wildcard(Channel.CMD_ACK), self.group), qos=1)
        self._connected.set()
        log.info("ack listener connected to %s:%s", self.settings.host, self.settings.port)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connected.clear()
        log.warning("ack listener disconnected (%s); paho reconnects", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            generation = self._generation
        self.deliveries.put(
            AckDelivery(msg.topic, bytes(msg.payload), generation, msg.mid, msg.qos)
        )


def handle(conn: psycopg.Connection[Any], delivery: AckDelivery) -> str:
    """Record one delivered ack; return its outcome (also counted in ``vgr_command_acks``)."""
    parsed = parse_topic(delivery.topic)
    if parsed is None or parsed.channel is not Channel.CMD_ACK:
        outcome = "bad_topic"
        log.warning("ack on unexpected topic %r dropped", delivery.topic[:200])
    else:
        try:
            ack = decode(delivery.payload, CommandAck)
        except SchemaError as exc:
            outcome = "bad_payload"
            log.warning("bad command ack from %s dropped: %s", parsed.device_id, exc)
        else:
            outcome = record_ack(conn, parsed.device_id, ack)
            if outcome != "recorded":
                log.info("%s command ack from %s (nonce %s)", outcome, parsed.device_id, ack.nonce)
    COMMAND_ACKS.labels(outcome=outcome).inc()
    return outcome


def serve(
    conn: psycopg.Connection[Any],
    listener: AckListener,
    should_stop: Callable[[], bool],
    *,
    poll_s: float = 0.5,
) -> None:
    """Record acks until ``should_stop()``; each is PUBACKed after its transaction commits."""
    while not should_stop():
        try:
            delivery = listener.deliveries.get(timeout=poll_s)
        except queue.Empty:
            continue
        handle(conn, delivery)
        listener.release(delivery)


def client_id(prefix: str, role: str, unique: bool) -> str:
    """``<prefix>-<role>``, with a random suffix for one-shot clients."""
    return f"{prefix}-{role}-{uuid.uuid4().hex[:8]}" if unique else f"{prefix}-{role}"
