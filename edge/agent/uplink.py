"""The MQTT uplink: aiomqtt, TLS, persistent session, last will, jittered reconnect.

Username = device id with a per-device password. The retained ``status``
topic says ``online`` / ``unauthorized`` while connected and the last will
turns it to ``offline``. Incoming messages (commit acks, signed commands,
policy updates) are handed to the agent through callbacks; publishing is
QoS 1. A ``link`` signal from the tracker (modem out of coverage) takes the
uplink down until the link is back, which is how blind areas are simulated.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiomqtt

from protocols.messages import SCHEMA_VERSION, DeviceState, Status, encode
from protocols.topics import Channel, device_topic

log = logging.getLogger(__name__)

Handler = Callable[[Channel, bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class UplinkSettings:
    host: str
    port: int
    device_id: str
    username: str | None
    password: str | None
    ca_file: str | None
    tls: bool
    keepalive_s: int = 60
    backoff_min_s: float = 1.0
    backoff_max_s: float = 60.0


class NotConnectedError(RuntimeError):
    """Publishing while the broker is unreachable; the record stays in the outbox."""


class Uplink:
    def __init__(
        self,
        settings: UplinkSettings,
        *,
        handler: Handler,
        status: Callable[[], Status],
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        self._s = settings
        self._handler = handler
        self._status = status
        self._on_connect = on_connect
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self._link_up = asyncio.Event()
        self._link_up.set()
        self._link_changed = asyncio.Event()
        self.connects = 0
        self.failures = 0

    def set_link(self, up: bool) -> None:
        if up == self._link_up.is_set():
            return
        if up:
            self._link_up.set()
        else:
            self._link_up.clear()
        self._link_changed.set()

    @property
    def link_up(self) -> bool:
        return self._link_up.is_set()

    def _will(self) -> aiomqtt.Will:
        offline = Status(v=SCHEMA_VERSION, device_id=self._s.device_id, state=DeviceState.OFFLINE)
        return aiomqtt.Will(
            device_topic(self._s.device_id, Channel.STATUS), encode(offline), qos=1, retain=True
        )

    def _client_for(self) -> aiomqtt.Client:
        s = self._s
        return aiomqtt.Client(
            s.host,
            s.port,
            identifier=s.device_id,
            username=s.username,
            password=s.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            keepalive=s.keepalive_s,
            will=self._will(),
            tls_params=aiomqtt.TLSParameters(ca_certs=s.ca_file) if s.tls else None,
        )

    async def run(self) -> None:
        """Stay connected (while the link is up) until cancelled."""
        backoff = self._s.backoff_min_s
        while True:
            await self._link_up.wait()
            self._link_changed.clear()
            try:
                async with self._client_for() as client:
                    self._client = client
                    self.connects += 1
                    backoff = self._s.backoff_min_s
                    await self._on_connected(client)
                    await self._serve(client)
            except aiomqtt.MqttError as exc:
                self.failures += 1
                log.warning("uplink to %s:%d lost: %s", self._s.host, self._s.port, exc)
            finally:
                self._client = None
                self.connected.clear()
            if self._link_up.is_set():
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))  # noqa: S311
                backoff = min(backoff * 2, self._s.backoff_max_s)

    async def _on_connected(self, client: aiomqtt.Client) -> None:
        dev = self._s.device_id
        for channel in (Channel.ACK, Channel.CMD, Channel.POLICY):
            await client.subscribe(device_topic(dev, channel), qos=1)
        await client.publish(
            device_topic(dev, Channel.STATUS), encode(self._status()), qos=1, retain=True
        )
        if self._on_connect is not None:
            self._on_connect()
        self.connected.set()
        log.info("uplink connected to %s:%d as %s", self._s.host, self._s.port, dev)

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Dispatch incoming messages until the connection fails or the link goes down.

        A link-down ends the session with a normal DISCONNECT; the cloud sees the
        retained status until the next connect (a real modem losing coverage
        would let the broker publish the last will after the keepalive).
        """
        reader = asyncio.create_task(self._read(client), name="uplink-read")
        link = asyncio.create_task(self._link_changed.wait(), name="uplink-link")
        try:
            done, _ = await asyncio.wait({reader, link}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.cancel()
            link.cancel()
        if reader in done:
            reader.result()  # re-raise the broker error

    async def _read(self, client: aiomqtt.Client) -> None:
        dev = self._s.device_id
        routes = {device_topic(dev, c): c for c in (Channel.ACK, Channel.CMD, Channel.POLICY)}
        async for msg in client.messages:
            channel = routes.get(msg.topic.value)
            if channel is not None and isinstance(msg.payload, bytes | bytearray):
                await self._handler(channel, bytes(msg.payload))

    async def publish(self, channel: Channel, payload: bytes, *, retain: bool = False) -> None:
        client = self._client
        if client is None or not self.connected.is_set():
            raise NotConnectedError(channel.value)
        try:
            await client.publish(
                device_topic(self._s.device_id, channel), payload, qos=1, retain=retain
            )
        except aiomqtt.MqttError as exc:
            raise NotConnectedError(str(exc)) from exc
