"""``vgr edge verify-token``: check the terminal token and policy an agent would load."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path


def verify_token(config_path: Path) -> int:
    from edge.config import load_config
    from protocols.configfile import ConfigError
    from protocols.errors import TokenError
    from protocols.token_verify import (
        Keyring,
        load_public_key_pem,
        verify_policy,
        verify_terminal_token,
    )

    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}")
        return 2
    try:
        keyring = Keyring(load_public_key_pem(p.read_bytes()) for p in cfg.trust.platform_keys)
        token = cfg.trust.token_file.read_text(encoding="ascii").strip()
        policy = cfg.trust.policy_file.read_text(encoding="ascii").strip()
    except (OSError, ValueError, TypeError) as exc:
        print(f"cannot read trust material: {exc}")
        return 2
    now = datetime.now(UTC)
    try:
        claims = verify_terminal_token(
            keyring, token, device_id=cfg.device.id, now=now, policy_jws=policy
        )
        pol = verify_policy(keyring, policy, device_id=cfg.device.id)
    except TokenError as exc:
        print(f"REFUSED: {exc}")
        return 1
    print(f"token valid for device {claims.device_id} (tenant {claims.tenant}, VIN {claims.vin})")
    print(f"expires {claims.expires_at.isoformat()}; policy {pol.policy_id} v{pol.version}")
    print(f"allowed areas: {len(pol.allowed)}, forbidden zones: {len(pol.forbidden)}")
    return 0


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = cmds.add_parser("verify-token", help="verify the token and policy named in a config")
    p.add_argument("--config", type=Path, required=True)
    p.set_defaults(func=lambda a: verify_token(a.config))
