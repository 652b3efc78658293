"""The agent's runtime never imports the heavy libraries the cloud uses (RSS target: 40 MB).

A fresh interpreter loads the tracker's entry point, its config, verifies a
signed token and policy and places a fix, then lists what got imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from protocols.policy import Area, Circle, GeoJsonShape, Policy
from protocols.tokens import (
    TerminalClaims,
    generate_private_key,
    issue_terminal_token,
    policy_hash,
    public_key_to_pem,
    sign_policy,
)

DEVICE = "860000000000017"
HEAVY = ("shapely", "pyproj", "numpy", "cryptography", "jwt", "pydantic", "pydantic_core")
LAZY = ("serial", "serial_asyncio", "importlib.metadata", "zoneinfo")

SCRIPT = """
import json, sys
from datetime import UTC, datetime
from pathlib import Path
from edge.installer.entry import build_parser
build_parser()
import edge.agent.cli, edge.agent.core, edge.agent.uplink, edge.agent.sources
from edge.agent.trust import evaluate, load_keyring, read_material
from edge.config import load_config
from protocols.messages import Fix
from protocols.regions import RegionState, step

cfg = load_config(Path(sys.argv[1]), environ={})
keyring = load_keyring(cfg.trust.platform_keys)
token, policy = read_material(cfg.trust.token_file, cfg.trust.policy_file)
trust = evaluate(keyring, token, policy, device_id=cfg.device.id, now=datetime.now(UTC))
assert trust.enforcing, trust.reason
fix = Fix(device_id=cfg.device.id, boot_id="b", seq=1, time=datetime.now(UTC), lat=31.2, lon=121.4)
step(RegionState(), trust.policy, fix)
print(json.dumps(sorted(sys.modules)))
"""


def write_tracker(d: Path) -> Path:
    key = generate_private_key()
    now = datetime.now(UTC).replace(microsecond=0)
    square = [[121.0, 31.0], [122.0, 31.0], [122.0, 32.0], [121.0, 32.0], [121.0, 31.0]]
    shape = GeoJsonShape(geometry={"type": "Polygon", "coordinates": [square]})
    policy = Policy(
        policy_id="p1", version=1, tenant="acme", device_id=DEVICE, issued_at=now,
        allowed=[Area(id="sh", shape=shape)],
        forbidden=[Area(id="z", shape=Circle(lon=121.5, lat=31.5, radius_m=300.0))],
    )  # fmt: skip
    jws = sign_policy(key, policy)
    claims = TerminalClaims(
        device_id=DEVICE, tenant="acme", vin="LSVAM4187C2184847", policy_id="p1",
        policy_hash=policy_hash(jws), token_id="t1", issued_at=now,
        expires_at=now + timedelta(days=1),
    )  # fmt: skip
    (d / "platform.pub").write_bytes(public_key_to_pem(key.public_key()))
    (d / "policy.jwt").write_text(jws)
    (d / "token.jwt").write_text(issue_terminal_token(key, claims))
    cfg = d / "edge.toml"
    cfg.write_text(
        f'kind = "edge"\n[device]\nid = "{DEVICE}"\ntenant = "acme"\n'
        f'[outbox]\npath = "{d}/outbox.sqlite3"\n'
        f'[trust]\nplatform_keys = ["{d}/platform.pub"]\n'
        f'token_file = "{d}/token.jwt"\npolicy_file = "{d}/policy.jwt"\n'
    )
    return cfg


def test_the_agent_runs_without_the_heavy_libraries(tmp_path: Path) -> None:
    cfg = write_tracker(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(cfg)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    modules = set(json.loads(out.stdout))
    assert not {m for m in modules if m.split(".")[0] in HEAVY}
    assert not modules & set(LAZY)
    assert {"aiomqtt", "msgspec", "pynmea2", "sqlite3"} <= modules  # the floor, for the record
