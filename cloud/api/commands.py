"""Commands to a car's trackers: ``POST /v1/vehicles/{id}/chase`` and the command log.

Chase mode is a signed ``chase_mode`` command (Ed25519, the platform key) to
every tracker of the car, built, recorded and published by
:mod:`cloud.recovery.commands` exactly as ``vgr cloud recovery case chase``
does: the rows and the ``command_sent`` audit row are committed first, then
the commands are published over MQTT (QoS 1, the broker's PUBACK awaited)
and each outcome noted on its row. The answer says which tracker got it.

The API publishes through a :class:`Commander` made per request by the
factory given to :func:`cloud.api.app.build_app` (``vgr cloud api serve``
builds it from ``[mqtt]`` and ``registry.signing_key``); without one, routes
that must send a command answer ``503 commands_unavailable``. Publishing is
blocking (paho), so it runs in a worker thread on an autocommit connection of
the sync pool, so "published after the rows commit" holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import msgspec
import psycopg
from aiohttp import web
from psycopg_pool import ConnectionPool

from cloud.api import audit
from cloud.api.errors import ApiError, json_response
from cloud.api.pages import Page, PageQuery, id_key, page_of
from cloud.api.params import json_body, path_id, query_params
from cloud.api.policy import Caller, Routes
from cloud.api.scope import WORKED_STATUSES, vehicle_visible, vehicle_visible_sync
from cloud.api.state import CALLER, CLIENT_IP, POOL, SYNC_POOL
from cloud.recovery import casedb
from cloud.recovery import commands as cmds
from cloud.recovery.commands import Commander, IssuedCommand, PublishReport

if TYPE_CHECKING:
    from cloud.config import CloudConfig

CommanderFactory = Callable[[], AbstractContextManager[Commander]]
COMMANDER: Final = web.AppKey[CommanderFactory | None]("api_commander")
SyncPool = ConnectionPool[psycopg.Connection[Any]]

routes = Routes()
MAX_CHASE_MINUTES = 1440  # the agent caps chase mode at 24 h


class ChaseRequest(msgspec.Struct, forbid_unknown_fields=True):
    on: bool
    minutes: Annotated[
        int, msgspec.Meta(ge=1, le=MAX_CHASE_MINUTES, description="how long (chase on)")
    ] = 60
    note: Annotated[str, msgspec.Meta(max_length=500, pattern=r"^[^\x00]*$")] = ""


class SentCommand(msgspec.Struct):
    id: int
    device_id: str
    published: bool
    note: str  # the broker's answer, or why publishing failed


class ChaseResponse(msgspec.Struct):
    vehicle_id: int
    on: bool
    minutes: int | None
    case_id: int | None
    expires_at: datetime
    published: bool  # every command reached the broker
    commands: list[SentCommand]


CommandStatus = Literal["pending", "not_published", "published", "acknowledged", "refused",
                        "expired"]  # fmt: skip


class CommandItem(msgspec.Struct):
    id: int
    device_id: str
    case_id: int | None
    cmd: str
    args: dict[str, Any]
    status: CommandStatus
    issued_at: datetime
    expires_at: datetime
    issued_by: str
    published_at: datetime | None
    publish_note: str | None
    ack_ok: bool | None
    ack_reason: str | None
    ack_at: datetime | None


def command_status(
    published_at: datetime | None,
    publish_note: str | None,
    ack_ok: bool | None,
    expires_at: datetime,
    now: datetime,
) -> CommandStatus:
    """Where a command stands: the tracker's answer first, then the broker's, then time."""
    if ack_ok is not None:
        return "acknowledged" if ack_ok else "refused"
    if expires_at <= now:
        return "expired"
    if published_at is not None:
        return "published"
    return "not_published" if publish_note else "pending"


def commander_from_config(cfg: CloudConfig, *, timeout_s: float) -> CommanderFactory | None:
    """A factory of commanders from ``[mqtt]`` and ``registry.signing_key``; None without a key.

    A key that is configured but unreadable raises ``cloud.recovery.cli.UsageError``.
    """
    from cloud.recovery.cli import broker_settings, signing_key
    from cloud.recovery.mqtt import MqttCommandPublisher, client_id

    if cfg.registry.signing_key is None:
        return None
    key = signing_key(cfg)
    base = broker_settings(cfg, "api-cmd")
    prefix = cfg.mqtt.client_id_prefix

    @contextmanager
    def commander() -> Iterator[Commander]:
        settings = replace(base, client_id=client_id(prefix, "api-cmd", True))
        with MqttCommandPublisher(settings, timeout_s=timeout_s) as publisher:
            yield Commander(key, publisher)

    return commander


def commander_factory(request: web.Request) -> CommanderFactory:
    factory = request.app.get(COMMANDER)
    if factory is None:
        raise ApiError(503, "commands_unavailable",
                       "this API has no command signing key or broker configured")  # fmt: skip
    return factory


@contextmanager
def autocommit(pool: SyncPool) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection in autocommit mode: each ``conn.transaction()`` commits at its end."""
    with pool.connection() as conn:
        conn.autocommit = True
        try:
            yield conn
        finally:
            conn.autocommit = False


def sent(issued: list[IssuedCommand], report: PublishReport) -> list[SentCommand]:
    ok = dict(report.published)
    failed = dict(report.failed)
    return [SentCommand(c.id, c.device_id, c.device_id in ok,
                        ok.get(c.device_id) or failed.get(c.device_id, ""))
            for c in issued]  # fmt: skip


