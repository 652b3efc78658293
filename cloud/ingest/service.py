"""The ingest worker loop: collect → stages → write → commit → acks → hand-off.

A batch closes at ``batch_rows`` records or ``batch_ms`` after its first
delivery. Nothing is acknowledged (neither the MQTT PUBACK nor the
application-level CommitAck) before the transaction commits. While the
database is unreachable the same work is retried with jittered backoff and
nothing new is read beyond the broker's Receive Maximum.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg

from cloud import failpoints
from cloud.ingest.consumer import IngestConsumer
from cloud.ingest.directory import DbTerminalDirectory
from cloud.ingest.model import Delivery, FixRow, Work, compress_ranges
from cloud.ingest.stages import Pipeline
from cloud.ingest.writer import BatchWriter, Written
from cloud.metrics import (
    EVENTS_INGESTED,
    FIXES_INGESTED,
    INGEST_BATCHES,
    INGEST_COMMIT_SECONDS,
    INGEST_DB_ERRORS,
    INGEST_PENDING,
)
from protocols.messages import SCHEMA_VERSION, CommitAck, encode
from protocols.topics import Channel, device_topic

log = logging.getLogger(__name__)


class CommittedSink(Protocol):
    """Receives newly stored fixes, GNSS-time ordered per device (the risk engine)."""

    def deliver(self, fixes: list[FixRow]) -> None: ...


class NullSink:
    def deliver(self, fixes: list[FixRow]) -> None:
        return None


def _estimate_rows(payload: bytes) -> int:
    return max(1, payload.count(b'"seq"'))


class IngestWorker:
    def __init__(
        self,
        *,
        dsn: str,
        consumer: IngestConsumer,
        batch_rows: int,
        batch_ms: float,
        sink: CommittedSink | None = None,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._consumer = consumer
        self._batch_rows = batch_rows
        self._batch_s = batch_ms / 1000.0
        self._sink = sink or NullSink()
        self._connect_timeout = connect_timeout_s
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._writer: BatchWriter | None = None
        self._pipeline: Pipeline | None = None

    def stop(self) -> None:
        self._stop.set()

    # -- database connection with retry --------------------------------------------------
    def _connect(self) -> tuple[BatchWriter, Pipeline]:
        if self._writer is not None and self._pipeline is not None:
            return self._writer, self._pipeline
        conn = psycopg.connect(self._dsn, connect_timeout=int(self._connect_timeout))
        self._conn = conn
        self._writer = BatchWriter(conn)
        # The directory has its own connection so a lookup never sits in a write transaction.
        dir_conn = psycopg.connect(self._dsn, autocommit=False)
        old = self._pipeline
        self._pipeline = Pipeline(
            DbTerminalDirectory(dir_conn),
            deduper=old.deduper if old is not None else None,
            now=lambda: datetime.now(UTC),
        )
        return self._writer, self._pipeline

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                log.debug("closing a broken connection failed", exc_info=True)
        self._conn = None
        self._writer = None
        self._pipeline = None

    # -- loop ---------------------------------------------------------------------------
    def _collect(self) -> list[Delivery]:
        q = self._consumer.deliveries
        try:
            first = q.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        rows = _estimate_rows(first.payload)
        deadline = time.monotonic() + self._batch_s
        while rows < self._batch_rows:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                d = q.get(timeout=left)
            except queue.Empty:
                break
            batch.append(d)
            rows += _estimate_rows(d.payload)
        return batch

    def run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            batch = self._collect()
            INGEST_PENDING.set(self._consumer.deliveries.qsize() + len(batch))
            if not batch:
                continue
            while True:
                try:
                    writer, pipeline = self._connect()
                    work = pipeline.run(batch)
                    started = time.perf_counter()
                    written = writer.write(work, received_at=batch[0].received_at)
                    INGEST_COMMIT_SECONDS.observe(time.perf_counter() - started)
                    backoff = 0.5
                    break
                except psycopg.Error as exc:
                    INGEST_DB_ERRORS.inc()
                    log.warning("database write failed (%s); retrying in %.1fs", exc, backoff)
                    self._drop_connection()
                    if self._stop.wait(backoff * random.uniform(0.5, 1.5)):  # noqa: S311
                        return  # stopping: nothing of this batch was acknowledged
                    backoff = min(backoff * 2, 10.0)
            self._after_commit(batch, work, written, pipeline)

    def _after_commit(
        self, batch: list[Delivery], work: Work, written: Written, pipeline: Pipeline
    ) -> None:
        INGEST_BATCHES.inc()
        failpoints.hit("ingest_after_commit")
        for device_id, keys in work.acks.items():
            if keys:
                ack = CommitAck(v=SCHEMA_VERSION, device_id=device_id, ranges=compress_ranges(keys))
                self._consumer.publish(device_topic(device_id, Channel.ACK), encode(ack))
        for d in batch:
            self._consumer.release(d.ack_token)
        pipeline.deduper.remember(work.message_keys)
        by_tenant: dict[str, int] = {}
        for r in written.new_fixes:
            by_tenant[r.tenant_id] = by_tenant.get(r.tenant_id, 0) + 1
        for tenant, n in by_tenant.items():
            FIXES_INGESTED.labels(tenant=tenant).inc(n)
        for ev in work.events:
            EVENTS_INGESTED.labels(tenant=ev.tenant_id).inc()
        if not isinstance(self._sink, NullSink):
            ordered = sorted(written.new_fixes, key=lambda r: (r.fix.device_id, r.fix.time))
            self._sink.deliver(ordered)


def run_until_stopped(worker: IngestWorker, stop_when: Callable[[], bool]) -> None:
    """Run ``worker`` on this thread until ``stop_when`` says so (used by tests and the CLI)."""
    watcher = threading.Thread(target=lambda: _watch(worker, stop_when), daemon=True)
    watcher.start()
    worker.run()


def _watch(worker: IngestWorker, stop_when: Callable[[], bool]) -> None:
    while not stop_when():
        time.sleep(0.1)
    worker.stop()
