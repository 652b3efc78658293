"""What flows through ingest: deliveries in, rows and acks out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from protocols.messages import Event, Fix, SeqRange


@dataclass(frozen=True, slots=True)
class Delivery:
    """One MQTT message as received; ``ack_token`` releases it at the broker."""

    topic: str
    payload: bytes
    received_at: datetime
    ack_token: object = None


@dataclass(frozen=True, slots=True)
class Terminal:
    """What the registry knows about a device at ingest time."""

    device_id: str
    tenant_id: str
    vehicle_id: int | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class FixRow:
    fix: Fix
    tenant_id: str
    vehicle_id: int | None
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EventRow:
    event: Event
    tenant_id: str
    vehicle_id: int | None
    flags: tuple[str, ...] = ()  # "late": uploaded from the device's backlog


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    reason: str
    device_id: str | None
    tenant_id: str | None
    topic: str
    record: bytes | None  # JSON of the single rejected record, when decodable
    raw: bytes | None  # the whole payload, when it could not be decoded


@dataclass(frozen=True, slots=True)
class SignalRow:
    time: datetime
    kind: str
    device_id: str | None
    tenant_id: str | None
    vehicle_id: int | None
    detail: dict[str, str]


@dataclass(slots=True)
class Work:
    """The outcome of the stages for a set of deliveries, ready to be written."""

    fixes: list[FixRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    quarantine: list[QuarantineRow] = field(default_factory=list)
    signals: list[SignalRow] = field(default_factory=list)
    status: list[tuple[str, bytes]] = field(default_factory=list)  # (device_id, raw Status)
    # Per device, every (boot_id, seq) the deliveries carried, stored or not:
    # all of it is acknowledged once the transaction commits.
    acks: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    # Identities of the messages written (for the deduper, after the commit).
    message_keys: list[tuple[str, str, str, int, str, int, int]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.fixes) + len(self.events) + len(self.quarantine)


def compress_ranges(keys: list[tuple[str, int]]) -> list[SeqRange]:
    """Inclusive ``[boot_id, first, last]`` ranges covering ``keys`` exactly."""
    out: list[SeqRange] = []
    for boot_id, seq in sorted(set(keys)):
        if out and out[-1].boot_id == boot_id and out[-1].last + 1 == seq:
            out[-1] = SeqRange(boot_id, out[-1].first, seq)
        else:
            out.append(SeqRange(boot_id, seq, seq))
    return out
