"""Tenant, people, integration keys, loans and devices through the API, on a real database."""

from __future__ import annotations

import pytest

from tests.integration.ingest_support import TENANT
from tests.integration.test_api_fleet_support import (
    Fleet,
    build_fleet,
    delete,
    doc,
    ids,
    patch,
    put,
)
from tests.integration.test_api_support import (
    OTHER,
    PASSWORD,
    As,
    api,
    error_code,
    login,
    try_login,
)

pytestmark = pytest.mark.services


@pytest.fixture
def fleet(fresh_db: str) -> Fleet:
    return build_fleet(fresh_db)


async def test_tenant_counts_and_rename(fleet: Fleet) -> None:
    async with api(fleet.dsn) as client:
        analyst = await login(client, "analyst")
        tenant = await doc(await analyst.get("/v1/tenant"))
        assert (tenant["id"], tenant["name"]) == (TENANT, "Acme Auto Finance")
        assert tenant["counts"] == {"vehicles": 3, "devices": 3, "loans": 3, "users": 5,
                                    "open_alerts": 3, "open_cases": 1}  # fmt: skip
        assert (await patch(analyst, "/v1/tenant", {"name": "x"})).status == 403
        admin = await login(client, "admin")
        renamed = await doc(await patch(admin, "/v1/tenant", {"name": "Acme Finance 安科"}))
        assert renamed["name"] == "Acme Finance 安科"
        for bad in ({"name": ""}, {"name": "   "}, {"name": "x" * 201}, {"id": "evil"}, {}):
            resp = await patch(admin, "/v1/tenant", bad)
            assert (resp.status, await error_code(resp)) == (400, "invalid_request"), bad
    assert fleet.sql("SELECT id, name FROM tenants ORDER BY id") == [
        (TENANT, "Acme Finance 安科"), (OTHER, "Other Bank")]  # fmt: skip
    [(user, otype, oid, detail)] = fleet.audit("tenant_updated")
    assert (user, otype, oid) == ("admin", "tenant", TENANT)
    assert detail == {"from_name": "Acme Auto Finance", "to_name": "Acme Finance 安科"}


async def test_admins_manage_people(fleet: Fleet) -> None:
    me = fleet.users[f"{TENANT}/admin"]
    async with api(fleet.dsn) as client:
        admin = await login(client, "admin")
        created = await doc(await admin.post("/v1/users", {"username": "zhang.san",
                                                           "role": "recovery",
                                                           "password": "a long passphrase"}),
                            201)  # fmt: skip
        assert (created["username"], created["role"], created["disabled"]) == (
            "zhang.san", "recovery", False)  # fmt: skip
        assert "password" not in str(created)
        zhang = await login(client, "zhang.san", password="a long passphrase")
        assert (await zhang.get("/v1/vehicles")).status == 200
        resp = await admin.post("/v1/users", {"username": "zhang.san", "role": "analyst",
                                              "password": "a long passphrase"})  # fmt: skip
        assert (resp.status, await error_code(resp)) == (409, "user_exists")
        for bad in ({"username": "x", "role": "root", "password": "a long passphrase"},
                    {"username": "x", "role": "analyst", "password": "short"},
                    {"username": "bad name", "role": "analyst", "password": "a long passphrase"},
                    {"username": "x", "role": "integration", "password": "a long passphrase"},
                    {"username": "x", "role": "analyst"}):  # fmt: skip
            resp = await admin.post("/v1/users", bad)
            assert (resp.status, await error_code(resp)) == (400, "invalid_request"), bad

        # promote, then disable: the sessions end at once
        uid = created["id"]
        promoted = await doc(await patch(admin, f"/v1/users/{uid}", {"role": "analyst"}))
        assert promoted["role"] == "analyst"
        assert (await zhang.get("/v1/tenant")).status == 200  # the new role applies at once
        disabled = await doc(await patch(admin, f"/v1/users/{uid}", {"disabled": True}))
        assert disabled["disabled"] is True
        assert (await zhang.get("/v1/vehicles")).status == 401
        assert (await try_login(client, "zhang.san", "a long passphrase")).status == 401
        # an admin cannot lock itself out
        for change in ({"disabled": True}, {"role": "analyst"}):
            resp = await patch(admin, f"/v1/users/{me}", change)
            assert (resp.status, await error_code(resp)) == (409, "self_change"), change
        assert (await doc(await patch(admin, f"/v1/users/{me}", {"role": "admin"})))["id"] == me
        # other tenants' users and integration users are not people here
        for uid_other in (fleet.users[f"{OTHER}/analyst"], 999_999):
            resp = await patch(admin, f"/v1/users/{uid_other}", {"disabled": True})
            assert (resp.status, await error_code(resp)) == (404, "user_not_found")
        key_user = fleet.sql("SELECT id FROM users WHERE tenant_id = %s AND role = "
                             "'integration'", (TENANT,))[0][0]  # fmt: skip
        assert (await admin.get(f"/v1/users/{key_user}")).status == 404
        listed = await doc(await admin.get("/v1/users", role="analyst"))
        assert [u["username"] for u in listed["items"]] == ["analyst", "zhang.san"]
        off = await doc(await admin.get("/v1/users", disabled="true"))
        assert ids(off["items"]) == [uid]
        one = await doc(await admin.get(f"/v1/users/{fleet.users[f'{TENANT}/analyst']}"))
        assert one["username"] == "analyst"
    assert fleet.sql("SELECT disabled FROM users WHERE tenant_id = %s AND username = 'analyst'",
                     (OTHER,)) == [(False,)]  # fmt: skip
    actions = fleet.sql("SELECT action, username, object_id, detail FROM audit_log WHERE "
                        "action LIKE 'user_%%' ORDER BY id")  # fmt: skip
    mine = [a for a in actions if a[1] == "admin"]
    assert [(a[0], a[2]) for a in mine] == [("user_created", str(uid)),
                                            ("user_role_changed", str(uid)),
                                            ("user_disabled", str(uid))]  # fmt: skip
    assert mine[1][3] == {"username": "zhang.san", "from_role": "recovery", "to_role": "analyst"}
    assert mine[2][3]["sessions_ended"] == 1


