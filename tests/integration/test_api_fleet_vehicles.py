"""The fleet routes on a real database: roles, tenants, recovery scope, audit, the map's shapes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from cloud.api.policy import ROLES
from tests.integration.ingest_support import TENANT
from tests.integration.test_api_fleet_support import (
    TRACK_DAY,
    Fleet,
    build_fleet,
    callers,
    doc,
    ids,
    my_specs,
    sample,
)
from tests.integration.test_api_support import OTHER, As, api, error_code, login

pytestmark = pytest.mark.services


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def keys_of(value: Any) -> set[str]:
    """Every key of every object in a JSON document."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()


@pytest.fixture
def fleet(fresh_db: str) -> Fleet:
    return build_fleet(fresh_db)


async def test_every_fleet_route_admits_exactly_its_roles(fleet: Fleet) -> None:
    specs = my_specs()
    assert len(specs) == 30
    async with api(fleet.dsn) as client:
        who = await callers(client, fleet)
        for spec in specs:
            path = sample(fleet, spec.path)
            for role in sorted(ROLES):
                resp = await who[role].call(spec.method, path)
                if spec.policy.allows(role):
                    assert resp.status not in (401, 403, 500), (role, spec.method, path)
                else:
                    assert resp.status == 403, (role, spec.method, path, resp.status)
                    assert await error_code(resp) == "forbidden"
            assert (await client.request(spec.method, path)).status == 401, path


async def test_another_tenants_objects_are_not_found(fleet: Fleet) -> None:
    shared = {"/v1/regions/{adcode}"}  # national reference data: every tenant sees it
    async with api(fleet.dsn) as client:
        theirs = await callers(client, fleet, OTHER)
        for spec in my_specs():
            if "{" not in spec.path or spec.path in shared:
                continue
            path = sample(fleet, spec.path)  # an object of TENANT
            for role in sorted(spec.policy.roles):
                if spec.method == "PUT":
                    continue  # PUT creates: covered by test_loans_are_pushed_by_the_lending_core
                resp = await theirs[role].call(spec.method, path)  # no body: 404 comes first
                assert resp.status == 404, (role, spec.method, path, resp.status)
                assert (await error_code(resp)).endswith("_not_found")
        admin = theirs["admin"]
        other = fleet.world.vehicles["other"]
        assert ids((await doc(await admin.get("/v1/vehicles")))["items"]) == [other]
        positions = await doc(await admin.get("/v1/fleet/positions"))
        assert ids(positions["items"], "vehicle_id") == [other]
        assert ids((await doc(await admin.get("/v1/devices")))["items"]) == [f"dev{other}"]
        loans = await doc(await admin.get("/v1/loans"))
        assert ids(loans["items"], "contract") == ["C-other"]
        pois = await doc(await admin.get("/v1/pois"))
        assert sorted(ids(pois["items"], "name")) == ["global", "theirs"]
        cands = await doc(await admin.get("/v1/pois/candidates"))
        assert ids(cands["items"], "name") == ["their_candidate"]
        policies = await doc(await admin.get("/v1/policies"))
        assert ids(policies["items"]) == ["theirs-v1"]
        users = await doc(await admin.get("/v1/users"))
        assert {u["username"] for u in users["items"]} == {"admin", "analyst", "recovery",
                                                           "installer"}  # fmt: skip
        assert [u["id"] for u in users["items"]] == sorted(
            fleet.users[f"{OTHER}/{n}"] for n in ("admin", "analyst", "recovery", "installer")
        )
    # nothing of TENANT was read by the other tenant's callers
    assert fleet.sql("SELECT count(*) FROM audit_log WHERE tenant_id = %s AND action LIKE "
                     "'viewed%%'", (TENANT,)) == [(0,)]  # fmt: skip


