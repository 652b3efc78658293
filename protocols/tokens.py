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
used and again by pyjwt's allow-list. Accepting the header's word for the
algorithm is the classic JWT hole: ``alg: none`` skips the signature, and
``HS256`` with the *public* key as HMAC secret lets anyone who knows the public
key forge tokens. Ed25519 also has small keys and signatures, deterministic
signing (no nonce to get wrong on a tracker) and fast verification.

Pure code: no clock reads (every check takes ``now``, tz-aware), no I/O.
Verification failures raise :class:`protocols.errors.TokenError` with a stable
``reason``; misuse by the caller (naive datetimes, a command living over 24 h)
raises ``ValueError``. Times on the wire are JWT NumericDates (whole seconds).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Container, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar, get_args

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from msgspec import Meta, Struct, field

from protocols.errors import TokenError
from protocols.messages import SCHEMA_VERSION, DeviceId, SignedCommand, UtcTime
from protocols.policy import Policy

ALGORITHM = "EdDSA"
TYP_TERMINAL = "vgr-terminal+jwt"
TYP_COMMAND = "vgr-command+jwt"
TYP_POLICY = "vgr-policy+jwt"
DEFAULT_LEEWAY = timedelta(seconds=60)
MAX_COMMAND_LIFETIME = timedelta(hours=24)
MAX_TOKEN_CHARS = 16_384  # as SignedCommand.jws / PolicyUpdate.token
MAX_POLICY_CHARS = 4_000_000  # as PolicyUpdate.policy

_HEADER_KEYS = frozenset({"alg", "typ", "kid"})
_TIME_CLAIMS = frozenset({"iat", "exp", "nbf"})
# Signature only: time claims are checked here against the caller's ``now``,
# types and presence by msgspec, so pyjwt must not look at the wall clock.
_JWT = jwt.PyJWT(
    options={
        "verify_signature": True,
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "verify_aud": False,
        "verify_iss": False,
        "verify_sub": False,
        "verify_jti": False,
        "require": [],
    }
)
_S = TypeVar("_S", bound=Struct)

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


def public_key_to_pem(key: Ed25519PublicKey) -> bytes:
    """PEM SubjectPublicKeyInfo."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Load a SubjectPublicKeyInfo PEM public key; ``TypeError`` unless it is Ed25519."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise TypeError(f"not an Ed25519 public key: {type(key).__name__}")
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    """Stable short fingerprint: first 16 hex digits of SHA-256 of the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Keyring(Mapping[str, Ed25519PublicKey]):
    """Immutable ``kid -> public key`` map of the platform keys a verifier trusts.

    During a rotation it holds the old and the new key; dropping the old key
    revokes everything it signed.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self._keys: Mapping[str, Ed25519PublicKey] = MappingProxyType(
            {key_id(key): key for key in keys}
        )

    def __getitem__(self, kid: str) -> Ed25519PublicKey:
        return self._keys[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"Keyring({sorted(self._keys)!r})"

    def lookup(self, kid: object) -> Ed25519PublicKey:
        """The key named by a JWT header ``kid``; TokenError ``unknown_key`` if none."""
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenError(
                "unknown_key", f"no trusted key with kid {str(kid)[:64]!r}", field="kid"
            )
        return key


# ---------------------------------------------------------------- claims

CommandName = Literal["chase_mode", "policy_update", "reboot"]
COMMANDS: frozenset[str] = frozenset(get_args(CommandName))
Nonce = Annotated[str, Meta(pattern=r"^[0-9a-f]{16,64}$")]
ArgValue = str | int | float | bool


class TerminalClaims(Struct, frozen=True, kw_only=True):
    """Claims of a terminal token; ``name=`` is the claim on the wire."""

    device_id: DeviceId = field(name="sub")
    tenant: Annotated[str, Meta(min_length=1, max_length=64)] = field(name="ten")
    vin: Annotated[str, Meta(min_length=1, max_length=32)]
    policy_id: Annotated[str, Meta(min_length=1, max_length=64)] = field(name="pol")
    policy_hash: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")] = field(name="polh")
    token_id: Annotated[str, Meta(min_length=1, max_length=64)] = field(name="jti")
    issued_at: UtcTime = field(name="iat")
    expires_at: UtcTime = field(name="exp")
    not_before: UtcTime | None = field(default=None, name="nbf")


class CommandClaims(Struct, frozen=True, kw_only=True):
    """Claims of a signed command; ``name=`` is the claim on the wire."""

    cmd: CommandName
    device_id: DeviceId = field(name="dev")
    issued_at: UtcTime = field(name="iat")
    expires_at: UtcTime = field(name="exp")
    nonce: Nonce  # see new_nonce()
    args: dict[Annotated[str, Meta(min_length=1, max_length=64)], ArgValue] = {}


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


def policy_hash(jws: str) -> str:
    """Hex SHA-256 of the ASCII JWS string, as carried in the token's ``polh``."""
    if not jws.isascii():
        raise TokenError("malformed", "a JWS is ASCII", field="policy")
    return hashlib.sha256(jws.encode("ascii")).hexdigest()


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


# ---------------------------------------------------------------- verifying


def verify_terminal_token(
    keyring: Keyring,
    token: str,
    *,
    device_id: str,
    now: datetime,
    policy_jws: str | None = None,
    leeway: timedelta = DEFAULT_LEEWAY,
) -> TerminalClaims:
    """Verify a terminal token for ``device_id`` at ``now``.

    With ``policy_jws`` the token must also pin exactly that signed policy (the
    policy's own signature is checked by :func:`verify_policy`, not here).
    """
    payload = _verify_jws(keyring, token, TYP_TERMINAL, MAX_TOKEN_CHARS)
    claims = _claims_from(payload, TerminalClaims)
    if claims.device_id != device_id:
        raise TokenError("wrong_device", "token is for another device", field="sub")
    _check_times(now, leeway, claims.issued_at, claims.expires_at, claims.not_before)
    if policy_jws is not None and not hmac.compare_digest(
        policy_hash(policy_jws), claims.policy_hash
    ):
        raise TokenError("policy_mismatch", "token pins another policy", field="polh")
    return claims


