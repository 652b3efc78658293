"""The provisioning API: installers register, bind, credential, rotate and revoke devices.

``Authorization: Bearer <installer key>`` on every ``/v1/provision/`` route;
every action is scoped to the installer's tenant, and a device of another
tenant answers 404 exactly like a missing one. Errors are JSON
``{"error": {"code", "message", "field"?}}`` with stable codes; bad input is
a 4xx, never a 500.

Issuing, rotating and revoking change the database and the broker together:
inside the transaction the broker's files are rewritten from the database
(which sees the uncommitted change) and the broker reloaded, and only then is
the transaction committed. If the broker step fails, the transaction rolls
back and the answer is 503 ``broker_unavailable``: nothing changed, and the
files are rewritten from the database at the next sync. The advisory lock
taken by the sync is held until the commit, so no other sync can write an
older snapshot in between.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import msgspec
import psycopg
from aiohttp import web
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from cloud.registry import issue, model, schema, store
from cloud.registry.broker_auth import BrokerFiles, BrokerSyncError, sync_broker
from protocols.errors import RegionError
from protocols.policy import Area, Policy
from protocols.policy_repair import repair_policy
from protocols.regions import compile_policy
from protocols.tokens import key_id, public_key_to_pem

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # a signed policy must stay under 4 MB of JWS
_T = TypeVar("_T")
Pool = AsyncConnectionPool[psycopg.AsyncConnection[Any]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    """Where devices connect, as told to the installer's tool with the credentials."""

    host: str
    port: int | None = None  # plain MQTT, when offered
    tls_port: int | None = None
    ca_pem: str | None = None  # CA that signed the broker's certificate, if private


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    """Everything the application needs, resolved (keys loaded, secrets read)."""

    dsn: str
    signer: issue.Signer
    endpoint: MqttEndpoint
    broker: BrokerFiles
    clock: Callable[[], datetime] = _utcnow
    pool_min: int = 1
    pool_max: int = 4
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    sync_on_start: bool = True


SETTINGS: Final = web.AppKey("registry_settings", RegistrySettings)
POOL: Final = web.AppKey[Pool]("registry_pool")
SYNC_LOCK: Final = web.AppKey("registry_sync_lock", asyncio.Lock)


# ---------------------------------------------------------------- errors


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    body = schema.ErrorOut(error=schema.ErrorBody(code=code, message=message, field=field))
    resp = _json(status, body)
    if status == web.HTTPUnauthorized.status_code:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="vgr-provision"'
    return resp


_REGISTRY_STATUS: dict[type[model.RegistryError], int] = {
    model.NotFoundError: 404,
    model.ConflictError: 409,
    model.InvalidError: 422,
}
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a JSON error with a stable code; only our own bugs are 500."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.field)
    except model.RegistryError as exc:
        status = _REGISTRY_STATUS.get(type(exc), 409)
        return error_response(status, exc.code, exc.message, exc.field)
    except BrokerSyncError as exc:
        log.warning("broker sync failed: %s", exc)
        message = "the MQTT broker could not be updated, so nothing was changed; try again"
        return error_response(503, "broker_unavailable", message)
    except psycopg.errors.UniqueViolation:
        message = "another request changed this device at the same time; repeat the request"
        return error_response(409, "concurrent_update", message)
    except (psycopg.OperationalError, PoolTimeout) as exc:
        log.warning("database unavailable: %s", exc)
        return error_response(503, "database_unavailable", "the registry database is unavailable")
    except web.HTTPException as exc:
        code = _HTTP_CODES.get(exc.status, "http_error")
        resp = error_response(exc.status, code, exc.reason)
        if "Allow" in exc.headers:
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error; it has been logged")


def _json(status: int, body: object) -> web.Response:
    return web.Response(
        status=status, body=msgspec.json.encode(body), content_type="application/json"
    )


# ---------------------------------------------------------------- request helpers


