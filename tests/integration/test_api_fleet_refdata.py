"""Regions, risk POIs and signed policies through the API, on a real database."""

from __future__ import annotations

import pytest
import shapely
from shapely.geometry import shape

from cloud.refdata.gcj02 import wgs84_to_gcj02
from tests.integration.test_api_fleet_support import Fleet, build_fleet, delete, doc, ids
from tests.integration.test_api_support import OTHER, api, error_code, login

pytestmark = pytest.mark.services


@pytest.fixture
def fleet(fresh_db: str) -> Fleet:
    return build_fleet(fresh_db)


async def test_regions_list_shape_and_basemap(fleet: Fleet) -> None:
    async with api(fleet.dsn) as client:
        recovery = await login(client, "recovery")
        listed = await doc(await recovery.get("/v1/regions"))
        assert [(r["adcode"], r["level"]) for r in listed["items"]] == [
            ("110000", "city"), ("110000", "province"), ("320000", "province"),
            ("320100", "city")]  # fmt: skip
        assert set(listed["items"][0]) == {"adcode", "name", "level", "parent"}
        cities = await doc(await recovery.get("/v1/regions", level="city", parent="320000"))
        assert [(r["adcode"], r["name"]) for r in cities["items"]] == [("320100", "南京市")]
        first = await doc(await recovery.get("/v1/regions", limit="3"))
        rest = await doc(await recovery.get("/v1/regions", cursor=first["next_cursor"]))
        assert first["items"] + rest["items"] == listed["items"]

        feature = await doc(await recovery.get("/v1/regions/320000"))
        assert feature["type"] == "Feature"
        assert feature["properties"] == {"adcode": "320000", "name": "江苏省",
                                         "level": "province", "parent": None}  # fmt: skip
        assert shape(feature["geometry"]).equals(shapely.box(118, 31, 119, 32))
        beijing = await doc(await recovery.get("/v1/regions/110000", level="city"))
        assert beijing["properties"]["level"] == "city"
        assert (await doc(await recovery.get("/v1/regions/110000")))["properties"][
            "level"] == "province"  # fmt: skip
        for missing in ("990000", "abc", "3200001"):
            resp = await recovery.get(f"/v1/regions/{missing}")
            assert (resp.status, await error_code(resp)) == (404, "region_not_found"), missing
        for bad in ({"tolerance": "1"}, {"tolerance": "-0.1"}, {"level": "town"}):
            resp = await recovery.get("/v1/regions/320000", **bad)
            assert (resp.status, await error_code(resp)) == (400, "invalid_parameter"), bad

        resp = await recovery.get("/v1/regions/basemap")
        assert resp.status == 200
        etag = resp.headers["ETag"]
        assert resp.headers["Cache-Control"] == "private, no-cache"
        base = await resp.json()
        assert base["type"] == "FeatureCollection"
        assert sorted(f["id"] for f in base["features"]) == ["110000", "320000"]
        again = await recovery.call("GET", "/v1/regions/basemap",
                                    headers={"If-None-Match": etag})  # fmt: skip
        assert again.status == 304
        assert await again.read() == b""
        city = await recovery.get("/v1/regions/basemap", level="city")
        assert city.headers["ETag"] != etag
        assert sorted(f["id"] for f in (await city.json())["features"]) == ["110000", "320100"]
        # a re-import changes the basemap, and so its ETag
        fleet.sql("UPDATE regions SET name = '江苏', imported_at = now() WHERE adcode = '320000'")
        changed = await recovery.call("GET", "/v1/regions/basemap",
                                      headers={"If-None-Match": etag})  # fmt: skip
        assert changed.status == 200
        assert changed.headers["ETag"] != etag
        names = {f["id"]: f["properties"]["name"] for f in (await changed.json())["features"]}
        assert names["320000"] == "江苏"
        resp = await recovery.get("/v1/regions/basemap", level="district")
        assert resp.status == 400