async def test_integration_keys_are_shown_once_and_revoked(fleet: Fleet) -> None:
    async with api(fleet.dsn) as client:
        admin = await login(client, "admin")
        made = await doc(await admin.post("/v1/integration-keys", {"name": "core-2"}), 201)
        assert made["key"].startswith("vgr_")
        core = As(client, key=made["key"])
        assert (await core.get("/v1/loans")).status == 200
        listed = await doc(await admin.get("/v1/integration-keys"))
        assert [k["name"] for k in listed["items"]] == ["lending-core", "core-2"]
        assert "key" not in listed["items"][1]
        resp = await admin.post("/v1/integration-keys", {"name": "core-2"})
        assert (resp.status, await error_code(resp)) == (409, "user_exists")
        resp = await admin.post("/v1/integration-keys", {"name": "bad name!"})
        assert resp.status == 400
        revoked = await doc(await delete(admin, f"/v1/integration-keys/{made['id']}"))
        assert revoked["revoked"] is True
        assert (await core.get("/v1/loans")).status == 401
        # a person is not a key; another tenant's key is not found
        theirs = fleet.sql("SELECT id FROM users WHERE tenant_id = %s AND role = 'integration'",
                           (OTHER,))[0][0]  # fmt: skip
        for uid in (fleet.users[f"{TENANT}/analyst"], theirs):
            resp = await delete(admin, f"/v1/integration-keys/{uid}")
            assert (resp.status, await error_code(resp)) == (404, "integration_key_not_found")
        assert (await As(client, key=fleet.world.keys[OTHER]).get("/v1/loans")).status == 200
    assert fleet.sql("SELECT api_key_hash IS NULL, disabled FROM users WHERE id = %s",
                     (made["id"],)) == [(True, True)]  # fmt: skip
    assert [r[2] for r in fleet.audit("integration_key_created")] == [str(made["id"])]
    assert [r[2] for r in fleet.audit("integration_key_revoked")] == [str(made["id"])]
    assert made["key"] not in str(fleet.sql("SELECT detail FROM audit_log"))


