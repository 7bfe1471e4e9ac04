-- With TimescaleDB: power_state becomes a hypertable (1-day chunks), compressed after 7 days
-- (segmented by entity, newest first) and dropped after 90 days.
SELECT create_hypertable('power_state', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE, migrate_data => TRUE);
ALTER TABLE power_state SET (timescaledb.compress, timescaledb.compress_segmentby = 'entity_id',
                             timescaledb.compress_orderby = 'time DESC');
SELECT add_compression_policy('power_state', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('power_state', INTERVAL '90 days', if_not_exists => TRUE);
