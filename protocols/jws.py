"""Compact JWS (RFC 7515) as the platform uses it: EdDSA only, parsed and checked in pure Python.

Everything the tracker needs to check a signed JWT, with no C crypto library:
strict base64url segments, the JOSE header, the Ed25519 signature over
``header.payload`` (:mod:`protocols.ed25519_verify`), and Ed25519 public keys
in PEM (SubjectPublicKeyInfo). Claims are checked by
:mod:`protocols.token_verify`; signing stays in :mod:`protocols.tokens`.

Every failure is a :class:`~protocols.errors.TokenError` with the same reasons
as before this module existed (when pyjwt did the parsing): ``malformed``,
``wrong_algorithm``, ``bad_signature``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import msgspec

from protocols.ed25519_verify import VerifyKey
from protocols.errors import TokenError

ALGORITHM = "EdDSA"
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
# DER of SubjectPublicKeyInfo { AlgorithmIdentifier { id-Ed25519 (1.3.101.112) }, BIT STRING }
_SPKI_ED25519 = bytes.fromhex("302a300506032b6570032100")
_PEM_BEGIN, _PEM_END = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str, name: str) -> bytes:
    """One segment, unpadded and canonical; TokenError ``malformed`` otherwise."""
    if len(segment) % 4 == 1 or not _SEGMENT.fullmatch(segment):
        raise TokenError("malformed", f"{name} is not base64url")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed", f"{name} is not base64url") from None
    if b64url_encode(data) != segment:  # stray bits in the last character
        raise TokenError("malformed", f"{name} is not canonical base64url")
    return data


def _json_object(data: bytes, name: str) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise TokenError("malformed", f"{name} is not JSON") from None
    if not isinstance(value, dict):
        raise TokenError("malformed", f"{name} is not a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class Compact:
    """The three parts of a compact JWS, decoded but not yet trusted."""

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes  # ASCII ``header.payload``, what the signature covers
    signature: bytes


def parse(jws: str, max_chars: int) -> Compact:
    """Split and decode ``header.payload.signature``; the header must be a JSON object."""
    if not jws.isascii() or len(jws) > max_chars:
        raise TokenError("malformed", "not a compact JWS of acceptable size")
    parts = jws.split(".")
    if len(parts) != 3:
        raise TokenError("malformed", "a compact JWS has three segments")
    header_raw = b64url_decode(parts[0], "header")
    payload = b64url_decode(parts[1], "payload")
    signature = b64url_decode(parts[2], "signature")
    header = _json_object(header_raw, "header")
    if "kid" in header and not isinstance(header["kid"], str):
        raise TokenError("malformed", "kid must be a string", field="kid")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return Compact(header, payload, signing_input, signature)


def check_signature(token: Compact, key: VerifyKey) -> dict[str, Any]:
    """Verify the EdDSA signature with ``key``; the payload as a JSON object.

    The caller checks ``alg`` first (:data:`ALGORITHM` only); this checks it
    again, so no other algorithm can ever reach a key.
    """
    if token.header.get("alg") != ALGORITHM:
        raise TokenError("wrong_algorithm", "only EdDSA is accepted", field="alg")
    if not key.verify(token.signature, token.signing_input):
        raise TokenError("bad_signature", "signature verification failed")
    return _json_object(token.payload, "payload")


# ---------------------------------------------------------------- keys in PEM


def load_public_key_pem(pem: bytes) -> VerifyKey:
    """An Ed25519 ``PUBLIC KEY`` PEM; ``TypeError`` for another algorithm, else ``ValueError``."""
    text = pem.decode("ascii", "replace").strip()
    if not (text.startswith(_PEM_BEGIN) and text.endswith(_PEM_END)):
        raise ValueError("not a PEM public key (BEGIN/END PUBLIC KEY)")
    body = "".join(text[len(_PEM_BEGIN) : -len(_PEM_END)].split())
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("PEM body is not base64") from None
    if len(der) == len(_SPKI_ED25519) + 32 and der.startswith(_SPKI_ED25519):
        return VerifyKey(der[len(_SPKI_ED25519) :])
    if der[:1] == b"\x30":
        raise TypeError("not an Ed25519 public key: another SubjectPublicKeyInfo algorithm")
    raise ValueError("PEM body is not a SubjectPublicKeyInfo")


def public_key_pem(raw: bytes) -> bytes:
    """The SubjectPublicKeyInfo PEM of a 32-byte Ed25519 public key."""
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    body = base64.b64encode(_SPKI_ED25519 + raw).decode("ascii")
    return f"{_PEM_BEGIN}\n{body}\n{_PEM_END}\n".encode("ascii")
