-- Plain PostgreSQL: no hypertable; a BRIN index keeps time-range scans and manual retention
-- (DELETE ... WHERE time < now() - interval '90 days') cheap on an append-mostly table.
CREATE INDEX IF NOT EXISTS cooling_state_time_brin ON cooling_state USING brin (time);
