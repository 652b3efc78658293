"""``/v1/users`` and ``/v1/integration-keys``: an admin manages its tenant's people and keys.

People (admin, analyst, recovery, installer) are created with a password
(at least 10 characters; the API is served over TLS), changed (role,
disabled) and listed; an admin cannot disable or demote itself, and
disabling a person ends its sessions at once. Integration users (the lending
core) are managed as keys: creating one shows its key once; revoking it
disables the user and forgets the key's hash. Every change is audited in the
same transaction (:func:`cloud.api.users.create_user`, :func:`update_user`,
:mod:`cloud.api.keys`). Another tenant's user or key is ``404``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import psycopg
from aiohttp import web
from psycopg_pool import ConnectionPool

from cloud.api import audit
from cloud.api.errors import ApiError, json_response
from cloud.api.fleet_params import FleetPageQuery, after, page
from cloud.api.keys import ApiKeyError, issue_integration_key, revoke_integration_key
from cloud.api.params import json_body, path_id, query_params
from cloud.api.passwords import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, Passwords
from cloud.api.policy import Caller, Routes
from cloud.api.state import CALLER, CLIENT_IP, PASSWORDS, POOL, SYNC_POOL
from cloud.api.users import UserChange, UserError, create_user, update_user

routes = Routes()
Person = Literal["admin", "analyst", "recovery", "installer"]
Username = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]
SyncPool = ConnectionPool[psycopg.Connection[Any]]
# HTTP status of each UserError / ApiKeyError code; the others are 400
_STATUS = {"user_not_found": 404, "user_exists": 409, "self_change": 409, "tenant_not_found": 404}


class UserQuery(FleetPageQuery, kw_only=True):
    role: Person | None = None
    disabled: bool | None = None


class NewUser(msgspec.Struct, forbid_unknown_fields=True):
    username: Username
    role: Person
    password: Annotated[str, msgspec.Meta(min_length=MIN_PASSWORD_CHARS,
                                          max_length=MAX_PASSWORD_CHARS)]  # fmt: skip


class UserPatch(msgspec.Struct, forbid_unknown_fields=True):
    role: Person | None = None
    disabled: bool | None = None


class UserOut(msgspec.Struct):
    id: int
    username: str
    role: str
    disabled: bool
    created_at: datetime


class UserList(msgspec.Struct):
    items: list[UserOut]
    next_cursor: str | None


class NewKey(msgspec.Struct, forbid_unknown_fields=True):
    name: Username


class KeyOut(msgspec.Struct):
    id: int
    name: str
    revoked: bool
    created_at: datetime


class KeyList(msgspec.Struct):
    items: list[KeyOut]
    next_cursor: str | None


class CreatedKey(msgspec.Struct):
    id: int
    name: str
    key: str  # shown once; only its SHA-256 is stored


def _user_error(exc: UserError | ApiKeyError) -> ApiError:
    return ApiError(_STATUS.get(exc.code, 400), exc.code, exc.message)


async def _user(conn: psycopg.AsyncConnection[Any], caller: Caller, user_id: int) -> UserOut:
    cur = await conn.execute(
        "SELECT id, username, role, disabled, created_at FROM users WHERE id = %s "
        "AND tenant_id = %s AND role <> 'integration'",
        (user_id, caller.tenant_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "user_not_found", "no such user")
    return UserOut(*row)


@routes("GET", "/v1/users", roles={"admin"}, query=UserQuery, response=UserList,
        errors=("invalid_parameter", "invalid_cursor"))  # fmt: skip
async def list_users(request: web.Request) -> web.Response:
    """The tenant's people (not integration users), by id."""
    caller = request[CALLER]
    q = query_params(request, UserQuery)
    key = after("users", q.cursor, (int,))
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            "SELECT id, username, role, disabled, created_at FROM users "
            "WHERE tenant_id = %(tenant)s AND role <> 'integration' "
            "AND (%(role)s::text IS NULL OR role = %(role)s) "
            "AND (%(disabled)s::boolean IS NULL OR disabled = %(disabled)s) "
            "AND (%(after)s::bigint IS NULL OR id > %(after)s) ORDER BY id LIMIT %(limit)s",
            {"tenant": caller.tenant_id, "role": q.role, "disabled": q.disabled,
             "after": None if key is None else key[0], "limit": q.limit + 1},
        )  # fmt: skip
        rows = [UserOut(*r) for r in await cur.fetchall()]
    items, next_cursor = page(rows, q.limit, "users", lambda u: (u.id,))
    return json_response(UserList(list(items), next_cursor))


@routes("GET", "/v1/users/{id}", roles={"admin"}, response=UserOut, errors=("user_not_found",))
async def get_user(request: web.Request) -> web.Response:
    """One person of the tenant."""
    user_id = path_id(request, "id", "user_not_found")
    async with request.app[POOL].connection() as conn:
        return json_response(await _user(conn, request[CALLER], user_id))


def _create_sync(pool: SyncPool, passwords: Passwords, caller: Caller, ip: str | None,
                 body: NewUser) -> int:  # fmt: skip
    with pool.connection() as conn:
        return create_user(conn, passwords, caller.tenant_id, body.username, body.role,
                           body.password, actor=caller.username, actor_id=caller.user_id,
                           ip=ip)  # fmt: skip