async def _installer(request: web.Request, conn: store.Conn) -> model.Installer:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <installer key>")
    installer = await store.installer_by_key(conn, key)
    if installer is None:
        log.warning("refused an installer key from %s", request.remote)
        raise ApiError(401, "unauthorized", "unknown or disabled installer key")
    return installer


class _Empty(msgspec.Struct, forbid_unknown_fields=True):
    """The body of actions that take no arguments: nothing, or ``{}``."""


async def _body(request: web.Request, kind: type[_T]) -> _T:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send Content-Type: application/json")
    raw = await request.read()  # aiohttp enforces client_max_size (413)
    try:
        value = msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise ApiError(
            422, "validation_failed", str(exc), field=schema.field_of(str(exc))
        ) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {exc}") from None
    nul = schema.nul_field(msgspec.to_builtins(value))
    if nul is not None:
        raise ApiError(422, "validation_failed", "text must not contain NUL characters", field=nul)
    return value


async def _no_body(request: web.Request) -> None:
    if request.body_exists:
        await _body(request, _Empty)


async def _check_areas(
    settings: RegistrySettings, tenant: str, imei: str, req: schema.BindRequest
) -> None:
    """Refuse areas the tracker could not use (422 naming the area), before storing them."""
    if req.allowed is None and req.forbidden is None:
        return
    draft = Policy(
        policy_id="draft",
        version=1,
        tenant=tenant,
        device_id=imei,
        issued_at=settings.clock(),
        allowed=req.allowed or [],
        forbidden=req.forbidden or [],
    )
    try:
        await asyncio.to_thread(lambda: compile_policy(repair_policy(draft).policy))
    except RegionError as exc:
        where = _area_path(exc, req.allowed or [], req.forbidden or [])
        raise ApiError(422, "invalid_area", str(exc), field=where) from None


def _area_path(exc: RegionError, allowed: list[Area], forbidden: list[Area]) -> str:
    """``allowed[2]`` for the area a RegionError names (its message starts with the kind)."""
    message = str(exc.args[0]) if exc.args else ""
    kind, areas = (
        ("forbidden", forbidden) if message.startswith("forbidden") else ("allowed", allowed)
    )
    index = [i for i, area in enumerate(areas) if area.id == exc.field]
    return f"{kind}[{index[-1]}]" if index else kind


async def _sync(app: web.Application, conn: store.Conn) -> None:
    async with app[SYNC_LOCK]:
        await sync_broker(conn, app[SETTINGS].broker)


# ---------------------------------------------------------------- handlers


async def get_device(request: web.Request) -> web.Response:
    async with request.app[POOL].connection() as conn:
        who = await _installer(request, conn)
        device = await store.get_device(conn, who.tenant_id, request.match_info["imei"])
    return _json(200, schema.DeviceOut.of(device))


async def register_device(request: web.Request) -> web.Response:
    async with request.app[POOL].connection() as conn:
        who = await _installer(request, conn)
        req = await _body(request, schema.RegisterRequest)
        device, created = await store.register_device(conn, who.tenant_id, req.imei, req.kind)
    if created:
        log.info(
            "device %s (%s) registered by %s/%s", device.id, req.kind, who.tenant_id, who.username
        )
    return _json(201 if created else 200, schema.DeviceOut.of(device))


