-- Issue 13, TimescaleDB. telemetry_link_sample (007) becomes a hypertable like the table it replaces
-- (1-day chunks, compressed after 2 days segmented by port, dropped after 30 days); its chunks carry
-- the hypertable's default (time DESC) index. telemetry_gpu loses its text B-tree (rack_id, time DESC):
-- rack-wide time ranges use the hypertable's time index (chunk exclusion), history by
-- (node_id, gpu_index, time) keeps its B-tree (see 008_*.plain.sql for the measured COPY cost).
SELECT create_hypertable('telemetry_link_sample', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE,
                         migrate_data => TRUE);
ALTER TABLE telemetry_link_sample SET (timescaledb.compress, timescaledb.compress_segmentby = 'port_key',
                                       timescaledb.compress_orderby = 'time DESC');
SELECT add_compression_policy('telemetry_link_sample', INTERVAL '2 days', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_link_sample', INTERVAL '30 days', if_not_exists => TRUE);
DROP INDEX IF EXISTS telemetry_gpu_rack_time;
