-- 0014: what the lending core pushes with PUT /v1/loans/{contract_id} (cloud/api/loans.py):
-- days overdue and the principal lent, next to 0001's status and outstanding balance
-- (the exposure the recovery queue ranks by). Plus the index the policy list pages on.
ALTER TABLE loans
    ADD COLUMN overdue_days integer CHECK (overdue_days >= 0),
    ADD COLUMN principal    numeric(14, 2) CHECK (principal >= 0),
    ADD COLUMN updated_at   timestamptz NOT NULL DEFAULT now();

CREATE INDEX policies_tenant_device ON policies (tenant_id, device_id, version);
