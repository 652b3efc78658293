"""The device registry in PostgreSQL: tenants, installer keys, devices and their bindings.

Typed async functions over one psycopg 3 connection (autocommit; functions that
change several rows open their own transaction, which nests as a savepoint in
the caller's). Every device query is scoped to a tenant: a device of another
tenant is :class:`NotFoundError`, exactly like one that does not exist, except at
registration, where the IMEI is the primary key and a clash must be refused.

Installer keys are shown once and stored only as SHA-256 hex; they are looked
up by that hash, so nothing here compares or logs the key itself.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any, Literal

import msgspec
import psycopg

from cloud.registry import ids
from cloud.registry.model import (
    Binding,
    BrokerCredential,
    ConflictError,
    Device,
    Installer,
    InvalidError,
    NotFoundError,
    PolicyRecord,
)
from protocols.policy import Area

Conn = psycopg.AsyncConnection[Any]
DeviceKind = Literal["wired", "wireless"]
INSTALLER_KEY_BYTES = 32
MAX_PRESENTED_KEY_CHARS = 256
MAX_PLATE_CHARS = 16
MAX_ADDRESS_CHARS = 500


# ---------------------------------------------------------------- tenants and installers


async def create_tenant(conn: Conn, tenant_id: str, name: str) -> None:
    problem = ids.tenant_problem(tenant_id)
    if problem:
        raise InvalidError("invalid_tenant", problem, field="id")
    if not name.strip() or len(name) > 200:
        raise InvalidError("invalid_name", "a tenant name is 1-200 characters", field="name")
    cur = await conn.execute(
        "INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
        (tenant_id, name),
    )
    if cur.rowcount == 0:
        raise ConflictError("tenant_exists", f"tenant {tenant_id!r} already exists", field="id")


def installer_key_hash(key: str) -> str:
    """What is stored for an installer key: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(key.encode()).hexdigest()


async def create_installer_key(
    conn: Conn, tenant_id: str, username: str, *, replace: bool = False
) -> str:
    """Create an installer and return its new API key (shown once, stored as a hash).

    With ``replace`` an existing installer gets a new key (the old one stops
    working) and is re-enabled; a user of another role is never turned into one.
    """
    problem = ids.username_problem(username)
    if problem:
        raise InvalidError("invalid_username", problem, field="name")
    key = secrets.token_urlsafe(INSTALLER_KEY_BYTES)
    digest = installer_key_hash(key)
    async with conn.transaction():
        if (
            await (
                await conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,))
            ).fetchone()
            is None
        ):
            raise NotFoundError("tenant_not_found", f"no tenant {tenant_id!r}", field="tenant")
        row = await (
            await conn.execute(
                "SELECT role FROM users WHERE tenant_id = %s AND username = %s FOR UPDATE",
                (tenant_id, username),
            )
        ).fetchone()
        if row is None:
            await conn.execute(
                "INSERT INTO users (tenant_id, username, role, api_key_hash) "
                "VALUES (%s, %s, 'installer', %s)",
                (tenant_id, username, digest),
            )
        elif row[0] != "installer":
            raise ConflictError("user_exists", f"{username!r} is a {row[0]}, not an installer")
        elif not replace:
            raise ConflictError("installer_exists", f"installer {username!r} already has a key")
        else:
            await conn.execute(
                "UPDATE users SET api_key_hash = %s, disabled = false "
                "WHERE tenant_id = %s AND username = %s",
                (digest, tenant_id, username),
            )
    return key


async def installer_by_key(conn: Conn, key: str) -> Installer | None:
    """The enabled installer holding ``key``, or None."""
    if not key or len(key) > MAX_PRESENTED_KEY_CHARS:
        return None
    row = await (
        await conn.execute(
            "SELECT id, tenant_id, username FROM users "
            "WHERE api_key_hash = %s AND role = 'installer' AND NOT disabled",
            (installer_key_hash(key),),
        )
    ).fetchone()
    return None if row is None else Installer(int(row[0]), str(row[1]), str(row[2]))


# ---------------------------------------------------------------- devices

_DEVICE_SELECT = """
SELECT d.id, d.tenant_id, d.kind, d.vehicle_id, v.vin, v.plate, d.loan_id, l.contract_id,
       l.declared_address, l.declared_adcode, d.credential_hash IS NOT NULL, d.token_id,
       d.token_expires_at, d.revoked, d.revoked_at, d.created_at
FROM devices d
LEFT JOIN vehicles v ON v.id = d.vehicle_id
LEFT JOIN loans l ON l.id = d.loan_id
"""


