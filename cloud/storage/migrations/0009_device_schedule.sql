-- 0009: a wireless tracker's report schedule, so the offline rule knows when a
-- report was due (DOMAIN.md: wakes 1-4 times a day, or every 72 h).
ALTER TABLE devices ADD COLUMN wakes_per_day real CHECK (wakes_per_day > 0 AND wakes_per_day <= 96);

-- Device events get flags like fixes: "late" marks records uploaded from the
-- device's backlog (FixBatch/EventBatch ``backlog``), a blind area not an outage.
ALTER TABLE device_events ADD COLUMN flags text[] NOT NULL DEFAULT '{}';
