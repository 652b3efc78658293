"""Signature headers (signed by standardwebhooks) checked against the spec by hand."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from standardwebhooks.webhooks import Webhook

from cloud.webhooks.signing import (
    body_for,
    is_valid_secret,
    new_secret,
    signature_header,
    signed_headers,
)
from tests.unit.webhooks.spec import spec_signature, spec_verify

# The example from the Standard Webhooks specification's test vectors.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_matches_the_spec_example() -> None:
    ts = datetime.fromtimestamp(SPEC_TS, tz=UTC)
    assert signature_header([SPEC_SECRET], SPEC_ID, ts, SPEC_BODY) == SPEC_SIG
    assert "v1," + spec_signature(SPEC_SECRET, SPEC_ID, str(SPEC_TS), SPEC_BODY.encode()) == (
        SPEC_SIG
    )


def test_new_secrets_are_32_random_bytes() -> None:
    a, b = new_secret(), new_secret()
    assert a != b
    assert a.startswith("whsec_")
    assert len(base64.b64decode(a.removeprefix("whsec_"))) == 32
    assert is_valid_secret(a)
    assert not is_valid_secret("whsec_" + base64.b64encode(b"short").decode())
    assert not is_valid_secret("nope_" + a.removeprefix("whsec_"))
    assert not is_valid_secret("whsec_***")


def test_rotation_signs_with_every_live_secret() -> None:
    new, old = new_secret(), new_secret()
    now = datetime.now(UTC)
    body = body_for("alert.opened", now, {"alert_id": 7, "note": "车辆离开常驻城市"})
    headers = signed_headers([new, old], "msg_abc", now, body)
    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2
    assert all(re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", e) for e in entries)
    raw = body.encode()
    assert spec_verify(new, headers, raw)
    assert spec_verify(old, headers, raw)
    assert not spec_verify(new_secret(), headers, raw)
    assert not spec_verify(new, headers, raw + b" ")
    # a receiver using the reference library accepts with either secret too
    for secret in (new, old):
        assert Webhook(secret).verify(raw, headers)["data"]["alert_id"] == 7


def test_headers_carry_id_and_unix_timestamp() -> None:
    ts = datetime(2025, 5, 1, 12, 0, 0, 900_000, tzinfo=UTC)
    headers = signed_headers([new_secret()], "msg_1", ts, "{}")
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(int(ts.timestamp()))
    assert headers["content-type"] == "application/json"


def test_non_utc_timestamps_sign_the_same_instant() -> None:
    secret = new_secret()
    utc = datetime(2025, 5, 1, 4, 0, tzinfo=UTC)
    beijing = utc.astimezone(timezone(timedelta(hours=8)))
    headers = signed_headers([secret], "msg_1", beijing, "{}")
    assert headers["webhook-timestamp"] == str(int(utc.timestamp()))
    assert spec_verify(secret, headers, b"{}")


def test_a_secretless_endpoint_cannot_sign() -> None:
    with pytest.raises(ValueError, match="live secret"):
        signature_header([], "msg_1", datetime.now(UTC), "{}")


def test_body_is_the_standard_envelope_and_stable() -> None:
    created = datetime(2025, 5, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=8)))
    payload = {"b": 1, "a": {"z": [1, 2], "y": "是"}}
    body = body_for("vehicle.risk_changed", created, payload)
    assert body == body_for("vehicle.risk_changed", created, dict(reversed(payload.items())))
    doc = json.loads(body)
    assert doc == {"type": "vehicle.risk_changed", "timestamp": "2025-05-01T04:00:00Z",
                   "data": payload}  # fmt: skip
    assert "是" in body  # UTF-8, not \u escapes
