"""Every route against its declared policy: roles, tenants, recovery scope, audit, pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from cloud.api.app import route_specs
from cloud.api.policy import ROLES, Caller, RouteSpec, Scope
from cloud.api.scope import visible_vehicle_ids
from tests.integration.ingest_support import TENANT
from tests.integration.test_api_support import (
    OTHER,
    T0,
    As,
    Client,
    World,
    api,
    build_world,
    error_code,
    login,
)

pytestmark = pytest.mark.services


@pytest.fixture
def world(fresh_db: str) -> World:
    return build_world(fresh_db)


# The routes these hand-written checks cover; test_api_matrix.py checks every route of
# /openapi.json the same way (roles, tenants, recovery scope) from generic fixtures.
SAMPLED = frozenset({
    "/v1/auth/login", "/v1/auth/me", "/v1/auth/logout", "/v1/alerts", "/v1/alerts/{id}/ack",
    "/v1/alerts/{id}/resolve", "/v1/vehicles/{id}/position", "/v1/audit",
    "/v1/loans/{contract_id}/risk",
})  # fmt: skip


def sample_path(spec: RouteSpec, w: World, obj: str = "assigned") -> str:
    """A concrete path for each route of :data:`SAMPLED`."""
    paths = {
        "/v1/auth/login": "/v1/auth/login",
        "/v1/auth/me": "/v1/auth/me",
        "/v1/auth/logout": "/v1/auth/logout",
        "/v1/alerts": "/v1/alerts",
        "/v1/alerts/{id}/ack": f"/v1/alerts/{w.alerts[obj]}/ack",
        "/v1/alerts/{id}/resolve": f"/v1/alerts/{w.alerts[obj]}/resolve",
        "/v1/vehicles/{id}/position": f"/v1/vehicles/{w.vehicles[obj]}/position",
        "/v1/audit": "/v1/audit",
        "/v1/loans/{contract_id}/risk": "/v1/loans/C-1/risk",
    }
    assert spec.path in paths, f"add {spec.method} {spec.path} to sample_path"
    return paths[spec.path]


async def callers(client: Client, w: World, tenant: str = TENANT) -> dict[str, As]:
    out = {role: await login(client, role, tenant) for role in ("admin", "analyst", "recovery",
                                                                "installer")}  # fmt: skip
    out["integration"] = As(client, key=w.keys[tenant])
    return out


PROTECTED = [s for s in route_specs() if s.policy.scope is not Scope.PUBLIC and s.path in SAMPLED]


async def test_role_matrix_over_every_route(world: World) -> None:
    assert {(s.method, s.path) for s in PROTECTED} >= {("GET", "/v1/alerts"), ("GET", "/v1/audit")}
    async with api(world.dsn) as client:
        who = await callers(client, world)
        for spec in PROTECTED:
            path = sample_path(spec, world)
            for role in sorted(ROLES):
                if spec.path == "/v1/auth/logout":
                    continue  # below: it would end the session the loop goes on using
                resp = await who[role].call(spec.method, path)
                allowed = spec.policy.allows(role)
                if allowed:
                    assert resp.status not in (401, 403), (role, spec.method, path, resp.status)
                else:
                    assert resp.status == 403, (role, spec.method, path, resp.status)
                    assert await error_code(resp) == "forbidden"
            anonymous = await client.request(spec.method, path)
            assert anonymous.status == 401, (spec.method, path)
        for role in sorted(ROLES):
            resp = await who[role].post("/v1/auth/logout")
            assert (resp.status == 200) == (role != "integration"), role
        resp = await who["admin"].get("/v1/no-such-route")
        assert (resp.status, await error_code(resp)) == (404, "not_found")
        resp = await client.put("/v1/alerts")
        assert (resp.status, await error_code(resp)) == (405, "method_not_allowed")


async def test_other_tenants_objects_are_not_found(world: World) -> None:
    async with api(world.dsn) as client:
        theirs = await callers(client, world, OTHER)
        for spec in PROTECTED:
            if "{" not in spec.path or spec.path.startswith("/v1/loans"):
                continue  # the loan route is covered by test_lending_api
            path = sample_path(spec, world, "assigned")  # an object of TENANT
            for role in sorted(spec.policy.roles):
                resp = await theirs[role].call(spec.method, path)
                assert resp.status == 404, (role, spec.method, path)
                assert (await error_code(resp)).endswith("_not_found")
        listed = await (await theirs["admin"].get("/v1/alerts")).json()
        assert [a["id"] for a in listed["items"]] == [world.alerts["other"]]
        audit = await (await theirs["admin"].get("/v1/audit", limit="200")).json()
        own = world.sql("SELECT id FROM audit_log WHERE tenant_id = %s ORDER BY id DESC", (OTHER,))
        assert [r["id"] for r in audit["items"]] == [i for (i,) in own]
    assert world.sql("SELECT count(*) FROM alerts WHERE status <> 'open'") == [(0,)]
    assert world.sql("SELECT count(*) FROM audit_log WHERE action = 'viewed_location'") == [(0,)]


async def test_recovery_agents_see_only_their_assigned_vehicles(world: World) -> None:
    async with api(world.dsn) as client:
        rita = await login(client, "recovery")
        rob = await login(client, "rob")
        resp = await rita.get(f"/v1/vehicles/{world.vehicles['assigned']}/position")
        assert resp.status == 200
        doc = await resp.json()
        assert doc["position"]["lat"] == 31.5
        assert doc["position"]["time"] == (T0 + timedelta(minutes=1)).isoformat()
        for name in ("unassigned", "closed", "other"):
            resp = await rita.get(f"/v1/vehicles/{world.vehicles[name]}/position")
            assert resp.status == 404, name
            assert await error_code(resp) == "vehicle_not_found"
            assert (await rita.post(f"/v1/alerts/{world.alerts[name]}/ack")).status == 404
        listed = await (await rita.get("/v1/alerts")).json()
        assert [a["id"] for a in listed["items"]] == [world.alerts["assigned"]]
        assert (await (await rob.get("/v1/alerts")).json())["items"] == []
        assert (await rob.get(f"/v1/vehicles/{world.vehicles['assigned']}/position")).status == 404
        assert (await rita.post(f"/v1/alerts/{world.alerts['assigned']}/ack")).status == 200
        resp = await rita.post(f"/v1/alerts/{world.alerts['assigned']}/resolve")
        assert await error_code(resp) == "forbidden"
        analyst = await login(client, "analyst")
        listed = await (await analyst.get("/v1/alerts")).json()
        assert len(listed["items"]) == 3
    async with await psycopg.AsyncConnection.connect(world.dsn) as conn:
        caller = Caller(0, TENANT, "recovery", "recovery", "session")
        assert await visible_vehicle_ids(conn, caller) == frozenset({world.vehicles["assigned"]})
        idle = Caller(0, TENANT, "rob", "recovery", "session")
        assert await visible_vehicle_ids(conn, idle) == frozenset()
        assert await visible_vehicle_ids(conn, Caller(0, TENANT, "analyst", "analyst")) is None
        other = Caller(0, OTHER, "recovery", "recovery", "session")  # same name, other tenant
        assert await visible_vehicle_ids(conn, other) == frozenset()


async def test_alert_changes_write_history_audit_and_the_webhook(world: World) -> None:
    alert = world.alerts["unassigned"]
    async with api(world.dsn) as client:
        analyst = await login(client, "analyst")
        resp = await analyst.post(f"/v1/alerts/{alert}/ack", {"note": "calling the borrower"})
        assert resp.status == 200
        doc = await resp.json()
        assert doc["status"] == "acknowledged"
        assert doc["acknowledged_by"] == "analyst"
        assert "lat" not in doc
        assert "evidence" not in doc
        resp = await analyst.post(f"/v1/alerts/{alert}/ack")
        assert resp.status == 409
        assert await error_code(resp) == "invalid_transition"
        resp = await analyst.post(f"/v1/alerts/{alert}/resolve")
        assert (await resp.json())["status"] == "resolved"
        assert (await analyst.post(f"/v1/alerts/{alert}/resolve")).status == 409
        assert (await analyst.post("/v1/alerts/999999/ack")).status == 404
    assert world.sql(
        "SELECT actor, action, from_status, to_status, detail->>'note' FROM alert_history "
        "WHERE alert_id = %s ORDER BY id", (alert,)
    ) == [("analyst", "acknowledged", "open", "acknowledged", "calling the borrower"),
          ("analyst", "resolved", "acknowledged", "resolved", None)]  # fmt: skip
    assert world.sql(
        "SELECT action, object_type, object_id, detail->>'from_status', username FROM audit_log "
        "WHERE action LIKE 'alert_%%' ORDER BY id"
    ) == [("alert_acknowledged", "alert", str(alert), "open", "analyst"),
          ("alert_resolved", "alert", str(alert), "acknowledged", "analyst")]  # fmt: skip
    assert world.sql(
        "SELECT event_type, tenant_id FROM webhook_messages WHERE id = %s",
        (f"msg_alert_{alert}_resolved",),
    ) == [("alert.resolved", TENANT)]


async def test_location_views_are_audited_and_only_admins_read_the_audit(world: World) -> None:
    vid = world.vehicles["unassigned"]
    async with api(world.dsn) as client:
        analyst = await login(client, "analyst")
        assert (await analyst.get(f"/v1/vehicles/{vid}/position")).status == 200
        for role in ("analyst", "recovery", "installer"):
            resp = await (await login(client, role)).get("/v1/audit")
            assert resp.status == 403, role
        assert (await As(client, key=world.keys[TENANT]).get("/v1/audit")).status == 403
        admin = await login(client, "admin")
        doc = await (await admin.get("/v1/audit", object_type="vehicle")).json()
    [view] = doc["items"]
    assert view["action"] == "viewed_location"
    assert view["username"] == "analyst"
    assert view["object_id"] == str(vid)
    assert view["ip"] == "127.0.0.1"
    assert view["detail"]["fix_time"] == (T0 + timedelta(minutes=1)).isoformat()
    logins = world.sql("SELECT username FROM audit_log WHERE action = 'login_succeeded' "
                       "AND tenant_id = %s ORDER BY id", (TENANT,))  # fmt: skip
    assert [u for (u,) in logins] == ["analyst", "analyst", "recovery", "installer", "admin"]
    with pytest.raises(Exception, match="append-only"):
        world.sql("UPDATE audit_log SET username = 'nobody'")
    with pytest.raises(Exception, match="append-only"):
        world.sql("DELETE FROM audit_log")


async def _all_pages(caller: As, path: str, limit: int, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        query = {"limit": str(limit)} | params | ({"cursor": cursor} if cursor else {})
        resp = await caller.get(path, **query)
        assert resp.status == 200, await resp.text()
        doc = await resp.json()
        assert len(doc["items"]) <= limit
        items += doc["items"]
        if doc["next_cursor"] is None:
            return items
        cursor = doc["next_cursor"]


async def test_pagination_is_stable(world: World) -> None:
    with_ties = [(TENANT, world.vehicles["unassigned"], f"p{i}", T0 + timedelta(minutes=i // 3))
                 for i in range(40)]  # fmt: skip
    for tenant, vid, episode, opened in with_ties:
        world.sql("INSERT INTO alerts (tenant_id, vehicle_id, rule, episode, severity, status, "
                  "fired_at, opened_at) VALUES (%s, %s, 'offline', %s, 'warn', 'open', %s, %s)",
                  (tenant, vid, episode, opened, opened))  # fmt: skip
    async with api(world.dsn) as client:
        admin = await login(client, "admin")
        whole = await (await admin.get("/v1/alerts", limit="200")).json()
        assert whole["next_cursor"] is None
        expected = [a["id"] for a in whole["items"]]
        assert len(expected) == 43
        for limit in (1, 7, 43):
            assert [a["id"] for a in await _all_pages(admin, "/v1/alerts", limit)] == expected
        offline = await _all_pages(admin, "/v1/alerts", 6, rule="offline", status="open")
        assert len(offline) == 40
        # rows added while paging do not shift the pages already handed out
        first = await (await admin.get("/v1/alerts", limit="10")).json()
        world.sql("INSERT INTO alerts (tenant_id, vehicle_id, rule, episode, severity, status, "
                  "fired_at, opened_at) VALUES (%s, %s, 'offline', 'late', 'warn', 'open', now(), "
                  "now())", (TENANT, world.vehicles["unassigned"]))  # fmt: skip
        rest = await _all_pages(admin, "/v1/alerts", 10, cursor=first["next_cursor"])
        assert [a["id"] for a in first["items"]] + [a["id"] for a in rest] == expected
        for _ in range(3):
            await admin.get(f"/v1/vehicles/{world.vehicles['assigned']}/position")
        audit = await _all_pages(admin, "/v1/audit", 2)
        ids = [r["id"] for r in audit]
        assert ids == sorted(ids, reverse=True)
        assert len(ids) == len(set(ids)) >= 4
        alerts_cursor = first["next_cursor"]
        resp = await admin.get("/v1/audit", cursor=alerts_cursor)
        assert await error_code(resp) == "invalid_cursor"
        for bad in ({"limit": "0"}, {"limit": "201"}, {"limit": "-1"}, {"limit": "1e3"}):
            resp = await admin.get("/v1/alerts", **bad)
            assert resp.status == 400
            assert await error_code(resp) == "invalid_parameter"


HOSTILE = [
    "' OR '1'='1",
    "1; DROP TABLE alerts; --",
    '") OR 1=1 --',
    "%' --",
    "$$; DROP TABLE users; $$",
    "admin'--",
    "1 UNION SELECT password_hash FROM users",
    "é' OR 1=1 /*",
]


async def test_injection_looking_strings_are_harmless(world: World) -> None:
    counts = "SELECT (SELECT count(*) FROM alerts), (SELECT count(*) FROM users)"
    before = world.sql(counts)
    async with api(world.dsn) as client:
        admin = await login(client, "admin")
        key = As(client, key=world.keys[TENANT])
        for text in [*HOSTILE, "\x00"]:
            resp = await admin.get("/v1/alerts", rule=text)
            assert resp.status in (200, 400), text
            if resp.status == 200:
                assert (await resp.json())["items"] == []
            assert (await admin.get("/v1/alerts", status=text)).status == 400
            for param in ("cursor", "limit"):
                resp = await admin.get("/v1/alerts", **{param: text})
                assert resp.status == 400, (param, text)
            for param in ("action", "object_type", "object_id", "cursor"):
                resp = await admin.get("/v1/audit", **{param: text})
                assert resp.status in (200, 400), (param, text)
                if resp.status == 200:
                    assert (await resp.json())["items"] == []
            for path in ("/v1/alerts/{}/ack", "/v1/vehicles/{}/position"):
                resp = await admin.call("POST" if "ack" in path else "GET",
                                        path.format(text.replace("/", "")))  # fmt: skip
                assert resp.status in (400, 404), (path, text)
            resp = await key.get(f"/v1/loans/{text.replace('/', '')}/risk")
            assert resp.status == 404
            body = {"tenant": text, "username": text, "password": text}
            resp = await client.post("/v1/auth/login", json=body)
            assert resp.status in (400, 401), text
        alert = world.alerts["unassigned"]
        resp = await admin.post(f"/v1/alerts/{alert}/ack", {"note": HOSTILE[1]})
        assert resp.status == 200
    assert world.sql(counts) == before
    assert world.sql("SELECT detail->>'note' FROM alert_history WHERE alert_id = %s",
                     (alert,)) == [(HOSTILE[1],)]  # fmt: skip
