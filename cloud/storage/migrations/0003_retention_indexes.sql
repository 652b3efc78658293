-- 0003: the per-tenant retention job (cloud/storage/retention.py) finds and deletes a
-- tenant's expired rows by (tenant_id, time); fixes has that index since 0001,
-- device_events gets it here so the job never scans whole chunks.
CREATE INDEX device_events_tenant_time ON device_events (tenant_id, time DESC);
