-- 0006: webhooks (Standard Webhooks). Endpoints and their secrets per tenant, the
-- transactional outbox (webhook_messages, written in the same transaction as the
-- alert), one delivery per message and endpoint (per replay series) and a log of
-- every attempt. Self-contained: needs only tenants from 0001.

CREATE TABLE webhook_endpoints (
    id               text PRIMARY KEY CHECK (id ~ '^ep_[a-z0-9]{1,64}$'),
    tenant_id        text NOT NULL REFERENCES tenants(id),
    url              text NOT NULL CHECK (url ~* '^https?://[^/?#]+'),
    description      text NOT NULL DEFAULT '',
    event_types      text[] NOT NULL DEFAULT '{}',   -- empty: every event type
    enabled          boolean NOT NULL DEFAULT true,
    disabled_reason  text,
    disabled_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (enabled OR disabled_reason IS NOT NULL)
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id) WHERE enabled;

-- The newest secret (expires_at NULL) is primary; after a rotation the older ones
-- keep signing until expires_at, so receivers can switch without losing messages.
CREATE TABLE webhook_secrets (
    id           bigserial PRIMARY KEY,
    endpoint_id  text NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    secret       text NOT NULL CHECK (secret ~ '^whsec_[A-Za-z0-9+/=]+$'),
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at   timestamptz
);
CREATE INDEX webhook_secrets_endpoint ON webhook_secrets (endpoint_id, created_at DESC);

-- The outbox. id is the webhook-id header: stable across retries and replays.
CREATE TABLE webhook_messages (
    id          text PRIMARY KEY CHECK (id ~ '^msg_[A-Za-z0-9._:-]{1,120}$'),
    tenant_id   text NOT NULL REFERENCES tenants(id),
    event_type  text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_messages_tenant_time ON webhook_messages (tenant_id, created_at DESC);

-- state: pending (never tried, or a claimed attempt not yet finished), failed (an
-- attempt failed, another is due at next_attempt_at), succeeded, dead (no more
-- attempts: schedule exhausted, endpoint disabled or target refused).
-- A dispatcher claims a due row by moving next_attempt_at one lease ahead and
-- setting leased_by; if it dies, the row is due again when the lease runs out.
CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    message_id       text NOT NULL REFERENCES webhook_messages(id) ON DELETE CASCADE,
    endpoint_id      text NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    tenant_id        text NOT NULL REFERENCES tenants(id),
    series           integer NOT NULL DEFAULT 1 CHECK (series >= 1),  -- 2, 3…: manual replays
    attempt_no       integer NOT NULL DEFAULT 0 CHECK (attempt_no >= 0),  -- attempts claimed so far
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'succeeded', 'failed', 'dead')),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    leased_by        text,
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (message_id, endpoint_id, series)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state IN ('pending', 'failed');
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, state, updated_at DESC);

-- One row per attempt: what was sent when, what came back, how long it took.
-- outcome: succeeded, http_error, timeout, connection_error, gone, refused_<reason>,
-- abandoned (the dispatcher stopped before finishing it), endpoint_disabled.
CREATE TABLE webhook_attempts (
    id             bigserial PRIMARY KEY,
    delivery_id    bigint NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt_no     integer NOT NULL,
    dispatcher     text,
    started_at     timestamptz NOT NULL,
    latency_ms     double precision,
    outcome        text NOT NULL,
    status         integer,
    error          text,
    response_body  text    -- truncated to webhooks.max_logged_body_bytes
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempt_no);
