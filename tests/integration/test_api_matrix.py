"""Every operation of ``/openapi.json`` x every role x two tenants x the recovery scope.

The operations come from the served OpenAPI document, so a new route is in
this test the moment it is declared. For each one:

- every role outside its ``x-roles`` gets ``403 forbidden``, and no
  credentials get ``401`` (public operations answer without credentials);
- every role inside gets a success with tenant A's objects (made fresh for
  each call of an unsafe method, so one call's effect never decides
  another's), and ``404`` with tenant B's: B's data is unchanged afterwards;
- a recovery agent gets ``404`` for tenant A's vehicles, alerts and cases
  outside its own cases, and lists show it none of them; lists show tenant
  A's callers nothing of tenant B.

A path parameter this test does not know, or an operation with a required
body and no entry in :data:`BODIES`, fails the test with the line to add.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg
import pytest
import shapely
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from cloud.api.app import build_app
from cloud.api.keys import issue_integration_key
from cloud.api.openapi import openapi_path
from cloud.api.policy import ROLES
from cloud.localsvc import free_port
from tests.integration.ingest_support import TENANT
from tests.integration.test_api_ops_support import commander_for
from tests.integration.test_api_support import OTHER, As, Client, build_world, login, settings

pytestmark = pytest.mark.services

Side = Literal["A", "B", "U"]  # tenant A in the agent's scope, tenant B, tenant A outside it
AGENT = {"A": "recovery", "B": "recovery", "U": "rob"}
TENANT_OF = {"A": TENANT, "B": OTHER, "U": TENANT}
MARK = {"A": "LVGRA", "B": "LVGRB", "U": "LVGRU"}  # VIN prefixes, to spot leaks in answers
VIN = re.compile(r"LVGR[ABU][0-9]{12}")
SQUARE = "POLYGON((118 31, 119 31, 119 32, 118 32, 118 31))"


@dataclass
class Maker:
    """Creates fresh objects of one side, straight in the database."""

    dsn: str
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    vins: dict[Side, set[str]] = field(default_factory=lambda: {"A": set(), "B": set(), "U": set()})
    vehicle_ids: dict[Side, set[int]] = field(
        default_factory=lambda: {"A": set(), "B": set(), "U": set()}
    )
    b_caseless: int | None = None

    def one(self, query: str, params: Any = None) -> Any:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(query, params).fetchone()
        assert row is not None
        return row[0]

    def run(self, query: str, params: Any = None) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(query, params)

    def n(self) -> int:
        return next(self.counter)

    def vehicle(self, side: Side, *, case: bool = True) -> int:
        """A car with a tracker, two fixes, a loan, a risk score and (``case``) an assigned case."""
        n, tenant = self.n(), TENANT_OF[side]
        vin = f"{MARK[side]}{n:012d}"
        vid = int(self.one("INSERT INTO vehicles (tenant_id, vin) VALUES (%s, %s) RETURNING id",
                           (tenant, vin)))  # fmt: skip
        self.vins[side].add(vin)
        self.vehicle_ids[side].add(vid)
        device = f"m{self.tag}{n}"
        self.run("INSERT INTO devices (id, tenant_id, kind, vehicle_id) "
                 "VALUES (%s, %s, 'wired', %s)", (device, tenant, vid))  # fmt: skip
        now = datetime.now(UTC).replace(microsecond=0)
        for seq, minutes in ((1, 30), (2, 10)):
            self.run(
                "INSERT INTO fixes (time, device_id, boot_id, seq, tenant_id, vehicle_id, lat, "
                "lon, speed_mps, mode) VALUES (%s, %s, 'b1', %s, %s, %s, 31.5, 118.5, 1.0, 3)",
                (now - timedelta(minutes=minutes), device, seq, tenant, vid),
            )
        loan = self.one(
            "INSERT INTO loans (tenant_id, contract_id, vehicle_id, status, outstanding) "
            "VALUES (%s, %s, %s, 'overdue', 50000) RETURNING id",
            (tenant, f"{MARK[side]}-{n}", vid),
        )
        self.run("INSERT INTO vehicle_risk (vehicle_id, tenant_id, score, band) "
                 "VALUES (%s, %s, 80, 'high')", (vid, tenant))  # fmt: skip
        if case:
            self.run(
                "INSERT INTO recovery_cases (tenant_id, vehicle_id, loan_id, status, assignee, "
                "opened_by) VALUES (%s, %s, %s, 'assigned', %s, 'admin')",
                (tenant, vid, loan, AGENT[side]),
            )
        return vid

    def caseless_vehicle(self, side: Side) -> int:
        """A car without a case: a new one, except tenant B's (made once: B must not change)."""
        if side != "B":
            return self.vehicle(side, case=False)
        if self.b_caseless is None:
            self.b_caseless = self.vehicle(side, case=False)
        return self.b_caseless

    def device_of(self, vid: int) -> str:
        return str(self.one("SELECT id FROM devices WHERE vehicle_id = %s", (vid,)))

    def contract_of(self, vid: int) -> str:
        return str(self.one("SELECT contract_id FROM loans WHERE vehicle_id = %s", (vid,)))

    def case(self, side: Side) -> int:
        return int(self.one("SELECT id FROM recovery_cases WHERE vehicle_id = %s",
                            (self.vehicle(side),)))  # fmt: skip

    def alert(self, side: Side) -> int:
        vid = self.vehicle(side)
        return int(self.one(
            "INSERT INTO alerts (tenant_id, vehicle_id, rule, episode, severity, status, "
            "fired_at, opened_at) VALUES (%s, %s, 'device_removed', %s, 'high', 'open', now(), "
            "now()) RETURNING id",
            (TENANT_OF[side], vid, f"e{self.n()}"),
        ))  # fmt: skip

    def endpoint(self, side: Side) -> str:
        endpoint = f"ep_{self.tag}{self.n()}"
        url = f"https://{MARK[side].lower()}.example/hook"
        self.run("INSERT INTO webhook_endpoints (id, tenant_id, url) VALUES (%s, %s, %s)",
                 (endpoint, TENANT_OF[side], url))  # fmt: skip
        self.run("INSERT INTO webhook_secrets (endpoint_id, secret) VALUES (%s, %s)",
                 (endpoint, f"whsec_{uuid.uuid4().hex}"))  # fmt: skip
        return endpoint

    def delivery(self, side: Side) -> int:
        message, endpoint = f"msg_{self.tag}_{self.n()}", self.endpoint(side)
        tenant = TENANT_OF[side]
        self.run("INSERT INTO webhook_messages (id, tenant_id, event_type, payload) "
                 "VALUES (%s, %s, 'alert.opened', '{}')", (message, tenant))  # fmt: skip
        return int(self.one(
            "INSERT INTO webhook_deliveries (message_id, endpoint_id, tenant_id, attempt_no, "
            "state) VALUES (%s, %s, %s, 1, 'dead') RETURNING id",
            (message, endpoint, tenant),
        ))  # fmt: skip

    def message(self, side: Side) -> str:
        return str(self.one("SELECT message_id FROM webhook_deliveries WHERE id = %s",
                            (self.delivery(side),)))  # fmt: skip

    def user(self, side: Side) -> int:
        return int(self.one("INSERT INTO users (tenant_id, username, role) VALUES "
                            "(%s, %s, 'analyst') RETURNING id",
                            (TENANT_OF[side], f"{MARK[side].lower()}-u{self.n()}")))  # fmt: skip

    def key(self, side: Side) -> int:
        with psycopg.connect(self.dsn) as conn:
            uid, _key = issue_integration_key(conn, TENANT_OF[side], f"k{self.tag}{self.n()}")
        return uid

    def poi(self, side: Side, *, confirmed: bool = True) -> int:
        return int(self.one(
            "INSERT INTO risk_pois (tenant_id, category, name, lat, lon, radius_m, source, "
            "confirmed) VALUES (%s, %s, %s, 31.5, %s, 150, 'test', %s) RETURNING id",
            (TENANT_OF[side], "pawnshop" if confirmed else "unknown",
             f"{MARK[side]} poi {self.n()}", 118 + self.n() / 1000, confirmed),
        ))  # fmt: skip

    def policy(self, side: Side) -> str:
        device = self.device_of(self.vehicle(side))
        policy_id = f"{device}-v1"
        self.run("INSERT INTO policies (id, tenant_id, device_id, version, document, jws, hash) "
                 "VALUES (%s, %s, %s, 1, '{}', 'a.b.c', 'h')",
                 (policy_id, TENANT_OF[side], device))  # fmt: skip
        return policy_id

    def region(self) -> str:
        square = shapely.from_wkt(SQUARE)
        self.run(
            "INSERT INTO regions (adcode, level, name, parent, geom, bbox, source) VALUES "
            "('320000', 'province', 'Jiangsu', NULL, %s, %s, 'test') ON CONFLICT DO NOTHING",
            (shapely.to_wkb(square), list(square.bounds)),
        )
        return "320000"


