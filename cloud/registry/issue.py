"""Issuing a device's credentials: MQTT password, terminal token and signed policy.

``issue`` (first provisioning, or re-provisioning after a new binding) signs a
new policy version from the loan's declared regions; ``rotate`` keeps the
current policy and replaces only the password and the token. Both run in one
transaction holding the device row, so two concurrent requests cannot both
create the same policy version (the ``policies (device_id, version)`` unique
index backs this up). The broker files are updated by the caller after the
commit (:mod:`cloud.registry.broker_auth`).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.mosquitto_hash import hash_password
from cloud.registry import model, store
from protocols.policy import Policy
from protocols.policy_repair import repair_policy
from protocols.tokens import (
    MAX_POLICY_CHARS,
    TerminalClaims,
    issue_terminal_token,
    policy_hash,
    sign_policy,
)

MQTT_PASSWORD_BYTES = 24


@dataclass(frozen=True, slots=True)
class Signer:
    """The platform signing key and how long a terminal token lives."""

    private_key: Ed25519PrivateKey
    token_lifetime: timedelta


@dataclass(frozen=True, slots=True)
class Issued:
    """What a device is given once: its MQTT password, terminal token and signed policy."""

    device: model.Device
    mqtt_password: str
    token: str
    token_id: str
    token_expires_at: datetime
    policy: model.PolicyRecord


def policy_id_for(device_id: str, version: int) -> str:
    return f"{device_id}-v{version}"


async def issue(
    conn: store.Conn, signer: Signer, tenant_id: str, imei: str, *, now: datetime
) -> Issued:
    """New password, new policy version (from the loan's regions) and a token pinning it."""
    now = now.replace(microsecond=0)  # JWT times are whole seconds
    async with conn.transaction():
        device = await _issuable(conn, tenant_id, imei)
        assert device.loan_id is not None
        allowed, forbidden = await store.loan_regions(conn, device.loan_id)
        latest = await store.latest_policy(conn, imei)
        version = 1 if latest is None else latest.version + 1
        policy = Policy(
            policy_id=policy_id_for(imei, version),
            version=version,
            tenant=tenant_id,
            device_id=imei,
            issued_at=now,
            allowed=allowed,
            forbidden=forbidden,
        )
        # Repaired with shapely before signing, so edge and cloud evaluate valid shapes.
        policy = repair_policy(policy).policy
        jws = sign_policy(signer.private_key, policy)
        if len(jws) > MAX_POLICY_CHARS:
            raise model.ConflictError(
                "policy_too_large",
                f"the signed policy is {len(jws)} characters, over {MAX_POLICY_CHARS}; "
                "simplify the region shapes",
            )
        record = model.PolicyRecord(
            id=policy.policy_id,
            device_id=imei,
            tenant_id=tenant_id,
            version=version,
            jws=jws,
            hash=policy_hash(jws),
        )
        await store.insert_policy(conn, record, msgspec.json.encode(policy))
        return await _new_secrets(conn, signer, device, record, now)


async def rotate(
    conn: store.Conn, signer: Signer, tenant_id: str, imei: str, *, now: datetime
) -> Issued:
    """New password and token for the current policy; the old password stops working."""
    now = now.replace(microsecond=0)
    async with conn.transaction():
        device = await _issuable(conn, tenant_id, imei)
        latest = await store.latest_policy(conn, imei)
        if latest is None or not device.has_credentials:
            raise model.ConflictError(
                "no_credentials", f"device {imei} has no credentials to rotate; issue them first"
            )
        return await _new_secrets(conn, signer, device, latest, now)


async def _issuable(conn: store.Conn, tenant_id: str, imei: str) -> model.Device:
    device = await store.get_device(conn, tenant_id, imei, for_update=True)
    if device.revoked:
        raise model.ConflictError("device_revoked", f"device {imei} is revoked")
    if not device.bound:
        raise model.ConflictError(
            "device_not_bound", f"bind device {imei} to a vehicle and a loan first"
        )
    return device


async def _new_secrets(
    conn: store.Conn,
    signer: Signer,
    device: model.Device,
    policy: model.PolicyRecord,
    now: datetime,
) -> Issued:
    assert device.vin is not None
    password = secrets.token_urlsafe(MQTT_PASSWORD_BYTES)
    token_id = uuid.uuid4().hex
    expires = now + signer.token_lifetime
    claims = TerminalClaims(
        device_id=device.id,
        tenant=device.tenant_id,
        vin=device.vin,
        policy_id=policy.id,
        policy_hash=policy.hash,
        token_id=token_id,
        issued_at=now,
        expires_at=expires,
    )
    token = issue_terminal_token(signer.private_key, claims)
    await store.record_credentials(
        conn,
        device.id,
        credential_hash=hash_password(password),
        token_id=token_id,
        token_expires_at=expires,
    )
    return Issued(
        device=await store.get_device(conn, device.tenant_id, device.id),
        mqtt_password=password,
        token=token,
        token_id=token_id,
        token_expires_at=expires,
        policy=policy,
    )
