"""The webhook vocabulary: event types and message ids (pure).

Payload shapes are documented in ``docs/webhooks.md``; the risk engine fills them.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid

EVENT_TYPES: tuple[str, ...] = (
    "alert.opened",
    "alert.resolved",
    "vehicle.risk_changed",
    "device.offline",
    "device.unauthorized",
)

MESSAGE_ID = re.compile(r"^msg_[A-Za-z0-9._:-]{1,120}$")
ENDPOINT_ID = re.compile(r"^ep_[a-z0-9]{1,64}$")


class WebhookError(Exception):
    """A webhook operation cannot be done; ``code`` names why, ``message`` says what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def check_event_type(event_type: str) -> str:
    if event_type not in EVENT_TYPES:
        raise WebhookError(
            "unknown_event_type", f"{event_type!r} is not one of {', '.join(EVENT_TYPES)}"
        )
    return event_type


def check_message_id(message_id: str) -> str:
    if not MESSAGE_ID.match(message_id):
        raise WebhookError(
            "bad_message_id",
            f"{message_id!r}: a message id is 'msg_' and 1-120 of A-Z a-z 0-9 . _ : -",
        )
    return message_id


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def derive_message_id(*parts: str) -> str:
    """A message id that depends only on ``parts`` (e.g. tenant, alert id, event type).

    Replaying the same alert then yields the same id, and :func:`enqueue` makes the
    second enqueue a no-op.
    """
    if not parts:
        msg = "derive_message_id needs at least one part"
        raise ValueError(msg)
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()[:20]
    return "msg_" + base64.b32encode(digest).decode("ascii").lower()


def new_endpoint_id() -> str:
    return f"ep_{uuid.uuid4().hex}"
