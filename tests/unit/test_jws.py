"""protocols.jws: strict compact-JWS parsing and Ed25519 PEM keys, without pyjwt or cryptography."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Mapping

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from protocols.errors import TokenError
from protocols.jws import b64url_decode, load_public_key_pem, parse, public_key_pem
from protocols.token_verify import Keyring, verify_jws
from protocols.tokens import TYP_TERMINAL, generate_private_key, key_id

KEY = generate_private_key()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(header: Mapping[str, object], payload: Mapping[str, object]) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(KEY.sign(signing_input.encode()))}"


def test_pem_round_trip_matches_cryptography() -> None:
    public = KEY.public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    loaded = load_public_key_pem(pem)
    assert loaded.public_bytes_raw() == public.public_bytes_raw()
    assert public_key_pem(loaded.public_bytes_raw()) == pem
    assert key_id(loaded) == key_id(public)


def test_pem_of_other_keys_and_garbage() -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    ec_pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(TypeError, match="Ed25519"):
        load_public_key_pem(ec_pem)
    private_pem = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for garbage in (private_pem, b"", b"-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----"):
        with pytest.raises(ValueError):
            load_public_key_pem(garbage)


@pytest.mark.parametrize(
    "segment",
    ["e30=", "e3+", "e3/", "e31", "a", "e3 0"],  # padded, other alphabet, stray bits, bad length
)
def test_base64url_is_strict(segment: str) -> None:
    with pytest.raises(TokenError) as err:
        b64url_decode(segment, "header")
    assert err.value.reason == "malformed"


def test_parse_checks_shape() -> None:
    header = {"alg": "EdDSA", "typ": TYP_TERMINAL, "kid": key_id(KEY.public_key())}
    token = parse(signed(header, {"sub": "x"}), 10_000)
    assert token.header == header
    assert json.loads(token.payload) == {"sub": "x"}
    assert len(token.signature) == 64
    for bad in ("a.b", "a.b.c.d", signed(header, {}) + "é"):
        with pytest.raises(TokenError):
            parse(bad, 10_000)
    with pytest.raises(TokenError) as err:
        parse(signed({**header, "kid": 7}, {}), 10_000)
    assert (err.value.reason, err.value.field) == ("malformed", "kid")


def test_a_signed_non_object_payload_is_malformed() -> None:
    header = {"alg": "EdDSA", "typ": TYP_TERMINAL, "kid": key_id(KEY.public_key())}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(b'[1, 2]')}"
    jws = f"{signing_input}.{b64(KEY.sign(signing_input.encode()))}"
    with pytest.raises(TokenError) as err:
        verify_jws(Keyring([KEY.public_key()]), jws, TYP_TERMINAL, 10_000)
    assert err.value.reason == "malformed"


def test_the_verifying_side_imports_no_crypto_library() -> None:
    code = (
        "import sys, protocols.token_verify, protocols.regions\n"
        "heavy = {'jwt', 'cryptography', 'shapely', 'pyproj', 'numpy', 'pydantic'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
