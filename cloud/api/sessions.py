"""Server-side sessions: a random token in a cookie, its SHA-256 in the ``sessions`` table.

The cookie ``vgr_session`` is HttpOnly, SameSite=Strict, Path=/ and Secure
(unless ``[api] cookie_secure = false`` for a plain-http demo). A session ends
at logout, after ``session_idle_s`` without a request, ``session_absolute_s``
after login, or at once when its user is disabled. Each session has its own
CSRF token, which the browser echoes in ``X-CSRF-Token`` on unsafe methods.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from aiohttp import web

AConn = psycopg.AsyncConnection[Any]
COOKIE = "vgr_session"
TOKEN_BYTES = 32
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,128}$")
_CLEANUP_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Session:
    id: str  # the token's hash
    user_id: int
    tenant_id: str
    username: str
    role: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime


def token_hash(token: str) -> str:
    """Hex SHA-256: tokens are 256-bit random, so a fast hash is enough."""
    return hashlib.sha256(token.encode()).hexdigest()


def plausible(token: str | None) -> bool:
    return token is not None and _TOKEN.match(token) is not None


_RETURNING = (
    "RETURNING s.id, s.user_id, s.tenant_id, u.username, u.role, s.csrf_token, "
    "s.created_at, s.expires_at"
)


async def create(conn: AConn, user_id: int, absolute_s: float) -> tuple[str, Session]:
    """A new session for ``user_id`` (in the caller's transaction): its token and its row."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    cur = await conn.execute(
        "WITH s AS (INSERT INTO sessions (id, user_id, tenant_id, expires_at, csrf_token) "
        "SELECT %s, id, tenant_id, now() + make_interval(secs => %s), %s FROM users "
        "WHERE id = %s RETURNING *) "
        "SELECT s.id, s.user_id, s.tenant_id, u.username, u.role, s.csrf_token, s.created_at, "
        "s.expires_at FROM s JOIN users u ON u.id = s.user_id",
        (token_hash(token), absolute_s, secrets.token_urlsafe(TOKEN_BYTES), user_id),
    )
    row = await cur.fetchone()
    assert row is not None, "the user was just verified"
    return token, Session(*row)


async def resume(conn: AConn, token: str | None, idle_s: float) -> Session | None:
    """The live session behind ``token`` (touching it), or None: unknown, expired, disabled."""
    if not plausible(token):
        return None
    assert token is not None
    cur = await conn.execute(
        "UPDATE sessions s SET last_seen_at = now() FROM users u "  # noqa: S608
        "WHERE s.id = %s AND u.id = s.user_id AND u.tenant_id = s.tenant_id AND NOT u.disabled "
        "AND u.role <> 'integration' AND s.expires_at > now() "
        "AND s.last_seen_at > now() - make_interval(secs => %s) " + _RETURNING,
        (token_hash(token), idle_s),
    )
    row = await cur.fetchone()
    return None if row is None else Session(*row)


async def end(conn: AConn, session_id: str) -> None:
    await conn.execute("DELETE FROM sessions WHERE id = %s", (session_id,))


async def end_by_token(conn: AConn, token: str | None) -> None:
    if plausible(token):
        assert token is not None
        await end(conn, token_hash(token))


async def forget_expired(conn: AConn, idle_s: float) -> None:
    """Delete a batch of sessions past either timeout (called at login)."""
    await conn.execute(
        "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at <= now() "
        "OR last_seen_at <= now() - make_interval(secs => %s) LIMIT %s)",
        (idle_s, _CLEANUP_BATCH),
    )


def set_cookie(response: web.StreamResponse, token: str, *, max_age: float, secure: bool) -> None:
    response.set_cookie(
        COOKIE, token, max_age=int(max_age), path="/", secure=secure, httponly=True,
        samesite="Strict",
    )  # fmt: skip


def clear_cookie(response: web.StreamResponse, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE, "", max_age=0, path="/", secure=secure, httponly=True, samesite="Strict"
    )