async def test_pois_listed_added_deleted_and_confirmed(fleet: Fleet) -> None:
    p = fleet.pois
    async with api(fleet.dsn) as client:
        recovery = await login(client, "recovery")
        listed = await doc(await recovery.get("/v1/pois"))
        assert ids(listed["items"]) == [p["global"], p["own"]]
        assert [i["scope"] for i in listed["items"]] == ["global", "tenant"]
        boxed = await doc(await recovery.get("/v1/pois", bbox="118.505,31,118.6,32"))
        assert ids(boxed["items"]) == [p["own"]]
        pawn = await doc(await recovery.get("/v1/pois", category="pawnshop"))
        assert ids(pawn["items"]) == [p["global"]]
        assert (await recovery.post("/v1/pois", {})).status == 403

        analyst = await login(client, "analyst")
        wgs = (31.2304, 121.4737)  # Shanghai
        gcj = wgs84_to_gcj02(*wgs)
        made = await doc(await analyst.post("/v1/pois", {
            "name": "二押 on Nanjing Rd", "category": "second_mortgage", "lat": gcj[0],
            "lon": gcj[1], "radius_m": 200, "crs": "gcj02"}), 201)  # fmt: skip
        assert made["lat"] == pytest.approx(wgs[0], abs=1e-7)
        assert made["lon"] == pytest.approx(wgs[1], abs=1e-7)
        assert (made["scope"], made["source"], made["radius_m"]) == ("tenant", "api", 200.0)
        same = {"name": "二押 on Nanjing Rd", "category": "second_mortgage", "lat": made["lat"],
                "lon": made["lon"]}  # fmt: skip
        resp = await analyst.post("/v1/pois", same)
        assert (resp.status, await error_code(resp)) == (409, "poi_exists")
        for bad in ({**same, "category": "bar"}, {**same, "radius_m": 5}, {**same, "lat": 91},
                    {**same, "crs": "bd09"}, {**same, "name": ""}):  # fmt: skip
            resp = await analyst.post("/v1/pois", bad)
            assert (resp.status, await error_code(resp)) == (400, "invalid_request"), bad

        gone = await doc(await delete(analyst, f"/v1/pois/{made['id']}"))
        assert gone["id"] == made["id"]
        resp = await delete(analyst, f"/v1/pois/{p['global']}")
        assert (resp.status, await error_code(resp)) == (409, "poi_is_global")
        for missing in (made["id"], p["theirs"], 0):
            resp = await delete(analyst, f"/v1/pois/{missing}")
            assert (resp.status, await error_code(resp)) == (404, "poi_not_found"), missing

        cands = await doc(await analyst.get("/v1/pois/candidates"))
        assert ids(cands["items"]) == [p["candidate"]]
        assert cands["items"][0]["evidence"] == {"vehicles": 3}
        path = f"/v1/pois/candidates/{p['candidate']}/confirm"
        resp = await analyst.post(path, {"category": "unknown"})
        assert (resp.status, await error_code(resp)) == (400, "invalid_request")
        confirmed = await doc(await analyst.post(path, {"category": "tow_yard",
                                                        "name": "拖车场 east"}))  # fmt: skip
        assert (confirmed["category"], confirmed["name"]) == ("tow_yard", "拖车场 east")
        resp = await analyst.post(path, {"category": "tow_yard"})  # no longer a candidate
        assert (resp.status, await error_code(resp)) == (404, "candidate_not_found")
        resp = await analyst.post(f"/v1/pois/candidates/{p['their_candidate']}/confirm",
                                  {"category": "pawnshop"})  # fmt: skip
        assert (resp.status, await error_code(resp)) == (404, "candidate_not_found")
        assert p["candidate"] in ids((await doc(await recovery.get("/v1/pois")))["items"])
    assert fleet.sql("SELECT confirmed FROM risk_pois WHERE id = %s",
                     (p["their_candidate"],)) == [(False,)]  # fmt: skip
    assert [(r[0], r[2]) for r in fleet.audit("poi_created")] == [("analyst", str(made["id"]))]
    assert [r[2] for r in fleet.audit("poi_deleted")] == [str(made["id"])]
    assert [r[3]["category"] for r in fleet.audit("poi_confirmed")] == ["tow_yard"]


async def test_signed_policies(fleet: Fleet) -> None:
    async with api(fleet.dsn) as client:
        analyst = await login(client, "analyst")
        listed = await doc(await analyst.get("/v1/policies"))
        assert ids(listed["items"]) == [fleet.policy_id]
        item = listed["items"][0]
        assert (item["device_id"], item["vehicle_id"], item["version"]) == (
            fleet.device("assigned"), fleet.world.vehicles["assigned"], 1)  # fmt: skip
        assert "jws" not in item
        one = await doc(await analyst.get(f"/v1/policies/{fleet.policy_id}"))
        assert one["jws"] == "header.payload.sig"
        assert one["document"]["allowed"][0]["name"] == "Nanjing"
        by_device = await doc(await analyst.get("/v1/policies", device_id="nope"))
        assert by_device["items"] == []
        for missing in ("theirs-v1", "nope"):
            resp = await analyst.get(f"/v1/policies/{missing}")
            assert (resp.status, await error_code(resp)) == (404, "policy_not_found")
    async with api(fleet.dsn) as client:
        theirs = await login(client, "analyst", OTHER)
        assert ids((await doc(await theirs.get("/v1/policies")))["items"]) == ["theirs-v1"]
