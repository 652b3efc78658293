"""The webhook dispatcher: claims due deliveries from the outbox and POSTs them.

One asyncio process; start several for more throughput or availability (they
share the work through ``FOR UPDATE SKIP LOCKED`` claims, see ``store``). It
wakes on ``NOTIFY`` from :func:`cloud.webhooks.outbox.enqueue` and polls every
``poll_interval_s`` for retries that fall due. Each attempt is signed afresh
(new ``webhook-timestamp``) with the same ``webhook-id``, logged, and then
succeeds (2xx), disables the endpoint (410 Gone), or is retried on the
configured schedule, honouring ``Retry-After``, until it becomes a dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import psycopg
from psycopg_pool import AsyncConnectionPool

from cloud.webhooks import metrics, store
from cloud.webhooks.config import WebhookSettings
from cloud.webhooks.outbox import NOTIFY_CHANNEL
from cloud.webhooks.schedule import next_delay, parse_retry_after
from cloud.webhooks.signing import body_for, signed_headers
from cloud.webhooks.ssrf import GuardedResolver, TargetRefused, check_url

log = logging.getLogger("vgr.webhooks")

USER_AGENT = "vgr-webhooks/1"
_LISTEN_RETRY_S = 5.0


@dataclass(frozen=True, slots=True)
class _Outcome:
    """An attempt's result and what it means for the delivery."""

    attempt: store.Attempt
    final: str | None = None  # dead-letter reason when no retry may follow
    retry_after_s: float | None = None
    gone: bool = False


def make_session(settings: WebhookSettings) -> aiohttp.ClientSession:
    """The HTTP client: no redirects followed (per request), no proxy from the environment,
    and, unless private targets are allowed, a resolver that refuses non-public addresses."""
    resolver = None if settings.allow_private_targets else GuardedResolver()
    connector = aiohttp.TCPConnector(limit=settings.concurrency, resolver=resolver)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=settings.request_timeout_s),
        headers={"user-agent": USER_AGENT},
        trust_env=False,
    )


