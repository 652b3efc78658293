"""Endpoint and delivery administration (the queries behind ``vgr cloud webhooks …``).

Each function runs in one transaction on a plain (sync) psycopg connection and
raises :class:`~cloud.webhooks.events.WebhookError` with a code and a hint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from cloud.webhooks.events import (
    ENDPOINT_ID,
    WebhookError,
    check_event_type,
    check_message_id,
    new_endpoint_id,
)
from cloud.webhooks.outbox import NOTIFY_CHANNEL
from cloud.webhooks.signing import new_secret
from cloud.webhooks.ssrf import TargetRefused, check_url

Conn = psycopg.Connection[Any]
DELIVERY_STATES = ("pending", "failed", "succeeded", "dead")


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    tenant_id: str
    url: str
    description: str
    event_types: tuple[str, ...]
    enabled: bool
    disabled_reason: str | None
    live_secrets: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    message_id: str
    endpoint_id: str
    tenant_id: str
    event_type: str
    series: int
    attempt_no: int
    state: str
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Replayed:
    endpoint_id: str
    series: int | None  # None: skipped, see reason
    reason: str = ""


def _check_endpoint_id(endpoint_id: str) -> str:
    if not ENDPOINT_ID.match(endpoint_id):
        raise WebhookError("bad_endpoint_id", f"{endpoint_id!r} is not an endpoint id (ep_…)")
    return endpoint_id


def add_endpoint(
    conn: Conn,
    tenant_id: str,
    url: str,
    *,
    event_types: Sequence[str] = (),
    description: str = "",
    allow_private: bool = False,
) -> tuple[str, str]:
    """Create an endpoint with its first secret; return ``(endpoint id, secret)``."""
    try:
        check_url(url, allow_private=allow_private)
    except TargetRefused as exc:
        raise WebhookError("bad_url", str(exc)) from None
    types = sorted({check_event_type(t) for t in event_types})
    endpoint_id = new_endpoint_id()
    secret = new_secret()
    with conn.transaction():
        if conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,)).fetchone() is None:
            raise WebhookError("unknown_tenant", f"no tenant {tenant_id!r}: create it first")
        conn.execute(
            """INSERT INTO webhook_endpoints (id, tenant_id, url, description, event_types)
               VALUES (%s, %s, %s, %s, %s)""",
            (endpoint_id, tenant_id, url, description, types),
        )
        conn.execute(
            "INSERT INTO webhook_secrets (endpoint_id, secret) VALUES (%s, %s)",
            (endpoint_id, secret),
        )
    return endpoint_id, secret


def rotate_secret(conn: Conn, endpoint_id: str, *, overlap_s: float) -> tuple[str, datetime]:
    """Give an endpoint a new primary secret; the live ones keep signing for ``overlap_s``.

    Returns the new secret and when the previous ones stop signing.
    """
    _check_endpoint_id(endpoint_id)
    secret = new_secret()
    with conn.transaction():
        row = conn.execute(
            "SELECT 1 FROM webhook_endpoints WHERE id = %s FOR UPDATE", (endpoint_id,)
        ).fetchone()
        if row is None:
            raise WebhookError("unknown_endpoint", f"no endpoint {endpoint_id}")
        until = conn.execute(
            "SELECT now() + make_interval(secs => %s::double precision)", (overlap_s,)
        ).fetchone()
        assert until is not None
        conn.execute(
            """UPDATE webhook_secrets SET expires_at = %s
               WHERE endpoint_id = %s AND (expires_at IS NULL OR expires_at > %s)""",
            (until[0], endpoint_id, until[0]),
        )
        conn.execute(
            "INSERT INTO webhook_secrets (endpoint_id, secret) VALUES (%s, %s)",
            (endpoint_id, secret),
        )
    return secret, until[0]


def set_enabled(conn: Conn, endpoint_id: str, *, enabled: bool, reason: str = "") -> None:
    """Enable an endpoint again (e.g. after a 410), or disable it by hand with a reason."""
    _check_endpoint_id(endpoint_id)
    with conn.transaction():
        if enabled:
            cur = conn.execute(
                """UPDATE webhook_endpoints
                   SET enabled = true, disabled_reason = NULL, disabled_at = NULL
                   WHERE id = %s""",
                (endpoint_id,),
            )
        else:
            why = reason or "disabled by an operator"
            cur = conn.execute(
                """UPDATE webhook_endpoints
                   SET enabled = false, disabled_reason = %s, disabled_at = now()
                   WHERE id = %s""",
                (why, endpoint_id),
            )
            conn.execute(
                """UPDATE webhook_deliveries
                   SET state = 'dead', leased_by = NULL, last_error = %s, updated_at = now()
                   WHERE endpoint_id = %s AND state IN ('pending', 'failed')""",
                (f"endpoint disabled: {why}", endpoint_id),
            )
        if cur.rowcount == 0:
            raise WebhookError("unknown_endpoint", f"no endpoint {endpoint_id}")


def list_endpoints(
    conn: Conn,
    *,
    tenant_id: str | None = None,
    endpoint_id: str | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int | None = None,
) -> list[Endpoint]:
    """Endpoints by tenant, oldest first; ``after`` a ``(created_at, id)`` keyset position."""
    rows = conn.execute(
        """SELECT e.id, e.tenant_id, e.url, e.description, e.event_types, e.enabled,
                  e.disabled_reason,
                  (SELECT count(*) FROM webhook_secrets s WHERE s.endpoint_id = e.id
                     AND (s.expires_at IS NULL OR s.expires_at > now())),
                  e.created_at
           FROM webhook_endpoints e
           WHERE (%(tenant)s::text IS NULL OR e.tenant_id = %(tenant)s)
             AND (%(id)s::text IS NULL OR e.id = %(id)s)
             AND (%(after_t)s::timestamptz IS NULL
                  OR (e.created_at, e.id) > (%(after_t)s::timestamptz, %(after_id)s::text))
           ORDER BY e.tenant_id, e.created_at, e.id
           LIMIT %(limit)s""",
        {
            "tenant": tenant_id,
            "id": endpoint_id,
            "after_t": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": limit,
        },
    ).fetchall()
    return [
        Endpoint(
            str(r[0]),
            str(r[1]),
            str(r[2]),
            str(r[3]),
            tuple(r[4]),
            bool(r[5]),
            r[6],
            int(r[7]),
            r[8],
        )
        for r in rows
    ]


def list_deliveries(
    conn: Conn,
    *,
    endpoint_id: str | None = None,
    state: str | None = None,
    message_id: str | None = None,
    tenant_id: str | None = None,
    limit: int = 50,
) -> list[Delivery]:
    if state is not None and state not in DELIVERY_STATES:
        raise WebhookError("bad_state", f"{state!r} is not one of {', '.join(DELIVERY_STATES)}")
    rows = conn.execute(
        """SELECT d.id, d.message_id, d.endpoint_id, d.tenant_id, m.event_type, d.series,
                  d.attempt_no, d.state, d.next_attempt_at, d.last_status, d.last_error,
                  d.updated_at
           FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id
           WHERE (%(endpoint)s::text IS NULL OR d.endpoint_id = %(endpoint)s)
             AND (%(state)s::text IS NULL OR d.state = %(state)s)
             AND (%(message)s::text IS NULL OR d.message_id = %(message)s)
             AND (%(tenant)s::text IS NULL OR d.tenant_id = %(tenant)s)
           ORDER BY d.updated_at DESC, d.id DESC
           LIMIT %(limit)s""",
        {
            "endpoint": endpoint_id,
            "state": state,
            "message": message_id,
            "tenant": tenant_id,
            "limit": limit,
        },
    ).fetchall()
    return [Delivery(*r) for r in rows]


def attempts(conn: Conn, delivery_id: int) -> list[tuple[Any, ...]]:
    """One delivery's attempt log: number, start, latency ms, outcome, status, error, body."""
    return conn.execute(
        """SELECT attempt_no, started_at, latency_ms, outcome, status, error, response_body
           FROM webhook_attempts WHERE delivery_id = %s ORDER BY attempt_no, id""",
        (delivery_id,),
    ).fetchall()