async def test_vehicle_list_and_detail_have_no_coordinates(fleet: Fleet) -> None:
    v = fleet.world.vehicles
    async with api(fleet.dsn) as client:
        analyst = await login(client, "analyst")
        listed = await doc(await analyst.get("/v1/vehicles"))
        assert ids(listed["items"]) == sorted(v[n] for n in ("assigned", "unassigned", "closed"))
        first = listed["items"][0]
        assert first == {"id": v["assigned"], "vin": "LSVAB4BR0EN000017", "plate": "苏A12345",
                         "label": "苏A12345", "contract": "C-assigned", "loan_status": "overdue",
                         "risk_score": 85.0, "risk_level": "critical", "open_alerts": 1,
                         "online": True}  # fmt: skip
        online = await doc(await analyst.get("/v1/vehicles", online="true"))
        assert ids(online["items"]) == [v["assigned"]]
        offline = await doc(await analyst.get("/v1/vehicles", online="false"))
        assert ids(offline["items"]) == [v["unassigned"], v["closed"]]
        risky = await doc(await analyst.get("/v1/vehicles", risk_min="50"))
        assert ids(risky["items"]) == [v["assigned"], v["closed"]]
        for q, expected in (("lsvab4br0en00002", "unassigned"), ("苏A", "assigned"),
                            ("C-clo", "closed")):  # fmt: skip
            found = await doc(await analyst.get("/v1/vehicles", q=q))
            assert ids(found["items"]) == [v[expected]], q
        for literal in ("%", "C_", "_"):  # LIKE wildcards in a search match themselves
            assert (await doc(await analyst.get("/v1/vehicles", q=literal)))["items"] == []
        pages = [await doc(await analyst.get("/v1/vehicles", limit="2"))]
        pages.append(await doc(await analyst.get("/v1/vehicles", limit="2",
                                                 cursor=pages[0]["next_cursor"])))  # fmt: skip
        assert pages[1]["next_cursor"] is None
        assert ids(pages[0]["items"] + pages[1]["items"]) == ids(listed["items"])

        detail = await doc(await analyst.get(f"/v1/vehicles/{v['assigned']}"))
        assert detail["loan"] == {"id": fleet.loans["assigned"], "contract": "C-assigned",
                                  "status": "overdue", "overdue_days": None, "principal": None,
                                  "outstanding": 50000.0, "exposure": 50000.0}  # fmt: skip
        assert detail["risk"]["score"] == 85.0
        assert detail["risk"]["level"] == "critical"
        assert detail["risk"]["reasons"] == [{"rule": "device_removed", "points": 40}]
        assert detail["open_alerts"] == 1
        wired, wireless = detail["devices"]
        assert wired["id"] == wired["imei"] == fleet.device("assigned")
        assert (wired["online"], wired["authorized"], wired["firmware"]) == (True, True, "1.4.2")
        assert (wired["battery"], wired["main_power"]) == (3.9, 12.6)
        assert wired["last_fix_at"].startswith("2025-03-06")
        assert (wireless["id"], wireless["revoked"], wireless["online"]) == ("wl-1", True, False)
        assert wireless["last_seen"] is None
        assert not (keys_of(listed) | keys_of(detail)) & {"lat", "lon", "position"}
    assert fleet.sql("SELECT count(*) FROM audit_log WHERE action LIKE 'viewed%%'") == [(0,)]


async def test_recovery_agents_see_only_their_cars(fleet: Fleet) -> None:
    v = fleet.world.vehicles
    async with api(fleet.dsn) as client:
        rita = await login(client, "recovery")
        rob = await login(client, "rob")
        assert ids((await doc(await rita.get("/v1/vehicles")))["items"]) == [v["assigned"]]
        assert (await doc(await rob.get("/v1/vehicles")))["items"] == []
        positions = await doc(await rita.get("/v1/fleet/positions"))
        assert ids(positions["items"], "vehicle_id") == [v["assigned"]]
        assert (await doc(await rob.get("/v1/fleet/positions")))["items"] == []
        for route in ("", "/track", "/places", "/policy"):
            assert (await rita.get(f"/v1/vehicles/{v['assigned']}{route}")).status == 200
            for name in ("unassigned", "closed", "other"):
                resp = await rita.get(f"/v1/vehicles/{v[name]}{route}")
                assert resp.status == 404, (name, route)
                assert await error_code(resp) == "vehicle_not_found"
            assert (await rob.get(f"/v1/vehicles/{v['assigned']}{route}")).status == 404


