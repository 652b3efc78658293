-- 0013: indexes for the live map's feed (cloud/live/source.py). The feed polls each
-- table for rows changed since its watermark (minus an overlap for late commits):
-- fixes by received_at (within the last days, so only recent chunks are searched),
-- alerts and recovery cases by updated_at.
CREATE INDEX fixes_received ON fixes (received_at);
CREATE INDEX alerts_updated ON alerts (updated_at);
CREATE INDEX recovery_cases_updated ON recovery_cases (updated_at);
CREATE INDEX vehicle_risk_updated ON vehicle_risk (updated_at);
