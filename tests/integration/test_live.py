"""The live feed (GET /v1/live) against a real database and a real API server.

Tenant isolation, a recovery agent's scope, a slow client's bounded buffer,
the Origin check, the session, and the audit row. Waits poll with a generous
deadline (so a broken feed fails instead of hanging); no test asserts a time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import psycopg
import pytest

from cloud.api.live import HUB
from tests.integration.ingest_support import TENANT
from tests.integration.test_api_support import OTHER, Client, World, api, build_world, login
from tests.integration.test_api_support import settings as api_settings

pytestmark = pytest.mark.services
DEADLINE_S = 30.0
FAST = {"live_poll_s": 0.05, "live_overlap_s": 5.0}


@pytest.fixture
def world(fresh_db: str) -> World:
    return build_world(fresh_db)


def origin(client: Client) -> str:
    return f"http://{client.host}:{client.port}"


class Feed:
    """A WebSocket client that keeps everything it received."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.positions: dict[int, dict[str, Any]] = {}
        self.alerts: dict[int, dict[str, Any]] = {}
        self.cases: dict[int, dict[str, Any]] = {}
        self.scope: list[int] | None = None

    async def until(self, done: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE_S
        while not done():
            msg = await self.ws.receive(timeout=max(0.1, end - loop.time()))
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            self.take(json.loads(msg.data))

    def take(self, doc: dict[str, Any]) -> None:
        self.frames.append(doc)
        if doc["type"] != "batch":
            return
        if doc["scope"] is not None:
            self.scope = doc["scope"]["vehicle_ids"]
        for p in doc["positions"]:
            self.positions[p["vehicle_id"]] = p
        for a in doc["alerts"]:
            self.alerts[a["id"]] = a
        for c in doc["cases"]:
            self.cases[c["id"]] = c


async def connect(client: Client, token: str, *, origin_header: str | None = None) -> Feed:
    headers = {"Cookie": f"vgr_session={token}", "Origin": origin_header or origin(client)}
    ws = await client.ws_connect("/v1/live", headers=headers)
    feed = Feed(ws)
    await feed.until(lambda: len(feed.frames) >= 1)
    assert feed.frames[0]["type"] == "hello"
    return feed


def add_fix(w: World, tenant: str, vid: int, seq: int, when: datetime, lat: float) -> None:
    w.sql("INSERT INTO fixes (time, device_id, boot_id, seq, tenant_id, vehicle_id, lat, lon, "
          "speed_mps, mode) VALUES (%s, %s, 'live', %s, %s, %s, %s, 121.4, 5.0, 3)",
          (when, f"dev{vid}", seq, tenant, vid, lat))  # fmt: skip


def add_fixes(w: World, rows: list[tuple[int, int, datetime, float]]) -> None:
    with psycopg.connect(w.dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO fixes (time, device_id, boot_id, seq, tenant_id, vehicle_id, lat, lon, "
            "speed_mps, mode) VALUES (%s, %s, 'live', %s, %s, %s, %s, 121.4, 5.0, 3)",
            [(when, f"dev{vid}", seq, TENANT, vid, lat) for vid, seq, when, lat in rows],
        )


def add_alert(w: World, tenant: str, vid: int, episode: str) -> int:
    [(aid,)] = w.sql(
        "INSERT INTO alerts (tenant_id, vehicle_id, rule, episode, severity, status, fired_at, "
        "lat, lon, message) VALUES (%s, %s, 'power_lost', %s, 'high', 'open', now(), 31.2, "
        "121.5, 'cut') RETURNING id",
        (tenant, vid, episode),
    )
    return int(aid)


async def test_a_tenant_sees_its_own_fleet_and_nothing_of_another(world: World) -> None:
    now = datetime.now(UTC)
    async with api(world.dsn, api_settings(**FAST)) as client:
        ours = await connect(client, (await login(client, "analyst")).token)
        theirs = await connect(client, (await login(client, "admin", OTHER)).token)
        mine = {world.vehicles[k] for k in ("assigned", "unassigned", "closed")}
        await ours.until(lambda: set(ours.positions) >= mine)  # the snapshot
        await theirs.until(lambda: world.vehicles["other"] in theirs.positions)
        v, o = world.vehicles["unassigned"], world.vehicles["other"]
        add_fix(world, TENANT, v, 10, now, 30.5)
        add_fix(world, OTHER, o, 10, now, 29.5)
        a_ours, a_theirs = add_alert(world, TENANT, v, "live-1"), add_alert(world, OTHER, o, "l-2")
        await ours.until(lambda: ours.positions[v]["lat"] == 30.5 and a_ours in ours.alerts)
        await theirs.until(lambda: theirs.positions[o]["lat"] == 29.5 and a_theirs in theirs.alerts)
        assert ours.positions[v]["time"] == now.isoformat()
        assert "lat" not in ours.alerts[a_ours]  # alerts travel without coordinates
        # the acknowledgement reaches the feed as a change of the same alert
        world.sql("UPDATE alerts SET status = 'acknowledged', updated_at = now() WHERE id = %s",
                  (a_ours,))  # fmt: skip
        await ours.until(lambda: ours.alerts[a_ours]["status"] == "acknowledged")
        # a new risk score re-sends the vehicle's position with it
        world.sql("INSERT INTO vehicle_risk (vehicle_id, tenant_id, score, band) "
                  "VALUES (%s, %s, 85, 'critical')", (v, TENANT))  # fmt: skip
        await ours.until(lambda: ours.positions[v]["risk_level"] == "critical")
        assert ours.positions[v]["risk_score"] == 85.0
        assert ours.positions[v]["lat"] == 30.5
        assert set(ours.positions) == mine
        assert a_theirs not in ours.alerts
        assert set(theirs.positions) == {o}
        assert a_ours not in theirs.alerts
        await ours.ws.close()
        await theirs.ws.close()
    rows = world.sql("SELECT tenant_id, username, object_type, detail->>'scope' FROM audit_log "
                     "WHERE action = 'subscribed_live_positions' ORDER BY id")  # fmt: skip
    assert rows == [(TENANT, "analyst", "live_feed", "tenant"), (OTHER, "admin", "live_feed",
                                                                  "tenant")]  # fmt: skip


async def test_a_recovery_agent_sees_only_its_assigned_vehicles(world: World) -> None:
    now = datetime.now(UTC)
    assigned, unassigned = world.vehicles["assigned"], world.vehicles["unassigned"]
    async with api(world.dsn, api_settings(**FAST)) as client:
        rita = await connect(client, (await login(client, "recovery")).token)
        rob = await connect(client, (await login(client, "rob")).token)
        analyst = await connect(client, (await login(client, "analyst")).token)
        await rita.until(lambda: rita.scope is not None and assigned in rita.positions)
        await rob.until(lambda: rob.scope is not None)
        assert rita.scope == [assigned]
        assert rob.scope == []
        add_fix(world, TENANT, unassigned, 20, now, 30.1)
        add_fix(world, TENANT, assigned, 20, now, 30.2)
        a_un = add_alert(world, TENANT, unassigned, "live-u")
        a_as = add_alert(world, TENANT, assigned, "live-a")
        await analyst.until(
            lambda: (
                {a_un, a_as} <= set(analyst.alerts)
                and analyst.positions.get(unassigned, {}).get("lat") == 30.1
            )
        )
        await rita.until(lambda: rita.positions[assigned]["lat"] == 30.2 and a_as in rita.alerts)
        assert set(rita.positions) == {assigned}
        assert a_un not in rita.alerts
        # a case for the other car assigned to rita: it enters her scope with its position
        [(case_id,)] = world.sql(
            "INSERT INTO recovery_cases (tenant_id, vehicle_id, status, assignee, opened_by) "
            "VALUES (%s, %s, 'assigned', 'recovery', 'admin') RETURNING id",
            (TENANT, unassigned),
        )
        await rita.until(lambda: unassigned in rita.positions and case_id in rita.cases)
        assert sorted(rita.scope or []) == sorted([assigned, unassigned])
        assert rita.positions[unassigned]["lat"] == 30.1
        await analyst.until(lambda: case_id in analyst.cases)
        assert rob.positions == {}
        assert rob.alerts == {}
        assert case_id not in rob.cases
        for feed in (rita, rob, analyst):
            await feed.ws.close()


async def _raw_websocket(host: str, port: int, token: str,
                         ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:  # fmt: skip
    """A client with a tiny receive window that reads nothing until told to."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /v1/live HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\nOrigin: http://{host}:{port}\r\n"
                  f"Cookie: vgr_session={token}\r\n\r\n").encode())  # fmt: skip
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    size = b1 & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", await reader.readexactly(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    return b0 & 0x0F, await reader.readexactly(size)


async def test_a_slow_client_gets_the_latest_per_vehicle_from_a_bounded_buffer(
    world: World,
) -> None:
    limit, rounds = 100, 40
    vins = [f"LSVAB4BR0EN{n:06d}" for n in range(100, 150)]
    insert = "INSERT INTO vehicles (tenant_id, vin) VALUES (%s, %s) RETURNING id"
    vids = [int(r[0]) for vin in vins for r in world.sql(insert, (TENANT, vin))]
    cfg = api_settings(
        **FAST, live_client_buffer=limit, live_socket_sndbuf=4096, live_heartbeat_s=600.0
    )  # the client answers no ping while it stalls
    start = datetime.now(UTC)
    async with api(world.dsn, cfg) as client:
        token = (await login(client, "analyst")).token
        assert client.host is not None
        assert client.port is not None
        reader, writer = await _raw_websocket(client.host, client.port, token)
        hub = client.app[HUB]
        [server_side] = hub.clients
        biggest = 0
        for r in range(rounds):
            add_fixes(world, [(vid, r, start + timedelta(seconds=r), 20.0 + r + i / 1000)
                              for i, vid in enumerate(vids)])  # fmt: skip
            seen = hub.rounds
            print("round", r, seen, len(server_side.buffer), server_side.buffer.dropped, flush=True)
            end = asyncio.get_running_loop().time() + DEADLINE_S
            while hub.rounds < seen + 2:  # the feed has read this round
                assert asyncio.get_running_loop().time() < end, "the feed stopped polling"
                await asyncio.sleep(0.02)
                biggest = max(biggest, len(server_side.buffer))
        assert biggest <= limit
        assert server_side.buffer.dropped > 0, "the client never fell behind; test is void"
        # now read everything: the last state of every vehicle is its newest fix
        last: dict[int, float] = {}
        dropped = 0
        while len(last) < len(vids) or any(last[v] < 20.0 + rounds - 1 for v in vids):
            opcode, payload = await asyncio.wait_for(_read_frame(reader), DEADLINE_S)
            if opcode != 1:
                continue
            doc = json.loads(payload)
            if doc["type"] == "batch":
                dropped = max(dropped, doc["dropped"])
                for p in doc["positions"]:
                    if p["vehicle_id"] in vids:
                        last[p["vehicle_id"]] = p["lat"]
        assert {round(last[v] - (20.0 + rounds - 1), 6) for v in vids} == {
            round(i / 1000, 6) for i in range(len(vids))
        }
        assert dropped > 0
        writer.close()


async def test_refused_without_session_from_another_origin_and_closed_at_logout(
    world: World,
) -> None:
    cfg = api_settings(**FAST, live_session_check_s=0.1)
    async with api(world.dsn, cfg) as client:
        analyst = await login(client, "analyst")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/v1/live", headers={"Origin": origin(client)})
        assert refused.value.status == 401
        for other in ("https://evil.example", "null", f"http://{client.host}:1"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await connect(client, analyst.token, origin_header=other)
            assert refused.value.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/v1/live", headers={"Cookie": f"vgr_session={analyst.token}"})
        assert refused.value.status == 403  # no Origin at all
        installer = await login(client, "installer")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await connect(client, installer.token)
        assert refused.value.status == 403
        plain = await analyst.get("/v1/live")
        assert plain.status == 400
        assert (await plain.json())["error"]["code"] == "websocket_required"
        await _the_page_and_its_files(client)
        feed = await connect(client, analyst.token)
        assert (await analyst.post("/v1/auth/logout")).status == 200
        msg = await feed.ws.receive(timeout=DEADLINE_S)
        while msg.type == aiohttp.WSMsgType.TEXT:
            msg = await feed.ws.receive(timeout=DEADLINE_S)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert msg.data == 4401
        end = asyncio.get_running_loop().time() + DEADLINE_S
        while client.app[HUB].clients:  # the server's handler finishes after the close frame
            assert asyncio.get_running_loop().time() < end, "the closed client stayed subscribed"
            await asyncio.sleep(0.02)
    assert world.sql("SELECT count(*) FROM audit_log WHERE action = "
                     "'subscribed_live_positions'") == [(1,)]  # fmt: skip


async def _the_page_and_its_files(client: Client) -> None:
    page = await client.get("/")
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp
    assert "default-src 'none'" in csp
    html = await page.text()
    assert 'data-tile-crs="wgs84"' in html
    assert "{{" not in html
    assert '<script type="module" src="/static/js/app.js">' in html
    for path, kind in [("/static/js/app.js", "text/javascript; charset=utf-8"),
                       ("/static/vendor/leaflet/leaflet.css", "text/css; charset=utf-8"),
                       ("/static/i18n/zh-CN.json", "application/json")]:  # fmt: skip
        resp = await client.get(path)
        assert resp.status == 200, path
        assert resp.headers["Content-Type"] == kind, path
        await resp.read()
    for path in ["/static/%2e%2e/api/static.py", "/static/js/%2e%2e/%2e%2e/config.py",
                 "/static/package.json", "/static/node_modules/leaflet/package.json",
                 "/static/js/", "/static/.gitignore"]:  # fmt: skip
        resp = await client.get(path)
        assert resp.status == 404, path
        assert (await resp.json())["error"]["code"] == "not_found"
