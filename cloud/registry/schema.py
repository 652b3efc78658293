"""Request and response bodies of the provisioning API (msgspec Structs, JSON).

Requests reject unknown fields: a misspelt ``forbiden`` must not silently drop
a forbidden zone. Decoding errors name the offending field as a path
(``allowed[0].shape.radius_m``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct

from cloud.registry import model, store
from protocols.policy import Area

Text64 = Annotated[str, Meta(min_length=1, max_length=64)]
MAX_AREAS = 200


class RegisterRequest(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    imei: Annotated[str, Meta(max_length=32)]
    kind: Literal["wired", "wireless"]


class BindRequest(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    vin: Annotated[str, Meta(max_length=32)]
    contract_id: Text64
    plate: Annotated[str, Meta(min_length=1, max_length=store.MAX_PLATE_CHARS)] | None = None
    declared_address: Annotated[str, Meta(max_length=store.MAX_ADDRESS_CHARS)] | None = None
    declared_adcode: Annotated[str, Meta(pattern=r"^[0-9]{6}$")] | None = None
    allowed: Annotated[list[Area], Meta(max_length=MAX_AREAS)] | None = None
    forbidden: Annotated[list[Area], Meta(max_length=MAX_AREAS)] | None = None

    def binding(self) -> model.Binding:
        return model.Binding(
            vin=self.vin,
            contract_id=self.contract_id,
            plate=self.plate,
            declared_address=self.declared_address,
            declared_adcode=self.declared_adcode,
            allowed=self.allowed,
            forbidden=self.forbidden,
        )


class VehicleOut(Struct, frozen=True, kw_only=True):
    vin: str
    plate: str | None


class LoanOut(Struct, frozen=True, kw_only=True):
    contract_id: str
    declared_address: str | None
    declared_adcode: str | None


class DeviceOut(Struct, frozen=True, kw_only=True):
    device_id: str
    tenant: str
    kind: str
    vehicle: VehicleOut | None
    loan: LoanOut | None
    has_credentials: bool
    token_id: str | None
    token_expires_at: datetime | None
    revoked: bool
    revoked_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, d: model.Device) -> DeviceOut:
        return cls(
            device_id=d.id,
            tenant=d.tenant_id,
            kind=d.kind,
            vehicle=None if d.vin is None else VehicleOut(vin=d.vin, plate=d.plate),
            loan=None
            if d.contract_id is None
            else LoanOut(
                contract_id=d.contract_id,
                declared_address=d.declared_address,
                declared_adcode=d.declared_adcode,
            ),
            has_credentials=d.has_credentials,
            token_id=d.token_id,
            token_expires_at=d.token_expires_at,
            revoked=d.revoked,
            revoked_at=d.revoked_at,
            created_at=d.created_at,
        )


class MqttOut(Struct, frozen=True, kw_only=True):
    username: str
    password: str
    client_id: str
    host: str
    port: int | None
    tls_port: int | None


class CredentialsOut(Struct, frozen=True, kw_only=True):
    device_id: str
    mqtt: MqttOut
    token: str
    token_id: str
    token_expires_at: datetime
    policy: str
    policy_id: str
    policy_version: int
    platform_public_key_pem: str
    platform_key_id: str
    ca_pem: str | None


class ErrorBody(Struct, frozen=True, kw_only=True, omit_defaults=True):
    code: str
    message: str
    field: str | None = None


class ErrorOut(Struct, frozen=True, kw_only=True):
    error: ErrorBody


# ---------------------------------------------------------------- decoding errors

_PATH = re.compile(r"at `\$(?P<path>[^`]*)`")
_NAMED = re.compile(r"(?:missing required field|unknown field) `(?P<name>[^`]*)`")


def field_of(message: str) -> str | None:
    """The field a msgspec ValidationError message points at, as ``a[0].b``; None for the root.

    msgspec says ``Object missing required field `vin` `` (no path at the
    root) or ``Expected `int`, got `str` - at `$.allowed[0].shape.radius_m` ``.
    """
    path = _PATH.search(message)
    named = _NAMED.search(message)
    parts = [
        path.group("path").lstrip(".") if path else "",
        named.group("name") if named else "",
    ]
    return ".".join(part for part in parts if part) or None


def nul_field(value: object, path: str = "") -> str | None:
    """The first field holding a NUL character (PostgreSQL text and jsonb refuse it), if any."""
    if isinstance(value, str):
        return (path or "$") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            found = nul_field(key, where) or nul_field(item, where)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = nul_field(item, f"{path}[{i}]")
            if found:
                return found
    return None
