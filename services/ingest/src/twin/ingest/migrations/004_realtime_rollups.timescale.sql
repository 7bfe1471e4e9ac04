-- Real-time continuous aggregates with retention (issue 8 item 7). 002 created the four rollups
-- with the default materialized_only = true (TimescaleDB >= 2.13): the newest minute/hour and any
-- back-filled or replayed data never showed up in them, unlike the plain views of 002_*.plain.sql.
-- With materialized_only = false a query unions the materialized buckets with the raw rows newer
-- than the last refresh, so the rollups answer like the plain views do. The refresh policies of 002
-- stay (1m: every minute over the last hour; 1h: every 30 minutes over the last 3 days); retention
-- keeps the rollups longer than the 30 days of raw data: 90 days of 1-minute, 2 years of 1-hour
-- buckets (both beyond their refresh windows, so a refresh never recomputes dropped buckets).
-- 002 is applied and immutable: this migration changes it, as every later change must.

ALTER MATERIALIZED VIEW telemetry_gpu_1m SET (timescaledb.materialized_only = false);
ALTER MATERIALIZED VIEW telemetry_gpu_1h SET (timescaledb.materialized_only = false);
ALTER MATERIALIZED VIEW telemetry_rack_1m SET (timescaledb.materialized_only = false);
ALTER MATERIALIZED VIEW telemetry_rack_1h SET (timescaledb.materialized_only = false);

SELECT add_retention_policy('telemetry_gpu_1m', drop_after => INTERVAL '90 days', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_rack_1m', drop_after => INTERVAL '90 days', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_gpu_1h', drop_after => INTERVAL '2 years', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_rack_1h', drop_after => INTERVAL '2 years', if_not_exists => TRUE);
