"""Wire schemas: round trips and every bound rejected with the field named."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import SchemaError
from protocols.messages import (
    CommitAck,
    DeviceState,
    Event,
    EventBatch,
    EventKind,
    Fix,
    FixBatch,
    FixMode,
    SeqRange,
    Status,
    decode,
    encode,
)

T0 = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)


def a_fix(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "device_id": "860000000000001",
        "boot_id": "b0a1",
        "seq": 7,
        "time": "2026-11-25T08:00:00Z",
        "lat": 31.2304,
        "lon": 121.4737,
        "alt_m": 12.5,
        "speed_mps": 13.9,
        "course_deg": 271.0,
        "mode": "3d",
        "hdop": 0.9,
        "sats": 14,
    }
    base.update(over)
    return base


def batch_bytes(**over: object) -> bytes:
    return msgspec.json.encode({"v": 1, "fixes": [a_fix(**over)]})


def test_fix_batch_round_trip() -> None:
    fix = Fix(
        device_id="d1",
        boot_id="b1",
        seq=0,
        time=T0,
        lat=22.5,
        lon=114.05,
        speed_mps=3.0,
        course_deg=359.9,
        mode=FixMode.TWO_D,
        ignition=True,
        ext_v=12.6,
    )
    batch = FixBatch(v=1, fixes=[fix])
    assert decode(encode(batch), FixBatch) == batch


def test_event_batch_and_ack_round_trip() -> None:
    ev = Event(
        device_id="d1",
        boot_id="b1",
        seq=3,
        time=T0,
        kind=EventKind.POWER_LOST,
        lat=22.5,
        lon=114.0,
        detail={"ext_v": 0.2, "source": "io"},
    )
    assert decode(encode(EventBatch(v=1, events=[ev])), EventBatch).events == [ev]
    ack = CommitAck(v=1, device_id="d1", ranges=[SeqRange("b1", 0, 41), SeqRange("b2", 0, 3)])
    wire = encode(ack)
    assert b'["b1",0,41]' in wire
    assert decode(wire, CommitAck) == ack


def test_status_round_trip() -> None:
    st_ = Status(v=1, device_id="d1", state=DeviceState.OFFLINE)
    assert decode(encode(st_), Status) == st_


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"lat": 90.0001}, "fixes[0].lat"),
        ({"lat": -91}, "fixes[0].lat"),
        ({"lon": 180.5}, "fixes[0].lon"),
        ({"lon": -181}, "fixes[0].lon"),
        ({"speed_mps": -0.1}, "fixes[0].speed_mps"),
        ({"course_deg": 360.1}, "fixes[0].course_deg"),
        ({"course_deg": -1}, "fixes[0].course_deg"),
        ({"hdop": -1}, "fixes[0].hdop"),
        ({"sats": -1}, "fixes[0].sats"),
        ({"seq": -1}, "fixes[0].seq"),
        ({"alt_m": 30000}, "fixes[0].alt_m"),
        ({"device_id": "a/b"}, "fixes[0].device_id"),
        ({"device_id": ""}, "fixes[0].device_id"),
        ({"mode": "4d"}, "fixes[0].mode"),
        ({"time": "2026-11-25T08:00:00"}, "fixes[0].time"),  # no zone: ambiguous
        ({"time": "1999-12-31T23:59:59Z"}, "fixes[0].time"),  # before the epoch floor
        ({"time": "yesterday"}, "fixes[0].time"),
        ({"extra_field": 1}, None),
    ],
)
def test_each_bound_rejected_with_field(override: dict[str, object], field: str | None) -> None:
    data = batch_bytes(**override)
    if field is None:
        # Unknown fields are ignored for forward compatibility, not rejected.
        assert decode(data, FixBatch).fixes[0].lat == pytest.approx(31.2304)
        return
    with pytest.raises(SchemaError) as err:
        decode(data, FixBatch)
    assert err.value.field == field
    assert err.value.reason == "schema_violation"


def test_missing_required_field_named() -> None:
    fix = a_fix()
    del fix["lat"]
    with pytest.raises(SchemaError) as err:
        decode(msgspec.json.encode({"v": 1, "fixes": [fix]}), FixBatch)
    assert "lat" in str(err.value)


def test_schema_version_checked() -> None:
    with pytest.raises(SchemaError) as err:
        decode(msgspec.json.encode({"v": 99, "fixes": [a_fix()]}), FixBatch)
    assert err.value.field == "v"


def test_empty_batch_rejected() -> None:
    with pytest.raises(SchemaError) as err:
        decode(b'{"v":1,"fixes":[]}', FixBatch)
    assert err.value.field == "fixes"


def test_malformed_json_has_its_own_reason() -> None:
    with pytest.raises(SchemaError) as err:
        decode(b'{"v":1,"fixes":[', FixBatch)
    assert err.value.reason == "malformed_json"


@given(st.binary(max_size=300))
def test_garbage_only_raises_schema_error(data: bytes) -> None:
    with contextlib.suppress(SchemaError):
        decode(data, FixBatch)
