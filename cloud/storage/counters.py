"""Pipeline counters kept in the database (``pipeline_counters``, migration 0012).

Ingest and the risk worker run as separate processes, several of each, and
restart; the API's ``/metrics`` must still show one exact, monotonic total.
So a writer adds its counts in the same transaction as the rows they count
(the fixes of a COPY, the alert it opens): a count commits or rolls back with
its data. Each writer adds to its own row (``shard`` = its backend pid), so
two writers never wait on each other's counter row; readers sum the shards.
:func:`fold` moves rows of backends that have gone into shard 0, so the table
stays small however often processes restart.

The names are the Prometheus names without ``vgr_`` and ``_total``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import psycopg

FIXES_INGESTED = "fixes_ingested"
EVENTS_INGESTED = "events_ingested"
QUARANTINED = "ingest_quarantined"
ALERTS_OPENED = "alerts_opened"

Key = tuple[str, str, str]  # name, tenant ('' for none), labels as canonical JSON

_ADD = """INSERT INTO pipeline_counters (name, tenant_id, labels, shard, value)
SELECT u.name, u.tenant, u.labels::jsonb, pg_backend_pid(), u.n
FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[]) AS u(name, tenant, labels, n)
ON CONFLICT (name, tenant_id, labels, shard)
DO UPDATE SET value = pipeline_counters.value + EXCLUDED.value, updated_at = now()"""

# Rows of backends no longer running go into shard 0. SKIP LOCKED: a row some
# transaction holds (a new backend that got the same pid) is left for next time.
FOLD = """WITH gone AS (
    DELETE FROM pipeline_counters WHERE ctid IN (
        SELECT ctid FROM pipeline_counters
        WHERE shard <> 0 AND shard NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
        FOR UPDATE SKIP LOCKED)
    RETURNING name, tenant_id, labels, value)
INSERT INTO pipeline_counters (name, tenant_id, labels, shard, value)
SELECT name, tenant_id, labels, 0, sum(value) FROM gone GROUP BY name, tenant_id, labels
ON CONFLICT (name, tenant_id, labels, shard)
DO UPDATE SET value = pipeline_counters.value + EXCLUDED.value, updated_at = now()"""

# One consistent snapshot of every total (a fold commits atomically, so sums never dip).
TOTALS = """SELECT name, tenant_id, labels, sum(value)::bigint FROM pipeline_counters
GROUP BY name, tenant_id, labels ORDER BY name, tenant_id, labels::text"""


def key(name: str, tenant_id: str | None, labels: Mapping[str, str] | None = None) -> Key:
    """A counter's identity; labels are encoded with sorted keys so equal sets compare equal."""
    encoded = msgspec.json.encode(dict(sorted((labels or {}).items()))).decode()
    return name, tenant_id or "", encoded


def add(conn: psycopg.Connection[Any], counts: Mapping[Key, int]) -> None:
    """Add ``counts`` in the caller's transaction; zero counts are skipped."""
    items = sorted((k, n) for k, n in counts.items() if n)
    if not items:
        return
    if any(n < 0 for _, n in items):
        msg = "counters only go up"
        raise ValueError(msg)
    conn.execute(_ADD, (
        [k[0] for k, _ in items], [k[1] for k, _ in items], [k[2] for k, _ in items],
        [n for _, n in items],
    ))  # fmt: skip


def ingest_counts(
    fix_tenants: Iterable[str],
    event_tenants: Iterable[str],
    quarantined: Iterable[tuple[str | None, str]],
) -> Counter[Key]:
    """What one ingest transaction stored for the first time: per tenant, and per reason."""
    counts: Counter[Key] = Counter()
    for fix_tenant in fix_tenants:
        counts[key(FIXES_INGESTED, fix_tenant)] += 1
    for event_tenant in event_tenants:
        counts[key(EVENTS_INGESTED, event_tenant)] += 1
    for tenant, reason in quarantined:
        counts[key(QUARANTINED, tenant, {"reason": reason})] += 1
    return counts


def alert_opened(conn: psycopg.Connection[Any], tenant_id: str, rule: str) -> None:
    add(conn, {key(ALERTS_OPENED, tenant_id, {"rule": rule}): 1})
