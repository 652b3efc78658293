-- 0008: the asset engine. Recovery cases with their audit trail, and the signed
-- commands sent to trackers (chase mode) with the trackers' acknowledgements.
-- Depends only on 0001 (tenants, vehicles, loans, devices).

-- One recovery case per attempt to get a car back. Workflow (cloud/recovery/workflow.py):
-- open -> assigned -> chasing -> located -> recovered | failed -> closed, and
-- open / assigned / chasing / located -> closed as cancelled (with a reason).
CREATE TABLE recovery_cases (
    id           bigserial PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants(id),
    vehicle_id   bigint NOT NULL REFERENCES vehicles(id),
    loan_id      bigint REFERENCES loans(id),
    status       text NOT NULL DEFAULT 'open' CHECK (status IN
                     ('open', 'assigned', 'chasing', 'located', 'recovered', 'failed', 'closed')),
    assignee     text,
    opened_by    text NOT NULL,
    opened_at    timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    closed_at    timestamptz,
    outcome      text CHECK (outcome IN ('recovered', 'failed', 'cancelled')),
    notes        text NOT NULL DEFAULT '',
    located_lat  double precision CHECK (located_lat BETWEEN -90 AND 90),
    located_lon  double precision CHECK (located_lon BETWEEN -180 AND 180),
    located_at   timestamptz,
    CHECK ((status = 'closed') = (closed_at IS NOT NULL)),
    CHECK ((status IN ('recovered', 'failed', 'closed')) = (outcome IS NOT NULL)),
    CHECK (status NOT IN ('recovered', 'failed') OR outcome = status),
    CHECK (status IN ('open', 'closed') OR assignee IS NOT NULL)
);
-- At most one case per vehicle that is not closed yet.
CREATE UNIQUE INDEX recovery_cases_one_open ON recovery_cases (vehicle_id) WHERE status <> 'closed';
CREATE INDEX recovery_cases_tenant_status ON recovery_cases (tenant_id, status, updated_at DESC);

-- Every change of a case: who, when, what, from which status to which, and the details.
-- Append-only: the trigger below refuses UPDATE and DELETE.
CREATE TABLE case_history (
    id           bigserial PRIMARY KEY,
    case_id      bigint NOT NULL REFERENCES recovery_cases(id),
    time         timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,      -- a user, or 'device:<id>' for a tracker's acknowledgement
    action       text NOT NULL,      -- opened | assigned | chase_started | chase_stopped | located
                                     -- | recovered | failed | closed | cancelled
                                     -- | commands_published | command_acked
    from_status  text,
    to_status    text,
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX case_history_case ON case_history (case_id, time, id);

CREATE FUNCTION case_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'case_history is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER case_history_append_only BEFORE UPDATE OR DELETE ON case_history
    FOR EACH ROW EXECUTE FUNCTION case_history_append_only();

-- Signed commands sent to trackers and what each tracker answered (CommandAck).
-- The nonce is the command's identity on the wire: the ack names it.
CREATE TABLE commands (
    id            bigserial PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants(id),
    device_id     text NOT NULL REFERENCES devices(id),
    case_id       bigint REFERENCES recovery_cases(id),
    cmd           text NOT NULL,
    args          jsonb NOT NULL DEFAULT '{}',
    nonce         text NOT NULL UNIQUE,
    jws           text NOT NULL,
    issued_at     timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    issued_by     text NOT NULL,
    published_at  timestamptz,
    publish_note  text,               -- the broker's PUBACK reason, or why publishing failed
    ack_ok        boolean,
    ack_reason    text,
    ack_at        timestamptz,
    CHECK (expires_at > issued_at)
);
CREATE INDEX commands_case ON commands (case_id, issued_at);
CREATE INDEX commands_device ON commands (device_id, issued_at DESC);
