"""The MQTT side of ingest: paho-mqtt 2 on its own network thread, MQTT 5.

* Shared subscriptions (``$share/<group>/vgr/v1/dev/+/fix`` and ``…/event``,
  ``…/status``) so N workers split the load.
* ``manual_ack``: the PUBACK for a message is sent only after its rows are
  committed, and the broker's Receive Maximum bounds how many unacknowledged
  messages it sends us. When the database stalls we stop acknowledging, the
  broker stops sending, and memory stays bounded: that is the backpressure.
* A persistent session (clean_start=False, long session expiry) so a restarted
  worker gets its unacknowledged messages again.

paho was chosen over aiomqtt for the cloud because it gives manual_ack on a
dedicated thread and received about 1.7x aiomqtt's message rate on the same
QoS 1 stream here (`make bench-ingest`, docs/bench-ingest.md).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from cloud.ingest.model import Delivery
from cloud.mqtt_session import connect_persistent, new_client
from protocols.topics import Channel, shared, wildcard

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AckToken:
    generation: int
    mid: int
    qos: int


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    host: str
    port: int
    client_id: str
    share_group: str
    receive_maximum: int = 1000
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    keepalive_s: int = 30


class IngestConsumer:
    """Receives deliveries into a queue; acknowledges them when told to."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.deliveries: queue.Queue[Delivery] = queue.Queue()
        self._generation = 0
        self._connected = threading.Event()
        self._lock = threading.Lock()
        client = new_client(settings.client_id, username=settings.username,
                            password=settings.password, tls_ca=settings.tls_ca,
                            manual_ack=True)  # fmt: skip
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    @property
    def client(self) -> mqtt.Client:
        return self._client

    def start(self) -> None:
        connect_persistent(
            self._client,
            self.settings.host,
            self.settings.port,
            keepalive_s=self.settings.keepalive_s,
            receive_maximum=self.settings.receive_maximum,
        )

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: Any,
        reason: Any,
        _props: Any,
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        with self._lock:
            self._generation += 1
        group = self.settings.share_group
        subs = [(shared(wildcard(c), group), 1) for c in (Channel.FIX, Channel.EVENT)]
        subs.append((shared(wildcard(Channel.STATUS), group), 1))
        client.subscribe(subs)
        self._connected.set()
        log.info("connected to %s:%s", self.settings.host, self.settings.port)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._connected.clear()
        log.warning("disconnected from broker (%s); paho reconnects", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            token = AckToken(self._generation, msg.mid, msg.qos)
        payload = bytes(msg.payload)
        self.deliveries.put(Delivery(msg.topic, payload, datetime.now(UTC), token))

    def release(self, token: object) -> bool:
        """PUBACK one delivery; False when it came on an earlier connection.

        After a reconnect the broker redelivers what we had not acknowledged,
        and the old packet ids may now name other messages, so stale tokens
        are not acknowledged: the redelivery will be (its rows are already
        stored, so it commits as duplicates).
        """
        if not isinstance(token, AckToken) or token.qos == 0:
            return False
        with self._lock:
            if token.generation != self._generation:
                return False
        self._client.ack(token.mid, token.qos)
        return True

    def publish(self, topic: str, payload: bytes) -> None:
        self._client.publish(topic, payload, qos=1)