Factory = Callable[[Maker, Side], str | int]

# (path segment before the parameter, parameter name) -> how to make that object of a side.
OBJECTS: dict[tuple[str, str], Factory] = {
    ("alerts", "id"): Maker.alert,
    ("vehicles", "id"): Maker.vehicle,
    ("cases", "id"): Maker.case,
    ("endpoints", "id"): Maker.endpoint,
    ("deliveries", "id"): Maker.delivery,
    ("messages", "id"): Maker.message,
    ("loans", "contract_id"): lambda m, s: m.contract_of(m.vehicle(s)),
    ("users", "id"): Maker.user,
    ("integration-keys", "id"): Maker.key,
    ("devices", "id"): lambda m, s: m.device_of(m.vehicle(s)),
    ("pois", "id"): Maker.poi,
    ("candidates", "id"): lambda m, s: m.poi(s, confirmed=False),
    ("policies", "id"): Maker.policy,
    ("regions", "adcode"): lambda m, _s: m.region(),
    ("static", "path"): lambda _m, _s: "no-such-file.js",
}
# Objects every tenant shares (reference data): no tenant B case to check.
SHARED = frozenset({("regions", "adcode"), ("static", "path")})
# Objects a recovery agent sees only within its cases.
SCOPED = frozenset({("alerts", "id"), ("vehicles", "id"), ("cases", "id")})

