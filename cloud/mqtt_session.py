"""Connecting a cloud consumer to the broker with a persistent MQTT 5 session.

Ingest and the command-ack listener both subscribe through shared
subscriptions and must not lose what arrives while they reconnect: they start
with ``clean_start=False`` and a session expiry, so the broker keeps their
queue for that long, and cap in-flight deliveries with Receive Maximum.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

SESSION_EXPIRY_S = 3600  # how long the broker keeps a disconnected consumer's queue


def new_client(
    client_id: str,
    *,
    username: str | None,
    password: str | None,
    tls_ca: str | None,
    manual_ack: bool = False,
) -> mqtt.Client:
    """An MQTT 5 client with its credentials and TLS set, reconnecting after 1-10 s."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    if username:
        client.username_pw_set(username, password)
    if tls_ca:
        client.tls_set(ca_certs=tls_ca)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    return client


def connect_persistent(
    client: mqtt.Client, host: str, port: int, *, keepalive_s: int, receive_maximum: int
) -> None:
    """Start connecting in paho's network thread (it reconnects by itself from then on)."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    props.ReceiveMaximum = receive_maximum
    client.connect_async(host, port, keepalive=keepalive_s, clean_start=False, properties=props)
    client.loop_start()