async def test_fleet_positions_one_audit_row_per_call(fleet: Fleet) -> None:
    v = fleet.world.vehicles
    async with api(fleet.dsn) as client:
        analyst = await login(client, "analyst")
        whole = await doc(await analyst.get("/v1/fleet/positions"))
        assert whole["next_cursor"] is None
        mine = [v["assigned"], v["unassigned"], v["closed"]]
        assert ids(whole["items"], "vehicle_id") == mine
        car = whole["items"][0]
        assert set(car) == {"vehicle_id", "lat", "lon", "time", "speed_mps", "course_deg",
                            "risk_score", "risk_level", "online"}  # fmt: skip
        # the assigned car's last fix is the end of its track: parked at B
        assert (car["lat"], car["online"], car["risk_level"]) == (31.5, True, "critical")
        assert at(car["time"]) == TRACK_DAY + timedelta(seconds=5410)
        first = await doc(await analyst.get("/v1/fleet/positions", limit="2"))
        rest = await doc(await analyst.get("/v1/fleet/positions", cursor=first["next_cursor"]))
        assert ids(first["items"] + rest["items"], "vehicle_id") == mine
        # the unassigned car's fixes are at lat 32.0-32.5; the closed car's at 33.0-33.5
        boxed = await doc(await analyst.get("/v1/fleet/positions", bbox="120,32.2,122,32.8"))
        assert ids(boxed["items"], "vehicle_id") == [v["unassigned"]]
        for bad in ("1,2,3", "122,32,120,33", "a,b,c,d", "0,91,1,92", "nan,1,2,3"):
            resp = await analyst.get("/v1/fleet/positions", bbox=bad)
            assert (resp.status, await error_code(resp)) == (400, "invalid_parameter"), bad
        for bad_limit in ("0", "10001", "x"):
            resp = await analyst.get("/v1/fleet/positions", limit=bad_limit)
            assert resp.status == 400
        assert (await analyst.get("/v1/fleet/positions", limit="10000")).status == 200
    rows = fleet.audit("viewed_locations")
    assert [r[0] for r in rows] == ["analyst"] * 5
    assert [r[3]["vehicle_ids"] for r in rows] == [mine, mine[:2], mine[2:], [v["unassigned"]],
                                                   mine]  # fmt: skip
    assert rows[3][3]["bbox"] == "120,32.2,122,32.8"


async def test_track_is_thinned_keeps_stays_and_is_audited(fleet: Fleet) -> None:
    vid = fleet.world.vehicles["assigned"]
    start, end = TRACK_DAY, TRACK_DAY + timedelta(hours=2)
    async with api(fleet.dsn) as client:
        recovery = await login(client, "recovery")
        path = f"/v1/vehicles/{vid}/track"
        span = {"from": start.isoformat(), "to": end.isoformat()}
        whole = await doc(await recovery.get(path, **span))
        assert (whole["vehicle_id"], whole["total"], whole["downsampled"]) == (vid, 542, False)
        assert len(whole["points"]) == 542  # within the default budget of 2000: every fix
        assert (at(whole["from"]), at(whole["to"])) == (start, end)
        thin = await doc(await recovery.get(path, **span, max_points="40"))
        assert (thin["total"], thin["downsampled"]) == (542, True)
        points = thin["points"]
        # the parked runs and the straight legs collapse (their jitter is along the road)
        assert 6 <= len(points) < 40
        assert set(points[0]) == {"t", "lat", "lon", "speed_mps", "course_deg"}
        assert at(points[0]["t"]) == start
        assert at(points[-1]["t"]) == start + timedelta(seconds=5410)
        # the detour's corners (the drive leaves lat 31.5 for 31.504 and comes back) stay
        detour = [p for p in points if round(p["lat"], 3) == 31.504]
        assert len(detour) >= 2
        assert detour[0]["lon"] < 118.5 + 22 * 5e-4 < 118.5 + 38 * 5e-4 < detour[-1]["lon"]
        assert thin["stays"] == whole["stays"]
        a, b = whole["stays"]
        # 40 min parked, and the stay lasts until the 4th fix of the drive (47 m apart: 200 m)
        assert (at(a["start"]), a["duration_s"]) == (start, 2440.0)
        assert b["end"] == points[-1]["t"]
        times = {p["t"] for p in points}
        assert {a["start"], a["end"], b["start"], b["end"]} <= times
        small = await doc(await recovery.get(path, **span, max_points="5"))
        assert len(small["points"]) == 5  # first, last and the two stays' inner boundaries
        assert small["stays"] == whole["stays"]
        empty = await doc(await recovery.get(path))  # the last 24 h: nothing stored
        assert (empty["total"], empty["points"], empty["downsampled"]) == (0, [], False)
        bad = [{"from": end.isoformat(), "to": start.isoformat()},
               {"from": start.isoformat(), "to": (start + timedelta(days=32)).isoformat()},
               {"from": "2025-03-06T00:00:00"}, {"max_points": "1"}, {"max_points": "10001"},
               {"from": "yesterday"}, {"colour": "red"}]  # fmt: skip
        for params in bad:
            resp = await recovery.get(path, **params)
            assert (resp.status, await error_code(resp)) == (400, "invalid_parameter"), params
    rows = fleet.audit("viewed_track")
    assert len(rows) == 4
    assert rows[0][:3] == ("recovery", "vehicle", str(vid))
    assert rows[0][3]["start"] == start.isoformat()