Body = Callable[[Maker, Side, dict[str, str | int]], Any]  # (maker, side, path objects) -> JSON

# A body that succeeds for an allowed caller, per operation whose body has required fields
# (or whose default body would not succeed).
BODIES: dict[tuple[str, str], Body] = {
    ("POST", "/v1/cases"): lambda m, s, _o: {"vehicle_id": m.caseless_vehicle(s)},
    ("POST", "/v1/cases/{id}/assign"): lambda m, _s, _o: {"user_id": m.one(
        "SELECT id FROM users WHERE tenant_id = %s AND username = 'rob'", (TENANT,))},
    ("POST", "/v1/cases/{id}/transition"): lambda _m, _s, _o: {"to": "located", "lat": 31.0,
                                                                "lon": 118.0},
    ("POST", "/v1/vehicles/{id}/chase"): lambda _m, _s, _o: {"on": False},
    ("POST", "/v1/webhooks/endpoints"): lambda m, _s, _o: {
        "url": f"https://hooks{m.n()}.example.com/vgr"},
    ("PATCH", "/v1/webhooks/endpoints/{id}"): lambda _m, _s, _o: {"description": "changed"},
    ("PATCH", "/v1/tenant"): lambda _m, _s, _o: {"name": "Acme Auto Finance"},
    ("POST", "/v1/users"): lambda m, _s, _o: {"username": f"new{m.tag}{m.n()}",
                                             "role": "analyst", "password": "a long passphrase"},
    ("PATCH", "/v1/users/{id}"): lambda _m, _s, _o: {"role": "analyst"},
    ("POST", "/v1/integration-keys"): lambda m, _s, _o: {"name": f"core{m.tag}{m.n()}"},
    ("PUT", "/v1/loans/{contract_id}"): lambda _m, _s, _o: {"status": "overdue"},
    ("POST", "/v1/pois"): lambda m, _s, _o: {"name": f"poi {m.tag} {m.n()}",
                                            "category": "pawnshop", "lat": 31.2, "lon": 118.2},
    ("POST", "/v1/pois/candidates/{id}/confirm"): lambda _m, _s, _o: {"category": "pawnshop"},
}  # fmt: skip
# Operations whose body names a side's object, so tenant B's is a 404 too.
BODY_OBJECTS = frozenset({("POST", "/v1/cases")})
# Operations that create-or-update by a client-chosen key: B's key from A creates nothing of
# B's (the snapshot check) and is refused without the fields a creation needs.
UPSERTS = frozenset({("PUT", "/v1/loans/{contract_id}")})
# Successes that are not 2xx: the live feed wants a WebSocket upgrade.
NOT_2XX = {("GET", "/v1/live"): (400, "websocket_required")}
PUBLIC_FAILURES = {("POST", "/v1/auth/login"): 415}  # no body: refused before any check


