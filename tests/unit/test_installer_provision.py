"""Provisioning's checks that need no cloud: inputs, the installer key, what the cloud sent."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.registry.ids import luhn_check_digit
from edge.installer import inputs
from edge.installer.api import ApiError, Credentials, MqttEndpoint, _error_of
from edge.installer.provision import (
    InputError,
    Order,
    RefusedError,
    read_installer_key,
    verify_credentials,
)
from protocols.policy import Policy
from protocols.tokens import (
    TerminalClaims,
    generate_private_key,
    issue_terminal_token,
    key_id,
    policy_hash,
    public_key_to_pem,
    sign_policy,
)

IMEI = "860000000000017"
VIN = "LSVAU2180N2183294"
NOW = datetime.now(UTC)
KEY = generate_private_key()


def test_the_edge_luhn_check_agrees_with_the_registry() -> None:
    rng = random.Random(7)
    for _ in range(500):
        body = "".join(rng.choice("0123456789") for _ in range(14))
        good = body + str(luhn_check_digit(body))
        assert inputs.imei_problem(good) is None
        bad = body + str((luhn_check_digit(body) + rng.randint(1, 9)) % 10)
        assert (
            inputs.imei_problem(bad) == "the IMEI's check digit is wrong (Luhn): re-read the label"
        )


def test_every_bad_input_is_reported_before_anything_is_sent() -> None:
    order = Order(
        imei="86000000000001",
        kind="wired",
        vin="LSVAU2180N218329O",  # letter O
        contract_id="a b",
        adcode="3201",
        plate="",
        gnss={"source": "file"},
        outbox=Path("relative.sqlite3"),
    )
    assert [p.split(":")[0] for p in order.problems()] == [
        "--imei",
        "--vin",
        "--contract",
        "--adcode",
        "--gnss-path",
        "--outbox",
    ]
    assert inputs.api_url_problem("ftp://cloud") is not None
    assert inputs.api_url_problem("https://cloud.example:8443") is None


def test_the_binding_sends_only_what_was_given() -> None:
    order = Order(
        imei=IMEI,
        kind="wired",
        vin=VIN,
        contract_id="HT-1",
        adcode="320100",
        areas={"forbidden": []},
    )
    assert order.binding() == {
        "vin": VIN,
        "contract_id": "HT-1",
        "declared_adcode": "320100",
        "forbidden": [],
    }


def test_the_installer_key_comes_from_the_environment_or_a_private_file(tmp_path: Path) -> None:
    err = io.StringIO()
    assert read_installer_key(key_env="K", key_file=None, environ={"K": " k3y\n"}, err=err) == "k3y"
    with pytest.raises(InputError, match="not set"):
        read_installer_key(key_env="K", key_file=None, environ={}, err=err)
    with pytest.raises(InputError, match="one word"):
        read_installer_key(key_env="K", key_file=None, environ={"K": "a b"}, err=err)
    key_file = tmp_path / "key"
    key_file.write_text("k3y\n")
    key_file.chmod(0o644)
    assert read_installer_key(key_env=None, key_file=key_file, environ={}, err=err) == "k3y"
    assert "readable by others" in err.getvalue()
    with pytest.raises(InputError, match="cannot read"):
        read_installer_key(key_env=None, key_file=tmp_path / "nope", environ={}, err=err)


def credentials(
    *, device: str = IMEI, vin: str = VIN, signer: Ed25519PrivateKey = KEY, **kw: str
) -> Credentials:
    policy = sign_policy(
        KEY, Policy(policy_id="p-1", version=1, tenant="alpha", device_id=device, issued_at=NOW)
    )
    claims = TerminalClaims(
        device_id=device,
        tenant="alpha",
        vin=vin,
        policy_id="p-1",
        policy_hash=policy_hash(policy),
        token_id="t-1",
        issued_at=NOW - timedelta(minutes=1),
        expires_at=NOW + timedelta(days=30),
    )
    token = issue_terminal_token(signer, claims)
    public = KEY.public_key()
    return Credentials(
        device_id=kw.get("device_id", IMEI),
        mqtt=MqttEndpoint(username=IMEI, password="pw", client_id=IMEI, host="h", tls_port=8883),
        token=token,
        policy=policy,
        platform_public_key_pem=public_key_to_pem(public).decode(),
        platform_key_id=kw.get("key_id", key_id(public)),
    )


ORDER = Order(imei=IMEI, kind="wired", vin=VIN, contract_id="HT-1")


def test_good_credentials_verify_and_name_the_tenant() -> None:
    assert verify_credentials(ORDER, credentials(), now=NOW) == "alpha"


@pytest.mark.parametrize(
    ("creds", "message"),
    [
        (lambda: credentials(device_id="860000000000025"), "not 860000000000017"),
        (lambda: credentials(device="860000000000025"), "token_"),
        (lambda: credentials(vin="LSVAU2180N2183295"), "the token is for VIN"),
        (lambda: credentials(signer=generate_private_key()), "token_"),
        (lambda: credentials(key_id="other"), "key id"),
    ],
)
def test_credentials_that_do_not_hold_up_are_refused(
    creds: Callable[[], Credentials], message: str
) -> None:
    with pytest.raises(RefusedError, match=message):
        verify_credentials(ORDER, creds(), now=NOW)


def test_an_unexpected_platform_key_is_refused() -> None:
    other = public_key_to_pem(generate_private_key().public_key())
    order = Order(imei=IMEI, kind="wired", vin=VIN, contract_id="HT-1", expect_platform_key=other)
    with pytest.raises(RefusedError, match="expect-platform-key"):
        verify_credentials(order, credentials(), now=NOW)
    mine = Order(
        imei=IMEI,
        kind="wired",
        vin=VIN,
        contract_id="HT-1",
        expect_platform_key=public_key_to_pem(KEY.public_key()),
    )
    assert verify_credentials(mine, credentials(), now=NOW) == "alpha"


def test_api_errors_keep_the_servers_code_and_add_what_to_do() -> None:
    body = (
        b'{"error": {"code": "kind_mismatch", "message": "registered as wired", "field": "kind"}}'
    )
    err = _error_of(409, body)
    assert isinstance(err, ApiError)
    assert err.describe().splitlines() == [
        "the cloud said [409 kind_mismatch] registered as wired (field: kind)",
        "  what to do: the tracker was registered with the other --kind; use that one",
    ]
    proxy = _error_of(502, b"<html>Bad Gateway</html>")
    assert not isinstance(proxy, ApiError)
    assert "not from the provisioning API" in str(proxy)