class Dispatcher:
    """Delivers webhooks until :meth:`stop`; finishes the requests in flight before it returns."""

    def __init__(
        self,
        dsn: str,
        settings: WebhookSettings,
        *,
        worker_id: str,
        pool_max: int = 4,
        connect_timeout_s: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self._dsn = dsn
        self._settings = settings
        self._worker = worker_id
        self._pool_max = max(2, pool_max)
        self._connect_timeout_s = connect_timeout_s
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter only
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self.attempts_made = 0

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self._wake.set()

    async def run(self) -> None:
        pool = AsyncConnectionPool(
            self._dsn,
            min_size=1,
            max_size=self._pool_max,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(self._connect_timeout_s))},
            open=False,
            name=f"webhooks-{self._worker}",
        )
        await pool.open(wait=True, timeout=self._connect_timeout_s * 2)
        try:
            async with make_session(self._settings) as session, asyncio.TaskGroup() as tg:
                tg.create_task(self._listen(), name="webhooks-listen")
                await self._claim_loop(pool, session, tg)
        finally:
            await pool.close()
        log.info("dispatcher %s stopped after %d attempts", self._worker, self.attempts_made)

    async def _listen(self) -> None:
        """Wake the claim loop whenever an enqueue commits (best effort: polling backs it up)."""
        while not self._stopping:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn,
                    autocommit=True,
                    connect_timeout=max(1, round(self._connect_timeout_s)),
                ) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not self._stopping:
                        async for _ in conn.notifies(timeout=self._settings.poll_interval_s):
                            self._wake.set()
            except (psycopg.Error, OSError) as exc:
                log.warning("LISTEN connection lost (%s); polling meanwhile", str(exc).strip())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), timeout=_LISTEN_RETRY_S)

    async def _claim_loop(
        self, pool: AsyncConnectionPool[Any], session: aiohttp.ClientSession, tg: asyncio.TaskGroup
    ) -> None:
        settings = self._settings
        while not self._stopping:
            self._wake.clear()
            free = settings.concurrency - len(self._inflight)
            claimed: list[store.Claimed] = []
            if free > 0:
                try:
                    async with pool.connection() as conn:
                        claimed = await store.claim(
                            conn, worker=self._worker, limit=free, lease_s=settings.lease_s
                        )
                except (psycopg.Error, TimeoutError) as exc:
                    log.warning("claiming deliveries failed: %s", str(exc).strip() or repr(exc))
            for item in claimed:
                if item.abandoned_by is not None:
                    metrics.DELIVERIES.labels(item.tenant_id, "abandoned").inc()
                task = tg.create_task(
                    self._deliver(pool, session, item),
                    name=f"webhook-{item.delivery_id}-{item.attempt_no}",
                )
                self._inflight.add(task)
                task.add_done_callback(self._finished)
            if claimed and len(claimed) == free:
                continue  # there may be more due right now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=settings.poll_interval_s)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()

    async def _deliver(
        self, pool: AsyncConnectionPool[Any], session: aiohttp.ClientSession, item: store.Claimed
    ) -> None:
        try:
            outcome = await self._attempt(session, item)
        except Exception as exc:  # a bug must not stop the other deliveries
            log.exception("delivery %d: unexpected error", item.delivery_id)
            outcome = _Outcome(
                store.Attempt("internal_error", datetime.now(UTC), error=repr(exc)[:500])
            )
        self.attempts_made += 1
        state, delay, dead_reason = self._conclude(item, outcome)
        try:
            async with pool.connection() as conn:
                kept = await store.finish(
                    conn,
                    item,
                    worker=self._worker,
                    attempt=outcome.attempt,
                    state=state,
                    delay_s=delay,
                )
                killed = (
                    await store.disable_endpoint(conn, item.endpoint_id, _gone_reason(outcome))
                    if outcome.gone
                    else []
                )
        except (psycopg.Error, TimeoutError) as exc:
            # The lease runs out and the delivery is tried again: at least once, never lost.
            log.warning(
                "delivery %d: recording attempt %d failed (%s); it will be retried",
                item.delivery_id,
                item.attempt_no,
                str(exc).strip() or repr(exc),
            )
            return
        metrics.DELIVERIES.labels(item.tenant_id, outcome.attempt.outcome).inc()
        if not kept:
            log.warning(
                "delivery %d attempt %d: lease lost before it finished; result logged only",
                item.delivery_id,
                item.attempt_no,
            )
            return
        if dead_reason is not None:
            metrics.DEAD_LETTERS.labels(item.tenant_id, dead_reason).inc()
        for tenant in killed:
            metrics.DEAD_LETTERS.labels(tenant, "endpoint_disabled").inc()
        self._log(item, outcome, state, delay, len(killed))

    def _conclude(
        self, item: store.Claimed, outcome: _Outcome
    ) -> tuple[store.State, float | None, str | None]:
        """The delivery's new state, the wait before the next attempt, any dead-letter reason."""
        if outcome.attempt.outcome == "succeeded":
            return "succeeded", None, None
        if outcome.final is not None:
            return "dead", None, outcome.final
        s = self._settings
        delay = next_delay(
            item.attempt_no,
            s.retry_schedule_s,
            jitter_fraction=s.jitter_fraction,
            rng=self._rng,
            retry_after_s=outcome.retry_after_s,
            retry_after_max_s=s.retry_after_max_s,
        )
        if delay is None:
            return "dead", None, "exhausted"
        return "failed", delay, None

    def _log(
        self, item: store.Claimed, outcome: _Outcome, state: str, delay: float | None, killed: int
    ) -> None:
        a = outcome.attempt
        where = f"{item.message_id} -> {item.endpoint_id} (delivery {item.delivery_id})"
        if state == "succeeded":
            log.info(
                "%s attempt %d: %s in %.0f ms",
                where,
                item.attempt_no,
                a.status,
                (a.latency_s or 0) * 1000,
            )
        elif state == "failed":
            log.warning(
                "%s attempt %d: %s (%s); next in %.1f s",
                where,
                item.attempt_no,
                a.outcome,
                a.error or a.status,
                delay or 0.0,
            )
        else:
            extra = f"; endpoint disabled, {killed} more dead" if outcome.gone else ""
            log.warning(
                "%s attempt %d: %s (%s); dead letter%s",
                where,
                item.attempt_no,
                a.outcome,
                a.error or a.status,
                extra,
            )

    async def _attempt(self, session: aiohttp.ClientSession, item: store.Claimed) -> _Outcome:
        started = datetime.now(UTC)
        if not item.enabled:
            attempt = store.Attempt("endpoint_disabled", started, error="endpoint is disabled")
            return _Outcome(attempt, final="endpoint_disabled")
        if not item.secrets:
            attempt = store.Attempt("no_secret", started, error="endpoint has no live secret")
            return _Outcome(attempt, final="no_secret")
        try:
            url = check_url(item.url, allow_private=self._settings.allow_private_targets)
        except TargetRefused as exc:
            return _Outcome(
                store.Attempt(f"refused_{exc.reason}", started, error=str(exc)), final="refused"
            )
        body = body_for(item.event_type, item.created_at, item.payload)
        headers = signed_headers(item.secrets, item.message_id, started, body)
        t0 = time.perf_counter()
        try:
            async with session.post(
                url, data=body.encode(), headers=headers, allow_redirects=False
            ) as resp:
                text = await _read_prefix(resp, self._settings.max_logged_body_bytes)
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except TargetRefused as exc:  # raised by the resolver: retried, DNS answers change
            return _Outcome(store.Attempt(f"refused_{exc.reason}", started, error=str(exc)))
        except TimeoutError:
            latency = time.perf_counter() - t0
            metrics.DELIVERY_SECONDS.observe(latency)
            limit = self._settings.request_timeout_s
            error = f"no response within {limit:g} s"
            return _Outcome(store.Attempt("timeout", started, latency, error=error))
        except aiohttp.ClientError as exc:
            latency = time.perf_counter() - t0
            metrics.DELIVERY_SECONDS.observe(latency)
            error = f"{type(exc).__name__}: {exc}"[:500]
            return _Outcome(store.Attempt("connection_error", started, latency, error=error))
        latency = time.perf_counter() - t0
        metrics.DELIVERY_SECONDS.observe(latency)
        attempt = store.Attempt("succeeded", started, latency, status=status, response_body=text)
        if 200 <= status < 300:
            return _Outcome(attempt)
        if status == 410:
            attempt = replace(attempt, outcome="gone", error="410 Gone: endpoint disabled")
            return _Outcome(attempt, final="gone", gone=True)
        attempt = replace(attempt, outcome="http_error", error=f"HTTP {status}")
        wait = parse_retry_after(retry_after, datetime.now(UTC))
        return _Outcome(attempt, retry_after_s=wait)


def _gone_reason(outcome: _Outcome) -> str:
    return f"receiver answered 410 Gone at {outcome.attempt.started_at:%Y-%m-%dT%H:%M:%SZ}"


async def _read_prefix(resp: aiohttp.ClientResponse, limit: int) -> str | None:
    """At most ``limit`` bytes of the response body, decoded leniently (never the whole body)."""
    if limit <= 0:
        return None
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = await resp.content.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")
