-- 0010: access control for the API (cloud/api/, docs/api.md): server-side
-- sessions, login throttling shared by every API worker, and the audit log.
-- Depends only on 0001 (tenants, users).

-- One row per logged-in browser. The cookie holds a random token; only its
-- SHA-256 is stored, so a leaked table does not hand out sessions.
CREATE TABLE sessions (
    id            text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{64}$'),  -- hex SHA-256 of the token
    user_id       bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tenant_id     text NOT NULL REFERENCES tenants(id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),      -- idle timeout counts from here
    expires_at    timestamptz NOT NULL,                    -- absolute timeout
    csrf_token    text NOT NULL                            -- echoed in X-CSRF-Token on unsafe methods
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Login attempts per key: 'user:["<tenant>","<username>"]' (whether or not the
-- user exists) and 'ip:<address>'. Every attempt is counted before the password
-- is checked; a success takes its count back.
CREATE TABLE login_throttle (
    key              text PRIMARY KEY,
    failures         integer NOT NULL CHECK (failures >= 0),
    last_failure_at  timestamptz NOT NULL
);
CREATE INDEX login_throttle_last ON login_throttle (last_failure_at);

-- Who did or saw what: location views (sensitive personal information under
-- PIPL), logins, alert status changes, user administration. Append-only.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    time         timestamptz NOT NULL DEFAULT now(),
    tenant_id    text,              -- NULL: a failed login naming no existing tenant
    user_id      bigint,            -- NULL: no such user (failed login) or the command line
    username     text,
    action       text NOT NULL,     -- viewed_location | login_succeeded | login_failed | logout
                                    -- | alert_acknowledged | alert_resolved | user_created | user_disabled
    object_type  text,              -- vehicle | alert | user | session
    object_id    text,
    detail       jsonb NOT NULL DEFAULT '{}',
    ip           inet
);
CREATE INDEX audit_log_tenant_id ON audit_log (tenant_id, id DESC);
CREATE INDEX audit_log_object ON audit_log (tenant_id, object_type, object_id, id DESC);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
