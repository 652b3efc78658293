"""The registry's records and its error vocabulary (``code`` values are API error codes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from protocols.policy import Area


class RegistryError(Exception):
    """A registry request that cannot be done; ``code`` is stable (API error codes)."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class NotFoundError(RegistryError):
    """No such row in the caller's tenant (rows of other tenants are not revealed)."""


class ConflictError(RegistryError):
    """The request clashes with the registry's current state."""


class InvalidError(RegistryError):
    """A value the registry cannot accept (bad IMEI, VIN, tenant id...)."""


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Installer:
    user_id: int
    tenant_id: str
    username: str


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    tenant_id: str
    kind: str
    vehicle_id: int | None
    vin: str | None
    plate: str | None
    loan_id: int | None
    contract_id: str | None
    declared_address: str | None
    declared_adcode: str | None
    has_credentials: bool
    token_id: str | None
    token_expires_at: datetime | None
    revoked: bool
    revoked_at: datetime | None
    created_at: datetime

    @property
    def bound(self) -> bool:
        return self.vehicle_id is not None and self.loan_id is not None


@dataclass(frozen=True, slots=True)
class Binding:
    """What an installer declares when binding a device; ``None`` areas keep the loan's."""

    vin: str
    contract_id: str
    plate: str | None = None
    declared_address: str | None = None
    declared_adcode: str | None = None
    allowed: list[Area] | None = None
    forbidden: list[Area] | None = None


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    id: str
    device_id: str
    tenant_id: str
    version: int
    jws: str
    hash: str


@dataclass(frozen=True, slots=True)
class BrokerCredential:
    """A device the broker must let in: username (device id) and Mosquitto password hash."""

    device_id: str
    password_hash: str