@routes("POST", "/v1/users", roles={"admin"}, body=NewUser, response=UserOut, status=201,
        errors=("invalid_request", "invalid_username", "weak_password", "user_exists"))  # fmt: skip
async def create(request: web.Request) -> web.Response:
    """Create a person who logs in with the given password (audited ``user_created``)."""
    caller = request[CALLER]
    body = await json_body(request, NewUser)
    try:
        user_id = await asyncio.to_thread(_create_sync, request.app[SYNC_POOL],
                                          request.app[PASSWORDS], caller, request[CLIENT_IP],
                                          body)  # fmt: skip
    except UserError as exc:
        raise _user_error(exc) from None
    async with request.app[POOL].connection() as conn:
        return json_response(await _user(conn, caller, user_id), status=201)


def _update_sync(pool: SyncPool, caller: Caller, ip: str | None, user_id: int,
                 change: UserChange) -> None:  # fmt: skip
    with pool.connection() as conn:
        update_user(conn, caller.tenant_id, user_id, change, actor=caller.username,
                    actor_id=caller.user_id, ip=ip)  # fmt: skip


@routes("PATCH", "/v1/users/{id}", roles={"admin"}, body=UserPatch, response=UserOut,
        errors=("invalid_request", "user_not_found", "self_change"))  # fmt: skip
async def patch_user(request: web.Request) -> web.Response:
    """Change a person's role or disable it (its sessions end); audited."""
    caller = request[CALLER]
    user_id = path_id(request, "id", "user_not_found")
    async with request.app[POOL].connection() as conn:
        await _user(conn, caller, user_id)  # 404 before any complaint about the body
    body = await json_body(request, UserPatch)
    change = UserChange(role=body.role, disabled=body.disabled)
    try:
        await asyncio.to_thread(_update_sync, request.app[SYNC_POOL], caller, request[CLIENT_IP],
                                user_id, change)  # fmt: skip
    except UserError as exc:
        raise _user_error(exc) from None
    async with request.app[POOL].connection() as conn:
        return json_response(await _user(conn, caller, user_id))


# ---------------------------------------------------------------- integration keys


@routes("GET", "/v1/integration-keys", roles={"admin"}, query=FleetPageQuery, response=KeyList,
        errors=("invalid_parameter", "invalid_cursor"))  # fmt: skip
async def list_keys(request: web.Request) -> web.Response:
    """The tenant's integration users (the keys themselves are never shown again)."""
    caller = request[CALLER]
    q = query_params(request, FleetPageQuery)
    key = after("integration-keys", q.cursor, (int,))
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            "SELECT id, username, disabled, created_at FROM users WHERE tenant_id = %s "
            "AND role = 'integration' AND (%s::bigint IS NULL OR id > %s) ORDER BY id LIMIT %s",
            (caller.tenant_id, *(2 * [None if key is None else key[0]]), q.limit + 1),
        )
        rows = [KeyOut(*r) for r in await cur.fetchall()]
    items, next_cursor = page(rows, q.limit, "integration-keys", lambda k: (k.id,))
    return json_response(KeyList(list(items), next_cursor))


def _issue_sync(pool: SyncPool, caller: Caller, ip: str | None, name: str) -> tuple[int, str]:
    with pool.connection() as conn, conn.transaction():
        user_id, key = issue_integration_key(conn, caller.tenant_id, name)
        audit.write_sync(conn, audit.Entry.by(caller, ip, "integration_key_created", "user",
                                              user_id, username=name))  # fmt: skip
    return user_id, key


@routes("POST", "/v1/integration-keys", roles={"admin"}, body=NewKey, response=CreatedKey,
        status=201, errors=("invalid_request", "user_exists"))  # fmt: skip
async def create_key(request: web.Request) -> web.Response:
    """Create an integration user and its key; the key is in this answer only."""
    caller = request[CALLER]
    body = await json_body(request, NewKey)
    try:
        user_id, key = await asyncio.to_thread(_issue_sync, request.app[SYNC_POOL], caller,
                                               request[CLIENT_IP], body.name)  # fmt: skip
    except ApiKeyError as exc:
        raise _user_error(exc) from None
    return json_response(CreatedKey(user_id, body.name, key), status=201)


def _revoke_sync(pool: SyncPool, caller: Caller, ip: str | None, user_id: int) -> str | None:
    with pool.connection() as conn, conn.transaction():
        name = revoke_integration_key(conn, caller.tenant_id, user_id)
        if name is not None:
            audit.write_sync(conn, audit.Entry.by(caller, ip, "integration_key_revoked", "user",
                                                  user_id, username=name))  # fmt: skip
    return name


@routes("DELETE", "/v1/integration-keys/{id}", roles={"admin"}, response=KeyOut,
        errors=("integration_key_not_found",))  # fmt: skip
async def revoke_key(request: web.Request) -> web.Response:
    """Revoke a key at once (the user is disabled and the key's hash forgotten)."""
    caller = request[CALLER]
    user_id = path_id(request, "id", "integration_key_not_found")
    name = await asyncio.to_thread(_revoke_sync, request.app[SYNC_POOL], caller,
                                   request[CLIENT_IP], user_id)  # fmt: skip
    if name is None:
        raise ApiError(404, "integration_key_not_found", "no such integration key")
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            "SELECT id, username, disabled, created_at FROM users WHERE id = %s", (user_id,)
        )
        row = await cur.fetchone()
    assert row is not None
    return json_response(KeyOut(*row))
