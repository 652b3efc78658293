"""Pieces of the edge benchmark: the agent's signed policy, and the verifier and evaluator timed.

The agent verifies JWTs with pure-Python Ed25519 and checks regions with pure
Python (``protocols.token_verify``, ``protocols.policy_eval``); these time
them next to what they replaced on the tracker (``cryptography``, shapely).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import shapely

from protocols.geometry import MetricArea, shape_from_geojson
from protocols.policy import Area, Circle, GeoJsonShape, Policy
from protocols.policy_eval import compile_policy, locate
from protocols.token_verify import Keyring, verify_terminal_token
from protocols.tokens import (
    TerminalClaims,
    generate_private_key,
    issue_terminal_token,
    policy_hash,
    public_key_to_pem,
    sign_policy,
)

REGIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "regions"
KEY = generate_private_key()


def provinces(*codes: str) -> dict[str, dict[str, Any]]:
    doc = msgspec.json.decode((REGIONS / "cn_provinces.geojson").read_bytes())
    found = {f["properties"]["adcode"]: f["geometry"] for f in doc["features"]}
    return {code: found[code] for code in codes}


def _token(device: str, jws: str, now: datetime) -> str:
    claims = TerminalClaims(
        device_id=device, tenant="acme-finance", vin="LSVAM4187C2184847", policy_id="bench-v1",
        policy_hash=policy_hash(jws), token_id="bench", issued_at=now,
        expires_at=now + timedelta(days=1),
    )  # fmt: skip
    return issue_terminal_token(KEY, claims)


def trust_files(cfg: Path, device: str) -> None:
    """Platform key, token and a province policy beside ``cfg``, and the config pointing at them."""
    now = datetime.now(UTC).replace(microsecond=0)
    allowed = [
        Area(id=code, shape=GeoJsonShape(geometry=geometry))
        for code, geometry in provinces("310000", "320000", "330000").items()
    ]
    forbidden = [  # pawnshops and the like, east of the simulated route (lon 121.40)
        Area(id=f"poi-{i}", shape=Circle(lon=121.45 + 0.01 * i, lat=31.21, radius_m=300.0))
        for i in range(20)
    ]
    policy = Policy(
        policy_id="bench-v1", version=1, tenant="acme-finance", device_id=device,
        issued_at=now, allowed=allowed, forbidden=forbidden,
    )  # fmt: skip
    jws = sign_policy(KEY, policy)
    d = cfg.parent
    (d / "platform.pub").write_bytes(public_key_to_pem(KEY.public_key()))
    (d / "policy.jwt").write_text(jws)
    (d / "token.jwt").write_text(_token(device, jws, now))
    text = cfg.read_text().replace("platform_keys = []", f'platform_keys = ["{d}/platform.pub"]')
    cfg.write_text(text)


def verify_rates(rounds: int = 20) -> tuple[float, float]:
    """Milliseconds per terminal-token verification: ours (whole JWS), cryptography (signature)."""
    now = datetime.now(UTC).replace(microsecond=0)
    token = _token("860000000000999", "x", now)
    ring = Keyring([KEY.public_key()])
    began = time.perf_counter()
    for _ in range(rounds):
        verify_terminal_token(ring, token, device_id="860000000000999", now=now)
    ours = (time.perf_counter() - began) / rounds * 1e3
    signing_input, _, _ = token.rpartition(".")
    signature = KEY.sign(signing_input.encode())
    public = KEY.public_key()
    began = time.perf_counter()
    for _ in range(rounds * 50):
        public.verify(signature, signing_input.encode())
    theirs = (time.perf_counter() - began) / (rounds * 50) * 1e3
    return ours, theirs


@dataclass(frozen=True, slots=True)
class RegionRates:
    name: str
    vertices: int
    pure_us: float
    shapely_us: float
    compile_ms: float
    shapely_compile_ms: float


def region_rates(code: str = "150000", n: int = 3_000) -> RegionRates:
    """Per-fix placement on the largest province (Inner Mongolia), pure vs shapely."""
    geometry = provinces(code)[code]
    policy = Policy(
        policy_id="p", version=1, tenant="t", device_id="d", issued_at=datetime.now(UTC),
        allowed=[Area(id=code, shape=GeoJsonShape(geometry=geometry))],
    )  # fmt: skip
    began = time.perf_counter()
    compiled = compile_policy(policy)
    compile_ms = (time.perf_counter() - began) * 1e3
    began = time.perf_counter()
    shape, _ = shape_from_geojson(geometry)
    grown = MetricArea.of(shape).grown(policy.hysteresis.exit_margin_m)
    shapely.prepare(shape)
    shapely.prepare(grown)
    shapely_compile_ms = (time.perf_counter() - began) * 1e3
    rng = random.Random(1)
    x0, y0, x1, y1 = shape.bounds
    points = [(rng.uniform(x0 - 1, x1 + 1), rng.uniform(y0 - 1, y1 + 1)) for _ in range(n)]
    began = time.perf_counter()
    for lon, lat in points:
        locate(compiled, lon, lat)
    pure_us = (time.perf_counter() - began) / n * 1e6
    began = time.perf_counter()
    for lon, lat in points:
        if not shapely.intersects_xy(shape, lon, lat):
            shapely.intersects_xy(grown, lon, lat)
    shapely_us = (time.perf_counter() - began) / n * 1e6
    vertices = int(shapely.get_num_coordinates(shapely.geometry.shape(geometry)))
    return RegionRates(
        "Inner Mongolia", vertices, pure_us, shapely_us, compile_ms, shapely_compile_ms
    )
