"""The tracker's hardware I/O channel, as the edge agent reads it.

On a real tracker a small board-support shim turns GPIO/ADC readings into
these messages; in the simulator the tracker model writes them. One JSON
object per line, tagged by ``signal``. The agent turns them into events
(``power_lost``, ``tamper``…) with the current GNSS time.

| signal | fields | meaning |
|---|---|---|
| ``power`` | ``state`` lost/restored, ``ext_v`` | vehicle supply of a wired unit |
| ``ignition`` | ``on`` | ACC line |
| ``tamper`` | ``source`` light/case | light sensor or case-open switch |
| ``battery`` | ``batt_v``, ``low`` | backup or main battery |
| ``antenna`` | ``state`` cut/ok | GNSS antenna |
| ``link`` | ``up``, ``ip`` | the cellular modem has (or lost) coverage; its address when up |
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from protocols.errors import SchemaError

Volts = Annotated[float, Meta(ge=0.0, le=60.0)]


class Power(Struct, frozen=True, kw_only=True, tag_field="signal", tag="power"):
    state: Literal["lost", "restored"]
    ext_v: Volts | None = None


class Ignition(Struct, frozen=True, kw_only=True, tag_field="signal", tag="ignition"):
    on: bool


class Tamper(Struct, frozen=True, kw_only=True, tag_field="signal", tag="tamper"):
    source: Literal["light", "case"]


class Battery(Struct, frozen=True, kw_only=True, tag_field="signal", tag="battery"):
    batt_v: Volts
    low: bool


class Antenna(Struct, frozen=True, kw_only=True, tag_field="signal", tag="antenna"):
    state: Literal["cut", "ok"]


class Link(Struct, frozen=True, kw_only=True, tag_field="signal", tag="link"):
    up: bool
    ip: Annotated[str, Meta(max_length=45)] | None = None  # the modem's address (AT+CGPADDR)


HwSignal = Power | Ignition | Tamper | Battery | Antenna | Link

_decoder = msgspec.json.Decoder(HwSignal)
_encoder = msgspec.json.Encoder()
MAX_LINE = 1024


def decode_signal(line: bytes) -> HwSignal:
    """One I/O line; raises SchemaError with a reason for anything else."""
    if len(line) > MAX_LINE:
        raise SchemaError("line_too_long", f"{len(line)} bytes")
    try:
        signal: HwSignal = _decoder.decode(line)
    except msgspec.ValidationError as exc:
        raise SchemaError("schema_violation", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise SchemaError("malformed_json", str(exc)) from None
    return signal


def encode_signal(signal: HwSignal) -> bytes:
    return _encoder.encode(signal) + b"\n"