async def test_places_from_the_risk_engine_and_audited(fleet: Fleet) -> None:
    v = fleet.world.vehicles
    async with api(fleet.dsn) as client:
        analyst = await login(client, "analyst")
        places = await doc(await analyst.get(f"/v1/vehicles/{v['assigned']}/places"))
        main, second = places["resident"]
        assert (main["lat"], main["lon"], main["nights"], main["kind"]) == (31.45, 118.45, 12,
                                                                            "resident")  # fmt: skip
        assert main["radius_m"] == 500.0
        assert (second["kind"], second["share"]) == ("secondary", 0.2)
        recent = places["recent_stays"]
        assert len(recent) == 2
        assert recent[0]["start"] > recent[1]["start"]  # most recent first
        visited = places["pois_visited"]
        assert sorted(p["name"] for p in visited) == ["global", "own"]
        assert visited[0]["visits"] == 1
        # no learned area: the loan's declared address; no fixes in the last week: no stays
        other = await doc(await analyst.get(f"/v1/vehicles/{v['unassigned']}/places"))
        assert [(p["kind"], p["lat"]) for p in other["resident"]] == [("declared", 31.45)]
        assert other["pois_visited"] == []
    rows = fleet.audit("viewed_places")
    assert [(r[0], r[2]) for r in rows] == [("analyst", str(v["assigned"])),
                                            ("analyst", str(v["unassigned"]))]  # fmt: skip


async def test_policy_overlay_is_geojson(fleet: Fleet) -> None:
    v = fleet.world.vehicles
    async with api(fleet.dsn) as client:
        analyst = await login(client, "analyst")
        signed = await doc(await analyst.get(f"/v1/vehicles/{v['assigned']}/policy"))
        assert signed["type"] == "FeatureCollection"
        assert (signed["source"], signed["policy_id"]) == ("signed", fleet.policy_id)
        [area] = signed["features"]
        assert area["properties"]["role"] == "allowed"
        assert area["properties"]["name"] == "Nanjing"
        assert area["properties"]["radius_m"] == 30000
        assert area["geometry"]["type"] == "Polygon"
        ring = area["geometry"]["coordinates"][0]
        assert len(ring) >= 64
        assert ring[0] == ring[-1]
        declared = await doc(await analyst.get(f"/v1/vehicles/{v['unassigned']}/policy"))
        assert declared["source"] == "loan"
        areas = [(f["properties"]["role"], f["properties"]["name"], f["geometry"]["type"])
                 for f in declared["features"]]  # fmt: skip
        assert areas == [("allowed", "Jiangsu", "Polygon"), ("forbidden", "Pawn row", "Polygon")]
    assert fleet.sql("SELECT count(*) FROM audit_log WHERE action LIKE 'viewed%%'") == [(0,)]


async def test_bad_list_parameters_are_400(fleet: Fleet) -> None:
    async with api(fleet.dsn) as client:
        admin = await login(client, "admin")
        cases = [("/v1/vehicles", {"limit": "501"}), ("/v1/vehicles", {"risk_min": "101"}),
                 ("/v1/vehicles", {"online": "maybe"}), ("/v1/vehicles", {"q": "a" * 65}),
                 ("/v1/vehicles", {"sort": "vin"}), ("/v1/devices", {"kind": "usb"}),
                 ("/v1/loans", {"status": "late"}), ("/v1/users", {"role": "root"}),
                 ("/v1/regions", {"level": "town"}), ("/v1/pois", {"category": "bar"}),
                 ("/v1/policies", {"limit": "0"})]  # fmt: skip
        for path, params in cases:
            resp = await admin.get(path, **params)
            assert (resp.status, await error_code(resp)) == (400, "invalid_parameter"), params
        vehicles_cursor = (await doc(await admin.get("/v1/vehicles", limit="1")))["next_cursor"]
        for path in ("/v1/loans", "/v1/devices", "/v1/users", "/v1/fleet/positions"):
            resp = await admin.get(path, cursor=vehicles_cursor)
            assert (resp.status, await error_code(resp)) == (400, "invalid_cursor"), path
        resp = await admin.get("/v1/vehicles", limit="500")
        assert resp.status == 200


async def test_integration_key_reaches_only_loans(fleet: Fleet) -> None:
    async with api(fleet.dsn) as client:
        key = As(client, key=fleet.world.keys[TENANT])
        assert (await key.get("/v1/loans")).status == 200
        for path in ("/v1/vehicles", "/v1/fleet/positions", "/v1/devices", "/v1/tenant"):
            assert (await key.get(path)).status == 403, path
