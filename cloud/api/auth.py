"""``/v1/auth``: log in with tenant, username and password; who am I; log out.

A failed login answers ``401 invalid_credentials`` whatever went wrong
(unknown tenant or user, wrong password, disabled user) after the same
amount of work, so the answer and its timing say nothing about which
usernames exist; the audit log records the real reason for admins.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from aiohttp import web

from cloud.api import audit, sessions, throttle, users
from cloud.api.errors import ApiError, json_response
from cloud.api.params import json_body
from cloud.api.policy import PEOPLE, Routes, Scope
from cloud.api.state import CALLER, CLIENT_IP, PASSWORDS, POOL, SESSION, SETTINGS
from cloud.config import ApiSettings

log = logging.getLogger(__name__)
routes = Routes()
_NO_NUL = r"^[^\x00]+$"


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    tenant: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_NO_NUL)]
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=_NO_NUL)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class SessionUser(msgspec.Struct):
    id: int
    tenant_id: str
    username: str
    role: str


class SessionDoc(msgspec.Struct):
    user: SessionUser
    csrf_token: str  # send it in X-CSRF-Token on POST, PUT, PATCH and DELETE
    expires_at: str  # the absolute timeout (ISO 8601)


class LoggedOut(msgspec.Struct):
    logged_out: bool


def user_params(s: ApiSettings) -> throttle.ThrottleParams:
    return throttle.ThrottleParams(s.login_user_free, s.login_delay_base_s, s.login_delay_max_s,
                                   s.login_window_s)  # fmt: skip


def ip_params(s: ApiSettings) -> throttle.ThrottleParams:
    return throttle.ThrottleParams(s.login_ip_free, s.login_delay_base_s, s.login_delay_max_s,
                                   s.login_window_s)  # fmt: skip


def _session_doc(session: sessions.Session) -> dict[str, Any]:
    return {
        "user": {"id": session.user_id, "tenant_id": session.tenant_id,
                 "username": session.username, "role": session.role},
        "csrf_token": session.csrf_token,
        "expires_at": session.expires_at.isoformat(),
    }  # fmt: skip


def _failure_reason(user: users.LoginUser | None, password_ok: bool) -> str:
    if user is None:
        return "unknown_user"
    if user.disabled:
        return "disabled"
    if user.role not in PEOPLE or user.password_hash is None:
        return "no_password_login"
    return "ok" if password_ok else "wrong_password"


@routes(
    "POST", "/v1/auth/login", scope=Scope.PUBLIC,
    summary="Log in: sets the vgr_session cookie and returns the CSRF token",
    body=LoginRequest, response=SessionDoc, errors=("invalid_credentials", "too_many_attempts"),
)  # fmt: skip
async def login(request: web.Request) -> web.Response:
    body = await json_body(request, LoginRequest)
    settings, pool, ip = request.app[SETTINGS], request.app[POOL], request[CLIENT_IP]
    ukey = throttle.user_key(body.tenant, body.username)
    ikey = None if ip is None else throttle.ip_key(ip)
    keys = {ukey: user_params(settings)} | ({} if ikey is None else {ikey: ip_params(settings)})
    async with pool.connection() as conn:
        wait = await throttle.admit(conn, keys)
        if wait > 0:
            log.info("login throttled for %s from %s (%.0f s)", body.tenant, ip, wait)
            raise ApiError(429, "too_many_attempts", "too many failed logins; try again later",
                           headers={"Retry-After": throttle.retry_after_header(wait)})  # fmt: skip
        user = await users.for_login(conn, body.tenant, body.username)
        tenant_known = await users.tenant_exists(conn, body.tenant)
    passwords = request.app[PASSWORDS]
    stored = None if user is None else user.password_hash
    reason = _failure_reason(user, await passwords.verify_async(stored, body.password))
    if reason != "ok" or user is None:
        async with pool.connection() as conn, conn.transaction():
            await audit.write(conn, audit.Entry(
                "login_failed", body.tenant if tenant_known else None,
                None if user is None else user.id, body.username, ip, "user",
                None if user is None else str(user.id),
                {"reason": reason} | ({} if tenant_known else {"tenant": body.tenant}),
            ))  # fmt: skip
        raise ApiError(401, "invalid_credentials", "unknown tenant, user or password")
    assert stored is not None
    rehash = await passwords.hash_async(body.password) if passwords.needs_rehash(stored) else None
    async with pool.connection() as conn, conn.transaction():
        await throttle.succeeded(conn, ukey, ikey, settings.login_window_s)
        if rehash is not None:
            await users.store_rehash(conn, user.id, stored, rehash)
        await sessions.end_by_token(conn, request.cookies.get(sessions.COOKIE))
        await sessions.forget_expired(conn, settings.session_idle_s)
        token, session = await sessions.create(conn, user.id, settings.session_absolute_s)
        await audit.write(conn, audit.Entry(
            "login_succeeded", user.tenant_id, user.id, user.username, ip, "user", str(user.id),
            {"rehashed": rehash is not None},
        ))  # fmt: skip
    response = json_response(_session_doc(session))
    sessions.set_cookie(response, token, max_age=settings.session_absolute_s,
                        secure=settings.cookie_secure)  # fmt: skip
    return response


def _session(request: web.Request) -> sessions.Session:
    if SESSION not in request:
        raise ApiError(401, "unauthorized", "this route needs a login session")
    return request[SESSION]


@routes("GET", "/v1/auth/me", roles=PEOPLE, scope=Scope.SELF,
        summary="Who is logged in, with the session's CSRF token", response=SessionDoc)  # fmt: skip
async def me(request: web.Request) -> web.Response:
    return json_response(_session_doc(_session(request)))


@routes("POST", "/v1/auth/logout", roles=PEOPLE, scope=Scope.SELF,
        summary="End the session", response=LoggedOut)  # fmt: skip
async def logout(request: web.Request) -> web.Response:
    session, caller = _session(request), request[CALLER]
    async with request.app[POOL].connection() as conn, conn.transaction():
        await sessions.end(conn, session.id)
        await audit.write(conn, audit.Entry.by(caller, request[CLIENT_IP], "logout", "session"))
    response = json_response({"logged_out": True})
    sessions.clear_cookie(response, secure=request.app[SETTINGS].cookie_secure)
    return response
