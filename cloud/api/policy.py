"""The access policy as data: every route declares who may call it and its scope.

Pure code (no I/O). A route module writes::

    routes = Routes()

    @routes("GET", "/v1/alerts", roles={"admin", "analyst", "recovery"})
    async def list_alerts(request: web.Request) -> web.Response: ...

and :func:`cloud.api.app.build_app` installs every table, recording each
route's :class:`RoutePolicy`; the auth middleware refuses a request whose
caller's role is not in it (``403 forbidden``) and refuses, fail-closed, any
route that has no policy at all. A route that needs no caller must say so
with ``scope=Scope.PUBLIC`` (and then declares no roles).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from aiohttp import web

PEOPLE = frozenset({"admin", "analyst", "recovery", "installer"})
ROLES = PEOPLE | {"integration"}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
METHODS = UNSAFE_METHODS | {"GET"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Scope(StrEnum):
    """What a route's data belongs to; handlers filter their queries accordingly."""

    PUBLIC = "public"  # no caller (login)
    SELF = "self"  # the caller's own session and user
    TENANT = "tenant"  # the caller's tenant; recovery agents only their assigned vehicles


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: a person with a session, or an integration with an API key."""

    user_id: int
    tenant_id: str
    username: str
    role: str
    via: Literal["session", "key"] = "key"


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    roles: frozenset[str]
    scope: Scope

    def __post_init__(self) -> None:
        unknown = self.roles - ROLES
        if unknown:
            msg = f"unknown roles {sorted(unknown)}; roles are {sorted(ROLES)}"
            raise ValueError(msg)
        if (self.scope is Scope.PUBLIC) == bool(self.roles):
            msg = "a public route declares no roles; every other route declares at least one"
            raise ValueError(msg)

    def allows(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True, slots=True)
class RouteDoc:
    """What the OpenAPI document says of a route; the same types validate the request.

    ``query`` and ``body`` are msgspec Structs: a handler reads them with
    :func:`cloud.api.params.query_params` and :func:`cloud.api.params.json_body`,
    so what is documented is what is enforced. ``response`` is the 2xx body's
    type (a Struct, a list of one, or None for a free-form JSON object).
    """

    summary: str = ""
    query: type | None = None
    body: type | None = None
    response: object = None
    status: int = 200
    errors: tuple[str, ...] = ()  # stable error codes this route may answer with


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str
    path: str
    handler: Handler
    policy: RoutePolicy
    doc: RouteDoc = field(default_factory=RouteDoc)


@dataclass(slots=True)
class Routes:
    """One module's routes with their policies (like aiohttp's RouteTableDef)."""

    specs: list[RouteSpec] = field(default_factory=list)

    def __call__(
        self,
        method: str,
        path: str,
        *,
        roles: Iterable[str] = (),
        scope: Scope = Scope.TENANT,
        summary: str = "",
        query: type | None = None,
        body: type | None = None,
        response: object = None,
        status: int = 200,
        errors: Iterable[str] = (),
    ) -> Callable[[Handler], Handler]:
        if method not in METHODS:
            msg = f"method {method!r} is not one of {sorted(METHODS)}"
            raise ValueError(msg)
        policy = RoutePolicy(frozenset(roles), scope)

        def register(handler: Handler) -> Handler:
            first_line = (handler.__doc__ or "").strip().split("\n", 1)[0]
            doc = RouteDoc(summary or first_line, query, body, response, status, tuple(errors))
            self.specs.append(RouteSpec(method, path, handler, policy, doc))
            return handler

        return register


def needs_csrf(method: str, via: str) -> bool:
    """Cookie-authenticated unsafe methods need the CSRF header; API keys are exempt."""
    return via == "session" and method in UNSAFE_METHODS


def role_table(specs: Iterable[RouteSpec]) -> list[tuple[str, str, tuple[str, ...], str]]:
    """(method, path, sorted roles, scope) per route: the roles table of docs/api.md."""
    return sorted((s.method, s.path, tuple(sorted(s.policy.roles)), s.policy.scope.value)
                  for s in specs)  # fmt: skip
