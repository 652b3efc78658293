"""Endpoint secrets and the Standard Webhooks signature headers (signing by ``standardwebhooks``).

A secret is ``whsec_`` + base64 of 32 random bytes. During a rotation an endpoint
has several live secrets; the ``webhook-signature`` header then carries one
``v1,<base64>`` signature per secret, separated by spaces, newest first, so a
receiver holding either the old or the new secret accepts the message.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def is_valid_secret(value: str) -> bool:
    if not value.startswith(SECRET_PREFIX):
        return False
    try:
        raw = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
    except ValueError:
        return False
    return 24 <= len(raw) <= 64


def body_for(event_type: str, created_at: datetime, payload: Mapping[str, object]) -> str:
    """The JSON body of a message: the Standard Webhooks envelope ``{type, timestamp, data}``.

    Built from the stored message alone, so every attempt sends the same bytes.
    """
    envelope = {
        "type": event_type,
        "timestamp": created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": payload,
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def signature_header(
    secrets_newest_first: Sequence[str], msg_id: str, timestamp: datetime, body: str
) -> str:
    """The ``webhook-signature`` value: one signature per live secret, space-separated."""
    if not secrets_newest_first:
        msg = "an endpoint without a live secret cannot sign"
        raise ValueError(msg)
    return " ".join(
        Webhook(secret).sign(msg_id, timestamp.astimezone(UTC), body)
        for secret in secrets_newest_first
    )


def signed_headers(
    secrets_newest_first: Sequence[str], msg_id: str, timestamp: datetime, body: str
) -> dict[str, str]:
    """Every header a delivery carries besides the transport's own."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature_header(secrets_newest_first, msg_id, timestamp, body),
    }
