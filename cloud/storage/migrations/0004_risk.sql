-- 0004: the risk engine's work inbox, per-vehicle rule state with snapshots,
-- alerts with their lifecycle, and risk scores with history.

-- Ingest appends one row per committed batch, in the same transaction as the
-- rows it stored: which vehicles got new data and the earliest GNSS time of it.
-- Insert-only, so ingest never waits on a risk worker's locks.
CREATE TABLE risk_inbox (
    id           bigserial PRIMARY KEY,
    vehicle_ids  bigint[] NOT NULL,
    tenant_ids   text[] NOT NULL,
    since        timestamptz[] NOT NULL,   -- per vehicle: earliest GNSS time of the new rows
    tick         boolean NOT NULL DEFAULT false,  -- a time-passing sweep, not new data
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Rule state per vehicle after the last input it ran (msgpack of rule name -> state).
-- pos_* is the ordering key of that input; tick_time the last Tick it saw.
CREATE TABLE rule_state (
    vehicle_id     bigint PRIMARY KEY,
    tenant_id      text NOT NULL,
    engine_version integer NOT NULL,
    pos_time       timestamptz NOT NULL,
    pos_key        bytea NOT NULL,
    tick_time      timestamptz,
    state          bytea NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rule_state_tenant ON rule_state (tenant_id);

-- Snapshots of rule_state at GNSS-hour boundaries, so late data re-runs from
-- the last snapshot before it instead of from the beginning.
CREATE TABLE rule_snapshots (
    vehicle_id     bigint NOT NULL,
    pos_time       timestamptz NOT NULL,
    engine_version integer NOT NULL,
    pos_key        bytea NOT NULL,
    state          bytea NOT NULL,
    PRIMARY KEY (vehicle_id, pos_time)
);

CREATE TABLE alerts (
    id               bigserial PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants(id),
    vehicle_id       bigint NOT NULL,
    loan_id          bigint,
    device_id        text,
    rule             text NOT NULL,
    episode          text NOT NULL,
    severity         text NOT NULL CHECK (severity IN ('info', 'warn', 'high', 'critical')),
    status           text NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    resolution       text CHECK (resolution IN ('auto', 'manual', 'suppressed')),
    fired_at         timestamptz NOT NULL,      -- GNSS time the rule had its evidence
    opened_at        timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    resolved_at      timestamptz,
    resolved_by      text,
    lat              double precision,
    lon              double precision,
    message          text NOT NULL DEFAULT '',
    evidence         jsonb NOT NULL DEFAULT '{}',
    occurrences      integer NOT NULL DEFAULT 1,
    UNIQUE (tenant_id, vehicle_id, rule, episode)
);
CREATE INDEX alerts_tenant_status ON alerts (tenant_id, status, opened_at DESC);
CREATE INDEX alerts_vehicle ON alerts (vehicle_id, opened_at DESC);

-- Every lifecycle change of an alert: who, when, from what to what.
CREATE TABLE alert_history (
    id          bigserial PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts(id),
    time        timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,          -- 'engine' or a user
    action      text NOT NULL,          -- opened | escalated | repeated | acknowledged | resolved | reopened | suppressed
    from_status text,
    to_status   text,
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alert_history_alert ON alert_history (alert_id, time);

-- POI entries, for the cross-vehicle gathering rule.
CREATE TABLE poi_visits (
    tenant_id   text NOT NULL,
    poi_id      text NOT NULL,
    vehicle_id  bigint NOT NULL,
    time        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, poi_id, vehicle_id, time)
);

CREATE TABLE vehicle_risk (
    vehicle_id  bigint PRIMARY KEY,
    tenant_id   text NOT NULL,
    score       real NOT NULL,
    band        text NOT NULL,
    reasons     jsonb NOT NULL DEFAULT '[]',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vehicle_risk_tenant_score ON vehicle_risk (tenant_id, score DESC);

CREATE TABLE risk_history (
    time        timestamptz NOT NULL,
    vehicle_id  bigint NOT NULL,
    tenant_id   text NOT NULL,
    score       real NOT NULL,
    band        text NOT NULL,
    reasons     jsonb NOT NULL DEFAULT '[]'
);
SELECT create_hypertable('risk_history', 'time', chunk_time_interval => interval '7 days');
CREATE INDEX risk_history_vehicle ON risk_history (vehicle_id, time DESC);

-- Per-tenant rule thresholds: rule name -> partial config overriding DOMAIN.md defaults.
CREATE TABLE tenant_rule_config (
    tenant_id   text NOT NULL REFERENCES tenants(id),
    rule        text NOT NULL,
    config      jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, rule)
);
