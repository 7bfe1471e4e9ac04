-- Plain PostgreSQL: no hypertable; a BRIN index keeps time-range scans and manual retention cheap.
CREATE INDEX IF NOT EXISTS telemetry_equipment_time_brin ON telemetry_equipment USING brin (time);
