-- 0007: anomaly models per tenant and their verdicts per vehicle-day (cloud/risk/anomaly).
-- Self-contained on top of 0001-0003.
--
-- anomaly_models.blob is a pickle of the fitted pipeline. Unpickling runs code: the
-- only writer of this table is `vgr cloud train`; grant INSERT/UPDATE on it to nobody else.

CREATE TABLE anomaly_models (
    tenant_id      text NOT NULL REFERENCES tenants(id),
    version        integer NOT NULL CHECK (version > 0),      -- 1, 2, ... per tenant
    created_at     timestamptz NOT NULL DEFAULT now(),
    feature_names  text[] NOT NULL,                            -- the blob's column order
    params         jsonb NOT NULL CHECK (jsonb_typeof(params) = 'object' AND params ? 'type'),
    training_rows  integer NOT NULL CHECK (training_rows > 0), -- vehicle-days trained on
    blob           bytea NOT NULL,
    metrics        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metrics) = 'object'),
    PRIMARY KEY (tenant_id, version)
);

CREATE TABLE anomaly_scores (
    tenant_id      text NOT NULL,
    vehicle_id     bigint NOT NULL REFERENCES vehicles(id),
    day            date NOT NULL,                               -- China time (UTC+8)
    model_version  integer NOT NULL,
    score          double precision NOT NULL,
    is_anomaly     boolean NOT NULL,
    top_features   jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(top_features) = 'array'),
    scored_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, vehicle_id, day, model_version),
    FOREIGN KEY (tenant_id, model_version) REFERENCES anomaly_models (tenant_id, version)
);
CREATE INDEX anomaly_scores_tenant_version_day ON anomaly_scores (tenant_id, model_version, day DESC);
CREATE INDEX anomaly_scores_anomalies ON anomaly_scores (tenant_id, day DESC) WHERE is_anomaly;
