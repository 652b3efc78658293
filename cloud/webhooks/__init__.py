"""Signed webhooks to the lending core (Standard Webhooks), through a transactional outbox.

The risk engine calls :func:`enqueue` inside its own transaction; the dispatcher
(``vgr cloud webhooks dispatch``) delivers, retries and logs. See docs/webhooks.md.
"""

from cloud.webhooks.events import EVENT_TYPES, WebhookError, derive_message_id
from cloud.webhooks.outbox import enqueue, enqueue_async

__all__ = ["EVENT_TYPES", "WebhookError", "derive_message_id", "enqueue", "enqueue_async"]