@dataclass
class Operation:
    method: str
    path: str
    roles: frozenset[str]
    params: list[tuple[str, str]]  # (segment, name)
    body_required: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)


def operations(doc: dict[str, Any]) -> list[Operation]:
    out = []
    for path, ops in doc["paths"].items():
        parts = path.split("/")
        params = [(parts[i - 1], part[1:-1]) for i, part in enumerate(parts)
                  if part.startswith("{")]  # fmt: skip
        for method, op in ops.items():
            body = op.get("requestBody", {})
            out.append(Operation(method.upper(), path, frozenset(op["x-roles"]), params,
                                 bool(body.get("required"))))  # fmt: skip
    return sorted(out, key=lambda o: (o.path, o.method))


def check_declared(ops: list[Operation]) -> None:
    """Fail with what to add when an operation has no fixture for a parameter or its body."""
    missing = sorted({f"OBJECTS[{p!r}] (for {o.method} {o.path})" for o in ops for p in o.params
                      if p not in OBJECTS})  # fmt: skip
    missing += sorted(f"BODIES[({o.method!r}, {o.path!r})]" for o in ops
                      if o.roles and o.body_required and o.key not in BODIES)  # fmt: skip
    assert not missing, "add to tests/integration/test_api_matrix.py: " + "; ".join(missing)


@dataclass
class Caller:
    role: str
    who: As | None  # None: no credentials


class Matrix:
    def __init__(self, client: Client, maker: Maker, callers: dict[str, As]) -> None:
        self.client, self.maker, self.callers = client, maker, callers
        self.cache: dict[tuple[tuple[str, str], Side], str | int] = {}
        self.failures: list[str] = []

    def objects(self, op: Operation, side: Side) -> dict[str, str | int]:
        # fresh objects for calls that may succeed and change them; tenant B's never change
        fresh = op.method != "GET" and side != "B"
        out: dict[str, str | int] = {}
        for param in op.params:
            key = (param, side)
            if fresh or key not in self.cache:
                self.cache[key] = OBJECTS[param](self.maker, side)
            out[param[1]] = self.cache[key]
        return out

    async def call(self, op: Operation, role: str | None, side: Side) -> ClientResponse:
        objs = self.objects(op, side)
        path = op.path
        for name, value in objs.items():
            path = path.replace("{" + name + "}", str(value))
        body = BODIES[op.key](self.maker, side, objs) if op.key in BODIES else None
        if role is None:
            resp = await self.client.request(op.method, path, json=body)
            await resp.read()
            return resp
        caller = self.callers[role]
        if op.key == ("POST", "/v1/auth/logout") and role != "integration":
            caller = await login(self.client, role)  # a session of its own to end
        return await caller.call(op.method, path, json=body)

    def expect(self, ok: bool, op: Operation, what: str, resp: ClientResponse, text: str) -> None:
        if not ok:
            self.failures.append(f"{op.method} {op.path} {what}: {resp.status} {text[:200]}")


def vehicles_in(text: str) -> set[int]:
    """Vehicle ids an answer names: ``vehicle_id`` fields and ``vehicle: {"id": …}``."""
    found: set[int] = set()

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(v, int) and (k == "vehicle_id" or (k, key) == ("id", "vehicle")):
                    found.add(v)
                walk(v, k)
        elif isinstance(node, list):
            for item in node:
                walk(item, key)

    with contextlib.suppress(ValueError):  # not JSON: a page
        walk(json.loads(text))
    return found


