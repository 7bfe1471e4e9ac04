-- Issue 13, plain PostgreSQL, after 011_link_rack_arrays: rack-wide time ranges over telemetry_link_rack use a
-- BRIN on time (as 008 did for telemetry_link_sample).
CREATE INDEX IF NOT EXISTS telemetry_link_rack_time_brin ON telemetry_link_rack USING brin (time);
