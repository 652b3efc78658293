"""An independent Standard Webhooks verifier, written from the spec (not the library).

signature = base64(HMAC-SHA256(key, f"{webhook-id}.{webhook-timestamp}.{body}")) where
key is the base64-decoded part of the secret after ``whsec_``; the
``webhook-signature`` header lists ``v1,<signature>`` entries separated by spaces.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping


def spec_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def spec_verify(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """True when one ``v1`` signature in the header matches ``secret``."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, timestamp = lower["webhook-id"], lower["webhook-timestamp"]
    expected = spec_signature(secret, msg_id, timestamp, body)
    for entry in lower["webhook-signature"].split(" "):
        version, _, sig = entry.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return True
    return False
