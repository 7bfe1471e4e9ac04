-- Issue 13, plain PostgreSQL, after 009: time ranges over telemetry_gpu_node use a BRIN on time (as 008 did for
-- the old table), and the rollups 009 had to drop come back as plain views with 002's columns, built like the
-- TimescaleDB variant's (010_*.timescale.sql): per array position, then named per GPU (one row per reported GPU,
-- NULL for a float not measured: the same rows as before).
CREATE INDEX IF NOT EXISTS telemetry_gpu_node_time_brin ON telemetry_gpu_node USING brin (time);

-- The per-position rollups the TimescaleDB variant keeps as continuous aggregates (telemetry_gpu_node_1m/_1h:
-- bucket, node_key, slot i), here plain views with the same names and columns (both variants offer the same
-- relations: tests/integration/test_migrations_all_services.py).
CREATE OR REPLACE VIEW telemetry_gpu_node_1m AS
SELECT date_bin('1 minute', n.time, TIMESTAMPTZ '2000-01-01') AS bucket, n.node_key, s.i,
       avg(NULLIF(n.power_w[s.i], 'NaN')) AS power_w_avg, max(NULLIF(n.power_w[s.i], 'NaN')) AS power_w_max,
       avg(NULLIF(n.gpu_temp_c[s.i], 'NaN')) AS gpu_temp_c_avg, max(NULLIF(n.gpu_temp_c[s.i], 'NaN')) AS gpu_temp_c_max,
       max(NULLIF(n.mem_temp_c[s.i], 'NaN')) AS mem_temp_c_max, avg(NULLIF(n.util_gpu_pct[s.i], 'NaN')) AS util_gpu_pct_avg,
       avg(NULLIF(n.tensor_active[s.i], 'NaN')) AS tensor_active_avg,
       count(NULLIF(n.xid_errors[s.i], -1)) AS samples
FROM telemetry_gpu_node n JOIN telemetry_gpu_slot s ON n.gpus = s.gpus
GROUP BY 1, 2, 3;

CREATE OR REPLACE VIEW telemetry_gpu_node_1h AS
SELECT date_bin('1 hour', n.time, TIMESTAMPTZ '2000-01-01') AS bucket, n.node_key, s.i,
       avg(NULLIF(n.power_w[s.i], 'NaN')) AS power_w_avg, max(NULLIF(n.power_w[s.i], 'NaN')) AS power_w_max,
       avg(NULLIF(n.gpu_temp_c[s.i], 'NaN')) AS gpu_temp_c_avg, max(NULLIF(n.gpu_temp_c[s.i], 'NaN')) AS gpu_temp_c_max,
       max(NULLIF(n.mem_temp_c[s.i], 'NaN')) AS mem_temp_c_max, avg(NULLIF(n.util_gpu_pct[s.i], 'NaN')) AS util_gpu_pct_avg,
       avg(NULLIF(n.tensor_active[s.i], 'NaN')) AS tensor_active_avg,
       count(NULLIF(n.xid_errors[s.i], -1)) AS samples
FROM telemetry_gpu_node n JOIN telemetry_gpu_slot s ON n.gpus = s.gpus
GROUP BY 1, 2, 3;

CREATE OR REPLACE VIEW telemetry_gpu_1m AS
SELECT r.bucket, e.rack_id, e.node_id, (r.i - 1)::smallint AS gpu_index,
       r.power_w_avg, r.power_w_max, r.gpu_temp_c_avg, r.gpu_temp_c_max, r.mem_temp_c_max, r.util_gpu_pct_avg,
       r.tensor_active_avg, r.samples
FROM telemetry_gpu_node_1m r JOIN telemetry_node_entity e USING (node_key)
WHERE r.samples > 0;

CREATE OR REPLACE VIEW telemetry_gpu_1h AS
SELECT r.bucket, e.rack_id, e.node_id, (r.i - 1)::smallint AS gpu_index,
       r.power_w_avg, r.power_w_max, r.gpu_temp_c_avg, r.gpu_temp_c_max, r.mem_temp_c_max, r.util_gpu_pct_avg,
       r.tensor_active_avg, r.samples
FROM telemetry_gpu_node_1h r JOIN telemetry_node_entity e USING (node_key)
WHERE r.samples > 0;
