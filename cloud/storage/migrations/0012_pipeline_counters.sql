-- 0012: pipeline counters for the API's /metrics, and indexes for the data cockpit.
--
-- Ingest and the risk worker are separate processes (several of each), so the
-- counts an operator scrapes must live in the database: each writer adds to its
-- own row (shard = its backend pid) in the same transaction as the rows it
-- counts, so a count commits or rolls back with its data, and two writers never
-- wait on each other's counter row. The API sums the shards; rows of backends
-- that have gone are folded into shard 0 (cloud/storage/counters.py).
CREATE TABLE pipeline_counters (
    name        text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]*$'),
    tenant_id   text NOT NULL DEFAULT '',           -- '' when there is no tenant (unknown terminal)
    labels      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
    shard       integer NOT NULL,                    -- writer's backend pid; 0: folded
    value       bigint NOT NULL DEFAULT 0 CHECK (value >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, tenant_id, labels, shard)
);

-- The cockpit and the Grafana dashboard read webhook health over a time window.
CREATE INDEX webhook_deliveries_tenant_created ON webhook_deliveries (tenant_id, created_at DESC);
CREATE INDEX webhook_attempts_started ON webhook_attempts (started_at DESC);
