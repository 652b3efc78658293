"""Shared set-up for the ``test_api_*`` modules (no tests here).

Two tenants with one user per role, vehicles with fixes, a recovery case,
alerts, and helpers that log in and call the API with the session cookie and
CSRF header sent explicitly (the test client is plain http, and the cookie is
Secure by default, so the client's cookie jar would rightly not send it).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

import psycopg
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from cloud.api.app import build_app, passwords_for
from cloud.api.keys import create_integration_key
from cloud.api.users import create_user
from cloud.config import ApiSettings
from tests.integration.ingest_support import TENANT, prepare_db

Client = TestClient[web.Request, web.Application]
OTHER = "other-bank"
PASSWORD = "correct horse battery"
PEOPLE = ("admin", "analyst", "recovery", "installer")
FAST = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1}
T0 = datetime(2025, 3, 4, 8, 0, tzinfo=UTC)
VINS = ("LSVAB4BR0EN000017", "LSVAB4BR0EN000025", "LSVAB4BR0EN000033", "LSVAB4BR0EN000041")


def settings(**overrides: Any) -> ApiSettings:
    return ApiSettings(**(FAST | {"login_ip_free": 10_000} | overrides))


@dataclass
class World:
    dsn: str
    vehicles: dict[str, int] = field(default_factory=dict)  # assigned, unassigned, closed, other
    alerts: dict[str, int] = field(default_factory=dict)  # same keys: one alert each
    keys: dict[str, str] = field(default_factory=dict)  # tenant -> integration key

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


def _vehicle(conn: psycopg.Connection[Any], tenant: str, vin: str) -> int:
    row = conn.execute(
        "INSERT INTO vehicles (tenant_id, vin) VALUES (%s, %s) RETURNING id", (tenant, vin)
    ).fetchone()
    assert row is not None
    return int(row[0])


def _alert(conn: psycopg.Connection[Any], tenant: str, vid: int, episode: str,
           opened: datetime, rule: str = "device_removed") -> int:  # fmt: skip
    row = conn.execute(
        "INSERT INTO alerts (tenant_id, vehicle_id, rule, episode, severity, status, fired_at, "
        "opened_at, lat, lon, message) VALUES (%s, %s, %s, %s, 'high', 'open', %s, %s, 31.2, "
        "121.5, 'test alert') RETURNING id",
        (tenant, vid, rule, episode, opened, opened),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _fix(conn: psycopg.Connection[Any], tenant: str, vid: int, seq: int, when: datetime,
         lat: float, lon: float) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO fixes (time, device_id, boot_id, seq, tenant_id, vehicle_id, lat, lon, "
        "speed_mps, mode) VALUES (%s, %s, 'b1', %s, %s, %s, %s, %s, 3.5, 3)",
        (when, f"dev{vid}", seq, tenant, vid, lat, lon),
    )


def build_world(dsn: str) -> World:
    """Tenants, one user per role in each, vehicles, fixes, a case, one alert per vehicle."""
    prepare_db(dsn, [])
    w = World(dsn)
    passwords = passwords_for(settings())
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES (%s, 'Other Bank')", (OTHER,))
        for tenant in (TENANT, OTHER):
            for role in PEOPLE:
                create_user(conn, passwords, tenant, role, role, PASSWORD)
        create_user(conn, passwords, TENANT, "rob", "recovery", PASSWORD)  # no cases
        w.keys = {t: create_integration_key(conn, t, "lending-core") for t in (TENANT, OTHER)}
        for name, tenant, vin in zip(("assigned", "unassigned", "closed"), (TENANT,) * 3, VINS,
                                     strict=False):  # fmt: skip
            w.vehicles[name] = _vehicle(conn, tenant, vin)
        w.vehicles["other"] = _vehicle(conn, OTHER, VINS[0])
        for i, (name, vid) in enumerate(w.vehicles.items()):
            tenant = OTHER if name == "other" else TENANT
            _fix(conn, tenant, vid, 1, T0, 31.0 + i, 121.0)
            _fix(conn, tenant, vid, 2, T0 + timedelta(minutes=1), 31.5 + i, 121.5)
            w.alerts[name] = _alert(conn, tenant, vid, f"e-{name}", T0 + timedelta(hours=i))
        conn.execute(
            "INSERT INTO recovery_cases (tenant_id, vehicle_id, status, assignee, opened_by) "
            "VALUES (%s, %s, 'assigned', 'recovery', 'admin')",
            (TENANT, w.vehicles["assigned"]),
        )
        conn.execute(
            "INSERT INTO recovery_cases (tenant_id, vehicle_id, status, assignee, opened_by, "
            "closed_at, outcome) VALUES (%s, %s, 'closed', 'recovery', 'admin', now(), "
            "'cancelled')",
            (TENANT, w.vehicles["closed"]),
        )
        conn.commit()
    return w


@asynccontextmanager
async def api(dsn: str, cfg: ApiSettings | None = None) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(dsn, settings=cfg or settings(), pool_max=4))) as c:
        yield c


def session_cookie(resp: ClientResponse) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie", []):
        jar.load(header)
    return jar


@dataclass(frozen=True)
class As:
    """A caller: a person's session (token + CSRF token) or an integration key."""

    client: Client
    token: str = ""
    csrf: str = ""
    key: str = ""

    def headers(self, method: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        if self.key:
            h = {"Authorization": f"Bearer {self.key}"}
        else:
            h = {"Cookie": f"vgr_session={self.token}"}
            if method != "GET":
                h["X-CSRF-Token"] = self.csrf
        return h | dict(extra or {})

    async def call(self, method: str, path: str, *, json: Any = None,
                   headers: Mapping[str, str] | None = None,
                   params: Mapping[str, str] | None = None) -> ClientResponse:  # fmt: skip
        resp = await self.client.request(method, path, json=json, params=params,
                                         headers=self.headers(method, headers))  # fmt: skip
        await resp.read()
        return resp

    async def get(self, path: str, **params: str) -> ClientResponse:
        return await self.call("GET", path, params=params or None)

    async def post(self, path: str, json: Any = None) -> ClientResponse:
        return await self.call("POST", path, json=json)


async def login(client: Client, username: str, tenant: str = TENANT,
                password: str = PASSWORD) -> As:  # fmt: skip
    resp = await try_login(client, username, password, tenant)
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    return As(client, session_cookie(resp)["vgr_session"].value, doc["csrf_token"])


async def try_login(client: Client, username: str, password: str,
                    tenant: str = TENANT) -> ClientResponse:  # fmt: skip
    body = {"tenant": tenant, "username": username, "password": password}
    resp = await client.post("/v1/auth/login", json=body)
    await resp.read()
    return resp


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def error_code(resp: ClientResponse) -> str:
    return str((await resp.json())["error"]["code"])