def _device(row: tuple[Any, ...]) -> Device:
    return Device(*row)


def check_imei(imei: str) -> None:
    problem = ids.imei_problem(imei)
    if problem:
        raise InvalidError("invalid_imei", problem, field="imei")


async def get_device(conn: Conn, tenant_id: str, imei: str, *, for_update: bool = False) -> Device:
    """The tenant's device ``imei``; NotFoundError when it is absent *or* another tenant's."""
    check_imei(imei)
    lock = " FOR UPDATE OF d" if for_update else ""
    row = await (
        await conn.execute(
            f"{_DEVICE_SELECT} WHERE d.id = %s AND d.tenant_id = %s{lock}", (imei, tenant_id)
        )
    ).fetchone()
    if row is None:
        raise NotFoundError("device_not_found", f"no device {imei} in this tenant", field="imei")
    return _device(row)


async def register_device(
    conn: Conn, tenant_id: str, imei: str, kind: DeviceKind
) -> tuple[Device, bool]:
    """Register a device; idempotent within a tenant. Returns (device, created)."""
    check_imei(imei)
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO devices (id, tenant_id, kind) VALUES (%s, %s, %s) "
            "ON CONFLICT (id) DO NOTHING",
            (imei, tenant_id, kind),
        )
        created = cur.rowcount == 1
        row = await (
            await conn.execute("SELECT tenant_id, kind FROM devices WHERE id = %s", (imei,))
        ).fetchone()
        if row is None:  # pragma: no cover - inserted or already there
            raise RuntimeError("device vanished during registration")
        if row[0] != tenant_id:
            raise ConflictError(
                "imei_registered_elsewhere",
                "this IMEI is registered to another institution; contact support",
                field="imei",
            )
        if row[1] != kind:
            raise ConflictError(
                "kind_mismatch", f"device {imei} is registered as {row[1]}", field="kind"
            )
        return await get_device(conn, tenant_id, imei), created


async def bind_device(conn: Conn, tenant_id: str, imei: str, binding: Binding) -> Device:
    """Bind a device to a vehicle and a loan, creating either as needed.

    A known vehicle keeps its plate unless a new one is given; a known loan
    keeps its declared address/adcode/regions unless new ones are given, and
    must secure this same vehicle.
    """
    _check_binding(binding)
    async with conn.transaction():
        device = await get_device(conn, tenant_id, imei, for_update=True)
        if device.revoked:
            raise ConflictError("device_revoked", f"device {imei} is revoked")
        vehicle = await (
            await conn.execute(
                "INSERT INTO vehicles (tenant_id, vin, plate) VALUES (%s, %s, %s) "
                "ON CONFLICT (tenant_id, vin) "
                "DO UPDATE SET plate = COALESCE(EXCLUDED.plate, vehicles.plate) RETURNING id",
                (tenant_id, binding.vin, binding.plate),
            )
        ).fetchone()
        assert vehicle is not None
        vehicle_id = int(vehicle[0])
        loan = await (
            await conn.execute(
                """INSERT INTO loans (tenant_id, contract_id, vehicle_id, declared_address,
                                      declared_adcode, allowed_areas, forbidden_areas)
                   VALUES (%(t)s, %(c)s, %(v)s, %(addr)s, %(adc)s,
                           COALESCE(%(allowed)s::jsonb, '[]'), COALESCE(%(forbidden)s::jsonb, '[]'))
                   ON CONFLICT (tenant_id, contract_id) DO UPDATE SET
                     vehicle_id = COALESCE(loans.vehicle_id, EXCLUDED.vehicle_id),
                     declared_address = COALESCE(%(addr)s, loans.declared_address),
                     declared_adcode = COALESCE(%(adc)s, loans.declared_adcode),
                     allowed_areas = COALESCE(%(allowed)s::jsonb, loans.allowed_areas),
                     forbidden_areas = COALESCE(%(forbidden)s::jsonb, loans.forbidden_areas)
                   RETURNING id, vehicle_id""",
                {
                    "t": tenant_id,
                    "c": binding.contract_id,
                    "v": vehicle_id,
                    "addr": binding.declared_address,
                    "adc": binding.declared_adcode,
                    "allowed": _areas_json(binding.allowed),
                    "forbidden": _areas_json(binding.forbidden),
                },
            )
        ).fetchone()
        assert loan is not None
        if loan[1] != vehicle_id:
            raise ConflictError(
                "loan_vehicle_mismatch",
                f"contract {binding.contract_id!r} secures another vehicle",
                field="contract_id",
            )
        await conn.execute(
            "UPDATE devices SET vehicle_id = %s, loan_id = %s, updated_at = now() WHERE id = %s",
            (vehicle_id, int(loan[0]), imei),
        )
        return await get_device(conn, tenant_id, imei)


