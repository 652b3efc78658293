"""``GET /v1/live``: the live map's WebSocket feed of positions, alerts and case changes.

For people with a session (admin, analyst, recovery), from a page of the API's
own origin (:mod:`cloud.live.origin`). Each connection writes one
``subscribed_live_positions`` audit row before anything is sent (no row, no
positions), then receives ``hello``, the current position of every vehicle it
may see, and every change after that (:mod:`cloud.live.hub`). A recovery agent
receives only its assigned vehicles.

Backpressure: the sender writes one frame at a time and waits for the socket
to take it; meanwhile new events replace older ones for the same object in
the client's bounded buffer (:mod:`cloud.live.buffer`), counted in each
frame's ``dropped``. The kernel's send buffer is limited to
``live_socket_sndbuf``; a send blocked for ``live_send_timeout_s`` closes the
connection. Close codes: 4401 when the session ends, 1001 on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import msgspec
from aiohttp import WSMsgType, web

from cloud.api import audit, sessions
from cloud.api.errors import ApiError
from cloud.api.policy import Routes
from cloud.api.state import CALLER, CLIENT_IP, POOL, SETTINGS
from cloud.live.hub import Hub, LiveClient, TooManyClientsError
from cloud.live.messages import frame, hello
from cloud.live.origin import origin_allowed
from cloud.live.scope import Audience

log = logging.getLogger(__name__)
routes = Routes()
HUB = web.AppKey("live_hub", Hub)
MAX_FRAME_EVENTS = 1000  # events per frame: one frame is at most a few hundred KiB
CLOSE_CODES = {"session_ended": 4401, "shutdown": 1001}


@routes("GET", "/v1/live", roles={"admin", "analyst", "recovery"},
        summary="WebSocket: live positions, alerts and case changes (audited)",
        errors=("websocket_required", "origin_refused", "too_many_clients"))  # fmt: skip
async def live(request: web.Request) -> web.StreamResponse:
    caller = request[CALLER]
    settings = request.app[SETTINGS]
    ws = web.WebSocketResponse(heartbeat=settings.live_heartbeat_s, max_msg_size=4096)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "websocket_required", "GET /v1/live is a WebSocket (Upgrade)")
    if not origin_allowed(request.headers.get("Origin"), request.headers.get("Host"),
                          settings.public_origins):  # fmt: skip
        raise ApiError(403, "origin_refused", "the live feed opens only from the map's origin")
    hub = request.app[HUB]
    if len(hub.clients) >= settings.live_max_clients:
        raise ApiError(503, "too_many_clients", "the live feed is full; try again later")
    who = Audience(caller.tenant_id, caller.role, caller.username)
    async with request.app[POOL].connection() as conn, conn.transaction():
        scope = "assigned" if who.scoped else "tenant"
        entry = audit.Entry.by(caller, request[CLIENT_IP], "subscribed_live_positions",
                               "live_feed", None, scope=scope)  # fmt: skip
        await audit.write(conn, entry)
    try:
        client = await hub.subscribe(who, request.cookies.get(sessions.COOKIE, ""))
    except TooManyClientsError:
        raise ApiError(503, "too_many_clients", "the live feed is full; try again later") from None
    try:
        await ws.prepare(request)
        _limit_send_buffer(request, settings.live_socket_sndbuf)
        await ws.send_str(_encode(hello(caller.role, caller.username, settings.live_poll_s,
                                        settings.live_client_buffer)))  # fmt: skip
        sender = asyncio.create_task(_send(ws, request, client, settings.live_send_timeout_s))
        try:
            async for msg in ws:  # clients send nothing we act on; this notices the close
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
    finally:
        hub.unsubscribe(client)
    return ws


def _encode(doc: object) -> str:
    return msgspec.json.encode(doc).decode()


def _limit_send_buffer(request: web.Request, size: int) -> None:
    """Bound what a stalled client can hold: the kernel's buffer and asyncio's both."""
    transport = request.transport
    if transport is None:
        return
    transport.set_write_buffer_limits(high=size)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


async def _send(ws: web.WebSocketResponse, request: web.Request, client: LiveClient,
                timeout_s: float) -> None:  # fmt: skip
    """Drain the client's buffer one frame at a time, at the pace its socket accepts."""
    while True:
        await client.wake.wait()
        client.wake.clear()
        while True:
            if client.closing is not None:
                await ws.close(code=CLOSE_CODES.get(client.closing, 1000),
                               message=client.closing.encode())  # fmt: skip
                return
            events = client.buffer.take(MAX_FRAME_EVENTS)
            if not events:
                break
            data = _encode(frame(events, client.buffer.dropped))
            try:
                await asyncio.wait_for(ws.send_str(data), timeout_s)
            except TimeoutError:
                log.warning("live client %s stalled for %.0f s; disconnected",
                            client.who.username, timeout_s)  # fmt: skip
                if request.transport is not None:
                    request.transport.abort()
                return
            except (ConnectionError, RuntimeError):
                return  # the client went away


async def _feed(app: web.Application) -> AsyncIterator[None]:
    hub = Hub(app[POOL], app[SETTINGS])
    app[HUB] = hub
    task = asyncio.create_task(hub.run(), name="live-feed")
    try:
        yield
    finally:
        hub.close_all("shutdown")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _close_clients(app: web.Application) -> None:
    if HUB in app:
        app[HUB].close_all("shutdown")


def install(app: web.Application) -> None:
    """Run the feed while the application runs (after the database pools are open)."""
    app.cleanup_ctx.append(_feed)
    app.on_shutdown.append(_close_clients)
