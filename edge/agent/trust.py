"""The agent's trust state: terminal token and signed policy, verified together.

Without a valid token the agent still records and buffers everything (data is
never thrown away) but reports itself ``unauthorized`` and enforces no policy:
an unsigned or mismatched policy is never used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from protocols.errors import RegionError, TokenError
from protocols.regions import CompiledPolicy, compile_policy
from protocols.token_verify import (
    Keyring,
    TerminalClaims,
    load_public_key_pem,
    verify_policy,
    verify_terminal_token,
)


@dataclass(frozen=True, slots=True)
class Trust:
    """What the agent may rely on right now."""

    authorized: bool
    reason: str  # "ok" or the rejection reason
    claims: TerminalClaims | None = None
    policy: CompiledPolicy | None = None
    token: str = ""
    policy_jws: str = ""

    @property
    def enforcing(self) -> bool:
        return self.authorized and self.policy is not None


def load_keyring(paths: list[Path]) -> Keyring:
    """The platform public keys; raises OSError/ValueError with the path on bad files."""
    keys = []
    for path in paths:
        try:
            keys.append(load_public_key_pem(path.read_bytes()))
        except (ValueError, TypeError) as exc:
            msg = f"{path}: not an Ed25519 public key ({exc})"
            raise ValueError(msg) from None
    return Keyring(keys)


def evaluate(
    keyring: Keyring, token: str, policy_jws: str, *, device_id: str, now: datetime
) -> Trust:
    """Verify ``token`` and the policy it binds; never raises for bad material."""
    token, policy_jws = token.strip(), policy_jws.strip()
    if not token:
        return Trust(False, "no_token")
    try:
        claims = verify_terminal_token(
            keyring, token, device_id=device_id, now=now, policy_jws=policy_jws or None
        )
    except TokenError as exc:
        return Trust(False, f"token_{exc.reason}", token=token, policy_jws=policy_jws)
    if not policy_jws:
        return Trust(True, "ok", claims, None, token, policy_jws)
    try:
        policy = verify_policy(keyring, policy_jws, device_id=device_id)
        compiled = compile_policy(policy)
    except TokenError as exc:
        return Trust(False, f"policy_{exc.reason}", claims, None, token, policy_jws)
    except RegionError as exc:
        return Trust(False, f"policy_{exc.reason}", claims, None, token, policy_jws)
    return Trust(True, "ok", claims, compiled, token, policy_jws)


def read_material(token_file: Path, policy_file: Path) -> tuple[str, str]:
    """Token and policy text; missing files read as empty (the agent starts unauthorized)."""

    def read(p: Path) -> str:
        try:
            return p.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            return ""

    return read(token_file), read(policy_file)


def store_material(token_file: Path, policy_file: Path, token: str, policy_jws: str) -> None:
    """Persist a verified update atomically (write + rename), so a crash keeps the old pair."""
    for path, text in ((policy_file, policy_jws), (token_file, token)):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="ascii")
        tmp.replace(path)
