"""What a simulated device needs from MQTT: a client, its credentials, its CommitAcks.

Shared by the load generator (:mod:`firmware_sim.loadgen`) and the replay of
simulated worlds (:mod:`firmware_sim.replay`). The cloud acknowledges records
only once they are committed in the database (``CommitAck`` on
``vgr/v1/dev/{id}/ack``); a broker PUBACK is not durability, so a device keeps
what it sent until an :class:`AckBook` says it is covered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import aiomqtt

from protocols.errors import SchemaError
from protocols.messages import CommitAck, decode


class AckBook:
    """The ``(boot_id, seq)`` records the cloud has committed, for one device."""

    def __init__(self) -> None:
        self._acked: dict[str, set[int]] = {}
        self.changed = asyncio.Event()  # set on every ack; the waiter clears it

    def add(self, ack: CommitAck) -> None:
        for r in ack.ranges:
            self._acked.setdefault(r.boot_id, set()).update(range(r.first, r.last + 1))
        self.changed.set()

    def seqs(self, boot_id: str) -> set[int]:
        """Committed sequence numbers of one boot (a live view)."""
        return self._acked.setdefault(boot_id, set())

    def covers(self, keys: Iterable[tuple[str, int]]) -> bool:
        return all(seq in self._acked.get(boot, ()) for boot, seq in keys)

    def __len__(self) -> int:
        return sum(len(s) for s in self._acked.values())


async def listen_acks(client: aiomqtt.Client, book: AckBook) -> None:
    """Feed ``book`` with the CommitAcks arriving on ``client`` (subscribe first)."""
    async for msg in client.messages:
        try:
            ack = decode(msg.payload, CommitAck)
        except SchemaError:
            continue
        book.add(ack)


def device_client(
    host: str,
    port: int,
    *,
    identifier: str,
    username: str | None = None,
    password: str | None = None,
    keepalive: int = 30,
) -> aiomqtt.Client:
    """An MQTT 5 client with a persistent session, as trackers connect."""
    return aiomqtt.Client(
        host,
        port,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        username=username,
        password=password,
        keepalive=keepalive,
    )


def load_passwords(path: Path) -> dict[str, str]:
    """MQTT passwords by device id: a directory of files named by device id (each holding
    the password, as the agent's ``password = "file:..."`` secret), or one file of
    ``device_id:password`` lines (blank lines and ``#`` comments ignored)."""
    if path.is_dir():
        return {
            p.name: p.read_text(encoding="utf-8").strip()
            for p in sorted(path.iterdir())
            if p.is_file() and not p.name.startswith(".")
        }
    out: dict[str, str] = {}
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        device, sep, password = line.partition(":")
        if not sep or not device:
            msg = f"{path}:{n}: expected device_id:password"
            raise ValueError(msg)
        out[device.strip()] = password.strip()
    return out
