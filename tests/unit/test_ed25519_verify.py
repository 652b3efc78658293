"""The pure-Python Ed25519 verifier: RFC 8032 test vectors, and agreement with ``cryptography``."""

from __future__ import annotations

import hashlib
import time

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.ed25519_verify import (
    BASE,
    L,
    P,
    VerifyKey,
    _double_scalar_mult,
    _encode,
    decode_point,
    verify,
)

# RFC 8032, section 7.1: (secret key, public key, message, signature), hex.
RFC8032_VECTORS = [
    (  # TEST 1: empty message
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (  # TEST 2: one byte
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (  # TEST 3: two bytes
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    (  # TEST SHA(abc): the message is SHA-512("abc")
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        hashlib.sha512(b"abc").hexdigest(),
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
]


def by_cryptography(public: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def encode(y: int, sign: int = 0) -> bytes:
    return (y | sign << 255).to_bytes(32, "little")


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032_VECTORS)
def test_rfc8032_vectors(secret: str, public: str, message: str, signature: str) -> None:
    pk, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    # The vectors are facts: cryptography derives the same key and signature from the secret.
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    assert key.public_key().public_bytes_raw() == pk
    assert key.sign(msg) == sig
    assert verify(pk, sig, msg)
    assert VerifyKey(pk).verify(sig, msg)
    assert not verify(pk, sig, msg + b"\x00")
    assert not verify(pk, sig[:63] + bytes([sig[63] ^ 1]), msg)


def test_base_point_encoding() -> None:
    assert VerifyKey(encode(BASE[1])).public_bytes_raw().hex() == "58" + "66" * 31


@settings(max_examples=60, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=300))
def test_agrees_with_cryptography_on_random_keys(seed: bytes, message: bytes) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes_raw()
    signature = key.sign(message)
    assert verify(public, signature, message) is True
    assert by_cryptography(public, signature, message) is True
    tampered = [
        (signature, message + b"!"),
        (bytes([signature[0] ^ 0x80]) + signature[1:], message),  # R
        (signature[:40] + bytes([signature[40] ^ 0x01]) + signature[41:], message),  # S
        (signature[:32] + signature[:32], message),
    ]
    for sig, msg in tampered:
        assert verify(public, sig, msg) is by_cryptography(public, sig, msg) is False


@settings(max_examples=30, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=64))
def test_non_canonical_s_is_rejected(seed: bytes, message: bytes) -> None:
    """S + L verifies the same group equation: only the S < L check refuses it (malleability)."""
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes_raw()
    signature = key.sign(message)
    s = int.from_bytes(signature[32:], "little")
    for bad_s in (s + L, L, 2**256 - 1):
        if bad_s < 2**256:
            bad = signature[:32] + bad_s.to_bytes(32, "little")
            assert verify(public, bad, message) is by_cryptography(public, bad, message) is False


def test_signature_length() -> None:
    key = Ed25519PrivateKey.generate()
    public, signature = key.public_key().public_bytes_raw(), key.sign(b"m")
    for bad in (b"", signature[:63], signature + b"\x00"):
        assert not verify(public, bad, b"m")


def test_bad_point_encodings_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        decode_point(b"\x01" * 31)
    # y >= p (non-canonical): refused by RFC 8032 5.1.3; cryptography reduces y mod p instead.
    for y in (P, P + 1, P + 2, 2**255 - 1):
        with pytest.raises(ValueError, match="non-canonical"):
            decode_point(encode(y))
    # x = 0 with the sign bit set (y = 1 and y = p - 1 have x = 0).
    for y in (1, P - 1):
        with pytest.raises(ValueError, match="not a point"):
            decode_point(encode(y, sign=1))
    # y = 2: (y²-1)/(d·y²+1) is not a square mod p, so no point has it.
    with pytest.raises(ValueError, match="not a point"):
        decode_point(encode(2))
    signature = Ed25519PrivateKey.generate().sign(b"m")
    for bad_public in (encode(2), encode(P + 5)):
        assert verify(bad_public, signature, b"m") is False


def test_a_non_point_r_is_refused_like_cryptography() -> None:
    key = Ed25519PrivateKey.generate()
    public, signature = key.public_key().public_bytes_raw(), key.sign(b"m")
    for r in (encode(2), encode(P + 1), encode(1, sign=1)):
        bad = r + signature[32:]
        assert verify(public, bad, b"m") is by_cryptography(public, bad, b"m") is False


def test_small_order_public_keys_are_refused() -> None:
    """The RFC allows them; but with A = identity, [S]B = R verifies for any S = r: a forgery."""
    r = 123_456_789
    forged_r = _encode(_double_scalar_mult(r, BASE, 0, BASE))  # [r]B
    forgery = forged_r + r.to_bytes(32, "little")
    identity = encode(1)
    assert by_cryptography(identity, forgery, b"anything") is True  # cryptography accepts it
    for small in (identity, encode(P - 1), encode(0), encode(0, sign=1)):
        with pytest.raises(ValueError, match="small-order"):
            VerifyKey(small)
    assert verify(identity, forgery, b"anything") is False


def test_verification_takes_milliseconds() -> None:
    key = Ed25519PrivateKey.generate()
    public = VerifyKey(key.public_key().public_bytes_raw())
    message = b"x" * 500
    signature = key.sign(message)
    began = time.perf_counter()
    for _ in range(10):
        assert public.verify(signature, message)
    per_verify = (time.perf_counter() - began) / 10
    assert per_verify < 0.1, f"{per_verify * 1e3:.1f} ms per verification"
