"""Wire messages between edge and cloud: msgspec Structs, JSON on the wire.

Units are in the field names or comments and bounds are in the types, so a
decoded message is always within its schema. ``decode_*`` functions raise
:class:`protocols.errors.SchemaError` naming the offending field. Every
record a device produces carries ``(device_id, boot_id, seq)``; ``seq`` counts
fixes and events together within one boot, so one acknowledgement range
covers both.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, TypeVar

import msgspec
from msgspec import Meta, Struct

from protocols.errors import SchemaError

SCHEMA_VERSION = 1

DeviceId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[^/+#$\x00 ]+$")]
BootId = Annotated[str, Meta(min_length=1, max_length=36, pattern=r"^[0-9A-Za-z_-]+$")]
Seq = Annotated[int, Meta(ge=0, le=2**53)]
Lat = Annotated[float, Meta(ge=-90.0, le=90.0)]
Lon = Annotated[float, Meta(ge=-180.0, le=180.0)]
AltM = Annotated[float, Meta(ge=-1000.0, le=20000.0)]
SpeedMps = Annotated[float, Meta(ge=0.0, le=500.0)]
CourseDeg = Annotated[float, Meta(ge=0.0, le=360.0)]
Hdop = Annotated[float, Meta(ge=0.0, le=99.99)]
Sats = Annotated[int, Meta(ge=0, le=128)]
Volts = Annotated[float, Meta(ge=0.0, le=60.0)]
Version = Annotated[int, Meta(ge=1, le=SCHEMA_VERSION)]
UtcTime = Annotated[datetime, Meta(tz=True)]

# Oldest GNSS time accepted by the schema; the *plausibility* check applies the
# real time window relative to the receiving clock.
EPOCH_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)


class FixMode(StrEnum):
    TWO_D = "2d"
    THREE_D = "3d"


class Fix(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One gated GNSS fix as a tracker reports it."""

    device_id: DeviceId
    boot_id: BootId
    seq: Seq
    time: UtcTime  # GNSS time (UTC) of the epoch
    lat: Lat  # degrees, WGS-84
    lon: Lon  # degrees, WGS-84
    alt_m: AltM | None = None  # metres above mean sea level
    speed_mps: SpeedMps = 0.0  # metres per second over ground
    course_deg: CourseDeg | None = None  # degrees true, 0..360
    mode: FixMode = FixMode.THREE_D
    hdop: Hdop | None = None
    sats: Sats | None = None  # satellites used in the solution
    ignition: bool | None = None
    ext_v: Volts | None = None  # vehicle supply, volts (wired units)
    batt_v: Volts | None = None  # backup / main battery, volts


class EventKind(StrEnum):
    """Events a device raises; the cloud's rules may raise more."""

    BOOT = "boot"
    POWER_LOST = "power_lost"
    POWER_RESTORED = "power_restored"
    TAMPER = "tamper"
    LOW_BATTERY = "low_battery"
    ANTENNA_CUT = "antenna_cut"
    JAMMING_SUSPECTED = "jamming_suspected"
    SPOOFING_SUSPECTED = "spoofing_suspected"  # the gate kept refusing impossible fixes
    GNSS_FAULT = "gnss_fault"
    REGION_EXIT = "region_exit"
    REGION_RETURN = "region_return"
    FORBIDDEN_ENTER = "forbidden_enter"
    FORBIDDEN_LEAVE = "forbidden_leave"
    CHASE_MODE_ON = "chase_mode_on"
    CHASE_MODE_OFF = "chase_mode_off"
    OUTBOX_EVICTED = "outbox_evicted"
    UNAUTHORIZED = "unauthorized"
    HEARTBEAT = "heartbeat"
    SESSION = "session"  # a new link session; detail {"ip": public address}


DetailValue = str | int | float | bool | None


