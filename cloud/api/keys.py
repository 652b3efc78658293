"""API keys of integration users (the lending core): created once, stored as a hash."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import psycopg

from cloud.api.policy import Caller

KEY_BYTES = 32
MAX_PRESENTED_CHARS = 256

Conn = psycopg.Connection[Any]
__all__ = [
    "ApiKeyError",
    "Caller",
    "caller_by_key",
    "create_integration_key",
    "issue_integration_key",
    "key_hash",
    "revoke_integration_key",
]


class ApiKeyError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def key_hash(key: str) -> str:
    """Hex SHA-256: keys are 256-bit random, so a fast hash is enough (no password)."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_integration_key(conn: Conn, tenant_id: str, username: str) -> str:
    """A new integration user with its key (printed once); refuses an existing name."""
    return issue_integration_key(conn, tenant_id, username)[1]


def issue_integration_key(conn: Conn, tenant_id: str, username: str) -> tuple[int, str]:
    """Like :func:`create_integration_key`, also returning the new user's id."""
    key = "vgr_" + secrets.token_urlsafe(KEY_BYTES)
    with conn.transaction():
        if conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,)).fetchone() is None:
            raise ApiKeyError("tenant_not_found", f"no tenant {tenant_id!r}")
        taken = conn.execute(
            "SELECT 1 FROM users WHERE tenant_id = %s AND username = %s", (tenant_id, username)
        ).fetchone()
        if taken is not None:
            raise ApiKeyError("user_exists", f"{tenant_id}/{username} exists; pick another name")
        row = conn.execute(
            "INSERT INTO users (tenant_id, username, role, api_key_hash) "
            "VALUES (%s, %s, 'integration', %s) RETURNING id",
            (tenant_id, username, key_hash(key)),
        ).fetchone()
    assert row is not None
    return int(row[0]), key


def revoke_integration_key(conn: Conn, tenant_id: str, user_id: int) -> str | None:
    """Disable an integration user and forget its key hash; its name, or None if no such key.

    Idempotent: revoking a revoked key answers its name again.
    """
    row = conn.execute(
        "UPDATE users SET disabled = true, api_key_hash = NULL WHERE id = %s AND tenant_id = %s "
        "AND role = 'integration' RETURNING username",
        (user_id, tenant_id),
    ).fetchone()
    return None if row is None else str(row[0])


async def caller_by_key(conn: psycopg.AsyncConnection[Any], key: str) -> Caller | None:
    """The enabled integration user holding ``key``, or None."""
    if not key or len(key) > MAX_PRESENTED_CHARS:
        return None
    cur = await conn.execute(
        "SELECT id, tenant_id, username, role FROM users WHERE api_key_hash = %s "
        "AND role = 'integration' AND NOT disabled",
        (key_hash(key),),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return Caller(int(row[0]), str(row[1]), str(row[2]), str(row[3]), "key")
