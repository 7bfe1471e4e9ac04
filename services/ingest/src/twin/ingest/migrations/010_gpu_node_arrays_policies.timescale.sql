-- Issue 13, TimescaleDB, after 009: telemetry_gpu_node becomes a hypertable like the table it replaces (1-day
-- chunks, compressed after 2 days segmented by node, dropped after 30 days; 002), its chunks carry the
-- hypertable's default (time DESC) index. The rollups 009 dropped come back with 002's names and columns.
--
-- Continuous aggregates refuse set-returning functions and LATERAL before 2.16, so the per-GPU rollups are
-- per array position: telemetry_gpu_node JOIN telemetry_gpu_slot on the one equality gpus = gpus (TimescaleDB
-- >= 2.10 accepts an INNER JOIN of one hypertable with one regular table on a single equality condition:
-- docs "About continuous aggregates", "Continuous aggregates with a JOIN clause"; only the hypertable's
-- changes are tracked, and the slot table never changes), grouped by bucket, node and slot i; subscripts and
-- NULLIF are immutable expressions, as caggs require of everything in SELECT and GROUP BY. No WHERE
-- referencing both tables (it could count as a second join condition): an absent slot (NaN floats, -1
-- counters, see 009) adds NULLs that avg/max skip and nothing to `samples` (count of NULLIF(xid_errors[i],
-- -1)); the reader views telemetry_gpu_1m/_1h drop the slots with no sample and give the old columns
-- (rack_id, node_id from telemetry_node_entity, gpu_index = i - 1). Refresh policies, materialized_only =
-- false and retention as 002 + 004.

SELECT create_hypertable('telemetry_gpu_node', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE,
                         migrate_data => TRUE);
ALTER TABLE telemetry_gpu_node SET (timescaledb.compress, timescaledb.compress_segmentby = 'node_key',
                                    timescaledb.compress_orderby = 'time DESC');
SELECT add_compression_policy('telemetry_gpu_node', INTERVAL '2 days', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_gpu_node', INTERVAL '30 days', if_not_exists => TRUE);

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry_gpu_node_1m WITH (timescaledb.continuous) AS
SELECT time_bucket('1 minute', n.time) AS bucket, n.node_key, s.i,
       avg(NULLIF(n.power_w[s.i], 'NaN')) AS power_w_avg, max(NULLIF(n.power_w[s.i], 'NaN')) AS power_w_max,
       avg(NULLIF(n.gpu_temp_c[s.i], 'NaN')) AS gpu_temp_c_avg, max(NULLIF(n.gpu_temp_c[s.i], 'NaN')) AS gpu_temp_c_max,
       max(NULLIF(n.mem_temp_c[s.i], 'NaN')) AS mem_temp_c_max, avg(NULLIF(n.util_gpu_pct[s.i], 'NaN')) AS util_gpu_pct_avg,
       avg(NULLIF(n.tensor_active[s.i], 'NaN')) AS tensor_active_avg,
       count(NULLIF(n.xid_errors[s.i], -1)) AS samples
FROM telemetry_gpu_node n JOIN telemetry_gpu_slot s ON n.gpus = s.gpus
GROUP BY 1, 2, 3 WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry_gpu_node_1h WITH (timescaledb.continuous) AS
SELECT time_bucket('1 hour', n.time) AS bucket, n.node_key, s.i,
       avg(NULLIF(n.power_w[s.i], 'NaN')) AS power_w_avg, max(NULLIF(n.power_w[s.i], 'NaN')) AS power_w_max,
       avg(NULLIF(n.gpu_temp_c[s.i], 'NaN')) AS gpu_temp_c_avg, max(NULLIF(n.gpu_temp_c[s.i], 'NaN')) AS gpu_temp_c_max,
       max(NULLIF(n.mem_temp_c[s.i], 'NaN')) AS mem_temp_c_max, avg(NULLIF(n.util_gpu_pct[s.i], 'NaN')) AS util_gpu_pct_avg,
       avg(NULLIF(n.tensor_active[s.i], 'NaN')) AS tensor_active_avg,
       count(NULLIF(n.xid_errors[s.i], -1)) AS samples
FROM telemetry_gpu_node n JOIN telemetry_gpu_slot s ON n.gpus = s.gpus
GROUP BY 1, 2, 3 WITH NO DATA;

ALTER MATERIALIZED VIEW telemetry_gpu_node_1m SET (timescaledb.materialized_only = false);
ALTER MATERIALIZED VIEW telemetry_gpu_node_1h SET (timescaledb.materialized_only = false);

SELECT add_continuous_aggregate_policy('telemetry_gpu_node_1m', start_offset => INTERVAL '1 hour',
                                       end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute', if_not_exists => TRUE);
SELECT add_continuous_aggregate_policy('telemetry_gpu_node_1h', start_offset => INTERVAL '3 days',
                                       end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_gpu_node_1m', drop_after => INTERVAL '90 days', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_gpu_node_1h', drop_after => INTERVAL '2 years', if_not_exists => TRUE);

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