async def bind_device(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    imei = request.match_info["imei"]
    async with request.app[POOL].connection() as conn:
        who = await _installer(request, conn)
        req = await _body(request, schema.BindRequest)
        await store.get_device(conn, who.tenant_id, imei)  # 404 before any geometry work
        await _check_areas(settings, who.tenant_id, imei, req)
        device = await store.bind_device(conn, who.tenant_id, imei, req.binding())
    log.info(
        "device %s bound to %s / %s by %s/%s",
        imei,
        req.vin,
        req.contract_id,
        who.tenant_id,
        who.username,
    )
    return _json(200, schema.DeviceOut.of(device))


async def _credentials(request: web.Request, *, rotate: bool) -> web.Response:
    settings = request.app[SETTINGS]
    imei = request.match_info["imei"]
    async with request.app[POOL].connection() as conn:
        who = await _installer(request, conn)
        await _no_body(request)
        action = issue.rotate if rotate else issue.issue
        async with conn.transaction():  # committed only once the broker has the new password
            issued = await action(conn, settings.signer, who.tenant_id, imei, now=settings.clock())
            await _sync(request.app, conn)
    verb = "rotated" if rotate else "issued"
    log.info(
        "credentials %s for %s by %s/%s (token %s, policy %s)",
        verb,
        imei,
        who.tenant_id,
        who.username,
        issued.token_id,
        issued.policy.id,
    )
    public = settings.signer.private_key.public_key()
    ep = settings.endpoint
    body = schema.CredentialsOut(
        device_id=imei,
        mqtt=schema.MqttOut(
            username=imei,
            password=issued.mqtt_password,
            client_id=imei,
            host=ep.host,
            port=ep.port,
            tls_port=ep.tls_port,
        ),
        token=issued.token,
        token_id=issued.token_id,
        token_expires_at=issued.token_expires_at,
        policy=issued.policy.jws,
        policy_id=issued.policy.id,
        policy_version=issued.policy.version,
        platform_public_key_pem=public_key_to_pem(public).decode(),
        platform_key_id=key_id(public),
        ca_pem=ep.ca_pem,
    )
    resp = _json(200, body)
    resp.headers["Cache-Control"] = "no-store"  # it holds a password
    return resp


async def issue_credentials(request: web.Request) -> web.Response:
    return await _credentials(request, rotate=False)


async def rotate_credentials(request: web.Request) -> web.Response:
    return await _credentials(request, rotate=True)


async def revoke_device(request: web.Request) -> web.Response:
    imei = request.match_info["imei"]
    async with request.app[POOL].connection() as conn:
        who = await _installer(request, conn)
        await _no_body(request)
        async with conn.transaction():  # committed only once the broker has dropped it
            device = await store.revoke_device(conn, who.tenant_id, imei)
            await _sync(request.app, conn)
    log.info("device %s revoked by %s/%s", imei, who.tenant_id, who.username)
    return _json(200, schema.DeviceOut.of(device))


async def health(_request: web.Request) -> web.Response:
    return _json(200, {"ok": True})


# ---------------------------------------------------------------- application


async def _database(app: web.Application) -> AsyncIterator[None]:
    """The connection pool for the app's lifetime; the broker files synced at start."""
    settings = app[SETTINGS]
    pool: Pool = AsyncConnectionPool(
        settings.dsn,
        min_size=settings.pool_min,
        max_size=settings.pool_max,
        kwargs={"autocommit": True},
        open=False,
        name="registry",
    )
    await pool.open(wait=True, timeout=30.0)
    app[POOL] = pool
    try:
        if settings.sync_on_start:
            try:
                async with pool.connection() as conn:
                    await _sync(app, conn)
            except BrokerSyncError as exc:  # the next credentials request retries
                log.warning("broker files not synced at start: %s", exc)
        yield
    finally:
        await pool.close()


def build_app(settings: RegistrySettings) -> web.Application:
    """The provisioning application; the pool opens when the app starts."""
    app = web.Application(middlewares=[json_errors], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[SYNC_LOCK] = asyncio.Lock()
    app.cleanup_ctx.append(_database)
    devices = "/v1/provision/devices"
    app.router.add_get("/healthz", health)
    app.router.add_post(devices, register_device)
    app.router.add_get(devices + "/{imei}", get_device)
    app.router.add_post(devices + "/{imei}/bind", bind_device)
    app.router.add_post(devices + "/{imei}/credentials", issue_credentials)
    app.router.add_post(devices + "/{imei}/rotate", rotate_credentials)
    app.router.add_post(devices + "/{imei}/revoke", revoke_device)
    return app
