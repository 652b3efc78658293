"""Verifying the platform's JWTs (terminal token, signed command, signed policy), pure Python.

The tracker's side of :mod:`protocols.tokens` (read that module's doc for the
three kinds of JWT and their claims). It needs nothing but the platform's
public keys: JWS parsing is :mod:`protocols.jws`, the signature check is
:mod:`protocols.ed25519_verify`, claims are msgspec Structs. The cloud signs
with ``cryptography`` and pyjwt; ``protocols.tokens`` re-exports everything
here, so both ends verify with this one code.

Order of checks, each failure a :class:`~protocols.errors.TokenError`:
size and segments (``malformed``), ``alg`` exactly ``EdDSA``
(``wrong_algorithm``, before any key is touched), no header parameters beyond
``alg``/``typ``/``kid`` (``malformed``), ``kid`` in the keyring
(``unknown_key``), the signature (``bad_signature``), ``typ``
(``wrong_type``), then claims: presence (``missing_claim``), types and bounds
(``malformed``), device (``wrong_device``), times against the caller's ``now``
(``expired``, ``not_yet_valid``), and per kind ``policy_mismatch``,
``unknown_command``, ``lifetime_too_long``, ``replayed``.

Pure code: no clock reads, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Container, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Annotated, Any, Literal, Protocol, TypeVar, get_args

import msgspec
from msgspec import Meta, Struct, field

from protocols import jws as _jws
from protocols.ed25519_verify import VerifyKey
from protocols.errors import TokenError
from protocols.messages import DeviceId, SignedCommand, UtcTime
from protocols.policy import Policy

ALGORITHM = _jws.ALGORITHM
TYP_TERMINAL = "vgr-terminal+jwt"
TYP_COMMAND = "vgr-command+jwt"
TYP_POLICY = "vgr-policy+jwt"
DEFAULT_LEEWAY = timedelta(seconds=60)
MAX_COMMAND_LIFETIME = timedelta(hours=24)
MAX_TOKEN_CHARS = 16_384  # as SignedCommand.jws / PolicyUpdate.token
MAX_POLICY_CHARS = 4_000_000  # as PolicyUpdate.policy

_HEADER_KEYS = frozenset({"alg", "typ", "kid"})
_TIME_CLAIMS = frozenset({"iat", "exp", "nbf"})
_S = TypeVar("_S", bound=Struct)

# ---------------------------------------------------------------- keys


class PublicKeyLike(Protocol):
    """A :class:`VerifyKey`, or a ``cryptography`` Ed25519 public key (same method)."""

    def public_bytes_raw(self) -> bytes: ...


def key_id(public_key: PublicKeyLike) -> str:
    """Stable short fingerprint: first 16 hex digits of SHA-256 of the raw public key."""
    return hashlib.sha256(public_key.public_bytes_raw()).hexdigest()[:16]


def as_verify_key(public_key: PublicKeyLike) -> VerifyKey:
    if isinstance(public_key, VerifyKey):
        return public_key
    return VerifyKey(public_key.public_bytes_raw())


load_public_key_pem = _jws.load_public_key_pem


class Keyring(Mapping[str, VerifyKey]):
    """Immutable ``kid -> public key`` map of the platform keys a verifier trusts.

    During a rotation it holds the old and the new key; dropping the old key
    revokes everything it signed. Takes :class:`VerifyKey` objects or
    ``cryptography`` Ed25519 public keys.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[PublicKeyLike] = ()) -> None:
        self._keys: Mapping[str, VerifyKey] = MappingProxyType(
            {key_id(key): as_verify_key(key) for key in keys}
        )

    def __getitem__(self, kid: str) -> VerifyKey:
        return self._keys[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"Keyring({sorted(self._keys)!r})"

    def lookup(self, kid: object) -> VerifyKey:
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
    nonce: Nonce  # see protocols.tokens.new_nonce()
    args: dict[Annotated[str, Meta(min_length=1, max_length=64)], ArgValue] = {}


def policy_hash(jws: str) -> str:
    """Hex SHA-256 of the ASCII JWS string, as carried in the token's ``polh``."""
    if not jws.isascii():
        raise TokenError("malformed", "a JWS is ASCII", field="policy")
    return hashlib.sha256(jws.encode("ascii")).hexdigest()


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
    payload = verify_jws(keyring, token, TYP_TERMINAL, MAX_TOKEN_CHARS)
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
    payload = verify_jws(keyring, command.jws, TYP_COMMAND, MAX_TOKEN_CHARS)
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
    payload = verify_jws(keyring, jws, TYP_POLICY, MAX_POLICY_CHARS)
    for name in ("policy", "iat"):
        if payload.get(name) is None:
            raise TokenError("missing_claim", f"claim {name!r} is missing", field=name)
    policy = _convert(payload["policy"], Policy, prefix="policy")
    if policy.device_id != device_id:
        raise TokenError("wrong_device", "policy is for another device", field="policy.device_id")
    return policy


def verify_jws(keyring: Keyring, jws: str, typ: str, max_chars: int) -> dict[str, Any]:
    """Check algorithm, header, key and signature, then ``typ``; return the payload."""
    token = _jws.parse(jws, max_chars)
    alg = token.header.get("alg")
    if alg != ALGORITHM:
        raise TokenError("wrong_algorithm", f"alg {alg!r} is not allowed", field="alg")
    unexpected = sorted(token.header.keys() - _HEADER_KEYS)
    if unexpected:
        raise TokenError("malformed", "unexpected header parameter", field=unexpected[0])
    key = keyring.lookup(token.header.get("kid"))
    payload = _jws.check_signature(token, key)
    if token.header.get("typ") != typ:
        raise TokenError("wrong_type", f"expected a {typ}", field="typ")
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
