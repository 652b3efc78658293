"""The dispatcher's queries: claim due deliveries under a lease, record each attempt.

Claiming commits at once (``FOR UPDATE SKIP LOCKED`` lets several dispatchers
claim side by side without waiting on each other); the claim moves the row's
``next_attempt_at`` one lease ahead and names the dispatcher in ``leased_by``.
The HTTP request then runs without holding a transaction. Finishing clears the
lease, but only if it is still ours (same dispatcher, same attempt number): a
dispatcher that overran its lease logs its attempt and changes nothing else.
A dispatcher killed mid-request leaves a lease that runs out; the next claim
logs the lost attempt as ``abandoned`` and sends again with the same webhook-id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg

Conn = psycopg.AsyncConnection[Any]
State = Literal["succeeded", "failed", "dead"]

_CLAIM = """
WITH due AS (
    SELECT id, leased_by AS prev_lease
    FROM webhook_deliveries
    WHERE state IN ('pending', 'failed') AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE webhook_deliveries d
    SET attempt_no = d.attempt_no + 1,
        next_attempt_at = now() + make_interval(secs => %(lease)s),
        leased_by = %(worker)s,
        updated_at = now()
    FROM due
    WHERE d.id = due.id
    RETURNING d.id, d.message_id, d.endpoint_id, d.tenant_id, d.series, d.attempt_no,
              due.prev_lease
)
SELECT c.id, c.message_id, c.endpoint_id, c.tenant_id, c.series, c.attempt_no, c.prev_lease,
       m.event_type, m.payload, m.created_at, e.url, e.enabled,
       ARRAY(SELECT s.secret FROM webhook_secrets s
             WHERE s.endpoint_id = e.id AND (s.expires_at IS NULL OR s.expires_at > now())
             ORDER BY s.created_at DESC, s.id DESC)
FROM claimed c
JOIN webhook_messages m ON m.id = c.message_id
JOIN webhook_endpoints e ON e.id = c.endpoint_id
ORDER BY c.id"""

_LOG_ATTEMPT = """
INSERT INTO webhook_attempts (delivery_id, attempt_no, dispatcher, started_at, latency_ms,
                              outcome, status, error, response_body)
VALUES (%(delivery)s, %(attempt)s, %(worker)s, %(started)s, %(latency_ms)s,
        %(outcome)s, %(status)s, %(error)s, %(body)s)"""

_FINISH = """
UPDATE webhook_deliveries
SET state = %(state)s,
    next_attempt_at = CASE WHEN %(delay)s::double precision IS NULL THEN next_attempt_at
                           ELSE now() + make_interval(secs => %(delay)s) END,
    leased_by = NULL,
    last_status = %(status)s,
    last_error = %(error)s,
    updated_at = now()
WHERE id = %(delivery)s AND leased_by = %(worker)s AND attempt_no = %(attempt)s"""

_DISABLE_ENDPOINT = """
UPDATE webhook_endpoints
SET enabled = false, disabled_reason = %(reason)s, disabled_at = now()
WHERE id = %(endpoint)s AND enabled"""

_KILL_PENDING = """
UPDATE webhook_deliveries
SET state = 'dead', leased_by = NULL, last_error = %(reason)s, updated_at = now()
WHERE endpoint_id = %(endpoint)s AND state IN ('pending', 'failed')
RETURNING tenant_id"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """One delivery a dispatcher now holds, with what it needs to send it."""

    delivery_id: int
    message_id: str
    endpoint_id: str
    tenant_id: str
    series: int
    attempt_no: int
    abandoned_by: str | None  # the dispatcher whose earlier claim never finished
    event_type: str
    payload: dict[str, Any]
    created_at: datetime
    url: str
    enabled: bool
    secrets: tuple[str, ...]  # live secrets, newest first


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt did, as logged."""

    outcome: str
    started_at: datetime
    latency_s: float | None = None
    status: int | None = None
    error: str | None = None
    response_body: str | None = None


async def claim(conn: Conn, *, worker: str, limit: int, lease_s: float) -> list[Claimed]:
    """Claim up to ``limit`` due deliveries for ``lease_s`` seconds (commits)."""
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(_CLAIM, {"limit": limit, "lease": lease_s, "worker": worker})
        rows = await cur.fetchall()
        found = [
            Claimed(
                delivery_id=int(r[0]),
                message_id=str(r[1]),
                endpoint_id=str(r[2]),
                tenant_id=str(r[3]),
                series=int(r[4]),
                attempt_no=int(r[5]),
                abandoned_by=None if r[6] is None else str(r[6]),
                event_type=str(r[7]),
                payload=dict(r[8]),
                created_at=r[9],
                url=str(r[10]),
                enabled=bool(r[11]),
                secrets=tuple(str(s) for s in r[12]),
            )
            for r in rows
        ]
        abandoned = [c for c in found if c.abandoned_by is not None]
        if abandoned:
            await cur.executemany(
                """INSERT INTO webhook_attempts (delivery_id, attempt_no, dispatcher,
                                                 started_at, outcome, error)
                   VALUES (%s, %s, %s, now(), 'abandoned', %s)""",
                [
                    (
                        c.delivery_id,
                        c.attempt_no - 1,
                        c.abandoned_by,
                        "the dispatcher stopped before finishing; its lease ran out",
                    )
                    for c in abandoned
                ],
            )
    return found


async def finish(
    conn: Conn,
    claimed: Claimed,
    *,
    worker: str,
    attempt: Attempt,
    state: State,
    delay_s: float | None,
) -> bool:
    """Log the attempt and, if the lease is still ours, set the delivery's new state.

    ``delay_s`` is the wait before the next attempt (state ``failed``). Returns
    False when the lease was lost (the attempt is logged all the same).
    """
    common = {"delivery": claimed.delivery_id, "attempt": claimed.attempt_no, "worker": worker}
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(
            _LOG_ATTEMPT,
            {
                **common,
                "started": attempt.started_at,
                "latency_ms": None if attempt.latency_s is None else attempt.latency_s * 1000,
                "outcome": attempt.outcome,
                "status": attempt.status,
                "error": attempt.error,
                "body": attempt.response_body,
            },
        )
        await cur.execute(
            _FINISH,
            {
                **common,
                "state": state,
                "delay": delay_s,
                "status": attempt.status,
                "error": attempt.error,
            },
        )
        return cur.rowcount == 1


async def disable_endpoint(conn: Conn, endpoint_id: str, reason: str) -> list[str]:
    """Disable an endpoint and kill its unfinished deliveries; their tenants, one per delivery."""
    params = {"endpoint": endpoint_id, "reason": reason}
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(_DISABLE_ENDPOINT, params)
        await cur.execute(_KILL_PENDING, {**params, "reason": f"endpoint disabled: {reason}"})
        return [str(r[0]) for r in await cur.fetchall()]