async def test_loans_are_pushed_by_the_lending_core(fleet: Fleet) -> None:
    vin = "LSVAB4BR0EN000025"  # the unassigned car
    async with api(fleet.dsn) as client:
        core = As(client, key=fleet.world.keys[TENANT])
        created = await doc(await put(core, "/v1/loans/HT-2025-0001", {
            "vin": vin, "status": "overdue", "overdue_days": 35, "principal": 120000,
            "outstanding": 80000.5}), 201)  # fmt: skip
        assert (created["contract"], created["vin"], created["status"]) == ("HT-2025-0001", vin,
                                                                            "overdue")  # fmt: skip
        assert (created["overdue_days"], created["principal"], created["exposure"]) == (
            35, 120000.0, 80000.5)  # fmt: skip
        updated = await doc(await put(core, "/v1/loans/HT-2025-0001",
                                      {"status": "default", "overdue_days": 95}))  # fmt: skip
        assert (updated["status"], updated["overdue_days"], updated["outstanding"]) == (
            "default", 95, 80000.5)  # fmt: skip
        same = await doc(await put(core, "/v1/loans/HT-2025-0001", {"status": "default"}))
        assert same["overdue_days"] == 95
        got = await doc(await core.get("/v1/loans/HT-2025-0001"))
        assert got == updated | {"updated_at": got["updated_at"]}
        for body, status, code in (
            ({"status": "current"}, 400, "vin_required"),
            ({"status": "current", "vin": "LSVAB4BR0EN000099"}, 409, "vehicle_not_registered"),
            ({"status": "late", "vin": vin}, 400, "invalid_request"),
            ({"status": "current", "vin": vin, "overdue_days": -1}, 400, "invalid_request"),
            ({"status": "current", "vin": vin, "principal": 1e13}, 400, "invalid_request"),
            ({"status": "current", "vin": vin, "borrower": "x"}, 400, "invalid_request"),
        ):  # fmt: skip
            resp = await put(core, "/v1/loans/HT-NEW", body)
            assert (resp.status, await error_code(resp)) == (status, code), body
        resp = await put(core, "/v1/loans/C-assigned", {"status": "current", "vin": vin})
        assert (resp.status, await error_code(resp)) == (409, "vin_mismatch")
        resp = await put(core, "/v1/loans/bad%20contract", {"status": "current", "vin": vin})
        assert (resp.status, await error_code(resp)) == (400, "invalid_contract")
        # another tenant's VIN is not registered here; its contract is another loan
        theirs = As(client, key=fleet.world.keys[OTHER])
        resp = await put(theirs, "/v1/loans/HT-2025-0001", {"status": "current", "vin": vin})
        assert (resp.status, await error_code(resp)) == (409, "vehicle_not_registered")
        assert (await theirs.get("/v1/loans/HT-2025-0001")).status == 404
        admin = await login(client, "admin")
        listed = await doc(await admin.get("/v1/loans", status="default"))
        assert ids(listed["items"], "contract") == ["HT-2025-0001"]
        by_car = await doc(await admin.get("/v1/loans", vehicle_id=str(created["vehicle_id"])))
        assert ids(by_car["items"], "contract") == ["C-unassigned", "HT-2025-0001"]
        assert ids((await doc(await admin.get("/v1/loans", q="C-")))["items"], "contract") == [
            "C-assigned", "C-unassigned", "C-closed"]  # fmt: skip
        analyst = await login(client, "analyst")
        assert (await put(analyst, "/v1/loans/HT-2025-0001", {"status": "closed"})).status == 403
        assert (await analyst.get("/v1/loans/HT-2025-0001")).status == 200
    rows = fleet.audit("loan_updated")
    assert [(r[0], r[2]) for r in rows] == [("lending-core", "HT-2025-0001")] * 2
    assert rows[0][3]["created"] is True
    assert rows[1][3] == {"created": False, "changes": {"status": ["overdue", "default"],
                                                        "overdue_days": [35, 95]}}  # fmt: skip


async def test_devices_show_health_to_installers(fleet: Fleet) -> None:
    v = fleet.world.vehicles
    async with api(fleet.dsn) as client:
        installer = await login(client, "installer")
        listed = await doc(await installer.get("/v1/devices"))
        mine = [fleet.device(n) for n in ("assigned", "unassigned", "closed")]
        assert ids(listed["items"]) == sorted([*mine, "wl-1"])
        one = await doc(await installer.get(f"/v1/devices/{fleet.device('assigned')}"))
        assert (one["vehicle_id"], one["loan_contract"], one["state"]) == (
            v["assigned"], "C-assigned", "online")  # fmt: skip
        assert not {"lat", "lon", "position"} & set(one)
        online = await doc(await installer.get("/v1/devices", state="online"))
        assert ids(online["items"]) == [fleet.device("assigned")]
        unknown = await doc(await installer.get("/v1/devices", state="unknown"))
        assert ids(unknown["items"]) == ["wl-1"]
        wireless = await doc(await installer.get("/v1/devices", kind="wireless", revoked="true"))
        assert ids(wireless["items"]) == ["wl-1"]
        per_car = await doc(await installer.get("/v1/devices", vehicle_id=str(v["assigned"])))
        assert ids(per_car["items"]) == [fleet.device("assigned"), "wl-1"]
        first = await doc(await installer.get("/v1/devices", limit="3"))
        rest = await doc(await installer.get("/v1/devices", cursor=first["next_cursor"]))
        assert ids(first["items"] + rest["items"]) == ids(listed["items"])
        for missing in (fleet.device("other"), "nope", "x" * 65):
            resp = await installer.get(f"/v1/devices/{missing}")
            assert (resp.status, await error_code(resp)) == (404, "device_not_found")
        resp = await (await login(client, "recovery")).get("/v1/devices")
        assert resp.status == 403
    assert fleet.sql("SELECT count(*) FROM audit_log WHERE action LIKE 'viewed%%'") == [(0,)]


async def test_the_password_of_a_new_user_is_hashed(fleet: Fleet) -> None:
    async with api(fleet.dsn) as client:
        admin = await login(client, "admin")
        await doc(await admin.post("/v1/users", {"username": "li", "role": "installer",
                                                 "password": PASSWORD}), 201)  # fmt: skip
    [(stored,)] = fleet.sql("SELECT password_hash FROM users WHERE username = 'li'")
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
