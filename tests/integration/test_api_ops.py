"""The operations routes against real TimescaleDB and Mosquitto: queue, cases, chase, webhooks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloud.api.app import build_app
from cloud.api.commands import CommanderFactory, commander_from_config
from cloud.config import parse_config
from cloud.localsvc import PrivateMosquitto, free_port
from cloud.recovery.commands import record_ack
from protocols.messages import SCHEMA_VERSION, CommandAck
from protocols.tokens import private_key_to_pem, verify_command
from tests.integration.ingest_support import TENANT
from tests.integration.test_api_ops_support import (
    KEY,
    KEYRING,
    OpsWorld,
    Tracker,
    build_ops_world,
    commander_for,
)
from tests.integration.test_api_support import OTHER, As, Client, error_code, login, settings

pytestmark = pytest.mark.services


@pytest.fixture
def world(fresh_db: str) -> OpsWorld:
    return build_ops_world(fresh_db)


def client_for(w: OpsWorld, commander: CommanderFactory | None = None) -> Client:
    app = build_app(w.dsn, settings=settings(), pool_max=4, commander=commander)
    return TestClient(TestServer(app))


async def json_of(resp: Any) -> Any:
    assert resp.status < 300, (resp.status, await resp.text())
    return await resp.json()


# ---------------------------------------------------------------- the recovery queue


async def test_queue_is_ranked_scoped_paged_and_audited(world: OpsWorld) -> None:
    v = world.base.vehicles
    async with client_for(world) as client:
        admin = await login(client, "admin")
        doc = await json_of(await admin.get("/v1/recovery/queue"))
        ids = [item["vehicle"]["id"] for item in doc["items"]]
        # the closed-case car still has a current loan; other-bank's riskier car never shows
        assert ids == [v["assigned"], v["unassigned"], v["closed"]]
        assert [item["rank"] for item in doc["items"]] == [1, 2, 3]
        first = doc["items"][0]
        assert first["loan"]["contract_id"] == "A-100"
        assert first["score"] == 90.0
        assert first["case"]["assignee"] == "recovery"
        assert first["last_position"]["lat"] == 31.5  # the newer of its two fixes
        assert first["last_position"]["device_id"] == world.devices["assigned"]
        assert {p["kind"] for p in first["likely_places"]} >= {"declared"}
        assert first["live"]["trackers"][0]["device_id"] == world.devices["assigned"]
        assert first["top_alerts"][0]["rule"] == "device_removed"

        paged: list[int] = []
        cursor = None
        while True:
            params = {"limit": "1"} | ({"cursor": cursor} if cursor else {})
            page = await json_of(await admin.get("/v1/recovery/queue", **params))
            paged += [item["vehicle"]["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert paged == ids

        agent = await login(client, "recovery")
        mine = await json_of(await agent.get("/v1/recovery/queue"))
        assert [item["vehicle"]["id"] for item in mine["items"]] == [v["assigned"]]
        idle = await json_of(await (await login(client, "rob")).get("/v1/recovery/queue"))
        assert idle["items"] == []
        theirs = await json_of(
            await (await login(client, "admin", OTHER)).get("/v1/recovery/queue")
        )
        assert [item["vehicle"]["id"] for item in theirs["items"]] == [v["other"]]
        resp = await (await login(client, "installer")).get("/v1/recovery/queue")
        assert (resp.status, await error_code(resp)) == (403, "forbidden")
        for bad in ({"limit": "0"}, {"limit": "201"}, {"cursor": "x"}, {"sort": "score"}):
            resp = await admin.get("/v1/recovery/queue", **bad)
            assert resp.status == 400, bad
    rows = world.sql(
        "SELECT username, object_type, object_id, detail->'vehicle_ids' FROM audit_log "
        "WHERE action = 'viewed_locations' AND tenant_id = %s ORDER BY id", (TENANT,)
    )  # fmt: skip
    # one row per call that showed cars: the first call, the three pages, the agent's call
    assert [(r[0], r[1], r[2]) for r in rows] == [("admin", "vehicle", None)] * 4 + [
        ("recovery", "vehicle", None)
    ]
    assert rows[0][3] == ids
    assert [r[3] for r in rows[1:4]] == [[i] for i in ids]
    assert rows[4][3] == [v["assigned"]]


# ---------------------------------------------------------------- cases


async def test_case_lifecycle_with_chase_over_mqtt(
    world: OpsWorld, mosquitto: PrivateMosquitto
) -> None:
    v, users = world.base.vehicles, world.users
    tracker = Tracker(mosquitto.plain_port, world.devices["unassigned"])
    try:
        async with client_for(world, commander_for(mosquitto.plain_port)) as client:
            analyst = await login(client, "analyst")
            rob = await login(client, "rob")
            resp = await analyst.post("/v1/cases", {"vehicle_id": v["unassigned"], "note": "x"})
            assert resp.status == 201, await resp.text()
            case = await resp.json()
            cid = case["case"]["id"]
            assert (case["case"]["status"], case["case"]["contract_id"]) == ("open", "A-200")
            assert case["allowed"] == ["closed"]
            resp = await analyst.post("/v1/cases", {"vehicle_id": v["unassigned"]})
            assert (resp.status, await error_code(resp)) == (409, "case_already_open")
            resp = await analyst.post("/v1/cases", {"vehicle_id": v["other"]})
            assert (resp.status, await error_code(resp)) == (404, "vehicle_not_found")
            assert (await rob.get(f"/v1/cases/{cid}")).status == 404  # not his yet

            for wrong in (users[(TENANT, "analyst")], users[(OTHER, "recovery")], 10**9):
                resp = await analyst.post(f"/v1/cases/{cid}/assign", {"user_id": wrong})
                assert (resp.status, await error_code(resp)) == (400, "invalid_assignee")
            resp = await analyst.post(f"/v1/cases/{cid}/assign",
                                      {"user_id": users[(TENANT, "rob")]})  # fmt: skip
            assert (await json_of(resp))["case"]["assignee"] == "rob"

            resp = await rob.post(f"/v1/cases/{cid}/transition",
                                  {"to": "chasing", "chase_minutes": 30, "note": "go"})  # fmt: skip
            chasing = await json_of(resp)
            assert chasing["case"]["status"] == "chasing"
            assert chasing["allowed"] == ["chasing", "assigned", "located", "failed"]  # no closing
            [sent] = chasing["sent"]
            assert (sent["device_id"], sent["published"]) == (world.devices["unassigned"], True)
            command = tracker.next_command()
            claims = verify_command(KEYRING, command, device_id=world.devices["unassigned"],
                                    now=datetime.now(UTC), seen_nonces=set())  # fmt: skip
            assert (claims.cmd, claims.args) == ("chase_mode", {"on": True, "duration_s": 1800})
            assert [c["id"] for c in chasing["commands"]] == [sent["id"]]
            assert chasing["commands"][0]["status"] == "published"

            resp = await rob.post(f"/v1/cases/{cid}/transition", {"to": "closed", "note": "n"})
            assert (resp.status, await error_code(resp)) == (403, "forbidden")
            resp = await rob.post(f"/v1/cases/{cid}/transition", {"to": "recovered"})
            assert (resp.status, await error_code(resp)) == (409, "invalid_transition")
            located = await json_of(await rob.post(f"/v1/cases/{cid}/transition",
                                                   {"to": "located"}))  # fmt: skip
            assert located["located"]["lat"] == 32.5  # the car's last fix
            done = await json_of(await rob.post(f"/v1/cases/{cid}/transition",
                                                {"to": "recovered", "note": "towed"}))  # fmt: skip
            assert done["case"]["outcome"] == "recovered"
            off = tracker.next_command()  # finishing switched chase mode off
            off_claims = verify_command(KEYRING, off, device_id=world.devices["unassigned"],
                                        now=datetime.now(UTC), seen_nonces=set())  # fmt: skip
            assert off_claims.args == {"on": False}
            assert (await rob.get(f"/v1/cases/{cid}")).status == 404  # no longer being worked
            closed = await json_of(await analyst.post(f"/v1/cases/{cid}/transition",
                                                      {"to": "closed"}))  # fmt: skip
            assert closed["case"]["status"] == "closed"
            assert closed["allowed"] == []
            resp = await analyst.post(f"/v1/cases/{cid}/transition", {"to": "closed"})
            assert (resp.status, await error_code(resp)) == (409, "invalid_transition")

            listed = await json_of(await analyst.get("/v1/cases", status="closed"))
            assert listed["items"][0]["id"] == cid
            detail = await json_of(await analyst.get(f"/v1/cases/{cid}"))
            actions = [h["action"] for h in detail["history"]]
            assert actions[:3] == ["opened", "assigned", "chase_started"]
            assert {"located", "recovered", "closed", "commands_published"} <= set(actions)
            other_admin = await login(client, "admin", OTHER)
            assert (await other_admin.get(f"/v1/cases/{cid}")).status == 404
            resp = await other_admin.post(f"/v1/cases/{cid}/transition", {"to": "closed"})
            assert (resp.status, await error_code(resp)) == (404, "case_not_found")
    finally:
        tracker.close()
    changes = world.sql("SELECT username, detail->>'change', detail->>'to_status' FROM audit_log "
                        "WHERE action = 'case_changed' AND object_id = %s ORDER BY id",
                        (str(cid),))  # fmt: skip
    assert changes == [
        ("analyst", "opened", "open"), ("analyst", "assigned", "assigned"),
        ("rob", "to_chasing", "chasing"), ("rob", "to_located", "located"),
        ("rob", "to_recovered", "recovered"), ("analyst", "to_closed", "closed"),
    ]  # fmt: skip
    views = world.sql("SELECT username, detail->>'source' FROM audit_log WHERE action = "
                      "'viewed_location' AND object_id = %s ORDER BY id",
                      (str(v["unassigned"]),))  # fmt: skip
    assert views == [("rob", "case_located"), ("analyst", "case")]


async def test_transitions_that_need_commands_say_so_without_a_commander(world: OpsWorld) -> None:
    cid = world.sql("SELECT id FROM recovery_cases WHERE status = 'assigned'")[0][0]
    async with client_for(world, None) as client:
        agent = await login(client, "recovery")
        resp = await agent.post(f"/v1/cases/{cid}/transition", {"to": "chasing"})
        assert (resp.status, await error_code(resp)) == (503, "commands_unavailable")
        resp = await agent.post(f"/v1/cases/{cid}/transition", {"to": "located", "lat": 31.2})
        assert (resp.status, await error_code(resp)) == (400, "invalid_request")
        resp = await agent.post(f"/v1/cases/{cid}/transition",
                                {"to": "located", "lat": 31.2, "lon": 121.4})  # fmt: skip
        assert (await json_of(resp))["located"] == {
            "lat": 31.2, "lon": 121.4, "at": (await resp.json())["located"]["at"]
        }  # fmt: skip
        for bad in ({"to": "lost"}, {"to": "chasing", "chase_minutes": 0},
                    {"to": "located", "lat": 91, "lon": 0}, {"to": "failed", "extra": 1},
                    {"to": "failed", "chase_minutes": 5}):  # fmt: skip
            resp = await agent.post(f"/v1/cases/{cid}/transition", bad)
            assert (resp.status, await error_code(resp)) == (400, "invalid_request"), bad
    assert world.sql("SELECT status FROM recovery_cases WHERE id = %s", (cid,)) == [("located",)]


# ---------------------------------------------------------------- chase and commands


async def test_chase_route_signs_publishes_audits_and_lists_acks(
    world: OpsWorld, mosquitto: PrivateMosquitto
) -> None:
    v = world.base.vehicles
    device = world.devices["assigned"]
    tracker = Tracker(mosquitto.plain_port, device)
    try:
        async with client_for(world, commander_for(mosquitto.plain_port)) as client:
            admin = await login(client, "admin")
            agent = await login(client, "recovery")
            doc = await json_of(await agent.post(f"/v1/vehicles/{v['assigned']}/chase",
                                                 {"on": True, "minutes": 10}))  # fmt: skip
            assert (doc["published"], doc["minutes"], doc["on"]) == (True, 10, True)
            assert (
                doc["case_id"]
                == world.sql(
                    "SELECT id FROM recovery_cases WHERE vehicle_id = %s AND status = 'assigned'",
                    (v["assigned"],),
                )[0][0]
            )
            [sent] = doc["commands"]
            claims = verify_command(KEYRING, tracker.next_command(), device_id=device,
                                    now=datetime.now(UTC), seen_nonces=set())  # fmt: skip
            assert claims.args == {"on": True, "duration_s": 600}
            resp = await agent.post(f"/v1/vehicles/{v['unassigned']}/chase", {"on": True})
            assert (resp.status, await error_code(resp)) == (404, "vehicle_not_found")
            resp = await (await login(client, "analyst")).post(
                f"/v1/vehicles/{v['assigned']}/chase", {"on": False}
            )
            assert (resp.status, await error_code(resp)) == (403, "forbidden")
            off = await json_of(await admin.post(f"/v1/vehicles/{v['assigned']}/chase",
                                                 {"on": False}))  # fmt: skip
            assert off["minutes"] is None
            assert verify_command(
                KEYRING,
                tracker.next_command(),
                device_id=device,
                now=datetime.now(UTC),
                seen_nonces=set(),
            ).args == {"on": False}
            for bad in ({"on": True, "minutes": 1441}, {"on": True, "minutes": 0}, {"minutes": 5}):
                resp = await admin.post(f"/v1/vehicles/{v['assigned']}/chase", bad)
                assert (resp.status, await error_code(resp)) == (400, "invalid_request"), bad
            world.sql("UPDATE devices SET revoked = true WHERE id = %s", (world.devices["closed"],))
            resp = await admin.post(f"/v1/vehicles/{v['closed']}/chase", {"on": True})
            assert (resp.status, await error_code(resp)) == (409, "no_devices")

            with psycopg.connect(world.dsn, autocommit=True) as conn:
                ack = CommandAck(v=SCHEMA_VERSION, device_id=device, nonce=claims.nonce, ok=True)
                assert record_ack(conn, device, ack) == "recorded"
            listed = await json_of(await agent.get(f"/v1/vehicles/{v['assigned']}/commands"))
            assert [c["status"] for c in listed["items"]] == ["published", "acknowledged"]
            assert listed["items"][1]["id"] == sent["id"]
            page = await json_of(await agent.get(f"/v1/vehicles/{v['assigned']}/commands",
                                                 limit="1"))  # fmt: skip
            assert page["next_cursor"] is not None
            rest = await json_of(await agent.get(f"/v1/vehicles/{v['assigned']}/commands",
                                                 cursor=page["next_cursor"]))  # fmt: skip
            assert [c["id"] for c in page["items"] + rest["items"]] == [
                c["id"] for c in listed["items"]
            ]
            other = await login(client, "admin", OTHER)
            assert (await other.get(f"/v1/vehicles/{v['assigned']}/commands")).status == 404
            resp = await other.post(f"/v1/vehicles/{v['assigned']}/chase", {"on": True})
            assert (resp.status, await error_code(resp)) == (404, "vehicle_not_found")
    finally:
        tracker.close()
    sent_rows = world.sql("SELECT username, object_id, detail->'args' FROM audit_log "
                          "WHERE action = 'command_sent' ORDER BY id")  # fmt: skip
    assert sent_rows == [("recovery", str(v["assigned"]), {"on": True, "duration_s": 600}),
                         ("admin", str(v["assigned"]), {"on": False})]  # fmt: skip


async def test_chase_reports_a_broker_that_is_down(world: OpsWorld) -> None:
    vid = world.base.vehicles["unassigned"]
    async with client_for(world, commander_for(free_port())) as client:
        admin = await login(client, "admin")
        doc = await json_of(await admin.post(f"/v1/vehicles/{vid}/chase", {"on": True}))
        assert doc["published"] is False
        assert doc["commands"][0]["published"] is False
        assert "unreachable" in doc["commands"][0]["note"]
        listed = await json_of(await admin.get(f"/v1/vehicles/{vid}/commands"))
        assert listed["items"][0]["status"] == "not_published"
    async with client_for(world, None) as client:
        resp = await (await login(client, "admin")).post(f"/v1/vehicles/{vid}/chase", {"on": True})
        assert (resp.status, await error_code(resp)) == (503, "commands_unavailable")


async def test_the_commander_comes_from_the_cloud_config(
    world: OpsWorld, mosquitto: PrivateMosquitto, tmp_path: Path
) -> None:
    key_file = tmp_path / "platform.pem"
    key_file.write_bytes(private_key_to_pem(KEY))
    text = (f'kind = "cloud"\n[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.plain_port}\n'
            f'[registry]\nsigning_key = "file:{key_file}"\n')  # fmt: skip
    cfg = parse_config(text, environ={}, source="test")
    factory = commander_from_config(cfg, timeout_s=cfg.api.command_timeout_s)
    assert factory is not None
    no_key = parse_config('kind = "cloud"\n', environ={}, source="test")
    assert commander_from_config(no_key, timeout_s=1.0) is None
    device = world.devices["unassigned"]
    tracker = Tracker(mosquitto.plain_port, device)
    try:
        async with client_for(world, factory) as client:
            admin = await login(client, "admin")
            vid = world.base.vehicles["unassigned"]
            doc = await json_of(await admin.post(f"/v1/vehicles/{vid}/chase", {"on": True}))
            assert doc["published"] is True
            claims = verify_command(KEYRING, tracker.next_command(), device_id=device,
                                    now=datetime.now(UTC), seen_nonces=set())  # fmt: skip
            assert claims.args == {"on": True, "duration_s": 3600}
    finally:
        tracker.close()


# ---------------------------------------------------------------- webhooks


async def test_webhook_endpoints_are_managed_per_tenant(world: OpsWorld) -> None:
    ours, theirs = world.endpoints[TENANT], world.endpoints[OTHER]
    async with client_for(world) as client:
        admin = await login(client, "admin")
        key = As(client, key=world.base.keys[TENANT])
        listed = await json_of(await key.get("/v1/webhooks/endpoints"))
        assert [e["id"] for e in listed["items"]] == [ours]
        assert listed["next_cursor"] is None
        resp = await admin.post("/v1/webhooks/endpoints", {
            "url": "https://lender.example.com/vgr", "description": "core",
            "event_types": ["alert.opened", "alert.opened", "device.offline"]})  # fmt: skip
        assert resp.status == 201, await resp.text()
        created = await resp.json()
        new_id, secret = created["endpoint"]["id"], created["secret"]
        assert secret.startswith("whsec_")
        assert created["endpoint"]["event_types"] == ["alert.opened", "device.offline"]
        assert secret not in await (await key.get(f"/v1/webhooks/endpoints/{new_id}")).text()
        for url in ("http://127.0.0.1:5432/", "http://10.1.2.3/hook", "http://169.254.169.254/",
                    "ftp://lender.example.com/", "https://user:pw@lender.example.com/",
                    "http://2130706433/"):  # fmt: skip
            resp = await admin.post("/v1/webhooks/endpoints", {"url": url})
            assert resp.status == 400, url
            assert await error_code(resp) in ("invalid_url", "invalid_request"), url
        resp = await admin.post("/v1/webhooks/endpoints",
                                {"url": "https://x.example", "event_types": ["nope"]})  # fmt: skip
        assert (resp.status, await error_code(resp)) == (400, "invalid_request")

        change = {"enabled": False, "disabled_reason": "maintenance", "description": "paused"}
        patched = await json_of(
            await key.call("PATCH", f"/v1/webhooks/endpoints/{ours}", json=change)
        )
        assert (patched["enabled"], patched["disabled_reason"]) == (False, "maintenance")
        resp = await key.call("PATCH", f"/v1/webhooks/endpoints/{ours}",
                              json={"url": "http://192.168.1.1/"})  # fmt: skip
        assert (resp.status, await error_code(resp)) == (400, "invalid_url")
        again = await json_of(await key.call("PATCH", f"/v1/webhooks/endpoints/{ours}",
                                             json={"enabled": True}))  # fmt: skip
        assert again["enabled"] is True
        rotated = await json_of(await admin.post(f"/v1/webhooks/endpoints/{ours}/rotate-secret"))
        assert rotated["secret"].startswith("whsec_")
        shown = await json_of(await admin.get(f"/v1/webhooks/endpoints/{ours}"))
        assert shown["live_secrets"] == 2  # the old one signs on during the overlap

        other = As(client, key=world.base.keys[OTHER])
        for method, path in (("GET", f"/v1/webhooks/endpoints/{ours}"),
                             ("PATCH", f"/v1/webhooks/endpoints/{ours}"),
                             ("DELETE", f"/v1/webhooks/endpoints/{ours}"),
                             ("POST", f"/v1/webhooks/endpoints/{ours}/rotate-secret"),
                             ("GET", "/v1/webhooks/endpoints/not-an-id")):  # fmt: skip
            resp = await other.call(method, path, json={} if method == "PATCH" else None)
            assert (resp.status, await error_code(resp)) == (404, "endpoint_not_found"), path
        theirs_listed = await json_of(await other.get("/v1/webhooks/endpoints"))
        assert [e["id"] for e in theirs_listed["items"]] == [theirs]
        first = await json_of(
            await admin.get("/v1/webhooks/endpoints?limit=1")
        )  # paged, oldest first
        assert [e["id"] for e in first["items"]] == [ours]
        rest = await json_of(
            await admin.get(f"/v1/webhooks/endpoints?limit=1&cursor={first['next_cursor']}")
        )
        assert [e["id"] for e in rest["items"]] == [new_id]
        assert rest["next_cursor"] is None
        deleted = await json_of(await admin.call("DELETE", f"/v1/webhooks/endpoints/{new_id}"))
        assert deleted == {"id": new_id, "deleted": True}
        assert (await admin.get(f"/v1/webhooks/endpoints/{new_id}")).status == 404
        for role in ("analyst", "recovery", "installer"):
            resp = await (await login(client, role)).get("/v1/webhooks/endpoints")
            assert resp.status == 403, role
    assert world.sql("SELECT count(*) FROM webhook_secrets WHERE endpoint_id = %s "
                     "AND expires_at > now() + interval '23 hours'", (ours,)) == [(1,)]  # fmt: skip
    actions = world.sql("SELECT action FROM audit_log WHERE object_type = 'webhook_endpoint' "
                        "ORDER BY id")  # fmt: skip
    assert [a for (a,) in actions] == [
        "webhook_endpoint_created", "webhook_endpoint_changed", "webhook_endpoint_changed",
        "webhook_secret_rotated", "webhook_endpoint_deleted",
    ]  # fmt: skip


async def test_delivery_log_dead_letters_and_replay(world: OpsWorld) -> None:
    dead, succeeded = world.deliveries[TENANT]
    message = world.messages[TENANT]
    async with client_for(world) as client:
        admin = await login(client, "admin")
        listed = await json_of(await admin.get("/v1/webhooks/deliveries"))
        assert [d["id"] for d in listed["items"]] == [succeeded, dead]
        letters = await json_of(await admin.get("/v1/webhooks/deliveries", state="dead"))
        assert [d["id"] for d in letters["items"]] == [dead]
        page = await json_of(await admin.get("/v1/webhooks/deliveries", limit="1"))
        rest = await json_of(await admin.get("/v1/webhooks/deliveries",
                                             cursor=page["next_cursor"]))  # fmt: skip
        assert [d["id"] for d in page["items"] + rest["items"]] == [succeeded, dead]
        by_endpoint = await json_of(await admin.get("/v1/webhooks/deliveries",
                                                    endpoint=world.endpoints[OTHER]))  # fmt: skip
        assert by_endpoint["items"] == []
        detail = await json_of(await admin.get(f"/v1/webhooks/deliveries/{dead}"))
        assert [(a["outcome"], a["status"]) for a in detail["attempts"]] == [("http_error", 500)]
        assert "payload" not in detail["delivery"]
        resp = await admin.get("/v1/webhooks/deliveries", state="lost")
        assert (resp.status, await error_code(resp)) == (400, "invalid_parameter")

        replayed = await json_of(await admin.post(f"/v1/webhooks/messages/{message}/replay"))
        assert replayed["replays"] == [
            {"endpoint_id": world.endpoints[TENANT], "series": 3, "reason": ""}
        ]
        only_ours = {"endpoint_id": world.endpoints[TENANT]}
        busy = await json_of(await admin.post(f"/v1/webhooks/messages/{message}/replay", only_ours))
        assert busy["replays"][0]["series"] is None  # the replay is still under way
        resp = await admin.post(f"/v1/webhooks/messages/{message}/replay",
                                {"endpoint_id": world.endpoints[OTHER]})  # fmt: skip
        assert (resp.status, await error_code(resp)) == (404, "endpoint_not_found")
        for path in (f"/v1/webhooks/messages/{world.messages[OTHER]}/replay",
                     "/v1/webhooks/messages/nope/replay"):  # fmt: skip
            resp = await admin.post(path)
            assert (resp.status, await error_code(resp)) == (404, "message_not_found")
        theirs = world.deliveries[OTHER][0]
        resp = await admin.get(f"/v1/webhooks/deliveries/{theirs}")
        assert (resp.status, await error_code(resp)) == (404, "delivery_not_found")
    assert world.sql("SELECT count(*) FROM webhook_deliveries WHERE message_id = %s",
                     (message,)) == [(3,)]  # fmt: skip
    assert world.sql(
        "SELECT count(*) FROM audit_log WHERE action = 'webhook_message_replayed'"
    ) == [(2,)]
