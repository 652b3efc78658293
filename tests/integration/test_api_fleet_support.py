"""Shared set-up for the ``test_api_fleet*`` modules (no tests here).

On top of :func:`tests.integration.test_api_support.build_world` (two tenants,
one user per role, vehicles ``assigned`` / ``unassigned`` / ``closed`` /
``other``, a recovery case assigned to ``recovery``): loans, devices with a
status and voltages, risk scores, a signed-looking policy, regions, POIs and
POI visits, a learned resident area, and a parked-then-driving track.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
import shapely
import shapely.affinity
from aiohttp import ClientResponse

from cloud.api.app import route_specs
from cloud.api.policy import ROLES, RouteSpec
from cloud.risk.engine import ENGINE_VERSION, VehicleState, encode_key
from cloud.risk.rules.nightdwell import Home
from cloud.risk.rules.resident import ResidentState
from tests.integration.ingest_support import TENANT
from tests.integration.test_api_support import OTHER, As, Client, World, build_world, login

# A track on the day after the world's fixes: parked 40 min, then east along a
# 60-point line, then parked again 40 min (two stays), on device dev<assigned>.
TRACK_DAY = datetime(2025, 3, 6, 0, 0, tzinfo=UTC)
SQUARE = "POLYGON((118 31, 119 31, 119 32, 118 32, 118 31))"
MY_ROUTES = frozenset({
    "/v1/tenant", "/v1/users", "/v1/users/{id}", "/v1/integration-keys",
    "/v1/integration-keys/{id}", "/v1/vehicles", "/v1/vehicles/{id}", "/v1/vehicles/{id}/track",
    "/v1/vehicles/{id}/places", "/v1/vehicles/{id}/policy", "/v1/fleet/positions", "/v1/loans",
    "/v1/loans/{contract_id}", "/v1/devices", "/v1/devices/{id}", "/v1/regions",
    "/v1/regions/basemap", "/v1/regions/{adcode}", "/v1/pois", "/v1/pois/{id}",
    "/v1/pois/candidates", "/v1/pois/candidates/{id}/confirm", "/v1/policies",
    "/v1/policies/{id}",
})  # fmt: skip


@dataclass
class Fleet:
    world: World
    loans: dict[str, int] = field(default_factory=dict)  # vehicle name -> loan id
    pois: dict[str, int] = field(default_factory=dict)  # global, own, theirs, candidate
    users: dict[str, int] = field(default_factory=dict)  # "<tenant>/<username>" -> id
    policy_id: str = ""

    @property
    def dsn(self) -> str:
        return self.world.dsn

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.world.sql(query, params)

    def device(self, name: str) -> str:
        return f"dev{self.world.vehicles[name]}"

    def audit(self, action: str) -> list[tuple[Any, ...]]:
        return self.sql("SELECT username, object_type, object_id, detail FROM audit_log "
                        "WHERE action = %s ORDER BY id", (action,))  # fmt: skip


def _one(conn: psycopg.Connection[Any], query: str, params: Any) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _track(conn: psycopg.Connection[Any], tenant: str, vid: int) -> None:
    """Parked 40 min at A, a drive of 60 fixes eastwards, parked 40 min at B (10 s apart)."""
    rows = []
    t = TRACK_DAY
    lat, lon = 31.5, 118.5
    for i in range(241):  # 40 min parked
        rows.append((t + timedelta(seconds=10 * i), lat, lon + (i % 3) * 1e-6, 0.0))
    t = rows[-1][0]
    for i in range(1, 61):
        rows.append((t + timedelta(seconds=10 * i), lat + (0.004 if 20 < i < 40 else 0.0),
                     lon + i * 5e-4, 15.0))  # fmt: skip
    t, lon = rows[-1][0], rows[-1][2]
    for i in range(1, 242):
        rows.append((t + timedelta(seconds=10 * i), lat, lon, 0.0))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO fixes (time, device_id, boot_id, seq, tenant_id, vehicle_id, lat, lon, "
            "speed_mps, course_deg, mode, batt_v, ext_v) VALUES (%s, %s, 'b2', %s, %s, %s, %s, "
            "%s, %s, 90, 3, 3.9, 12.6)",
            [(when, f"dev{vid}", n, tenant, vid, la, lo, sp)
             for n, (when, la, lo, sp) in enumerate(rows)],
        )  # fmt: skip


def build_fleet(dsn: str) -> Fleet:
    w = build_world(dsn)
    f = Fleet(w)
    v = w.vehicles
    with psycopg.connect(dsn) as conn:
        for name, vid in v.items():
            tenant = OTHER if name == "other" else TENANT
            contract = f"C-{name}"
            status = "overdue" if name == "assigned" else "current"
            f.loans[name] = _one(conn,
                "INSERT INTO loans (tenant_id, contract_id, vehicle_id, status, outstanding, "
                "declared_lat, declared_lon, allowed_areas, forbidden_areas) VALUES "
                "(%s, %s, %s, %s, 50000, 31.45, 118.45, %s, %s) RETURNING id",
                (tenant, contract, vid, status,
                 '[{"id": "js", "name": "Jiangsu", "adcode": "320000", "shape": {"type": '
                 '"geojson", "geometry": {"type": "Polygon", "coordinates": [[[118, 31], [119, 31],'
                 ' [119, 32], [118, 32], [118, 31]]]}}}]',
                 '[{"id": "pawn", "name": "Pawn row", "shape": {"type": "circle", "lon": 118.6, '
                 '"lat": 31.6, "radius_m": 500}}]'))  # fmt: skip
            conn.execute(
                "INSERT INTO devices (id, tenant_id, kind, vehicle_id, loan_id, credential_hash) "
                "VALUES (%s, %s, 'wired', %s, %s, 'x')",
                (f"dev{vid}", tenant, vid, f.loans[name]),
            )
            conn.execute(
                "INSERT INTO device_status (device_id, state, agent_version, outbox_depth) "
                "VALUES (%s, %s, '1.4.2', 0)",
                (f"dev{vid}", "online" if name in ("assigned", "other") else "offline"),
            )
            conn.execute(
                "INSERT INTO vehicle_risk (vehicle_id, tenant_id, score, band, reasons) "
                "VALUES (%s, %s, %s, %s, '[{\"rule\": \"device_removed\", \"points\": 40}]')",
                (vid, tenant, {"assigned": 85.0, "unassigned": 20.0}.get(name, 50.0),
                 {"assigned": "critical", "unassigned": "low"}.get(name, "medium")),
            )  # fmt: skip
        conn.execute("UPDATE vehicles SET plate = '苏A12345' WHERE id = %s", (v["assigned"],))
        _track(conn, TENANT, v["assigned"])
        # a second, wireless device on the assigned car: never reported, revoked
        conn.execute(
            "INSERT INTO devices (id, tenant_id, kind, vehicle_id, revoked) "
            "VALUES ('wl-1', %s, 'wireless', %s, true)",
            (TENANT, v["assigned"]),
        )
        # a signed policy of the assigned car's device (document as the registry stores it)
        f.policy_id = f"dev{v['assigned']}-v1"
        doc = {"policy_id": f.policy_id, "version": 1, "tenant": TENANT,
               "device_id": f"dev{v['assigned']}", "issued_at": "2025-03-01T00:00:00Z",
               "allowed": [{"id": "nj", "name": "Nanjing", "shape": {"type": "circle",
                            "lon": 118.8, "lat": 32.06, "radius_m": 30000}}],
               "forbidden": [], "kind": "vgr.policy"}  # fmt: skip
        conn.execute(
            "INSERT INTO policies (id, tenant_id, device_id, version, document, jws, hash) "
            "VALUES (%s, %s, %s, 1, %s, 'header.payload.sig', 'h1')",
            (f.policy_id, TENANT, f"dev{v['assigned']}", msgspec.json.encode(doc).decode()),
        )
        conn.execute(
            "INSERT INTO policies (id, tenant_id, device_id, version, document, jws, hash) "
            "VALUES ('theirs-v1', %s, %s, 1, '{}', 'j', 'h')",
            (OTHER, f"dev{v['other']}"),
        )
        # regions: a province and a city sharing no code, and Beijing at two levels
        square = shapely.from_wkt(SQUARE)
        for adcode, level, name, parent in (
            ("320000", "province", "江苏省", None), ("320100", "city", "南京市", "320000"),
            ("110000", "province", "北京市", None), ("110000", "city", "北京市", "110000"),
        ):  # fmt: skip
            geom = square if adcode.startswith("32") else shapely.affinity.translate(square, 2, 8)
            conn.execute(
                "INSERT INTO regions (adcode, level, name, parent, geom, bbox, source) "
                "VALUES (%s, %s, %s, %s, %s, %s, 'test')",
                (adcode, level, name, parent, shapely.to_wkb(geom), list(geom.bounds)),
            )
        for key, owner, confirmed, category in (
            ("global", None, True, "pawnshop"), ("own", TENANT, True, "second_mortgage"),
            ("theirs", OTHER, True, "tow_yard"), ("candidate", TENANT, False, "unknown"),
            ("their_candidate", OTHER, False, "unknown"),
        ):  # fmt: skip
            f.pois[key] = _one(conn,
                "INSERT INTO risk_pois (tenant_id, category, name, lat, lon, radius_m, source, "
                "confirmed, evidence) VALUES (%s, %s, %s, 31.5, %s, 150, 'test', %s, "
                "'{\"vehicles\": 3}') RETURNING id",
                (owner, category, key, 118.5 + 0.01 * len(f.pois), confirmed))  # fmt: skip
        for key in ("global", "own"):
            conn.execute("INSERT INTO poi_visits (tenant_id, poi_id, vehicle_id, time) VALUES "
                         "(%s, %s, %s, %s)", (TENANT, str(f.pois[key]), v["assigned"],
                                              TRACK_DAY))  # fmt: skip
        # the resident area the risk engine learned for the assigned car
        state = VehicleState(
            {
                "resident": ResidentState(
                    homes=(Home(31.45, 118.45, 0.8, 12), Home(31.6, 118.7, 0.2, 3))
                )
            }
        )
        conn.execute(
            "INSERT INTO rule_state (vehicle_id, tenant_id, engine_version, pos_time, pos_key, "
            "state) VALUES (%s, %s, %s, %s, %s, %s)",
            (v["assigned"], TENANT, ENGINE_VERSION, TRACK_DAY,
             encode_key((0, 1, "", 0)), state.encode()),
        )  # fmt: skip
        for tenant in (TENANT, OTHER):
            for username in ("admin", "analyst", "recovery", "installer"):
                f.users[f"{tenant}/{username}"] = _one(
                    conn, "SELECT id FROM users WHERE tenant_id = %s AND username = %s",
                    (tenant, username))  # fmt: skip
        conn.commit()
    return f


def sample(f: Fleet, path: str, obj: str = "assigned") -> str:
    """A concrete path of one of these routes, naming an object of TENANT."""
    v = f.world.vehicles[obj]
    ids = {"{id}": str(v)}
    if path.startswith("/v1/users/"):
        ids = {"{id}": str(f.users[f"{TENANT}/analyst"])}
    elif path.startswith("/v1/integration-keys/"):
        ids = {"{id}": str(f.users[f"{TENANT}/analyst"] + 10_000)}
    elif path.startswith("/v1/devices/"):
        ids = {"{id}": f.device(obj)}
    elif path.startswith("/v1/pois/candidates/"):
        ids = {"{id}": str(f.pois["candidate"])}
    elif path.startswith("/v1/pois/"):
        ids = {"{id}": str(f.pois["own"])}
    elif path.startswith("/v1/policies/"):
        ids = {"{id}": f.policy_id}
    ids |= {"{contract_id}": f"C-{obj}", "{adcode}": "320000"}
    for placeholder, value in ids.items():
        path = path.replace(placeholder, value)
    return path


def my_specs() -> list[RouteSpec]:
    return [s for s in route_specs() if s.path in MY_ROUTES]


async def callers(client: Client, f: Fleet, tenant: str = TENANT) -> dict[str, As]:
    out = {r: await login(client, r, tenant) for r in sorted(ROLES - {"integration"})}
    out["integration"] = As(client, key=f.world.keys[tenant])
    return out


async def put(caller: As, path: str, body: Any) -> ClientResponse:
    return await caller.call("PUT", path, json=body)


async def patch(caller: As, path: str, body: Any) -> ClientResponse:
    return await caller.call("PATCH", path, json=body)


async def delete(caller: As, path: str) -> ClientResponse:
    return await caller.call("DELETE", path)


async def doc(resp: ClientResponse, status: int = 200) -> Any:
    assert resp.status == status, (resp.status, await resp.text())
    return await resp.json()


def ids(items: list[Mapping[str, Any]], key: str = "id") -> list[Any]:
    return [i[key] for i in items]