async def run_matrix(m: Matrix, ops: list[Operation]) -> None:
    for op in ops:
        if not op.roles:  # public
            resp = await m.call(op, None, "A")
            want = PUBLIC_FAILURES.get(op.key)
            ok = resp.status == want if want else resp.status not in (401, 403)
            m.expect(ok, op, "public, without credentials", resp, await resp.text())
            continue
        resp = await m.call(op, None, "A")
        m.expect(resp.status == 401, op, "without credentials", resp, await resp.text())
        for role in sorted(ROLES):
            resp = await m.call(op, role, "A")
            text = await resp.text()
            if role not in op.roles:
                ok = resp.status == 403 and '"forbidden"' in text
                m.expect(ok, op, f"as {role} (not in x-roles)", resp, text)
                continue
            special = NOT_2XX.get(op.key)
            ok = (resp.status, special[1] in text) == (special[0], True) if special else (
                200 <= resp.status < 300)  # fmt: skip
            m.expect(ok, op, f"as {role} with tenant A's objects", resp, text)
            shown = set(VIN.findall(text)), vehicles_in(text)
            leaked = (shown[0] & m.maker.vins["B"]) | (shown[1] & m.maker.vehicle_ids["B"])
            m.expect(not leaked and OTHER not in text, op, f"as {role}: shows tenant B's", resp,
                     text)  # fmt: skip
            if role == "recovery" and ok:
                outside = (shown[0] & m.maker.vins["U"]) | (shown[1] & m.maker.vehicle_ids["U"])
                m.expect(not outside, op, "as recovery: shows cars outside its cases", resp, text)
            tenant_object = [p for p in op.params if p not in SHARED] or op.key in BODY_OBJECTS
            if tenant_object:
                resp = await m.call(op, role, "B")
                text = await resp.text()
                if op.key in UPSERTS:
                    ok = 400 <= resp.status < 500 and resp.status not in (401, 403)
                else:
                    ok = resp.status == 404 and "_not_found" in text
                m.expect(ok, op, f"as {role} with tenant B's objects", resp, text)
            if role == "recovery" and any(p in SCOPED for p in op.params):
                resp = await m.call(op, role, "U")
                text = await resp.text()
                ok = resp.status == 404 and "_not_found" in text
                m.expect(ok, op, "as recovery outside its cases", resp, text)


def snapshot(dsn: str, tenant: str) -> dict[str, list[str]]:
    tables = ("vehicles", "loans", "devices", "recovery_cases", "alerts", "users", "commands",
              "webhook_endpoints", "webhook_deliveries", "risk_pois", "policies")  # fmt: skip
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {t: [str(r[0]) for r in conn.execute(
            f"SELECT to_jsonb(x)::text FROM {t} x WHERE tenant_id = %s ORDER BY 1",
            (tenant,)).fetchall()] for t in tables}  # fmt: skip


async def test_every_operation_against_every_role_tenant_and_scope(fresh_db: str) -> None:
    world = build_world(fresh_db)
    maker = Maker(fresh_db)
    v = world.vehicles  # build_world's: "assigned" is in the agent's case, "closed" no longer
    maker.vehicle_ids["U"] |= {v["unassigned"], v["closed"]}
    maker.vehicle_ids["B"].add(v["other"])
    for side in ("A", "B", "U"):  # a car and an alert of each side: lists have content
        maker.vehicle(side)
        maker.alert(side)
    app = build_app(
        fresh_db, settings=settings(), pool_max=4, commander=commander_for(free_port())
    )  # a broker that is down: chase says so
    async with TestClient(TestServer(app)) as client:
        doc = await (await client.get("/openapi.json")).json()
        ops = operations(doc)
        served = {(r.method, openapi_path(r.resource.canonical)) for r in app.router.routes()
                  if r.resource is not None}  # fmt: skip
        assert served == {o.key for o in ops}, "every route is in /openapi.json and no other"
        check_declared(ops)
        callers = {r: await login(client, r) for r in sorted(ROLES - {"integration"})}
        callers["integration"] = As(client, key=world.keys[TENANT])
        matrix = Matrix(client, maker, callers)
        sides: tuple[Side, ...] = ("A", "B", "U")
        for side in sides:  # tenant B's objects all exist before the snapshot
            for param, make in OBJECTS.items():
                matrix.cache[(param, side)] = make(maker, side)
        maker.caseless_vehicle("B")
        before = snapshot(fresh_db, OTHER)
        await run_matrix(matrix, ops)
        after = snapshot(fresh_db, OTHER)
    assert matrix.failures == []
    changed = {t for t in before if before[t] != after[t]}
    assert changed == set(), "tenant B's rows changed through tenant A's callers"
    assert len(ops) >= 40


def test_an_unknown_parameter_or_body_fails_with_what_to_add() -> None:
    unknown = Operation("GET", "/v1/widgets/{widget_id}", frozenset({"admin"}),
                        [("widgets", "widget_id")], False)  # fmt: skip
    with pytest.raises(AssertionError, match=r"OBJECTS\[\('widgets', 'widget_id'\)\]"):
        check_declared([unknown])
    bodyless = Operation("POST", "/v1/widgets", frozenset({"admin"}), [], True)
    with pytest.raises(AssertionError, match=r"BODIES\[\('POST', '/v1/widgets'\)\]"):
        check_declared([bodyless])
