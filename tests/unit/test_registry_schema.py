"""Provisioning request bodies: decoding, bounds, and the field named by each error."""

from __future__ import annotations

import msgspec
import pytest

from cloud.registry.schema import BindRequest, RegisterRequest, field_of, nul_field
from protocols.policy import Circle


def error_field(body: bytes, kind: type[object]) -> str | None:
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.json.decode(body, type=kind)
    return field_of(str(info.value))


def test_register_request() -> None:
    req = msgspec.json.decode(b'{"imei": "490154203237518", "kind": "wired"}', type=RegisterRequest)
    assert (req.imei, req.kind) == ("490154203237518", "wired")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"kind": "wired"}', "imei"),
        (b'{"imei": "1", "kind": "solar"}', "kind"),
        (b'{"imei": 490154203237518, "kind": "wired"}', "imei"),
        (b'{"imei": "1", "kind": "wired", "tenant": "other"}', "tenant"),
        (b"[]", None),
    ],
)
def test_register_errors_name_the_field(body: bytes, field: str | None) -> None:
    assert error_field(body, RegisterRequest) == field


def test_bind_request_with_areas() -> None:
    body = (
        b'{"vin": "LFV2A21K6A3123456", "contract_id": "HT-1",'
        b' "allowed": [{"id": "home", "shape": {"type": "circle",'
        b' "lon": 121.47, "lat": 31.23, "radius_m": 50000}}]}'
    )
    req = msgspec.json.decode(body, type=BindRequest)
    assert req.forbidden is None
    assert req.allowed is not None
    assert req.allowed[0].shape == Circle(lon=121.47, lat=31.23, radius_m=50000)
    binding = req.binding()
    assert binding.vin == "LFV2A21K6A3123456"
    assert binding.allowed == req.allowed


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"contract_id": "HT-1"}', "vin"),
        (b'{"vin": "X", "contract_id": ""}', "contract_id"),
        (b'{"vin": "X", "contract_id": "c", "declared_adcode": "31"}', "declared_adcode"),
        (b'{"vin": "X", "contract_id": "c", "forbiden": []}', "forbiden"),
        (b'{"vin": "X", "contract_id": "c", "allowed": [{"id": "a"}]}', "allowed[0].shape"),
        (
            b'{"vin": "X", "contract_id": "c", "allowed": [{"id": "a", "shape":'
            b' {"type": "circle", "lon": 1, "lat": 1, "radius_m": -5}}]}',
            "allowed[0].shape.radius_m",
        ),
        (
            b'{"vin": "X", "contract_id": "c", "forbidden": [{"id": "a", "shape":'
            b' {"type": "square"}}]}',
            "forbidden[0].shape.type",
        ),
    ],
)
def test_bind_errors_name_the_field(body: bytes, field: str) -> None:
    assert error_field(body, BindRequest) == field


def test_nul_characters_are_found_with_their_path() -> None:
    assert nul_field({"vin": "X", "plate": "ok"}) is None
    assert nul_field({"plate": "A\x00"}) == "plate"
    assert nul_field({"allowed": [{"id": "a"}, {"id": "b", "name": "\x00"}]}) == "allowed[1].name"
    assert nul_field({"g": {"bad\x00key": 1}}) == "g.bad\x00key"
    assert nul_field("\x00") == "$"
