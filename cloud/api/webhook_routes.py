"""``/v1/webhooks``: a tenant's webhook endpoints, their secrets, the delivery log, replays.

For admins and the lending core's integration key. The work is done by
:mod:`cloud.webhooks.admin` (the same functions as ``vgr cloud webhooks …``)
after a check, in the same transaction, that the endpoint, delivery or
message belongs to the caller's tenant (another tenant's is ``404``, like
one that does not exist). Every change writes an audit row.

- URLs pass the SSRF guard (:func:`cloud.webhooks.ssrf.check_url`: http(s)
  only, no credentials, no private or loopback literal address; names are
  checked again at each connection). ``[webhooks] allow_private_targets``
  lifts it, as for the dispatcher.
- A secret is shown once: when the endpoint is created and when it is
  rotated. After a rotation the previous secrets keep signing for
  ``[webhooks] secret_overlap_s``, so receivers can switch without a gap.
- Message payloads are not served here: they can carry positions, which are
  served only by audited routes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Final, Literal, get_args

import msgspec
import psycopg
from aiohttp import web

from cloud.api import audit
from cloud.api.commands import SyncPool
from cloud.api.cursor import PageError, decode_cursor
from cloud.api.errors import ApiError, json_response
from cloud.api.pages import Page, PageQuery, Text, id_key, page_of
from cloud.api.params import json_body, path_id, query_params
from cloud.api.policy import Caller, Routes
from cloud.api.state import CALLER, CLIENT_IP, POOL, SYNC_POOL
from cloud.webhooks import admin
from cloud.webhooks.config import WebhookSettings
from cloud.webhooks.events import ENDPOINT_ID, EVENT_TYPES, MESSAGE_ID, WebhookError
from cloud.webhooks.ssrf import TargetRefused, check_url

WEBHOOKS: Final = web.AppKey("api_webhook_settings", WebhookSettings)
routes = Routes()
ROLES = frozenset({"admin", "integration"})
Conn = psycopg.Connection[Any]
EventType = Literal[
    "alert.opened", "alert.resolved", "vehicle.risk_changed", "device.offline",
    "device.unauthorized",
]  # fmt: skip
if set(get_args(EventType)) != set(EVENT_TYPES):  # pragma: no cover - caught at import
    msg = "webhook_routes.EventType is out of date with cloud.webhooks.events.EVENT_TYPES"
    raise RuntimeError(msg)
Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000, pattern=r"^https?://[^\s\x00]+$")]
EventTypes = Annotated[list[EventType], msgspec.Meta(max_length=len(EVENT_TYPES))]
DeliveryState = Literal["pending", "failed", "succeeded", "dead"]
EndpointId = Annotated[str, msgspec.Meta(pattern=ENDPOINT_ID.pattern)]


class EndpointItem(msgspec.Struct):
    id: str
    url: str
    description: str
    event_types: list[str]  # empty: every event type
    enabled: bool
    disabled_reason: str | None
    live_secrets: int  # secrets that still sign (more than one during a rotation's overlap)
    created_at: datetime


class CreateEndpoint(msgspec.Struct, forbid_unknown_fields=True):
    url: Url
    description: Text = ""
    event_types: EventTypes = []


class CreatedEndpoint(msgspec.Struct):
    endpoint: EndpointItem
    secret: str  # shown once: store it now


class PatchEndpoint(msgspec.Struct, forbid_unknown_fields=True):
    url: Url | msgspec.UnsetType = msgspec.UNSET
    description: Text | msgspec.UnsetType = msgspec.UNSET
    event_types: EventTypes | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    disabled_reason: Text | msgspec.UnsetType = msgspec.UNSET  # with enabled=false


class RotatedSecret(msgspec.Struct):
    endpoint_id: str
    secret: str  # shown once: store it now
    previous_valid_until: datetime  # the older secrets stop signing then


class DeletedEndpoint(msgspec.Struct):
    id: str
    deleted: bool


class DeliveryQuery(PageQuery, forbid_unknown_fields=True, kw_only=True):
    endpoint: EndpointId | None = None
    state: DeliveryState | None = None  # dead: the dead letters


class DeliveryItem(msgspec.Struct):
    id: int
    message_id: str
    endpoint_id: str
    event_type: str
    series: int  # 2, 3…: manual replays
    attempt_no: int
    state: DeliveryState
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class AttemptItem(msgspec.Struct):
    attempt_no: int
    started_at: datetime
    latency_ms: float | None
    outcome: str
    status: int | None
    error: str | None
    response_body: str | None


class DeliveryDetail(msgspec.Struct):
    delivery: DeliveryItem
    attempts: list[AttemptItem]


class ReplayRequest(msgspec.Struct, forbid_unknown_fields=True):
    endpoint_id: EndpointId | None = None  # default: every endpoint that had the message


class ReplayItem(msgspec.Struct):
    endpoint_id: str
    series: int | None  # null: skipped, see reason
    reason: str


class Replayed(msgspec.Struct):
    message_id: str
    replays: list[ReplayItem]


# ---------------------------------------------------------------- helpers


def _endpoint_id(request: web.Request) -> str:
    text = request.match_info["id"]
    if not ENDPOINT_ID.match(text):
        raise ApiError(404, "endpoint_not_found", "no such endpoint")
    return text


def _url(url: str, settings: WebhookSettings) -> str:
    try:
        check_url(url, allow_private=settings.allow_private_targets)
    except TargetRefused as exc:
        raise ApiError(400, "invalid_url", f"this URL cannot receive webhooks: {exc}") from None
    return url


def _webhook_error(exc: WebhookError) -> ApiError:
    if exc.code in ("unknown_endpoint", "bad_endpoint_id", "wrong_tenant"):
        return ApiError(404, "endpoint_not_found", "no such endpoint")
    if exc.code in ("unknown_message", "bad_message_id"):
        return ApiError(404, "message_not_found", "no such message")
    if exc.code == "bad_url":
        return ApiError(400, "invalid_url", exc.message)
    if exc.code == "no_endpoints":
        return ApiError(409, "never_delivered", exc.message)
    return ApiError(400, "invalid_request", exc.message)


@contextmanager
def _admin_errors() -> Iterator[None]:
    try:
        yield
    except WebhookError as exc:
        raise _webhook_error(exc) from None


def _endpoint(conn: Conn, caller: Caller, endpoint_id: str) -> EndpointItem:
    found = admin.list_endpoints(conn, tenant_id=caller.tenant_id, endpoint_id=endpoint_id)
    if not found:
        raise ApiError(404, "endpoint_not_found", "no such endpoint")
    return _item(found[0])


def _item(e: admin.Endpoint) -> EndpointItem:
    return EndpointItem(e.id, e.url, e.description, list(e.event_types), e.enabled,
                        e.disabled_reason, e.live_secrets, e.created_at)  # fmt: skip


def _lock(conn: Conn, caller: Caller, endpoint_id: str) -> None:
    row = conn.execute(
        "SELECT 1 FROM webhook_endpoints WHERE id = %s AND tenant_id = %s FOR UPDATE",
        (endpoint_id, caller.tenant_id),
    ).fetchone()
    if row is None:
        raise ApiError(404, "endpoint_not_found", "no such endpoint")


def _write(
    conn: Conn, caller: Caller, ip: str | None, action: str, oid: str, **detail: Any
) -> None:
    audit.write_sync(conn, audit.Entry.by(caller, ip, action, "webhook_endpoint", oid, **detail))


async def _run(request: web.Request, work: Any, *args: Any) -> Any:
    """``work(conn, caller, ip, *args)`` in a worker thread, in one transaction."""
    pool: SyncPool = request.app[SYNC_POOL]
    caller, ip = request[CALLER], request[CLIENT_IP]

    def sync() -> Any:
        with pool.connection() as conn, conn.transaction(), _admin_errors():
            return work(conn, caller, ip, *args)

    return await asyncio.to_thread(sync)


# ---------------------------------------------------------------- endpoints


@routes("GET", "/v1/webhooks/endpoints", roles=ROLES,
        summary="The tenant's webhook endpoints, oldest first",
        query=PageQuery, response=Page[EndpointItem])  # fmt: skip
async def list_endpoints(request: web.Request) -> web.Response:
    query = query_params(request, PageQuery)
    after = _endpoint_key(query.cursor)

    def work(conn: Conn, caller: Caller, _ip: str | None) -> Page[EndpointItem]:
        found = admin.list_endpoints(conn, tenant_id=caller.tenant_id, after=after,
                                     limit=query.limit + 1)  # fmt: skip
        return page_of("endpoints", [_item(e) for e in found], query.limit,
                       lambda e: (e.created_at.isoformat(), e.id))  # fmt: skip

    return json_response(await _run(request, work))


def _endpoint_key(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    text, endpoint_id = decode_cursor("endpoints", cursor, (str, str))
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        raise PageError("invalid_cursor", "cursor is not one this list handed out") from None
    if when.tzinfo is None:
        raise PageError("invalid_cursor", "cursor is not one this list handed out")
    return when, str(endpoint_id)


@routes(
    "POST", "/v1/webhooks/endpoints", roles=ROLES,
    summary="Add an endpoint; its signing secret is in the answer, once",
    body=CreateEndpoint, response=CreatedEndpoint, status=201, errors=("invalid_url",),
)  # fmt: skip
async def create_endpoint(request: web.Request) -> web.Response:
    body = await json_body(request, CreateEndpoint)
    settings = request.app[WEBHOOKS]
    _url(body.url, settings)

    def work(conn: Conn, caller: Caller, ip: str | None) -> CreatedEndpoint:
        endpoint_id, secret = admin.add_endpoint(
            conn, caller.tenant_id, body.url, event_types=body.event_types,
            description=body.description, allow_private=settings.allow_private_targets,
        )  # fmt: skip
        _write(conn, caller, ip, "webhook_endpoint_created", endpoint_id, url=body.url,
               event_types=body.event_types)  # fmt: skip
        return CreatedEndpoint(_endpoint(conn, caller, endpoint_id), secret)

    return json_response(await _run(request, work), status=201)


@routes("GET", "/v1/webhooks/endpoints/{id}", roles=ROLES, summary="One webhook endpoint",
        response=EndpointItem, errors=("endpoint_not_found",))  # fmt: skip
async def show_endpoint(request: web.Request) -> web.Response:
    endpoint_id = _endpoint_id(request)

    def work(conn: Conn, caller: Caller, _ip: str | None) -> EndpointItem:
        return _endpoint(conn, caller, endpoint_id)

    return json_response(await _run(request, work))


@routes(
    "PATCH", "/v1/webhooks/endpoints/{id}", roles=ROLES,
    summary="Change an endpoint's URL, description, event types, or enable/disable it",
    body=PatchEndpoint, response=EndpointItem, errors=("endpoint_not_found", "invalid_url"),
)  # fmt: skip
async def patch_endpoint(request: web.Request) -> web.Response:
    endpoint_id = _endpoint_id(request)
    body = await json_body(request, PatchEndpoint)
    settings = request.app[WEBHOOKS]
    if isinstance(body.url, str):
        _url(body.url, settings)

    def work(conn: Conn, caller: Caller, ip: str | None) -> EndpointItem:
        _lock(conn, caller, endpoint_id)
        changed: dict[str, Any] = {}
        for column in ("url", "description", "event_types"):
            value = getattr(body, column)
            if value is msgspec.UNSET:
                continue
            if column == "event_types":
                value = sorted(set(value))
            conn.execute(f"UPDATE webhook_endpoints SET {column} = %s WHERE id = %s",  # noqa: S608
                         (value, endpoint_id))  # fmt: skip
            changed[column] = value
        if isinstance(body.enabled, bool):
            reason = body.disabled_reason if isinstance(body.disabled_reason, str) else ""
            who = f"disabled by {caller.username} through the API"
            admin.set_enabled(conn, endpoint_id, enabled=body.enabled,
                              reason=reason or who)  # fmt: skip
            changed["enabled"] = body.enabled
        _write(conn, caller, ip, "webhook_endpoint_changed", endpoint_id, **changed)
        return _endpoint(conn, caller, endpoint_id)

    return json_response(await _run(request, work))


@routes(
    "DELETE", "/v1/webhooks/endpoints/{id}", roles=ROLES,
    summary="Delete an endpoint with its secrets and delivery log",
    response=DeletedEndpoint, errors=("endpoint_not_found",),
)  # fmt: skip
async def delete_endpoint(request: web.Request) -> web.Response:
    endpoint_id = _endpoint_id(request)

    def work(conn: Conn, caller: Caller, ip: str | None) -> DeletedEndpoint:
        _lock(conn, caller, endpoint_id)
        conn.execute("DELETE FROM webhook_endpoints WHERE id = %s", (endpoint_id,))
        _write(conn, caller, ip, "webhook_endpoint_deleted", endpoint_id)
        return DeletedEndpoint(endpoint_id, True)

    return json_response(await _run(request, work))


@routes(
    "POST", "/v1/webhooks/endpoints/{id}/rotate-secret", roles=ROLES,
    summary="A new signing secret (shown once); the old ones sign on for the overlap",
    response=RotatedSecret, errors=("endpoint_not_found",),
)  # fmt: skip
async def rotate_secret(request: web.Request) -> web.Response:
    endpoint_id = _endpoint_id(request)
    overlap = request.app[WEBHOOKS].secret_overlap_s

    def work(conn: Conn, caller: Caller, ip: str | None) -> RotatedSecret:
        _lock(conn, caller, endpoint_id)
        secret, until = admin.rotate_secret(conn, endpoint_id, overlap_s=overlap)
        _write(conn, caller, ip, "webhook_secret_rotated", endpoint_id,
               previous_valid_until=until.isoformat())  # fmt: skip
        return RotatedSecret(endpoint_id, secret, until)

    return json_response(await _run(request, work))


# ---------------------------------------------------------------- deliveries


_DELIVERY_COLUMNS = (
    "d.id, d.message_id, d.endpoint_id, m.event_type, d.series, d.attempt_no, d.state, "
    "d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.updated_at"
)


@routes(
    "GET", "/v1/webhooks/deliveries", roles=ROLES,
    summary="The delivery log, newest first (state=dead: the dead letters)",
    query=DeliveryQuery, response=Page[DeliveryItem],
)  # fmt: skip
async def list_deliveries(request: web.Request) -> web.Response:
    caller = request[CALLER]
    query = query_params(request, DeliveryQuery)
    after = id_key("deliveries", query.cursor)
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d "  # noqa: S608
            "JOIN webhook_messages m ON m.id = d.message_id WHERE d.tenant_id = %(tenant)s "
            "AND (%(endpoint)s::text IS NULL OR d.endpoint_id = %(endpoint)s) "
            "AND (%(state)s::text IS NULL OR d.state = %(state)s) "
            "AND (%(after)s::bigint IS NULL OR d.id < %(after)s) "
            "ORDER BY d.id DESC LIMIT %(limit)s",
            {"tenant": caller.tenant_id, "endpoint": query.endpoint, "state": query.state,
             "after": after, "limit": query.limit + 1},
        )  # fmt: skip
        rows = [DeliveryItem(*r) for r in await cur.fetchall()]
    return json_response(page_of("deliveries", rows, query.limit, lambda d: (d.id,)))


@routes(
    "GET", "/v1/webhooks/deliveries/{id}", roles=ROLES,
    summary="One delivery with every attempt (status, latency, error, response body)",
    response=DeliveryDetail, errors=("delivery_not_found",),
)  # fmt: skip
async def show_delivery(request: web.Request) -> web.Response:
    delivery_id = path_id(request, "id", "delivery_not_found")

    def work(conn: Conn, caller: Caller, _ip: str | None) -> DeliveryDetail:
        row = conn.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d "  # noqa: S608
            "JOIN webhook_messages m ON m.id = d.message_id WHERE d.id = %s AND d.tenant_id = %s",
            (delivery_id, caller.tenant_id),
        ).fetchone()
        if row is None:
            raise ApiError(404, "delivery_not_found", "no such delivery")
        attempts = [AttemptItem(*a) for a in admin.attempts(conn, delivery_id)]
        return DeliveryDetail(DeliveryItem(*row), attempts)

    return json_response(await _run(request, work))


@routes(
    "POST", "/v1/webhooks/messages/{id}/replay", roles=ROLES,
    summary="Send a message again, with the same webhook-id (a new delivery series)",
    body=ReplayRequest, response=Replayed,
    errors=("message_not_found", "endpoint_not_found", "never_delivered"),
)  # fmt: skip
async def replay(request: web.Request) -> web.Response:
    message_id = request.match_info["id"]
    if not MESSAGE_ID.match(message_id):
        raise ApiError(404, "message_not_found", "no such message")
    body = await json_body(request, ReplayRequest) if request.body_exists else ReplayRequest()

    def work(conn: Conn, caller: Caller, ip: str | None) -> Replayed:
        row = conn.execute("SELECT 1 FROM webhook_messages WHERE id = %s AND tenant_id = %s",
                           (message_id, caller.tenant_id)).fetchone()  # fmt: skip
        if row is None:
            raise ApiError(404, "message_not_found", "no such message")
        if body.endpoint_id is not None:
            _lock(conn, caller, body.endpoint_id)
        done = admin.replay(conn, message_id, endpoint_id=body.endpoint_id)
        items = [ReplayItem(r.endpoint_id, r.series, r.reason) for r in done]
        audit.write_sync(conn, audit.Entry.by(
            caller, ip, "webhook_message_replayed", "webhook_message", message_id,
            replays=[{"endpoint_id": r.endpoint_id, "series": r.series} for r in items],
        ))  # fmt: skip
        return Replayed(message_id, items)

    return json_response(await _run(request, work))
