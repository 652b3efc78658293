"""Terminal tokens, signed commands and signed policies: round trips and every rejection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import TokenError
from protocols.messages import SignedCommand, decode, encode
from protocols.policy import Area, Circle, Policy
from protocols.tokens import (
    MAX_COMMAND_LIFETIME,
    TYP_COMMAND,
    TYP_POLICY,
    TYP_TERMINAL,
    CommandClaims,
    Keyring,
    TerminalClaims,
    generate_private_key,
    issue_terminal_token,
    key_id,
    load_private_key,
    load_public_key,
    new_nonce,
    policy_hash,
    private_key_to_pem,
    public_key_to_pem,
    sign_command,
    sign_policy,
    verify_command,
    verify_policy,
    verify_terminal_token,
)

DEVICE = "trk-0001"
NOW = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
KEY = generate_private_key()
OTHER_KEY = generate_private_key()
KEYRING = Keyring([KEY.public_key()])


# ---------------------------------------------------------------- helpers


def make_policy(device_id: str = DEVICE, policy_id: str = "pol-1") -> Policy:
    return Policy(
        policy_id=policy_id,
        version=3,
        tenant="bank-a",
        device_id=device_id,
        issued_at=NOW - timedelta(hours=1),
        allowed=[
            Area(id="home", name="Home city", shape=Circle(lon=116.4, lat=39.9, radius_m=5e4))
        ],
    )


POLICY_JWS = sign_policy(KEY, make_policy())


def make_terminal(**changes: Any) -> TerminalClaims:
    claims = TerminalClaims(
        device_id=DEVICE,
        tenant="bank-a",
        vin="LSVAU2180N2183294",
        policy_id="pol-1",
        policy_hash=policy_hash(POLICY_JWS),
        token_id="tok-42",
        issued_at=NOW - timedelta(minutes=5),
        expires_at=NOW + timedelta(days=30),
    )
    return msgspec.structs.replace(claims, **changes)


def make_command(**changes: Any) -> CommandClaims:
    claims = CommandClaims(
        cmd="chase_mode",
        device_id=DEVICE,
        issued_at=NOW - timedelta(seconds=10),
        expires_at=NOW + timedelta(minutes=10),
        nonce=new_nonce(),
        args={"on": True, "interval_s": 5, "reason": "overdue", "ratio": 0.5},
    )
    return msgspec.structs.replace(claims, **changes)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def raw_jws(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return (
        f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"
    )


def terminal_payload(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(unb64(token.split(".")[1]))
    return payload


def sign_raw(key: Any, payload: dict[str, Any], *, typ: str, alg: str = "EdDSA", **hdr: Any) -> str:
    """A JWT built with pyjwt directly, to craft what our issuers refuse to make."""
    headers = {"typ": typ, "kid": key_id(KEY.public_key()), **hdr}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def reason_of(exc: pytest.ExceptionInfo[TokenError]) -> str:
    return exc.value.reason


def verify_token(token: str, keyring: Keyring = KEYRING, **kw: Any) -> TerminalClaims:
    kw.setdefault("device_id", DEVICE)
    kw.setdefault("now", NOW)
    return verify_terminal_token(keyring, token, **kw)


def verify_cmd(command: SignedCommand, keyring: Keyring = KEYRING, **kw: Any) -> CommandClaims:
    kw.setdefault("device_id", DEVICE)
    kw.setdefault("now", NOW)
    kw.setdefault("seen_nonces", frozenset())
    return verify_command(keyring, command, **kw)


# ---------------------------------------------------------------- keys


def test_key_pem_round_trip_and_stable_kid() -> None:
    pub = KEY.public_key()
    again = load_private_key(private_key_to_pem(KEY))
    assert key_id(again.public_key()) == key_id(pub)
    loaded = load_public_key(public_key_to_pem(pub))
    assert key_id(loaded) == key_id(pub)
    assert len(key_id(pub)) == 16
    assert key_id(pub) != key_id(OTHER_KEY.public_key())


def test_load_rejects_non_ed25519_keys() -> None:
    from cryptography.hazmat.primitives import serialization

    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(TypeError, match="Ed25519"):
        load_public_key(pem)


def test_keyring_is_a_frozen_mapping() -> None:
    ring = Keyring([KEY.public_key(), OTHER_KEY.public_key()])
    assert set(ring) == {key_id(KEY.public_key()), key_id(OTHER_KEY.public_key())}
    assert len(ring) == 2
    with pytest.raises(TypeError):
        ring["x"] = KEY.public_key()  # type: ignore[index]
    with pytest.raises(TokenError) as exc:
        ring.lookup("0000000000000000")
    assert reason_of(exc) == "unknown_key"


# ---------------------------------------------------------------- round trips


def test_terminal_token_round_trip() -> None:
    claims = make_terminal(not_before=NOW - timedelta(minutes=1))
    token = issue_terminal_token(KEY, claims)
    assert verify_token(token, policy_jws=POLICY_JWS) == claims
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "typ": TYP_TERMINAL, "kid": key_id(KEY.public_key())}
    payload = terminal_payload(token)
    assert set(payload) == {"sub", "ten", "vin", "pol", "polh", "jti", "iat", "exp", "nbf"}
    assert payload["iat"] == int((NOW - timedelta(minutes=5)).timestamp())


def test_command_round_trip_through_the_wire() -> None:
    claims = make_command()
    command = decode(encode(sign_command(KEY, claims)), SignedCommand)
    assert verify_cmd(command) == claims
    assert jwt.get_unverified_header(command.jws)["typ"] == TYP_COMMAND


def test_policy_round_trip() -> None:
    assert verify_policy(KEYRING, POLICY_JWS, device_id=DEVICE) == make_policy()
    assert jwt.get_unverified_header(POLICY_JWS)["typ"] == TYP_POLICY
    assert policy_hash(POLICY_JWS) == hashlib.sha256(POLICY_JWS.encode()).hexdigest()


def test_new_nonce_is_random_hex() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(len(n) >= 16 and int(n, 16) >= 0 for n in nonces)


# ---------------------------------------------------------------- signatures and algorithms


def test_forged_with_another_key_naming_our_kid() -> None:
    payload = terminal_payload(issue_terminal_token(KEY, make_terminal()))
    forged = sign_raw(OTHER_KEY, payload, typ=TYP_TERMINAL)
    with pytest.raises(TokenError) as exc:
        verify_token(forged)
    assert reason_of(exc) == "bad_signature"


def test_payload_tampered_after_signing() -> None:
    header, _, signature = issue_terminal_token(KEY, make_terminal()).split(".")
    payload = terminal_payload(issue_terminal_token(KEY, make_terminal()))
    payload["sub"] = "trk-9999"  # steal the token for another tracker
    tampered = ".".join([header, b64(json.dumps(payload).encode()), signature])
    with pytest.raises(TokenError) as exc:
        verify_token(tampered, device_id="trk-9999")
    assert reason_of(exc) == "bad_signature"


def test_relabelled_header_breaks_signature() -> None:
    command = sign_command(KEY, make_command())
    _, payload, signature = command.jws.split(".")
    header = {"alg": "EdDSA", "typ": TYP_TERMINAL, "kid": key_id(KEY.public_key())}
    relabelled = ".".join([b64(json.dumps(header).encode()), payload, signature])
    with pytest.raises(TokenError) as exc:
        verify_token(relabelled)
    assert reason_of(exc) == "bad_signature"


def test_alg_none_built_by_hand() -> None:
    payload = terminal_payload(issue_terminal_token(KEY, make_terminal()))
    header = {"alg": "none", "typ": TYP_TERMINAL, "kid": key_id(KEY.public_key())}
    for token in (raw_jws(header, payload), raw_jws({**header, "alg": "None"}, payload)):
        with pytest.raises(TokenError) as exc:
            verify_token(token)
        assert reason_of(exc) == "wrong_algorithm"


def test_hs256_with_public_key_pem_as_secret() -> None:
    """The key-confusion attack: the public key is public, so HMAC with it is forgeable."""
    secret = public_key_to_pem(KEY.public_key())
    header = {"alg": "HS256", "typ": TYP_TERMINAL, "kid": key_id(KEY.public_key())}
    payload = terminal_payload(issue_terminal_token(KEY, make_terminal()))
    signing_input = raw_jws(header, payload).rsplit(".", 1)[0]
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(mac)}"
    with pytest.raises(TokenError) as exc:
        verify_token(token)
    assert reason_of(exc) == "wrong_algorithm"
    with pytest.raises(TokenError) as exc:
        verify_cmd(SignedCommand(v=1, jws=token))
    assert reason_of(exc) == "wrong_algorithm"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_other_asymmetric_algorithms(alg: str) -> None:
    key: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if alg == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    payload = terminal_payload(issue_terminal_token(KEY, make_terminal()))
    token = sign_raw(key, payload, typ=TYP_TERMINAL, alg=alg)
    with pytest.raises(TokenError) as exc:
        verify_token(token)
    assert reason_of(exc) == "wrong_algorithm"


def test_unknown_and_missing_kid() -> None:
    token = issue_terminal_token(OTHER_KEY, make_terminal())
    with pytest.raises(TokenError) as exc:
        verify_token(token)
    assert reason_of(exc) == "unknown_key"
    no_kid = jwt.encode(
        terminal_payload(token), KEY, algorithm="EdDSA", headers={"typ": TYP_TERMINAL}
    )
    with pytest.raises(TokenError) as exc:
        verify_token(no_kid)
    assert reason_of(exc) == "unknown_key"


def test_key_rotation() -> None:
    old, new = KEY, OTHER_KEY
    old_token = issue_terminal_token(old, make_terminal())
    new_token = issue_terminal_token(new, make_terminal())
    both = Keyring([old.public_key(), new.public_key()])
    assert verify_token(old_token, both) == verify_token(new_token, both)
    only_new = Keyring([new.public_key()])
    assert verify_token(new_token, only_new).token_id == "tok-42"
    with pytest.raises(TokenError) as exc:
        verify_token(old_token, only_new)
    assert reason_of(exc) == "unknown_key"
    old_command = sign_command(old, make_command())
    with pytest.raises(TokenError) as exc:
        verify_cmd(old_command, only_new)
    assert reason_of(exc) == "unknown_key"


def test_extra_header_parameter_is_malformed() -> None:
    payload = terminal_payload(issue_terminal_token(KEY, make_terminal()))
    token = sign_raw(KEY, payload, typ=TYP_TERMINAL, jku="https://evil.example/keys")
    with pytest.raises(TokenError) as exc:
        verify_token(token)
    assert (reason_of(exc), exc.value.field) == ("malformed", "jku")


# ---------------------------------------------------------------- kinds cannot be swapped


def test_command_and_policy_presented_as_token() -> None:
    command = sign_command(KEY, make_command())
    for jws in (command.jws, POLICY_JWS):
        with pytest.raises(TokenError) as exc:
            verify_token(jws)
        assert reason_of(exc) == "wrong_type"


def test_token_and_policy_presented_as_command() -> None:
    token = issue_terminal_token(KEY, make_terminal())
    for jws in (token, POLICY_JWS):
        with pytest.raises(TokenError) as exc:
            verify_cmd(SignedCommand(v=1, jws=jws))
        assert reason_of(exc) == "wrong_type"


def test_token_presented_as_policy() -> None:
    token = issue_terminal_token(KEY, make_terminal())
    with pytest.raises(TokenError) as exc:
        verify_policy(KEYRING, token, device_id=DEVICE)
    assert reason_of(exc) == "wrong_type"


def test_plain_jwt_typ_is_wrong_type() -> None:
    token = sign_raw(KEY, terminal_payload(issue_terminal_token(KEY, make_terminal())), typ="JWT")
    with pytest.raises(TokenError) as exc:
        verify_token(token)
    assert reason_of(exc) == "wrong_type"


# ---------------------------------------------------------------- terminal token claims


def test_token_expired_and_leeway() -> None:
    token = issue_terminal_token(KEY, make_terminal(expires_at=NOW - timedelta(seconds=30)))
    assert verify_token(token).token_id == "tok-42"  # within the 60 s skew
    with pytest.raises(TokenError) as exc:
        verify_token(token, leeway=timedelta(0))
    assert reason_of(exc) == "expired"
    with pytest.raises(TokenError) as exc:
        verify_token(token, now=NOW + timedelta(seconds=31))
    assert reason_of(exc) == "expired"


def test_token_not_yet_valid() -> None:
    later = issue_terminal_token(KEY, make_terminal(not_before=NOW + timedelta(hours=1)))
    with pytest.raises(TokenError) as exc:
        verify_token(later)
    assert (reason_of(exc), exc.value.field) == ("not_yet_valid", "nbf")
    assert verify_token(later, now=NOW + timedelta(hours=1)).token_id == "tok-42"
    future = issue_terminal_token(KEY, make_terminal(issued_at=NOW + timedelta(minutes=10)))
    with pytest.raises(TokenError) as exc:
        verify_token(future)
    assert (reason_of(exc), exc.value.field) == ("not_yet_valid", "iat")


def test_token_wrong_device() -> None:
    token = issue_terminal_token(KEY, make_terminal())
    with pytest.raises(TokenError) as exc:
        verify_token(token, device_id="trk-0002")
    assert reason_of(exc) == "wrong_device"


def test_token_policy_mismatch() -> None:
    token = issue_terminal_token(KEY, make_terminal())
    other_policy = sign_policy(KEY, make_policy(policy_id="pol-2"))
    assert verify_token(token, policy_jws=POLICY_JWS).policy_id == "pol-1"
    with pytest.raises(TokenError) as exc:
        verify_token(token, policy_jws=other_policy)
    assert reason_of(exc) == "policy_mismatch"


@pytest.mark.parametrize("claim", ["sub", "ten", "vin", "pol", "polh", "jti", "iat", "exp"])
def test_token_missing_claim(claim: str) -> None:
    payload = terminal_payload(issue_terminal_token(KEY, make_terminal()))
    del payload[claim]
    with pytest.raises(TokenError) as exc:
        verify_token(sign_raw(KEY, payload, typ=TYP_TERMINAL))
    assert (reason_of(exc), exc.value.field) == ("missing_claim", claim)


@pytest.mark.parametrize(
    ("claim", "value"),
    [("polh", "not-a-hash"), ("exp", "tomorrow"), ("iat", True), ("exp", 1e300), ("sub", 7)],
)
def test_token_bad_claim_is_malformed(claim: str, value: object) -> None:
    payload = terminal_payload(issue_terminal_token(KEY, make_terminal()))
    payload[claim] = value
    with pytest.raises(TokenError) as exc:
        verify_token(sign_raw(KEY, payload, typ=TYP_TERMINAL))
    assert (reason_of(exc), exc.value.field) == ("malformed", claim)


def test_issuer_refuses_naive_or_inverted_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        issue_terminal_token(KEY, make_terminal(expires_at=datetime(2030, 1, 1)))  # noqa: DTZ001
    with pytest.raises(ValueError, match="after"):
        issue_terminal_token(KEY, make_terminal(expires_at=NOW - timedelta(days=1)))


# ---------------------------------------------------------------- commands


def test_command_replayed() -> None:
    claims = make_command()
    command = sign_command(KEY, claims)
    assert verify_cmd(command, seen_nonces={"0" * 32}).nonce == claims.nonce
    with pytest.raises(TokenError) as exc:
        verify_cmd(command, seen_nonces={claims.nonce})
    assert reason_of(exc) == "replayed"


def test_command_wrong_device_and_expired() -> None:
    command = sign_command(KEY, make_command())
    with pytest.raises(TokenError) as exc:
        verify_cmd(command, device_id="trk-0002")
    assert reason_of(exc) == "wrong_device"
    with pytest.raises(TokenError) as exc:
        verify_cmd(command, now=NOW + timedelta(hours=1))
    assert reason_of(exc) == "expired"


def test_command_lifetime_cap() -> None:
    long = make_command(expires_at=NOW + MAX_COMMAND_LIFETIME)
    with pytest.raises(ValueError, match="exceeds"):
        sign_command(KEY, long)
    payload = terminal_payload(sign_command(KEY, make_command()).jws)
    payload["exp"] = payload["iat"] + int(MAX_COMMAND_LIFETIME.total_seconds()) + 1
    with pytest.raises(TokenError) as exc:
        verify_cmd(SignedCommand(v=1, jws=sign_raw(KEY, payload, typ=TYP_COMMAND)))
    assert reason_of(exc) == "lifetime_too_long"
    payload["exp"] -= 1  # exactly 24 h is allowed
    assert (
        verify_cmd(SignedCommand(v=1, jws=sign_raw(KEY, payload, typ=TYP_COMMAND))).cmd
        == "chase_mode"
    )


def test_command_unknown_command() -> None:
    payload = terminal_payload(sign_command(KEY, make_command()).jws)
    payload["cmd"] = "self_destruct"
    with pytest.raises(TokenError) as exc:
        verify_cmd(SignedCommand(v=1, jws=sign_raw(KEY, payload, typ=TYP_COMMAND)))
    assert (reason_of(exc), exc.value.field) == ("unknown_command", "cmd")


@pytest.mark.parametrize("claim", ["cmd", "dev", "iat", "exp", "nonce"])
def test_command_missing_claim(claim: str) -> None:
    payload = terminal_payload(sign_command(KEY, make_command()).jws)
    del payload[claim]
    with pytest.raises(TokenError) as exc:
        verify_cmd(SignedCommand(v=1, jws=sign_raw(KEY, payload, typ=TYP_COMMAND)))
    assert (reason_of(exc), exc.value.field) == ("missing_claim", claim)


@pytest.mark.parametrize(
    ("claim", "value", "field"),
    [("nonce", "short", "nonce"), ("args", {"x": [1, 2]}, "args[...]"), ("args", "on", "args")],
)
def test_command_bad_claim_is_malformed(claim: str, value: object, field: str) -> None:
    payload = terminal_payload(sign_command(KEY, make_command()).jws)
    payload[claim] = value
    with pytest.raises(TokenError) as exc:
        verify_cmd(SignedCommand(v=1, jws=sign_raw(KEY, payload, typ=TYP_COMMAND)))
    assert (reason_of(exc), exc.value.field) == ("malformed", field)


# ---------------------------------------------------------------- policies


def test_policy_wrong_device() -> None:
    with pytest.raises(TokenError) as exc:
        verify_policy(KEYRING, POLICY_JWS, device_id="trk-0002")
    assert reason_of(exc) == "wrong_device"


def test_policy_tampered_and_forged() -> None:
    header, payload, signature = POLICY_JWS.split(".")
    data = json.loads(unb64(payload))
    data["policy"]["allowed"] = []  # lift the region limit
    tampered = ".".join([header, b64(json.dumps(data).encode()), signature])
    forged = sign_raw(OTHER_KEY, data, typ=TYP_POLICY)
    for jws in (tampered, forged):
        with pytest.raises(TokenError) as exc:
            verify_policy(KEYRING, jws, device_id=DEVICE)
        assert reason_of(exc) == "bad_signature"


def test_policy_schema_errors_name_the_field() -> None:
    data = json.loads(unb64(POLICY_JWS.split(".")[1]))
    data["policy"]["allowed"][0]["shape"]["radius_m"] = -1
    with pytest.raises(TokenError) as exc:
        verify_policy(KEYRING, sign_raw(KEY, data, typ=TYP_POLICY), device_id=DEVICE)
    assert (reason_of(exc), exc.value.field) == ("malformed", "policy.allowed[0].shape.radius_m")
    data["policy"]["allowed"][0]["shape"]["radius_m"] = 10.0
    del data["policy"]["tenant"]
    with pytest.raises(TokenError) as exc:
        verify_policy(KEYRING, sign_raw(KEY, data, typ=TYP_POLICY), device_id=DEVICE)
    assert (reason_of(exc), exc.value.field) == ("malformed", "policy.tenant")
    del data["policy"]
    with pytest.raises(TokenError) as exc:
        verify_policy(KEYRING, sign_raw(KEY, data, typ=TYP_POLICY), device_id=DEVICE)
    assert (reason_of(exc), exc.value.field) == ("missing_claim", "policy")


# ---------------------------------------------------------------- garbage


@pytest.mark.parametrize(
    "garbage",
    ["", "abc", "a.b", "a.b.c", "...", "é.é.é", "\ud800", "x" * 20_000, "W10.W10.", "e30.W10x"],
)
def test_garbage_is_malformed(garbage: str) -> None:
    with pytest.raises(TokenError) as exc:
        verify_token(garbage)
    assert reason_of(exc) == "malformed"


def _flip(token: str, index: int, char: str) -> str:
    i = index % len(token)
    return token[:i] + char + token[i + 1 :]


_VALID = [
    issue_terminal_token(KEY, make_terminal()),
    sign_command(KEY, make_command()).jws,
    POLICY_JWS,
]
_CLAIM_NAMES = [
    *("sub", "ten", "vin", "pol", "polh", "jti", "iat", "exp", "nbf"),
    *("cmd", "dev", "nonce", "args", "policy"),
]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_GARBAGE = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    st.lists(st.binary(max_size=60).map(b64), min_size=1, max_size=4).map(".".join),
    st.tuples(_JSON, _JSON, st.binary(max_size=64)).map(
        lambda t: f"{b64(json.dumps(t[0]).encode())}.{b64(json.dumps(t[1]).encode())}.{b64(t[2])}"
    ),
    st.tuples(_JSON, st.sampled_from(["EdDSA", "none", "HS256"]), st.sampled_from(_VALID)).map(
        lambda t: raw_jws(
            {"alg": t[1], "typ": TYP_TERMINAL, "kid": key_id(KEY.public_key())},
            {"sub": DEVICE, "x": t[0]},
            unb64(t[2].rsplit(".", 1)[1]),
        )
    ),
    st.tuples(st.sampled_from(_VALID), st.integers(), st.characters()).map(lambda t: _flip(*t)),
    # Correctly signed by the trusted key, so the claim parsing behind the signature is fuzzed.
    st.tuples(
        st.dictionaries(st.sampled_from(_CLAIM_NAMES) | st.text(max_size=5), _JSON, max_size=10),
        st.sampled_from([TYP_TERMINAL, TYP_COMMAND, TYP_POLICY]),
    ).map(lambda t: sign_raw(KEY, t[0], typ=t[1])),
)


@settings(max_examples=400, deadline=None)
@given(garbage=_GARBAGE)
def test_garbage_only_ever_raises_token_error(garbage: str) -> None:
    reasons: list[str] = []
    for verify in (
        lambda: verify_token(garbage, policy_jws=garbage),
        lambda: verify_cmd(SignedCommand(v=1, jws=garbage)),
        lambda: verify_policy(KEYRING, garbage, device_id=DEVICE),
    ):
        try:
            verify()
        except TokenError as exc:
            reasons.append(exc.reason)
    assert all(reasons)
