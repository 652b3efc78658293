"""The lending core's pull endpoint on a real database: risk and reasons, tenant-scoped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cloud.api.app import build_app
from cloud.api.keys import ApiKeyError, create_integration_key
from tests.integration.ingest_support import TENANT, prepare_db

pytestmark = pytest.mark.services
Client = TestClient[web.Request, web.Application]
OTHER = "other-bank"


@pytest.fixture
def keys(fresh_db: str) -> tuple[str, str, str]:
    prepare_db(fresh_db, [])
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES (%s, 'Other')", (OTHER,))
        vid = conn.execute(
            "INSERT INTO vehicles (tenant_id, vin) VALUES (%s, 'LSVAB4BR0EN000017') RETURNING id",
            (TENANT,),
        ).fetchone()
        assert vid is not None
        conn.execute(
            "INSERT INTO loans (tenant_id, contract_id, vehicle_id, status) "
            "VALUES (%s, 'C-1', %s, 'overdue')",
            (TENANT, vid[0]),
        )
        conn.execute(
            "INSERT INTO vehicle_risk (vehicle_id, tenant_id, score, band, reasons) VALUES "
            '(%s, %s, 85.0, \'critical\', \'[{"rule": "device_removed", "points": 85.0}]\')',
            (vid[0], TENANT),
        )
        conn.execute(
            "INSERT INTO alerts (tenant_id, vehicle_id, rule, episode, severity, status, "
            "fired_at, message) VALUES (%s, %s, 'device_removed', 'e1', 'critical', 'open', "
            "%s, 'unit removed')",
            (TENANT, vid[0], datetime(2025, 3, 4, tzinfo=UTC)),
        )
        conn.commit()
        mine = create_integration_key(conn, TENANT, "lending-core")
        theirs = create_integration_key(conn, OTHER, "lending-core")
        with pytest.raises(ApiKeyError):
            create_integration_key(conn, TENANT, "lending-core")
    return fresh_db, mine, theirs


@pytest.fixture
async def client(keys: tuple[str, str, str]) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(keys[0], pool_max=2))) as c:
        yield c


async def test_loan_risk_with_reasons_and_open_alerts(
    client: Client,
    keys: tuple[str, str, str],
) -> None:
    resp = await client.get("/v1/loans/C-1/risk", headers={"Authorization": f"Bearer {keys[1]}"})
    assert resp.status == 200
    doc = await resp.json()
    assert doc["score"] == 85.0
    assert doc["band"] == "critical"
    assert doc["loan_status"] == "overdue"
    assert doc["reasons"] == [{"rule": "device_removed", "points": 85.0}]
    assert [a["rule"] for a in doc["open_alerts"]] == ["device_removed"]


async def test_another_tenants_key_sees_no_such_loan(
    client: Client,
    keys: tuple[str, str, str],
) -> None:
    resp = await client.get("/v1/loans/C-1/risk", headers={"Authorization": f"Bearer {keys[2]}"})
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "loan_not_found"


@pytest.mark.parametrize(
    "header", [None, "Bearer ", "Bearer not-a-key", "Basic abc", "Bearer " + "x" * 5000]
)
async def test_missing_or_bad_keys_are_refused(
    client: Client,
    header: str | None,
) -> None:
    headers = {} if header is None else {"Authorization": header}
    resp = await client.get("/v1/loans/C-1/risk", headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_hostile_contract_ids_are_plain_not_found(
    client: Client,
    keys: tuple[str, str, str],
) -> None:
    auth = {"Authorization": f"Bearer {keys[1]}"}
    for contract in ("C-1' OR '1'='1", "..%2F..%2Fetc%2Fpasswd", "x" * 500):
        resp = await client.get(f"/v1/loans/{contract}/risk", headers=auth)
        assert resp.status == 404, contract