def verify_command(
    keyring: Keyring,
    command: SignedCommand,
    *,
    device_id: str,
    now: datetime,
    seen_nonces: Container[str],
    leeway: timedelta = DEFAULT_LEEWAY,
) -> CommandClaims:
    """Verify a command for ``device_id`` at ``now``.

    The caller records the nonce of every accepted command and keeps it until
    ``expires_at + leeway``; the 24 h lifetime cap bounds that memory.
    """
    payload = _verify_jws(keyring, command.jws, TYP_COMMAND, MAX_TOKEN_CHARS)
    cmd = payload.get("cmd")
    if isinstance(cmd, str) and cmd not in COMMANDS:
        raise TokenError("unknown_command", f"unknown command {cmd[:64]!r}", field="cmd")
    claims = _claims_from(payload, CommandClaims)
    if claims.device_id != device_id:
        raise TokenError("wrong_device", "command is for another device", field="dev")
    if claims.expires_at - claims.issued_at > MAX_COMMAND_LIFETIME:
        raise TokenError("lifetime_too_long", "command lives longer than 24 h", field="exp")
    _check_times(now, leeway, claims.issued_at, claims.expires_at, None)
    if claims.nonce in seen_nonces:
        raise TokenError("replayed", "command nonce already used", field="nonce")
    return claims


def verify_policy(keyring: Keyring, jws: str, *, device_id: str) -> Policy:
    """Verify a signed policy and return it; it must be for ``device_id``."""
    payload = _verify_jws(keyring, jws, TYP_POLICY, MAX_POLICY_CHARS)
    for name in ("policy", "iat"):
        if payload.get(name) is None:
            raise TokenError("missing_claim", f"claim {name!r} is missing", field=name)
    policy = _convert(payload["policy"], Policy, prefix="policy")
    if policy.device_id != device_id:
        raise TokenError("wrong_device", "policy is for another device", field="policy.device_id")
    return policy


def _verify_jws(keyring: Keyring, jws: str, typ: str, max_chars: int) -> dict[str, Any]:
    """Check algorithm, key and signature, then ``typ``; return the payload."""
    if not jws.isascii() or len(jws) > max_chars:
        raise TokenError("malformed", "not a compact JWS of acceptable size")
    try:
        header = jwt.get_unverified_header(jws)
    except jwt.PyJWTError as exc:
        raise TokenError("malformed", str(exc)) from None
    if header.get("alg") != ALGORITHM:
        raise TokenError(
            "wrong_algorithm", f"alg {header.get('alg')!r} is not allowed", field="alg"
        )
    unexpected = sorted(header.keys() - _HEADER_KEYS)
    if unexpected:
        raise TokenError("malformed", "unexpected header parameter", field=unexpected[0])
    key = keyring.lookup(header.get("kid"))
    try:
        decoded = _JWT.decode_complete(jws, key, algorithms=[ALGORITHM])
    except jwt.InvalidSignatureError:
        raise TokenError("bad_signature", "signature verification failed") from None
    except jwt.InvalidAlgorithmError as exc:
        raise TokenError("wrong_algorithm", str(exc), field="alg") from None
    except jwt.PyJWTError as exc:
        raise TokenError("malformed", str(exc)) from None
    if decoded["header"].get("typ") != typ:
        raise TokenError("wrong_type", f"expected a {typ}", field="typ")
    payload: dict[str, Any] = decoded["payload"]
    return payload


def _claims_from(payload: dict[str, Any], kind: type[_S]) -> _S:
    data = dict(payload)
    for info in msgspec.structs.fields(kind):
        name = info.encode_name
        if data.get(name) is None:
            if info.required:
                raise TokenError("missing_claim", f"claim {name!r} is missing", field=name)
            data.pop(name, None)
        elif name in _TIME_CLAIMS:
            data[name] = _from_epoch(data[name], name)
    return _convert(data, kind)


def _from_epoch(value: object, name: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError("malformed", "a time claim is a NumericDate", field=name)
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, ValueError, OSError):
        raise TokenError("malformed", "time claim out of range", field=name) from None


_PATH = re.compile(r"at `\$\.?(?P<path>[^`]*)`")
_MISSING = re.compile(r"missing required field `(?P<name>[^`]*)`")


def _convert(data: object, kind: type[_S], *, prefix: str = "") -> _S:
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        message = str(exc)
        path = _PATH.search(message)
        missing = _MISSING.search(message)
        parts = [
            prefix,
            path.group("path") if path else "",
            missing.group("name") if missing else "",
        ]
        where = ".".join(part for part in parts if part) or None
        raise TokenError("malformed", message, field=where) from None


def _check_times(
    now: datetime,
    leeway: timedelta,
    iat: datetime,
    exp: datetime,
    nbf: datetime | None,
) -> None:
    if now.tzinfo is None:
        raise ValueError("naive datetime for now; use a tz-aware one")
    if exp <= iat:
        raise TokenError("malformed", "exp is not after iat", field="exp")
    if now >= exp + leeway:
        raise TokenError("expired", f"expired at {exp.isoformat()}", field="exp")
    if nbf is not None and now < nbf - leeway:
        raise TokenError("not_yet_valid", f"not valid before {nbf.isoformat()}", field="nbf")
    if now < iat - leeway:
        raise TokenError("not_yet_valid", f"issued in the future at {iat.isoformat()}", field="iat")
