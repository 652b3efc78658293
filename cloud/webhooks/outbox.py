"""The transactional outbox: :func:`enqueue` writes a webhook in the caller's transaction.

The risk engine opens an alert and enqueues its webhook in one transaction, so
either both exist or neither does. Nothing here commits: the message and one
pending delivery per matching enabled endpoint become visible to dispatchers
when the caller commits, and vanish if it rolls back. A ``NOTIFY`` sent in the
same transaction wakes the dispatchers on commit (and only then).

With an explicit ``message_id`` (derive it from the alert, see
:func:`cloud.webhooks.events.derive_message_id`) enqueueing is idempotent: a
message that already exists is left alone and nothing more is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from cloud.webhooks.events import (
    WebhookError,
    check_event_type,
    check_message_id,
    new_message_id,
)

NOTIFY_CHANNEL = "vgr_webhooks"

_INSERT_MESSAGE = """
    INSERT INTO webhook_messages (id, tenant_id, event_type, payload)
    VALUES (%(id)s, %(tenant)s, %(type)s, %(payload)s)
    ON CONFLICT (id) DO NOTHING
    RETURNING id"""
_EXISTING = "SELECT tenant_id, event_type FROM webhook_messages WHERE id = %(id)s"
_INSERT_DELIVERIES = """
    INSERT INTO webhook_deliveries (message_id, endpoint_id, tenant_id)
    SELECT %(id)s, e.id, e.tenant_id
    FROM webhook_endpoints e
    WHERE e.tenant_id = %(tenant)s AND e.enabled
      AND (cardinality(e.event_types) = 0 OR %(type)s = ANY (e.event_types))"""
_NOTIFY = f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')"


def _params(
    tenant_id: str, event_type: str, payload: Mapping[str, Any], message_id: str | None
) -> dict[str, Any]:
    check_event_type(event_type)
    mid = new_message_id() if message_id is None else check_message_id(message_id)
    return {"id": mid, "tenant": tenant_id, "type": event_type, "payload": Jsonb(dict(payload))}


def _conflict(params: Mapping[str, Any], existing: tuple[Any, ...] | None) -> None:
    if existing is not None and tuple(existing) != (params["tenant"], params["type"]):
        raise WebhookError(
            "message_id_conflict",
            f"message {params['id']} already exists for tenant {existing[0]!r} and event "
            f"{existing[1]!r}; derive message ids from the tenant, the alert and the event type",
        )


def enqueue(
    conn: psycopg.Connection[Any],
    tenant_id: str,
    event_type: str,
    payload: Mapping[str, Any],
    *,
    message_id: str | None = None,
) -> str:
    """Add a webhook message to the outbox in ``conn``'s transaction; return its id.

    Does not commit: its statements join the transaction in progress (or the one
    a non-autocommit connection starts implicitly). Only on an autocommit
    connection with no transaction open does it run its own small transaction,
    so that message and deliveries still appear together. ``payload`` must be
    JSON-serialisable (it becomes the envelope's ``data``).
    """
    params = _params(tenant_id, event_type, payload, message_id)
    if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        with conn.transaction():
            return _write(conn, params)
    return _write(conn, params)


def _write(conn: psycopg.Connection[Any], params: Mapping[str, Any]) -> str:
    with conn.cursor() as cur:
        cur.execute(_INSERT_MESSAGE, params)
        if cur.fetchone() is None:
            cur.execute(_EXISTING, params)
            _conflict(params, cur.fetchone())
            return str(params["id"])
        cur.execute(_INSERT_DELIVERIES, params)
        if cur.rowcount:
            cur.execute(_NOTIFY)
    return str(params["id"])


async def enqueue_async(
    conn: psycopg.AsyncConnection[Any],
    tenant_id: str,
    event_type: str,
    payload: Mapping[str, Any],
    *,
    message_id: str | None = None,
) -> str:
    """:func:`enqueue` for an asyncio connection (same semantics)."""
    params = _params(tenant_id, event_type, payload, message_id)
    if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        async with conn.transaction():
            return await _write_async(conn, params)
    return await _write_async(conn, params)


async def _write_async(conn: psycopg.AsyncConnection[Any], params: Mapping[str, Any]) -> str:
    async with conn.cursor() as cur:
        await cur.execute(_INSERT_MESSAGE, params)
        if await cur.fetchone() is None:
            await cur.execute(_EXISTING, params)
            _conflict(params, await cur.fetchone())
            return str(params["id"])
        await cur.execute(_INSERT_DELIVERIES, params)
        if cur.rowcount:
            await cur.execute(_NOTIFY)
    return str(params["id"])
