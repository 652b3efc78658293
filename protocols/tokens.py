"""Ed25519-signed JWTs between the platform and its trackers: tokens, commands, policies.

The platform signs three kinds of JWT; the tracker verifies them holding nothing
but the platform's public keys (a :class:`Keyring`, so the signing key can be
rotated: every JWT names its key with ``kid`` in the header). The kinds are told
apart by the header ``typ``, which is covered by the signature, so one kind can
never be presented as another:

``vgr-terminal+jwt`` (terminal token)
    Binds a device to its tenant, vehicle (VIN) and current policy: ``sub``
    device id, ``ten`` tenant, ``vin``, ``pol`` policy id, ``polh`` hex SHA-256
    of the signed policy JWS, ``jti`` token id, ``iat``/``exp`` and optional
    ``nbf``. The device presents it to the cloud; the cloud sends a new one
    with every policy (``PolicyUpdate``).
``vgr-command+jwt`` (signed command, carried in ``SignedCommand``)
    ``cmd``, target device ``dev``, ``iat``/``exp`` (at most 24 h apart), a
    random ``nonce`` the device remembers until ``exp`` to refuse replays, and
    flat ``args``.
``vgr-policy+jwt`` (signed region policy)
    The msgspec-encoded :class:`protocols.policy.Policy` under ``policy``, plus
    ``iat``. The terminal token pins it by hash (:func:`policy_hash`).

Only ``EdDSA`` (Ed25519) is accepted, checked in the header before any key is
used and again just before the signature is. Accepting the header's word for the
algorithm is the classic JWT hole: ``alg: none`` skips the signature, and
``HS256`` with the *public* key as HMAC secret lets anyone who knows the public
key forge tokens. Ed25519 also has small keys and signatures, deterministic
signing (no nonce to get wrong on a tracker) and fast verification.

This module is the platform's (signing) side, with ``cryptography`` and pyjwt.
Verification is pure Python in :mod:`protocols.token_verify` (re-exported
here), so the tracker checks JWTs without either library; see that module for
the order of checks.

Pure code: no clock reads (every check takes ``now``, tz-aware), no I/O.
Verification failures raise :class:`protocols.errors.TokenError` with a stable
``reason``; misuse by the caller (naive datetimes, a command living over 24 h)
raises ``ValueError``. Times on the wire are JWT NumericDates (whole seconds).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from msgspec import Struct

from protocols.jws import public_key_pem
from protocols.messages import SCHEMA_VERSION, SignedCommand
from protocols.policy import Policy
from protocols.token_verify import (
    ALGORITHM,
    COMMANDS,
    DEFAULT_LEEWAY,
    MAX_COMMAND_LIFETIME,
    MAX_POLICY_CHARS,
    MAX_TOKEN_CHARS,
    TYP_COMMAND,
    TYP_POLICY,
    TYP_TERMINAL,
    ArgValue,
    CommandClaims,
    CommandName,
    Keyring,
    Nonce,
    PublicKeyLike,
    TerminalClaims,
    key_id,
    policy_hash,
    verify_command,
    verify_policy,
    verify_terminal_token,
)

__all__ = [
    "ALGORITHM",
    "COMMANDS",
    "DEFAULT_LEEWAY",
    "MAX_COMMAND_LIFETIME",
    "MAX_POLICY_CHARS",
    "MAX_TOKEN_CHARS",
    "TYP_COMMAND",
    "TYP_POLICY",
    "TYP_TERMINAL",
    "ArgValue",
    "CommandClaims",
    "CommandName",
    "Keyring",
    "Nonce",
    "PublicKeyLike",
    "TerminalClaims",
    "generate_private_key",
    "issue_terminal_token",
    "key_id",
    "load_private_key",
    "load_public_key",
    "new_nonce",
    "policy_hash",
    "private_key_to_pem",
    "public_key_to_pem",
    "sign_command",
    "sign_policy",
    "verify_command",
    "verify_policy",
    "verify_terminal_token",
]

# ---------------------------------------------------------------- keys


def generate_private_key() -> Ed25519PrivateKey:
    """A new Ed25519 signing key."""
    return Ed25519PrivateKey.generate()


def private_key_to_pem(key: Ed25519PrivateKey) -> bytes:
    """PEM, PKCS#8, unencrypted (protect the file, not the bytes)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """Load a PKCS#8 PEM private key; ``TypeError`` unless it is Ed25519."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"not an Ed25519 private key: {type(key).__name__}")
    return key


def public_key_to_pem(key: PublicKeyLike) -> bytes:
    """PEM SubjectPublicKeyInfo (of a ``cryptography`` key or a pure VerifyKey)."""
    return public_key_pem(key.public_bytes_raw())


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Load a SubjectPublicKeyInfo PEM public key; ``TypeError`` unless it is Ed25519."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise TypeError(f"not an Ed25519 public key: {type(key).__name__}")
    return key


def new_nonce() -> str:
    """32 random hex digits for :attr:`CommandClaims.nonce`."""
    return secrets.token_hex(16)


# ---------------------------------------------------------------- issuing


def issue_terminal_token(private_key: Ed25519PrivateKey, claims: TerminalClaims) -> str:
    """Sign a terminal token (times are truncated to whole seconds)."""
    _check_lifetime(claims.issued_at, claims.expires_at, None)
    return _sign(private_key, TYP_TERMINAL, _payload_of(claims))


def sign_command(private_key: Ed25519PrivateKey, claims: CommandClaims) -> SignedCommand:
    """Sign a command; ``ValueError`` if it would live longer than 24 h."""
    _check_lifetime(claims.issued_at, claims.expires_at, MAX_COMMAND_LIFETIME)
    jws = _sign(private_key, TYP_COMMAND, _payload_of(claims))
    return SignedCommand(v=SCHEMA_VERSION, jws=jws)


def sign_policy(private_key: Ed25519PrivateKey, policy: Policy) -> str:
    """Sign a policy; ``iat`` is the policy's own ``issued_at``."""
    payload = {"policy": msgspec.to_builtins(policy), "iat": _epoch(policy.issued_at)}
    return _sign(private_key, TYP_POLICY, payload)


def _sign(private_key: Ed25519PrivateKey, typ: str, payload: dict[str, Any]) -> str:
    kid = key_id(private_key.public_key())
    return jwt.encode(payload, private_key, algorithm=ALGORITHM, headers={"typ": typ, "kid": kid})


def _epoch(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("naive datetime; use a tz-aware one")
    return int(when.timestamp())


def _payload_of(claims: Struct) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    for info in msgspec.structs.fields(claims):
        value = getattr(claims, info.name)
        if value is None:
            continue
        payload[info.encode_name] = (
            _epoch(value) if isinstance(value, datetime) else msgspec.to_builtins(value)
        )
    return payload


def _check_lifetime(iat: datetime, exp: datetime, cap: timedelta | None) -> None:
    if iat.tzinfo is None or exp.tzinfo is None:
        raise ValueError("naive datetime; use a tz-aware one")
    if exp <= iat:
        raise ValueError("expires_at must be after issued_at")
    if cap is not None and exp - iat > cap:
        raise ValueError(f"lifetime {exp - iat} exceeds {cap}")