def _check_binding(b: Binding) -> None:
    checks = [
        ("vin", "invalid_vin", ids.vin_problem(b.vin)),
        ("contract_id", "invalid_contract_id", ids.contract_problem(b.contract_id)),
    ]
    if b.declared_adcode is not None:
        checks.append(("declared_adcode", "invalid_adcode", ids.adcode_problem(b.declared_adcode)))
    if b.plate is not None and not 1 <= len(b.plate) <= MAX_PLATE_CHARS:
        checks.append(("plate", "invalid_plate", f"a plate is 1-{MAX_PLATE_CHARS} characters"))
    if b.declared_address is not None and len(b.declared_address) > MAX_ADDRESS_CHARS:
        too_long = f"an address is at most {MAX_ADDRESS_CHARS} characters"
        checks.append(("declared_address", "invalid_address", too_long))
    for field, code, problem in checks:
        if problem:
            raise InvalidError(code, problem, field=field)


def _areas_json(areas: list[Area] | None) -> str | None:
    return None if areas is None else msgspec.json.encode(areas).decode()


async def loan_regions(conn: Conn, loan_id: int) -> tuple[list[Area], list[Area]]:
    """The (allowed, forbidden) areas declared for a loan."""
    row = await (
        await conn.execute(
            "SELECT allowed_areas, forbidden_areas FROM loans WHERE id = %s", (loan_id,)
        )
    ).fetchone()
    if row is None:
        raise NotFoundError("loan_not_found", f"no loan {loan_id}")
    return msgspec.convert(row[0], list[Area]), msgspec.convert(row[1], list[Area])


# ---------------------------------------------------------------- policies and credentials


async def latest_policy(conn: Conn, device_id: str) -> PolicyRecord | None:
    row = await (
        await conn.execute(
            "SELECT id, device_id, tenant_id, version, jws, hash FROM policies "
            "WHERE device_id = %s ORDER BY version DESC LIMIT 1",
            (device_id,),
        )
    ).fetchone()
    return None if row is None else PolicyRecord(*row)


async def insert_policy(conn: Conn, record: PolicyRecord, document: bytes) -> None:
    """Store a signed policy; ``document`` is the msgspec JSON of the Policy it signs."""
    await conn.execute(
        "INSERT INTO policies (id, tenant_id, device_id, version, document, jws, hash) "
        "VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s)",
        (
            record.id,
            record.tenant_id,
            record.device_id,
            record.version,
            document.decode(),
            record.jws,
            record.hash,
        ),
    )


async def record_credentials(
    conn: Conn,
    device_id: str,
    *,
    credential_hash: str,
    token_id: str,
    token_expires_at: datetime,
) -> None:
    """Store a device's new MQTT password hash and terminal token id (issue and rotate)."""
    cur = await conn.execute(
        "UPDATE devices SET credential_hash = %s, token_id = %s, token_expires_at = %s, "
        "updated_at = now() WHERE id = %s AND NOT revoked",
        (credential_hash, token_id, token_expires_at, device_id),
    )
    if cur.rowcount != 1:
        raise ConflictError("device_revoked", f"device {device_id} is revoked")


async def revoke_device(conn: Conn, tenant_id: str, imei: str) -> Device:
    """Revoke a device: it keeps its history, loses its MQTT password; idempotent."""
    async with conn.transaction():
        await get_device(conn, tenant_id, imei, for_update=True)
        await conn.execute(
            "UPDATE devices SET revoked = true, revoked_at = COALESCE(revoked_at, now()), "
            "credential_hash = NULL, updated_at = now() WHERE id = %s",
            (imei,),
        )
        return await get_device(conn, tenant_id, imei)


async def broker_credentials(conn: Conn) -> list[BrokerCredential]:
    """Every device the broker must accept: not revoked, with a password hash."""
    cur = await conn.execute(
        "SELECT id, credential_hash FROM devices "
        "WHERE NOT revoked AND credential_hash IS NOT NULL ORDER BY id"
    )
    return [BrokerCredential(str(r[0]), str(r[1])) for r in await cur.fetchall()]
