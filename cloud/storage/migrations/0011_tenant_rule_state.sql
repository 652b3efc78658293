-- 0011: state of rules that span a tenant's vehicles (gathering: several financed
-- cars at one risk POI), persisted like per-vehicle rule state.
CREATE TABLE tenant_rule_state (
    tenant_id   text NOT NULL REFERENCES tenants(id),
    rule        text NOT NULL,
    state       bytea NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, rule)
);