class Event(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A hardware signal, local rule violation or agent state change."""

    device_id: DeviceId
    boot_id: BootId
    seq: Seq
    time: UtcTime  # GNSS time when known, else the tracker's clock
    kind: EventKind
    lat: Lat | None = None
    lon: Lon | None = None
    detail: dict[Annotated[str, Meta(max_length=64)], DetailValue] = {}


class FixBatch(Struct, frozen=True, kw_only=True):
    """Payload of the ``fix`` channel."""

    v: Version
    fixes: Annotated[list[Fix], Meta(min_length=1, max_length=5000)]
    # True when the device held these records while its link was down and uploads
    # them now (JT/T 808 0x0704 type 1, "blind-area re-upload"); live data omits it.
    backlog: bool = False


class EventBatch(Struct, frozen=True, kw_only=True):
    """Payload of the ``event`` channel."""

    v: Version
    events: Annotated[list[Event], Meta(min_length=1, max_length=1000)]
    backlog: bool = False  # as in FixBatch


class DeviceState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    UNAUTHORIZED = "unauthorized"


class Status(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Retained availability of a device; the last will carries ``offline``."""

    v: Version
    device_id: DeviceId
    state: DeviceState
    boot_id: BootId | None = None
    agent_version: Annotated[str, Meta(max_length=32)] | None = None
    outbox_depth: Annotated[int, Meta(ge=0)] | None = None
    reason: Annotated[str, Meta(max_length=200)] | None = None


class SeqRange(Struct, frozen=True, array_like=True):
    """Inclusive range of sequence numbers within one boot: ``[boot_id, first, last]``."""

    boot_id: BootId
    first: Seq
    last: Seq


class CommitAck(Struct, frozen=True, kw_only=True):
    """Application-level ack: these records are committed in the database."""

    v: Version
    device_id: DeviceId
    ranges: Annotated[list[SeqRange], Meta(min_length=1)]


class SignedCommand(Struct, frozen=True, kw_only=True):
    """A command envelope: ``jws`` is an Ed25519 JWT (see ``protocols.tokens``)."""

    v: Version
    jws: Annotated[str, Meta(min_length=1, max_length=16384)]


class CommandAck(Struct, frozen=True, kw_only=True, omit_defaults=True):
    v: Version
    device_id: DeviceId
    nonce: Annotated[str, Meta(min_length=8, max_length=64)]
    ok: bool
    reason: Annotated[str, Meta(max_length=200)] | None = None


class PolicyUpdate(Struct, frozen=True, kw_only=True):
    """A new terminal token and the signed policy it binds (both Ed25519 JWTs)."""

    v: Version
    token: Annotated[str, Meta(min_length=1, max_length=16384)]
    policy: Annotated[str, Meta(min_length=1, max_length=4_000_000)]


# ---------------------------------------------------------------- codec

_encoder = msgspec.json.Encoder()
_T = TypeVar("_T")
_decoders: dict[type[object], msgspec.json.Decoder[object]] = {}
_PATH = re.compile(r"at `\$(?P<path>[^`]*)`")
_CHECKED = (Fix, Event)


def encode(msg: object) -> bytes:
    """JSON bytes of a message."""
    return _encoder.encode(msg)


def _field_of(message: str) -> str | None:
    match = _PATH.search(message)
    if match is None:
        return None
    return match.group("path").lstrip(".") or None


def decode(data: bytes | str, kind: type[_T]) -> _T:
    """Decode JSON into ``kind``; raises SchemaError naming the field on any violation."""
    dec = _decoders.get(kind)
    if dec is None:
        dec = msgspec.json.Decoder(kind)
        _decoders[kind] = dec
    try:
        value: _T = dec.decode(data)  # type: ignore[assignment]
    except msgspec.ValidationError as exc:
        raise SchemaError("schema_violation", str(exc), field=_field_of(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise SchemaError("malformed_json", str(exc)) from None
    _check_times(value)
    return value


def _check_times(value: object) -> None:
    named: list[tuple[str, Fix | Event]]
    if isinstance(value, FixBatch):
        named = [(f"fixes[{i}].time", f) for i, f in enumerate(value.fixes)]
    elif isinstance(value, EventBatch):
        named = [(f"events[{i}].time", e) for i, e in enumerate(value.events)]
    elif isinstance(value, _CHECKED):
        named = [("time", value)]
    else:
        return
    for where, rec in named:
        if rec.time < EPOCH_FLOOR:
            raise SchemaError("schema_violation", "time is before 2000-01-01", field=where)
