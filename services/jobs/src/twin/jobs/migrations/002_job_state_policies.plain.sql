-- Plain PostgreSQL: no hypertable; a BRIN index keeps time-range scans and manual retention
-- (DELETE ... WHERE time < now() - interval '180 days') cheap on an append-mostly table.
CREATE INDEX IF NOT EXISTS job_state_time_brin ON job_state USING brin (time);
