-- With TimescaleDB: hypertables (1-day chunks), compression after 2 days, retention 30 days, and
-- continuous aggregates telemetry_{gpu,rack}_{1m,1h} with the same columns as the plain views.
-- WITH NO DATA keeps every statement transaction-safe; the refresh policies fill the aggregates.

SELECT create_hypertable('telemetry_gpu', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('telemetry_rack', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('telemetry_link', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE, migrate_data => TRUE);

ALTER TABLE telemetry_gpu SET (timescaledb.compress, timescaledb.compress_segmentby = 'node_id, gpu_index',
                               timescaledb.compress_orderby = 'time DESC');
ALTER TABLE telemetry_rack SET (timescaledb.compress, timescaledb.compress_segmentby = 'rack_id',
                                timescaledb.compress_orderby = 'time DESC');
ALTER TABLE telemetry_link SET (timescaledb.compress, timescaledb.compress_segmentby = 'port_id',
                                timescaledb.compress_orderby = 'time DESC');
SELECT add_compression_policy('telemetry_gpu', INTERVAL '2 days', if_not_exists => TRUE);
SELECT add_compression_policy('telemetry_rack', INTERVAL '2 days', if_not_exists => TRUE);
SELECT add_compression_policy('telemetry_link', INTERVAL '2 days', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_gpu', INTERVAL '30 days', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_rack', INTERVAL '30 days', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_link', INTERVAL '30 days', if_not_exists => TRUE);

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry_gpu_1m WITH (timescaledb.continuous) AS
SELECT time_bucket('1 minute', time) AS bucket, rack_id, node_id, gpu_index,
       avg(power_w) AS power_w_avg, max(power_w) AS power_w_max,
       avg(gpu_temp_c) AS gpu_temp_c_avg, max(gpu_temp_c) AS gpu_temp_c_max,
       max(mem_temp_c) AS mem_temp_c_max, avg(util_gpu_pct) AS util_gpu_pct_avg,
       avg(tensor_active) AS tensor_active_avg, count(*) AS samples
FROM telemetry_gpu GROUP BY 1, 2, 3, 4 WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry_gpu_1h WITH (timescaledb.continuous) AS
SELECT time_bucket('1 hour', time) AS bucket, rack_id, node_id, gpu_index,
       avg(power_w) AS power_w_avg, max(power_w) AS power_w_max,
       avg(gpu_temp_c) AS gpu_temp_c_avg, max(gpu_temp_c) AS gpu_temp_c_max,
       max(mem_temp_c) AS mem_temp_c_max, avg(util_gpu_pct) AS util_gpu_pct_avg,
       avg(tensor_active) AS tensor_active_avg, count(*) AS samples
FROM telemetry_gpu GROUP BY 1, 2, 3, 4 WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry_rack_1m WITH (timescaledb.continuous) AS
SELECT time_bucket('1 minute', time) AS bucket, rack_id,
       avg(pdu_input_power_w) AS pdu_power_w_avg,
       max(pdu_input_power_w) AS pdu_power_w_max,
       avg(inlet_air_temp_c) AS inlet_air_temp_c_avg, avg(coolant_supply_temp_c) AS coolant_supply_temp_c_avg,
       avg(coolant_return_temp_c) AS coolant_return_temp_c_avg, avg(coolant_flow_lpm) AS coolant_flow_lpm_avg,
       count(*) AS samples
FROM telemetry_rack GROUP BY 1, 2 WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry_rack_1h WITH (timescaledb.continuous) AS
SELECT time_bucket('1 hour', time) AS bucket, rack_id,
       avg(pdu_input_power_w) AS pdu_power_w_avg,
       max(pdu_input_power_w) AS pdu_power_w_max,
       avg(inlet_air_temp_c) AS inlet_air_temp_c_avg, avg(coolant_supply_temp_c) AS coolant_supply_temp_c_avg,
       avg(coolant_return_temp_c) AS coolant_return_temp_c_avg, avg(coolant_flow_lpm) AS coolant_flow_lpm_avg,
       count(*) AS samples
FROM telemetry_rack GROUP BY 1, 2 WITH NO DATA;

SELECT add_continuous_aggregate_policy('telemetry_gpu_1m', start_offset => INTERVAL '1 hour',
                                       end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute', if_not_exists => TRUE);
SELECT add_continuous_aggregate_policy('telemetry_gpu_1h', start_offset => INTERVAL '3 days',
                                       end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes', if_not_exists => TRUE);
SELECT add_continuous_aggregate_policy('telemetry_rack_1m', start_offset => INTERVAL '1 hour',
                                       end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute', if_not_exists => TRUE);
SELECT add_continuous_aggregate_policy('telemetry_rack_1h', start_offset => INTERVAL '3 days',
                                       end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes', if_not_exists => TRUE);
