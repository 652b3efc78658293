"""Authentication, CSRF and role checks for every route, from the route's declared policy.

Order: the route's policy (none: 500, fail closed) → public routes pass →
credentials (``Authorization: Bearer`` API key, else the ``vgr_session``
cookie; none or invalid: ``401 unauthorized``) → CSRF for cookie-authenticated
unsafe methods (``403 csrf_failed``) → the caller's role (``403 forbidden``).
A request with an Authorization header is judged by it alone, never by a
cookie it may also carry.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web

from cloud.api import sessions
from cloud.api.clientip import client_ip
from cloud.api.errors import ApiError
from cloud.api.keys import caller_by_key
from cloud.api.policy import Caller, Scope, needs_csrf
from cloud.api.state import (
    CALLER,
    CLIENT_IP,
    POLICIES,
    POOL,
    SESSION,
    SETTINGS,
    TRUSTED_PROXIES,
)

log = logging.getLogger(__name__)
CSRF_HEADER = "X-CSRF-Token"


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


async def _authenticate(request: web.Request) -> Caller:
    auth = request.headers.get("Authorization")
    if auth is not None:
        if not auth.startswith("Bearer "):
            raise _unauthorized("send Authorization: Bearer <integration key>")
        async with request.app[POOL].connection() as conn:
            caller = await caller_by_key(conn, auth.removeprefix("Bearer ").strip())
        if caller is None:
            raise _unauthorized("unknown or disabled key")
        return caller
    token = request.cookies.get(sessions.COOKIE)
    if token is None:
        raise _unauthorized("log in first (POST /v1/auth/login) or send an API key")
    async with request.app[POOL].connection() as conn:
        session = await sessions.resume(conn, token, request.app[SETTINGS].session_idle_s)
    if session is None:
        raise _unauthorized("the session has ended; log in again")
    request[SESSION] = session
    return Caller(session.user_id, session.tenant_id, session.username, session.role, "session")


def _check_csrf(request: web.Request) -> None:
    presented = request.headers.get(CSRF_HEADER, "")
    expected = request[SESSION].csrf_token
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise ApiError(403, "csrf_failed", f"send the session's CSRF token in {CSRF_HEADER}")


@web.middleware
async def access_control(request: web.Request, handler: Any) -> web.StreamResponse:
    proxies = request.app[TRUSTED_PROXIES]
    request[CLIENT_IP] = client_ip(request.remote, request.headers.get("X-Forwarded-For"), proxies)
    if request.match_info.http_exception is not None:  # 404 / 405: nothing to protect
        response: web.StreamResponse = await handler(request)
        return response
    policy = request.app[POLICIES].get(request.match_info.route)
    if policy is None:
        log.error("route %s %s has no access policy; refused", request.method, request.path)
        raise ApiError(500, "internal", "this route has no access policy")
    if policy.scope is not Scope.PUBLIC:
        caller = await _authenticate(request)
        if needs_csrf(request.method, caller.via):
            _check_csrf(request)
        if not policy.allows(caller.role):
            raise ApiError(403, "forbidden", f"role {caller.role!r} may not use this route")
        request[CALLER] = caller
    return await handler(request)  # type: ignore[no-any-return]