def _chase_sync(pool: SyncPool, factory: CommanderFactory, caller: Caller, ip: str | None,
                vehicle_id: int, body: ChaseRequest) -> ChaseResponse:  # fmt: skip
    duration_s = body.minutes * 60 if body.on else None
    with factory() as commander, autocommit(pool) as conn:
        with conn.transaction():
            if not vehicle_visible_sync(conn, caller, vehicle_id):
                raise ApiError(404, "vehicle_not_found", "no such vehicle")
            devices = cmds.active_devices(conn, caller.tenant_id, vehicle_id)
            if not devices:
                raise ApiError(
                    409, "no_devices", "the vehicle has no tracker that can be commanded"
                )
            row = conn.execute(
                "SELECT id FROM recovery_cases WHERE tenant_id = %s AND vehicle_id = %s "
                "AND status = ANY(%s) ORDER BY id DESC LIMIT 1",
                (caller.tenant_id, vehicle_id, list(WORKED_STATUSES)),
            ).fetchone()
            case_id = None if row is None else int(row[0])
            issued = cmds.issue(
                conn, commander.key, tenant_id=caller.tenant_id, case_id=case_id,
                device_ids=devices, cmd=cmds.CHASE, args=cmds.chase_args(duration_s),
                validity=cmds.chase_validity(duration_s), issued_by=caller.username,
                now=commander.clock(),
            )  # fmt: skip
            audit.write_sync(conn, audit.Entry.by(
                caller, ip, "command_sent", "vehicle", vehicle_id, cmd=cmds.CHASE,
                args=dict(issued[0].args), case_id=case_id, note=body.note,
                command_ids=[c.id for c in issued], device_ids=devices,
            ))  # fmt: skip
        with conn.transaction():
            report = cmds.publish_all(conn, commander.publisher, issued)
            if case_id is not None:
                casedb.append_history(conn, case_id, caller.username, "commands_published",
                                      None, None, report.detail())  # fmt: skip
    return ChaseResponse(
        vehicle_id=vehicle_id, on=body.on, minutes=body.minutes if body.on else None,
        case_id=case_id, expires_at=issued[0].expires_at, published=not report.failed,
        commands=sent(issued, report),
    )  # fmt: skip


@routes(
    "POST", "/v1/vehicles/{id}/chase", roles={"admin", "recovery"},
    summary="Switch chase mode on or off on every tracker of the car (signed commands)",
    body=ChaseRequest, response=ChaseResponse,
    errors=("vehicle_not_found", "no_devices", "commands_unavailable"),
)  # fmt: skip
async def chase(request: web.Request) -> web.Response:
    caller = request[CALLER]
    vehicle_id = path_id(request, "id", "vehicle_not_found")
    body = await json_body(request, ChaseRequest)
    async with request.app[POOL].connection() as conn:  # 404 before 503
        if not await vehicle_visible(conn, caller, vehicle_id):
            raise ApiError(404, "vehicle_not_found", "no such vehicle")
    factory = commander_factory(request)
    doc = await asyncio.to_thread(_chase_sync, request.app[SYNC_POOL], factory, caller,
                                  request[CLIENT_IP], vehicle_id, body)  # fmt: skip
    return json_response(doc)


_COMMAND_COLUMNS = (
    "c.id, c.device_id, c.case_id, c.cmd, c.args, c.issued_at, c.expires_at, c.issued_by, "
    "c.published_at, c.publish_note, c.ack_ok, c.ack_reason, c.ack_at"
)


def command_item(row: tuple[Any, ...], now: datetime) -> CommandItem:
    (cid, device, case_id, cmd, args, issued, expires, by, published, note, ack_ok, ack_reason,
     ack_at) = row  # fmt: skip
    status = command_status(published, note, ack_ok, expires, now)
    return CommandItem(cid, device, case_id, cmd, dict(args or {}), status, issued, expires, by,
                       published, note, ack_ok, ack_reason, ack_at)  # fmt: skip


@routes(
    "GET", "/v1/vehicles/{id}/commands", roles={"admin", "analyst", "recovery"},
    summary="The commands sent to the car's trackers, newest first, with the trackers' answers",
    query=PageQuery, response=Page[CommandItem], errors=("vehicle_not_found",),
)  # fmt: skip
async def vehicle_commands(request: web.Request) -> web.Response:
    caller = request[CALLER]
    vehicle_id = path_id(request, "id", "vehicle_not_found")
    query = query_params(request, PageQuery)
    after = id_key("commands", query.cursor)
    async with request.app[POOL].connection() as conn:
        if not await vehicle_visible(conn, caller, vehicle_id):
            raise ApiError(404, "vehicle_not_found", "no such vehicle")
        cur = await conn.execute(
            f"SELECT {_COMMAND_COLUMNS} FROM commands c WHERE c.tenant_id = %(tenant)s "  # noqa: S608
            "AND (c.device_id IN (SELECT d.id FROM devices d WHERE d.tenant_id = %(tenant)s "
            "     AND d.vehicle_id = %(vid)s) "
            "  OR c.case_id IN (SELECT rc.id FROM recovery_cases rc "
            "     WHERE rc.tenant_id = %(tenant)s AND rc.vehicle_id = %(vid)s)) "
            "AND (%(after)s::bigint IS NULL OR c.id < %(after)s) "
            "ORDER BY c.id DESC LIMIT %(limit)s",
            {"tenant": caller.tenant_id, "vid": vehicle_id, "after": after,
             "limit": query.limit + 1},
        )  # fmt: skip
        rows = await cur.fetchall()
    now = datetime.now(UTC)
    items = [command_item(r, now) for r in rows]
    return json_response(page_of("commands", items, query.limit, lambda c: (c.id,)))
