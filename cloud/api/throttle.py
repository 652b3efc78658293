"""Login throttling shared by every API worker: counters in PostgreSQL, maths here.

Two counters per attempt: one for the (tenant, username) typed, whether or
not such a user exists (so a lockout says nothing about existence), and one
for the client's IP address (with a higher free allowance: offices share an
address). The first ``free`` failures cost nothing; after that each attempt
must wait ``base * 2**(failures - free)`` seconds (at most ``max``) after the
previous one, else ``429 too_many_attempts`` with ``Retry-After``. A counter
is forgotten after ``window`` seconds without a failure.

Every attempt is counted *before* the password is checked, inside a row lock,
so parallel guesses cannot slip past the limit; a successful login takes its
own count back (and clears the user's counter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgspec
import psycopg

AConn = psycopg.AsyncConnection[Any]
_CLEANUP_BATCH = 1000


@dataclass(frozen=True, slots=True)
class ThrottleParams:
    free: int  # failures allowed without delay
    base_s: float  # delay after the first failure beyond ``free``
    max_s: float  # the delay doubles up to this
    window_s: float  # a counter with no failure for this long starts again at zero


def delay_s(failures: int, p: ThrottleParams) -> float:
    """How long after the last failure the next attempt must wait."""
    if failures < p.free:
        return 0.0
    exponent = failures - p.free
    if exponent >= 63:  # 2**63 seconds is past any cap
        return p.max_s
    return min(p.base_s * 2.0**exponent, p.max_s)


def effective_failures(failures: int, since_last_s: float, p: ThrottleParams) -> int:
    return 0 if since_last_s >= p.window_s else failures


def retry_after_s(failures: int, since_last_s: float, p: ThrottleParams) -> float:
    """Seconds until an attempt is allowed (0 when it is allowed now)."""
    wait = delay_s(effective_failures(failures, since_last_s, p), p) - since_last_s
    return max(0.0, wait)


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, never 0 for a refused attempt."""
    return str(max(1, math.ceil(seconds)))


def user_key(tenant: str, username: str) -> str:
    return "user:" + msgspec.json.encode([tenant, username]).decode()


def ip_key(ip: str) -> str:
    return "ip:" + ip


async def admit(conn: AConn, keys: dict[str, ThrottleParams]) -> float:
    """Count one attempt against every key, or, if one is locked, the seconds to wait.

    Runs its own transaction; rows are locked in key order (no deadlocks).
    """
    names = sorted(keys)
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO login_throttle (key, failures, last_failure_at) "
            "SELECT k, 0, now() FROM unnest(%s::text[]) AS k ORDER BY k ON CONFLICT DO NOTHING",
            (names,),
        )
        cur = await conn.execute(
            "SELECT key, failures, extract(epoch FROM now() - last_failure_at)::float8 "
            "FROM login_throttle WHERE key = ANY(%s) ORDER BY key FOR UPDATE",
            (names,),
        )
        rows = [(str(k), int(f), max(0.0, float(s))) for k, f, s in await cur.fetchall()]
        wait = max((retry_after_s(f, s, keys[k]) for k, f, s in rows), default=0.0)
        if wait > 0:
            return wait
        for key, failures, since in rows:
            await conn.execute(
                "UPDATE login_throttle SET failures = %s, last_failure_at = now() WHERE key = %s",
                (effective_failures(failures, since, keys[key]) + 1, key),
            )
    return 0.0


async def succeeded(conn: AConn, user: str, ip: str | None, window_s: float) -> None:
    """A login succeeded: clear the user's counter, take back the IP's count of it.

    Also forgets a batch of counters idle for longer than ``window_s``. Runs in
    the caller's transaction.
    """
    await conn.execute("DELETE FROM login_throttle WHERE key = %s", (user,))
    if ip is not None:
        await conn.execute(
            "UPDATE login_throttle SET failures = greatest(failures - 1, 0) WHERE key = %s", (ip,)
        )
    await conn.execute(
        "DELETE FROM login_throttle WHERE key IN (SELECT key FROM login_throttle "
        "WHERE last_failure_at < now() - make_interval(secs => %s) LIMIT %s)",
        (window_s, _CLEANUP_BATCH),
    )
