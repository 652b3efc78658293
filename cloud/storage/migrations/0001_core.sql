-- 0001: tenants, people, vehicles, loans, devices, policies; fixes and device events as hypertables.
-- Every tenant-owned row carries tenant_id; every query filters on it.

CREATE TABLE tenants (
    id              text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name            text NOT NULL,
    retention_days  integer NOT NULL DEFAULT 400 CHECK (retention_days > 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id              bigserial PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants(id),
    username        text NOT NULL,
    role            text NOT NULL CHECK (role IN ('admin', 'analyst', 'recovery', 'installer', 'integration')),
    password_hash   text,
    api_key_hash    text,
    disabled        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, username)
);

CREATE TABLE vehicles (
    id              bigserial PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants(id),
    vin             text NOT NULL CHECK (vin ~ '^[A-HJ-NPR-Z0-9]{17}$'),
    plate           text,
    model           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, vin)
);

CREATE TABLE loans (
    id               bigserial PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants(id),
    contract_id      text NOT NULL,
    vehicle_id       bigint REFERENCES vehicles(id),
    borrower_name    text,
    declared_address text,
    declared_adcode  text CHECK (declared_adcode ~ '^[0-9]{6}$'),
    declared_lat     double precision,
    declared_lon     double precision,
    status           text NOT NULL DEFAULT 'current' CHECK (status IN ('current', 'overdue', 'default', 'closed')),
    outstanding      numeric(14, 2),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, contract_id)
);

CREATE TABLE devices (
    id                  text PRIMARY KEY,             -- IMEI; MQTT username and client id
    tenant_id           text NOT NULL REFERENCES tenants(id),
    kind                text NOT NULL CHECK (kind IN ('wired', 'wireless')),
    vehicle_id          bigint REFERENCES vehicles(id),
    loan_id             bigint REFERENCES loans(id),
    credential_hash     text,                          -- Mosquitto PBKDF2 hash of the MQTT password
    token_id            text,                          -- jti of the current terminal token
    token_expires_at    timestamptz,
    revoked             boolean NOT NULL DEFAULT false,
    revoked_at          timestamptz,
    heartbeat_s         integer NOT NULL DEFAULT 120,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_tenant ON devices (tenant_id);
CREATE INDEX devices_vehicle ON devices (vehicle_id);

CREATE TABLE policies (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants(id),
    device_id   text NOT NULL REFERENCES devices(id),
    version     integer NOT NULL,
    document    jsonb NOT NULL,
    jws         text NOT NULL,
    hash        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX policies_device ON policies (device_id, version DESC);

-- Fixes: one row per GNSS epoch a tracker reported. The unique key includes the
-- time column, as TimescaleDB requires, and makes every replay a no-op.
CREATE TABLE fixes (
    time         timestamptz NOT NULL,
    device_id    text NOT NULL,
    boot_id      text NOT NULL,
    seq          bigint NOT NULL,
    tenant_id    text NOT NULL,
    vehicle_id   bigint,
    lat          double precision NOT NULL,
    lon          double precision NOT NULL,
    alt_m        real,
    speed_mps    real NOT NULL,
    course_deg   real,
    mode         smallint NOT NULL,
    hdop         real,
    sats         smallint,
    ignition     boolean,
    ext_v        real,
    batt_v       real,
    flags        text[] NOT NULL DEFAULT '{}',          -- plausibility findings of strength "suspect"
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, boot_id, seq, time)
);
SELECT create_hypertable('fixes', 'time', chunk_time_interval => interval '1 day');
CREATE INDEX fixes_device_time ON fixes (device_id, time DESC);
CREATE INDEX fixes_vehicle_time ON fixes (vehicle_id, time DESC);
CREATE INDEX fixes_tenant_time ON fixes (tenant_id, time DESC);

CREATE TABLE device_events (
    time         timestamptz NOT NULL,
    device_id    text NOT NULL,
    boot_id      text NOT NULL,
    seq          bigint NOT NULL,
    tenant_id    text NOT NULL,
    vehicle_id   bigint,
    kind         text NOT NULL,
    lat          double precision,
    lon          double precision,
    detail       jsonb NOT NULL DEFAULT '{}',
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, boot_id, seq, time)
);
SELECT create_hypertable('device_events', 'time', chunk_time_interval => interval '1 day');
CREATE INDEX device_events_device_time ON device_events (device_id, time DESC);

-- What ingest could not accept as a position or event, kept with its reason so
-- nothing is lost silently: unknown or revoked terminals, implausible fixes.
CREATE TABLE quarantine (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    device_id    text,
    tenant_id    text,
    reason       text NOT NULL,
    topic        text,
    record       jsonb,
    raw          bytea
);
CREATE INDEX quarantine_reason ON quarantine (reason, received_at DESC);

-- Device availability from the retained status topic.
CREATE TABLE device_status (
    device_id      text PRIMARY KEY,
    state          text NOT NULL,
    boot_id        text,
    agent_version  text,
    outbox_depth   integer,
    reason         text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Signals raised outside the rule engine's own state (ingest: unauthorized terminals).
-- The risk engine consumes them; they are kept for audit.
CREATE TABLE signals (
    id          bigserial PRIMARY KEY,
    time        timestamptz NOT NULL,
    tenant_id   text,
    device_id   text,
    vehicle_id  bigint,
    kind        text NOT NULL,
    source      text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX signals_kind_time ON signals (kind, time DESC);