def replay(conn: Conn, message_id: str, *, endpoint_id: str | None = None) -> list[Replayed]:
    """Send a message again: a new delivery series per endpoint, with the same webhook-id.

    Without ``endpoint_id``, every endpoint that had a delivery of the message.
    Endpoints that are disabled, or still have an unfinished delivery of it, are skipped.
    """
    check_message_id(message_id)
    done: list[Replayed] = []
    with conn.transaction():
        msg = conn.execute(
            "SELECT tenant_id FROM webhook_messages WHERE id = %s", (message_id,)
        ).fetchone()
        if msg is None:
            raise WebhookError("unknown_message", f"no message {message_id}")
        tenant = str(msg[0])
        if endpoint_id is not None:
            _check_endpoint_id(endpoint_id)
            rows = conn.execute(
                "SELECT id, tenant_id, enabled FROM webhook_endpoints WHERE id = %s FOR UPDATE",
                (endpoint_id,),
            ).fetchall()
            if not rows:
                raise WebhookError("unknown_endpoint", f"no endpoint {endpoint_id}")
            if rows[0][1] != tenant:  # tenants never see each other's messages
                raise WebhookError(
                    "wrong_tenant", f"{endpoint_id} belongs to another tenant than {message_id}"
                )
        else:
            rows = conn.execute(
                """SELECT e.id, e.tenant_id, e.enabled FROM webhook_endpoints e
                   WHERE e.id IN (SELECT endpoint_id FROM webhook_deliveries
                                  WHERE message_id = %s)
                   ORDER BY e.id FOR UPDATE""",
                (message_id,),
            ).fetchall()
            if not rows:
                raise WebhookError(
                    "no_endpoints", f"{message_id} was never delivered: name an --endpoint"
                )
        for ep_id, _tenant, enabled in rows:
            done.append(_replay_one(conn, message_id, str(ep_id), tenant, enabled=bool(enabled)))
        if any(r.series is not None for r in done):
            conn.execute(f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')")
    return done


def _replay_one(conn: Conn, message_id: str, ep_id: str, tenant: str, *, enabled: bool) -> Replayed:
    if not enabled:
        return Replayed(ep_id, None, "endpoint disabled: enable it first")
    busy = conn.execute(
        """SELECT 1 FROM webhook_deliveries WHERE message_id = %s AND endpoint_id = %s
             AND state IN ('pending', 'failed')""",
        (message_id, ep_id),
    ).fetchone()
    if busy is not None:
        return Replayed(ep_id, None, "a delivery of it is still under way")
    row = conn.execute(
        """INSERT INTO webhook_deliveries (message_id, endpoint_id, tenant_id, series)
           SELECT %(msg)s, %(ep)s, %(tenant)s, coalesce(max(series), 0) + 1
           FROM webhook_deliveries WHERE message_id = %(msg)s AND endpoint_id = %(ep)s
           RETURNING series""",
        {"msg": message_id, "ep": ep_id, "tenant": tenant},
    ).fetchone()
    assert row is not None
    return Replayed(ep_id, int(row[0]))
